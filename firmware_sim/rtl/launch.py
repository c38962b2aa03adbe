"""``firmware-sim --backend rtl``: the flight software on the chip's RTL in a simulator.

Compiles the build's ``scc_top`` for Icarus Verilog, or Verilator with ``--simulator
verilator`` (once per build and RTL change, under ``sim_build/rtl-<build>[-verilator]/``),
runs the simulation with ``firmware_sim.rtl.bench`` as its
cocotb test, waits for the flight software inside to serve, and prints its first line
(``PTY <path>``) as the model's chip does. The simulator's own output goes to
``sim.log`` in the build directory. SIGTERM or SIGINT ends this process, and the
simulation with it; a simulation that ends by itself ends this process with its code.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from firmware_sim.rtl.bench import ARGV_ENV, BUILD_ENV, READY_ENV
from testbed import rtl_sim
from testbed.sitemap_builds import Build

START_TIMEOUT_S = 600.0
"""How long the simulation may take to serve (a first build compiles the RTL)."""


def launch(args: argparse.Namespace, build: Build) -> int:
    """Serve the flight software on ``build``'s RTL until stopped; the exit status."""
    simulator = args.simulator
    if simulator == "icarus" and (shutil.which("iverilog") is None or shutil.which("vvp") is None):
        print(
            "firmware-sim: the RTL chip runs under Icarus Verilog, which is not installed: "
            "sudo apt-get install iverilog (or make test, which installs it)",
            file=sys.stderr,
        )
        return 2
    tail = "" if simulator == "icarus" else f"-{simulator}"
    build_dir = rtl_sim.BUILD_ROOT / f"rtl-{build.name}{tail}"
    build_dir.mkdir(parents=True, exist_ok=True)
    try:
        runner = rtl_sim.build("scc_top", build.hdl_parameters(), build_dir,
                               simulator=simulator, log_file=build_dir / "build.log")  # fmt: skip
    except (SystemExit, RuntimeError) as exc:
        print(f"firmware-sim: compiling build {build.name} failed ({exc}); see "
              f"{build_dir / 'build.log'}", file=sys.stderr)  # fmt: skip
        return 1
    ready = Path(tempfile.mkdtemp(prefix="orbit-hil-rtl-")) / "ready"
    env = {
        ARGV_ENV: json.dumps(_without_backend(args.argv)),
        BUILD_ENV: json.dumps(build.options()),
        READY_ENV: str(ready),
        "PYTHONPATH": rtl_sim.python_path(),
    }
    # A launcher started from a test must not read that test's results.
    os.environ.pop("PYTEST_CURRENT_TEST", None)
    log = build_dir / "sim.log"
    ended: list[object] = []

    def simulate() -> None:
        try:
            runner.test(
                test_module="firmware_sim.rtl.bench", hdl_toplevel="scc_top",
                build_dir=build_dir, test_dir=build_dir, extra_env=env, log_file=log,
                results_xml=str(build_dir / "results.xml"),
            )  # fmt: skip
            ended.append(0)
        except BaseException as exc:  # noqa: BLE001  (any end of the simulation is reported)
            ended.append(exc)

    thread = threading.Thread(target=simulate, name="simulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready.exists():
        if ended or time.monotonic() > deadline:
            why = "ended" if ended else f"did not serve within {START_TIMEOUT_S:.0f} s"
            print(f"firmware-sim: the simulation of build {build.name} {why}: "
                  f"{_last_line(log)} (log: {log})", file=sys.stderr)  # fmt: skip
            return 1
        time.sleep(0.05)
    print(ready.read_text().strip(), flush=True)
    shutil.rmtree(ready.parent, ignore_errors=True)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)  # the simulator dies with this process

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while thread.is_alive():
        thread.join(0.5)
    print(f"firmware-sim: the simulation of build {build.name} ended: {_last_line(log)}",
          file=sys.stderr)  # fmt: skip
    return 1


def _without_backend(argv: list[str]) -> list[str]:
    """The command line without ``--backend X`` (inside, the chip is the RTL already)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--backend":
            skip = True
        elif not arg.startswith("--backend="):
            out.append(arg)
    return out


def _last_line(log: Path) -> str:
    """The last line of the simulator's log that says something."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    errors = [ln for ln in lines if "Error" in ln or "ERROR" in ln or "FAIL" in ln]
    return (errors or lines or ["empty log"])[-1]
