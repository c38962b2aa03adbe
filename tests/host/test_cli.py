"""``hil`` as a user runs it: a subprocess against ``hil sim`` on a real pty, and the one-line
errors it gives on a wrong port, a busy port, a bad baud rate and a target that is silent."""

from __future__ import annotations

import os
import subprocess
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import serial
from hil_process import HilSim, hil

from firmware_sim.ram import FirmwareRam
from testbed.clusters import Orientation, shape


@pytest.fixture
def silent_pty() -> Iterator[str]:
    """A raw pty nobody answers on: the path a client opens."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    try:
        yield os.ttyname(slave)
    finally:
        for fd in (master, slave):
            os.close(fd)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_sim_prints_its_port_and_stops_on_ctrl_c() -> None:
    s = HilSim("--mode", "nominal")
    assert s.port.startswith("/dev/") and os.path.exists(s.port)
    assert hil("mode", "--port", s.port).stdout.strip() == "NOMINAL"
    assert s.stop() == 0


def test_ping(sim: HilSim) -> None:
    result = hil("ping", "--port", sim.port, "--count", "2", "--interval", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(f"pong from {sim.port}") == 2


def test_hk_shows_every_structure_with_units(sim: HilSim) -> None:
    result = hil("hk", "--port", sim.port)
    assert result.returncode == 0, result.stderr
    for header in ("[SYSTEM]", "[ENVIRONMENT]", "[ACCELERATOR]"):
        assert header in result.stdout
    assert " %" in result.stdout and "degC" in result.stdout and "TEST" in result.stdout


def test_hk_watch_refreshes(sim: HilSim) -> None:
    result = hil("hk", "system", "--port", sim.port, "--watch", "--count", "3",
                 "--interval", "0.05")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("housekeeping of") == 3
    assert "[ENVIRONMENT]" not in result.stdout


def test_load_and_dump_round_trip(sim: HilSim, tmp_path: Path) -> None:
    data = np.random.default_rng(2).integers(0, 256, 10_000, dtype=np.uint8).tobytes()
    src, dst = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(data)
    loaded = hil("load", "--port", sim.port, "ram", "0x1000", str(src), "--verify")
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stderr == ""  # a short load draws no bar in a pipe (test_operator: on a pty)
    assert "loaded 10000 octets to FIRMWARE_RAM at 0x1000" in loaded.stdout
    dumped = hil("dump", "--port", sim.port, "ram", "0x1000", "10000", "-o", str(dst))
    assert dumped.returncode == 0, dumped.stderr
    assert dst.read_bytes() == data
    shown = hil("dump", "--port", sim.port, "ram", "0x1000", "20")
    assert shown.stdout.startswith("00001000  " + data[:16].hex(" "))


def test_run_a_random_gemm_and_verify_it(sim: HilSim, tmp_path: Path) -> None:
    out = tmp_path / "c.npy"
    result = hil("run", "--port", sim.port, "--random", "48x40x8", "--verify", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "C equals A . B" in result.stdout and "MACs" in result.stdout
    assert np.load(out).shape == (48, 8)


def test_run_a_layer_from_files(sim: HilSim, tmp_path: Path) -> None:
    a, b = np.ones((2, 3), np.int8), np.full((3, 2), 2, np.int8)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    result = hil("run", "--port", sim.port, str(tmp_path / "a.npy"), str(tmp_path / "b.npy"),
                 "--layer", "--relu", "--shift", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "[[3 3]\n [3 3]]" in result.stdout


def test_inject_list_and_clear(sim: HilSim) -> None:
    assert hil("inject", "--port", sim.port, "stuck_at_0", "fw_ram", "address=9", "bit=1")\
        .returncode == 0  # fmt: skip
    listed = hil("inject", "--port", sim.port, "--list")
    assert "1 active fault" in listed.stdout and "STUCK_AT_0 at FW_RAM address=9" in listed.stdout
    assert hil("inject", "--port", sim.port, "--clear").returncode == 0
    assert "0 active faults" in hil("inject", "--port", sim.port, "--list").stdout
    bad = hil("inject", "--port", sim.port, "sbu", "fw_ram", "word=1")
    assert bad.returncode == 2 and "address bit" in one_line_error(bad)


def test_inject_a_result_register_upset_at_a_flush_point(sim: HilSim) -> None:
    assert hil("inject", "--port", sim.port, "sbu", "out_bit", "1", "2", "bit=30",
               "--next-job", "0:flush:5").returncode == 0  # fmt: skip
    listed = hil("inject", "--port", sim.port, "--list").stdout
    assert "SBU at OUT_BIT i=1 j=2 bit=30 width 1, next job at tile:phase:cycle 0:4:5" in listed
    assert hil("inject", "--port", sim.port, "--clear").returncode == 0
    bad = hil("inject", "--port", sim.port, "sbu", "out_bit", "0", "0", "0", "--next-job", "0:x:1")
    assert bad.returncode == 2 and "not a JobPhase" in one_line_error(bad)


def test_a_bias_fault_before_a_plain_gemm_is_reported_not_injected(sim: HilSim) -> None:
    armed = hil("inject", "--port", sim.port, "sbu", "spm_word", "0", "0", "--next-job", "0:bias:0")
    assert armed.returncode == 0, armed.stderr
    assert armed.stdout.startswith("armed SBU at SPM_WORD word=0 bit=0") and "not injected" \
        in armed.stdout  # fmt: skip
    ran = hil("run", "--port", sim.port, "--random", "4x8x4", "--verify")
    assert ran.returncode == 0 and "C equals A . B" in ran.stdout, ran.stderr
    hk = hil("hk", "--port", sim.port, "accelerator").stdout
    fields = dict(line.split()[:2] for line in hk.splitlines() if len(line.split()) >= 2)
    assert (fields["last_job_faults"], fields["last_job_not_injected"]) == ("1", "1"), hk
    assert fields["faults_not_injected"] == "1"
    assert "0 active faults" in hil("inject", "--port", sim.port, "--list").stdout


def test_inject_a_ram_cluster_by_shape_name(sim: HilSim, tmp_path: Path) -> None:
    assert "fw_ram_cluster (address bit shape)" in " ".join(hil("inject", "--help").stdout.split())
    layout = FirmwareRam().layout
    span = 3 * layout.row_octets
    before, after = tmp_path / "before.bin", tmp_path / "after.bin"
    assert hil("dump", "--port", sim.port, "ram", "0x400", str(span), "-o", str(before))\
        .returncode == 0  # fmt: skip
    done = hil("inject", "--port", sim.port, "mbu", "fw_ram_cluster", "address=0x400", "bit=3",
               "shape=bit_line", "--width", "3")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "injected MBU at FW_RAM_CLUSTER address=1024 bit=3 shape=1 width 3, now"
    )
    assert hil("dump", "--port", sim.port, "ram", "0x400", str(span), "-o", str(after))\
        .returncode == 0  # fmt: skip
    diff = [x ^ y for x, y in zip(before.read_bytes(), after.read_bytes(), strict=True)]
    got = {(0x400 + i, b) for i, d in enumerate(diff) for b in range(8) if d >> b & 1}
    assert got == set(layout.cluster(0x400, 3, shape(3, Orientation.BIT_LINE).offsets))
    bad = hil("inject", "--port", sim.port, "mbu", "fw_ram_cluster", "0", "0", "diagonal")
    assert bad.returncode == 2
    assert "'diagonal' is not a ClusterShape: one of bit_line, block, word_line" in \
        one_line_error(bad)  # fmt: skip


def test_a_fault_the_build_cannot_have_is_refused_in_one_line(sim: HilSim) -> None:
    refused = hil("inject", "--port", sim.port, "sbu", "spm_word", "word=65535", "bit=0")
    line = one_line_error(refused)
    assert "FAULT_SITE_ABSENT" in line and "record 0 (SBU at SPM_WORD)" in line, line
    assert "no such site" in line


def test_param_mode_and_reset(sim: HilSim) -> None:
    result = hil("param", "--port", sim.port, "scrub_period=1234", "job_timeout")
    assert "SCRUB_PERIOD  1234 cycles" in result.stdout and "JOB_TIMEOUT" in result.stdout
    assert "rebooted: INFO   BOOT" in hil("reset", "--port", sim.port).stdout
    assert hil("param", "--port", sim.port, "scrub_period").stdout.split()[1] == "50000"
    assert hil("mode", "--port", sim.port).stdout.strip() == "TEST"


def test_leaving_test_mode_and_back_needs_a_key(sim: HilSim) -> None:
    assert hil("mode", "--port", sim.port, "nominal").stdout.strip() == "NOMINAL"
    refused = hil("mode", "--port", sim.port, "test")
    assert "AUTH_REQUIRED" in one_line_error(refused) and "--key" in refused.stderr
    key = "1:" + "6f7262697420686f6c2074657374206b6579206f6e6c7920666f722073696d21"
    back = hil("mode", "--port", sim.port, "test", "--key", key)
    assert back.stdout.strip() == "TEST", back.stderr


def test_events_are_printed_as_they_come() -> None:
    s = HilSim("--time-scale", "3000")  # an orbit in two seconds: eclipse events keep coming
    try:
        result = hil("events", "--port", s.port, "--count", "2", "--timeout", "15")
    finally:
        s.stop()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and all(":" in line.split()[0] for line in lines)


def test_wrong_port_is_named() -> None:
    line = one_line_error(hil("ping", "--port", "/dev/no-such-tty"))
    assert "/dev/no-such-tty" in line and "no such device" in line


def test_busy_port_is_reported(silent_pty: str) -> None:
    with serial.Serial(silent_pty, exclusive=True):
        line = one_line_error(hil("ping", "--port", silent_pty))
    assert silent_pty in line and "busy" in line


def test_bad_baud_rate_is_refused(sim: HilSim) -> None:
    line = one_line_error(hil("ping", "--port", sim.port, "--baud", "0"))
    assert "baud" in line and "0" in line


def test_silent_target_times_out_naming_the_port(silent_pty: str) -> None:
    started = time.monotonic()
    result = hil("ping", "--port", silent_pty, "--ack-timeout", "0.2")
    line = one_line_error(result)
    assert result.returncode == 1 and time.monotonic() - started < 10
    assert silent_pty in line and "no acceptance report" in line and "baud" in line


def test_missing_port_is_a_usage_error() -> None:
    result = hil("ping")
    assert result.returncode == 2 and "--port" in one_line_error(result)


def test_inject_a_site_by_its_map_name_and_list_it(sim: HilSim) -> None:
    armed = hil("inject", "--port", sim.port, "sbu", "site", "u_seq.u_state.q_q[1]", "bit=2",
                "--next-job", "0:stream:3")  # fmt: skip
    assert armed.returncode == 0, armed.stderr
    assert armed.stdout.startswith("armed SBU at SITE u_seq.u_state.q_q[1] bit=2")
    listed = hil("inject", "--port", sim.port, "--list").stdout
    assert "SBU at SITE u_seq.u_state.q_q[1] bit=2 width 1, next job at tile:phase:cycle 0:2:3" \
        in listed  # fmt: skip
    assert hil("inject", "--port", sim.port, "--clear").returncode == 0
    name = "u_seq.u_state.q_q[1]"
    # The refusal names the field: the name (octet 1 + 4), or the bit after it.
    for fields, octet in ((["u_seq.nothing_q", "bit=0"], 5),
                          ([name, "bit=3"], 5 + 1 + len(name))):  # fmt: skip
        line = one_line_error(hil("inject", "--port", sim.port, "sbu", "site", *fields))
        assert "FAULT_SITE_ABSENT" in line and "record 0 (SBU at SITE)" in line, line
        assert f"(field at octet {octet})" in line, line


def test_inject_sites_lists_the_build_map_without_a_target() -> None:
    listed = hil("inject", "--sites", "pipeline_register", "--build", "n2-bw2048-il1-ecc-scrub-tmr")
    assert listed.returncode == 0, listed.stderr
    assert "u_array.g_row[0].g_col[0].u_pe.a_q" in listed.stdout
    assert "pipeline_register" in listed.stdout and "sequencer_state" not in listed.stdout
    bad = hil("inject", "--sites", "nonsense")
    assert bad.returncode == 2 and "classes are" in one_line_error(bad)
