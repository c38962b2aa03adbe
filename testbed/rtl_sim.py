"""The chip's RTL under a simulator, through ``cocotb_tools.runner``: sources and builds.

One place says which files make the chip (``hdl/rtl`` and the simulation wrappers of
``hdl/sim``), how a build of it is compiled (one directory per parameter set under
``sim_build/``, so that a rebuild happens only when the RTL or the parameters change) and
where the Python a simulation imports comes from. The cocotb regression
(``cocotb_tests``) and the flight software's RTL chip (``firmware_sim.rtl``) both build
through it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RTL = ROOT / "hdl" / "rtl"
SIM = ROOT / "hdl" / "sim"
BUILD_ROOT = ROOT / "sim_build"
SIMULATORS = ("icarus",)
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


def runner(simulator: str = "icarus"):
    """The cocotb runner of ``simulator``; ValueError naming the choices otherwise."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator {simulator!r}: one of {', '.join(SIMULATORS)}")
    from cocotb_tools.runner import get_runner

    return get_runner(simulator)


def build(
    toplevel: str,
    parameters: Mapping[str, object],
    build_dir: Path,
    *,
    simulator: str = "icarus",
    waves: bool = False,
    log_file: Path | None = None,
):
    """Compile ``toplevel`` with ``parameters`` into ``build_dir``; the runner, ready to test."""
    sim = runner(simulator)
    sim.build(
        sources=sources(),
        hdl_toplevel=toplevel,
        parameters=dict(parameters),
        build_dir=build_dir,
        timescale=("1ns", "1ps"),
        waves=waves,
        log_file=log_file,
    )
    return sim
