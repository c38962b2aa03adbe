"""``hil`` at an operator's terminal: progress bars on a real pty, Ctrl-C in the middle of a
dump, parameters in their units, ``hil sim``'s build options and ``hil channel``."""

from __future__ import annotations

import fcntl
import os
import random
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hil_process import ENV, HIL, REPO, HilSim, end_process, hil, read_line

BAUD = "115200"
"""The channel's line rate: 11.5 kB/s, so a 64 KiB dump lasts long enough to interrupt."""
ROWS, COLUMNS = 24, 120
CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


class Screen:
    """What a terminal shows after the output of a program: enough of one for the cursor
    movements and erasures rich draws a bar with."""

    def __init__(self) -> None:
        self.lines: list[list[str]] = [[]]
        self.row = self.col = 0

    def feed(self, text: str) -> None:
        pos = 0
        for match in CSI.finditer(text):
            self._write(text[pos : match.start()])
            self._control(match.group(1), match.group(2))
            pos = match.end()
        self._write(text[pos:])

    def _control(self, params: str, final: str) -> None:
        n = int(params) if params.isdigit() else 1
        if final == "A":
            self.row = max(self.row - n, 0)
        elif final == "G":
            self.col = n - 1
        elif final == "K":
            line = self.lines[self.row]
            del line[0 if params == "2" else self.col :]

    def _write(self, text: str) -> None:
        for char in text:
            if char == "\r":
                self.col = 0
            elif char == "\n":
                self.row += 1
                while len(self.lines) <= self.row:
                    self.lines.append([])
            elif char >= " ":
                line = self.lines[self.row]
                line.extend(" " * (self.col - len(line)))
                if self.col < len(line):
                    line[self.col] = char
                else:
                    line.append(char)
                self.col += 1

    def text(self) -> list[str]:
        return ["".join(line).rstrip() for line in self.lines]


def run_on_pty(*args: str, interrupt_when: str | None = None, timeout: float = 60.0):
    """``hil ARGS`` with a pty as its terminal; SIGINT once ``interrupt_when`` has been
    drawn. Its exit status and everything it wrote."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    proc = subprocess.Popen(
        [HIL, *args], cwd=REPO, stdin=slave, stdout=slave, stderr=slave,
        env={**ENV, "TERM": "xterm", "COLUMNS": str(COLUMNS)}, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if interrupt_when is not None and interrupt_when.encode() in out:
                proc.send_signal(signal.SIGINT)
                interrupt_when = None
            if not select.select([master], [], [], 0.2)[0]:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every writer of the pty has closed it
                break
            if not chunk:
                break
            out += chunk
        return proc.wait(timeout=10), out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


@pytest.fixture(scope="module")
def sim() -> Iterator[HilSim]:
    s = HilSim("--array-n", "8", "--no-tmr")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def channel(sim: HilSim) -> Iterator[str]:
    """``hil channel`` in front of the simulated chip at ``BAUD``: the port to open."""
    proc = subprocess.Popen(
        [HIL, "channel", "--target", sim.port, "--baud", BAUD], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        kind, _, port = read_line(proc.stdout.fileno(), 20).partition(" ")
        assert kind == "PTY", kind
        yield port
    finally:
        assert end_process(proc, signal.SIGINT) == 0


def test_sim_builds_the_chip_of_its_build_options(sim: HilSim) -> None:
    hk = hil("hk", "--port", sim.port, "accelerator").stdout
    assert re.search(r"^\s*array_n\s+8$", hk, re.M), hk
    assert re.search(r"^\s*tmr_mismatches", hk, re.M)


def test_sim_refuses_a_build_no_chip_has() -> None:
    result = hil("sim", "--array-n", "3")
    assert result.returncode == 2
    assert "--array-n" in result.stderr and "power of two 2..16, got 3" in result.stderr


def test_parameters_are_shown_and_set_in_their_units(sim: HilSim) -> None:
    shown = hil("param", "--port", sim.port, "temp_high_limit", "eclipse_defer_soc").stdout
    assert shown.split("\n")[:2] == ["TEMP_HIGH_LIMIT    60.00 degC", "ECLIPSE_DEFER_SOC  30.0 %"]
    result = hil("param", "--port", sim.port, "temp_low_limit=-25.5degC")
    assert result.stdout.strip() == "TEMP_LOW_LIMIT  -25.50 degC", result.stderr
    raw = hil("param", "--port", sim.port, "--raw", "temp_low_limit=-2000").stdout
    assert raw.strip() == "TEMP_LOW_LIMIT  -2000 0.01 degC"
    refused = hil("param", "--port", sim.port, "temp_low_limit=-20.005")
    assert refused.returncode == 2 and "multiple of 0.01 degC" in refused.stderr


def test_channel_help_names_its_options() -> None:
    result = hil("channel", "--help")
    assert result.returncode == 0
    for option in ("--target", "--baud", "--latency-ms", "--ber", "--frame-drop"):
        assert option in result.stdout


def test_dump_through_the_channel_draws_a_clean_bar_with_an_eta(
    channel: str, tmp_path: Path
) -> None:
    sent, got = tmp_path / "sent.bin", tmp_path / "got.bin"
    sent.write_bytes(random.Random(5).randbytes(8192))
    loaded = hil("load", "--port", channel, "--baud", BAUD, "ram", "0x100", str(sent))
    assert loaded.returncode == 0, loaded.stderr
    code, out = run_on_pty("dump", "--port", channel, "--baud", BAUD, "ram", "0x100", "8192",
                           "-o", str(got))  # fmt: skip
    assert code == 0, out
    assert got.read_bytes() == sent.read_bytes()
    screen = Screen()
    screen.feed(out)
    bars = [line for line in screen.text() if line.startswith("dump FIRMWARE_RAM")]
    assert len(bars) == 1, screen.text()
    # The finished bar: every column once, nothing after the ETA of a previous draw.
    assert re.fullmatch(
        r"dump FIRMWARE_RAM ━+ 8\.2/8\.2 kB [0-9.]+ [kM]?B/s 100% ETA 0:00:00", bars[0]
    ), bars[0]
    assert "dumped 8192 octets" in out


def test_ctrl_c_ends_a_dump_with_the_octets_it_got(channel: str, tmp_path: Path) -> None:
    code, out = run_on_pty("dump", "--port", channel, "--baud", BAUD, "ram", "0", "65536",
                           "-o", str(tmp_path / "part.bin"), interrupt_when="ETA")  # fmt: skip
    assert code == 130, out
    assert "Traceback" not in out
    assert re.search(r"dump FIRMWARE_RAM: interrupted after [0-9,]+ of 65,536 octets", out), out
    assert not (tmp_path / "part.bin").exists()
