"""The cocotb test that is the RTL chip's flight computer: the flight software in a thread of
the simulation, driving ``scc_top`` through ``firmware_sim.rtl.chip.RtlChip`` and serving
the protocol on a pseudo-terminal until the simulation is stopped.

``firmware_sim.rtl.launch`` starts it and passes the flight software's command line, the
build and the file in which to announce the first line (``PTY <path>``) through the
environment.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
from pathlib import Path

import cocotb
from cocotb.task import bridge

from firmware_sim.__main__ import fly, parse_args, sim_target
from firmware_sim.rtl.chip import RtlChip
from testbed.sitemap_builds import Build

ARGV_ENV = "ORBIT_HIL_FIRMWARE_ARGV"
BUILD_ENV = "ORBIT_HIL_BUILD"
READY_ENV = "ORBIT_HIL_READY_FILE"


@cocotb.test()
async def flight_software(dut) -> None:
    """Serve the protocol with the RTL as the chip (never ends by itself)."""
    # The simulator ends with the process that launched it (Linux), never orphaned.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    args = parse_args(json.loads(os.environ[ARGV_ENV]))
    build = Build(**json.loads(os.environ[BUILD_ENV]))
    ready = Path(os.environ[READY_ENV])

    def announce(line: str) -> None:
        part = ready.with_suffix(".part")
        part.write_text(line + "\n")
        part.replace(ready)

    chip = RtlChip(dut, build)
    await chip.power_on()
    await bridge(fly)(args, sim_target(args.config), chip, announce, False)
