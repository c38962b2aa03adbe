"""Build and run a cocotb testbench under Icarus Verilog through cocotb_tools.runner
(``SCC_SIMULATOR=verilator``: under Verilator).

Each parameter set builds into its own directory under ``sim_build/``. A failing
run is repeated once with waveform dumping so that the failure leaves an FST
file next to its build, and the seed is reused so the replay is exact.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from pathlib import Path

from cocotb_tests import fcov
from testbed import rtl_sim
from testbed.rtl_sim import BUILD_ROOT, ROOT

RESULTS = ROOT / "results"

#: Environment variable carrying the HDL parameters into the Python testbench.
PARAMS_ENV = "SCC_PARAMS"
#: Environment variable naming the simulator (``testbed.rtl_sim.SIMULATORS``; icarus).
SIMULATOR_ENV = "SCC_SIMULATOR"
#: Environment variable asking for Verilator's line and toggle coverage (``make coverage``).
COVERAGE_ENV = "SCC_COVERAGE"


def run(
    toplevel: str,
    test_module: str,
    parameters: Mapping[str, object] | None = None,
    testcase: str | None = None,
) -> None:
    """Build ``toplevel`` with ``parameters`` and run the cocotb tests in ``test_module``."""
    parameters = dict(parameters or {})
    # SCC_TESTCASE=name runs one test of the module, for replaying a failure.
    testcase = testcase or os.environ.get("SCC_TESTCASE") or None
    simulator = os.environ.get(SIMULATOR_ENV, "icarus")
    tag = rtl_sim.build_tag(toplevel, parameters)
    if simulator != "icarus":
        tag = f"{tag}-{simulator}"
    if coverage():
        tag = f"{tag}-coverage"
    seed = int(os.environ.get("COCOTB_RANDOM_SEED", random.randrange(1 << 31)))
    RESULTS.mkdir(exist_ok=True)
    name = f"{tag}-{test_module.rsplit('.', 1)[-1]}"
    results = RESULTS / f"{name}.xml"
    try:
        _build_and_test(toplevel, test_module, parameters, testcase, seed, BUILD_ROOT / tag,
                        results, fcov.FCOV_DIR / f"{name}.yml")  # fmt: skip
    except SystemExit as failure:
        waves_dir = BUILD_ROOT / f"{tag}-waves"
        try:
            _build_and_test(toplevel, test_module, parameters, testcase, seed, waves_dir,
                            waves_dir / "replay.xml", waves=True)  # fmt: skip
        except SystemExit:
            pass
        raise AssertionError(
            f"{test_module} failed on {tag} (seed {seed}); "
            f"waveform: {waves_dir / (toplevel + '.fst')}"
        ) from failure


def _build_and_test(
    toplevel: str,
    test_module: str,
    parameters: dict[str, object],
    testcase: str | None,
    seed: int,
    build_dir: Path,
    results: Path,
    coverage_db: Path | None = None,
    waves: bool = False,
) -> None:
    """One build directory per parameter set; raises SystemExit when a test fails. The run
    writes its functional coverage to ``coverage_db`` (none from a replay)."""
    runner = rtl_sim.build(toplevel, parameters, build_dir, waves=waves,
                           simulator=os.environ.get(SIMULATOR_ENV, "icarus"),
                           coverage=coverage())  # fmt: skip
    runner.test(
        hdl_toplevel=toplevel,
        test_module=test_module,
        testcase=testcase,
        seed=seed,
        build_dir=build_dir,
        test_dir=build_dir,
        extra_env={
            PARAMS_ENV: json.dumps(parameters),
            "PYTHONPATH": rtl_sim.python_path(),
            fcov.FILE_ENV: str(coverage_db or ""),
        },
        waves=waves,
        results_xml=str(results),
        plusargs=[f"+verilator+coverage+file+{build_dir / _coverage_file(test_module)}"]
        if coverage()
        else [],
    )


def _coverage_file(test_module: str) -> str:
    """Where a coverage run of ``test_module`` writes its counts (one file a module)."""
    return f"coverage-{test_module.rsplit('.', 1)[-1]}.dat"


def coverage() -> bool:
    """Whether this run collects code coverage (Verilator only)."""
    return os.environ.get(COVERAGE_ENV) == "1" and os.environ.get(SIMULATOR_ENV) == "verilator"


def hdl_parameters() -> dict[str, int]:
    """The HDL parameters of the running simulation (inside a cocotb test)."""
    return {k: int(v) for k, v in json.loads(os.environ.get(PARAMS_ENV, "{}")).items()}
