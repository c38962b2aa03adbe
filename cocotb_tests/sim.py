"""Build and run a cocotb testbench under Icarus Verilog through cocotb_tools.runner.

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

from cocotb_tools.runner import get_runner

ROOT = Path(__file__).resolve().parents[1]
RTL = ROOT / "hdl" / "rtl"
SIM = ROOT / "hdl" / "sim"
BUILD_ROOT = ROOT / "sim_build"
RESULTS = ROOT / "results"

#: Environment variable carrying the HDL parameters into the Python testbench.
PARAMS_ENV = "SCC_PARAMS"


def _tag(toplevel: str, parameters: Mapping[str, object]) -> str:
    return "-".join([toplevel] + [f"{k}{v}" for k, v in sorted(parameters.items())])


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
    tag = _tag(toplevel, parameters)
    seed = int(os.environ.get("COCOTB_RANDOM_SEED", random.randrange(1 << 31)))
    env = {PARAMS_ENV: json.dumps(parameters), "PYTHONPATH": _pythonpath()}
    RESULTS.mkdir(exist_ok=True)
    runner = get_runner("icarus")
    build_dir = BUILD_ROOT / tag
    runner.build(
        sources=_sources(),
        hdl_toplevel=toplevel,
        parameters=parameters,
        build_dir=build_dir,
        timescale=("1ns", "1ps"),
    )
    try:
        runner.test(
            hdl_toplevel=toplevel,
            test_module=test_module,
            testcase=testcase,
            seed=seed,
            build_dir=build_dir,
            test_dir=build_dir,
            extra_env=env,
            results_xml=str(RESULTS / f"{tag}-{test_module.rsplit('.', 1)[-1]}.xml"),
        )
    except SystemExit as failure:
        waves = _replay_with_waves(runner, toplevel, test_module, parameters, testcase, seed, env)
        raise AssertionError(
            f"{test_module} failed on {tag} (seed {seed}); waveform: {waves}"
        ) from failure


def _replay_with_waves(runner, toplevel, test_module, parameters, testcase, seed, env) -> Path:
    build_dir = BUILD_ROOT / (_tag(toplevel, parameters) + "-waves")
    runner.build(
        sources=_sources(),
        hdl_toplevel=toplevel,
        parameters=parameters,
        build_dir=build_dir,
        timescale=("1ns", "1ps"),
        waves=True,
    )
    try:
        runner.test(
            hdl_toplevel=toplevel,
            test_module=test_module,
            testcase=testcase,
            seed=seed,
            build_dir=build_dir,
            test_dir=build_dir,
            extra_env=env,
            waves=True,
            results_xml=str(build_dir / "replay.xml"),
        )
    except SystemExit:
        pass
    return build_dir / f"{toplevel}.fst"


def _sources() -> list[Path]:
    return sorted(RTL.glob("*.v")) + sorted(SIM.glob("*.v"))


def _pythonpath() -> str:
    parts = [str(ROOT)]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)


def hdl_parameters() -> dict[str, int]:
    """The HDL parameters of the running simulation (inside a cocotb test)."""
    return {k: int(v) for k, v in json.loads(os.environ.get(PARAMS_ENV, "{}")).items()}
