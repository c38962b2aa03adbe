"""Fixtures of the host tests: the real flight software in its own process on a pty, the
channel emulator in front of it, raw ptys, and deadline-bound reads (no sleeps)."""

from __future__ import annotations

import contextlib
import os
import select
import struct
import subprocess
import sys
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hil_process import HilSim, end_process, read_line

from host import Link
from host.commands import Authenticator
from host.sim import SIM_KEY, SIM_KEY_ID, SimulatedTarget
from host.target import Target as HostTarget
from protocol.codes import Service

REPO = Path(__file__).resolve().parents[2]
HK_SYSTEM = 1


class Target:
    """``python -m firmware_sim`` in its own process; ``path`` is the pty it printed."""

    def __init__(self, *args: str, timeout: float = 15.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firmware_sim", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            self.path = self._first_line(timeout)
        except BaseException:
            self.close()
            raise

    def _first_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        line = read_line(self.proc.stdout.fileno(), timeout)
        if not line.startswith("PTY "):
            err = b""
            if self.proc.poll() is not None and self.proc.stderr is not None:
                err = self.proc.stderr.read()
            raise RuntimeError(
                f"python -m firmware_sim: first line should be 'PTY <path>', got {line!r} "
                f"{err.decode(errors='replace')[-2000:]}"
            )
        return line.split(" ", 1)[1]

    def close(self) -> None:
        end_process(self.proc)


def read_until(fd: int, done: Callable[[bytes], bool], timeout: float) -> bytes:
    """Bytes from ``fd`` until ``done(bytes so far)`` or the deadline (then what came)."""
    deadline = time.monotonic() + timeout
    data = b""
    while not done(data):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                break
            data += chunk
    return data


@pytest.fixture
def start_target() -> Iterator[Callable[..., Target]]:
    """Start flight software processes (arguments as on its command line); all are
    terminated at the end of the test."""
    started: list[Target] = []

    def start(*args: str) -> Target:
        target = Target(*args)
        started.append(target)
        return target

    yield start
    for target in started:
        target.close()


@pytest.fixture
def target(start_target: Callable[..., Target]) -> Target:
    """The flight software in TEST mode."""
    return start_target("--mode", "test")


@pytest.fixture
def link(target: Target) -> Iterator[Link]:
    """A started link to ``target``. Its tests count transmissions, so the acceptance
    timeout (2 s) is far above the pty's milliseconds and a loaded CI machine's stalls: a
    retransmission there would be a real fault, not timing."""
    with Link(target.path, acceptance_timeout_s=2.0).open() as lk:
        yield lk


@pytest.fixture
def raw_pty() -> Iterator[tuple[int, str]]:
    """A raw pty nobody answers on: (master fd the test reads, slave path a link opens)."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    try:
        yield master, os.ttyname(slave)
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def _hk_system_counters(link: Link) -> dict[str, int]:
    """TC counters of HK structure SYSTEM (ICD 15.3), by a one-shot TC[3,27]."""
    done = link.send(Service.HOUSEKEEPING, 27, struct.pack("!BH", 1, HK_SYSTEM))
    reports = [r for r in done.reports if (r.service, r.subtype) == (3, 25)]
    assert len(reports) == 1, f"one TM[3,25] expected with the one-shot, got {done.reports}"
    names = ("tc_received", "tc_accepted", "tc_refused", "tc_duplicates", "auth_failures")
    return dict(zip(names, struct.unpack_from("!IIIII", reports[0].source_data, 19), strict=True))


@pytest.fixture(name="read_until")
def read_until_fixture() -> Callable[[int, Callable[[bytes], bool], float], bytes]:
    """``read_until(fd, done, timeout)``: bytes until ``done(data)`` or the deadline."""
    return read_until


@pytest.fixture
def hk_counters() -> Callable[[Link], dict[str, int]]:
    """``hk_counters(link)``: the target's TC counters (received, accepted, refused,
    duplicates, authentication failures) from a one-shot housekeeping report."""
    return _hk_system_counters


@pytest.fixture
def start_chip() -> Iterator[Callable[..., HostTarget]]:
    """Start simulated chips with an N = 4 array (more ``hil sim`` options for the build),
    each behind a link signing with the simulator's key; all are stopped at the end."""
    opened: list = []

    def start(*args: str) -> HostTarget:
        sim = SimulatedTarget(mode="test", args=("--array-n", "4", *args))
        opened.append(sim.__enter__())
        link = Link(sim.port, auth=Authenticator(SIM_KEY_ID, SIM_KEY)).__enter__()
        opened.append(link)
        return HostTarget(link)

    yield start
    for thing in reversed(opened):
        thing.__exit__(None, None, None)


@pytest.fixture(scope="module")
def sim() -> Iterator[HilSim]:
    """``hil sim`` in its own process, one per test module (a module may define its own
    with other options)."""
    s = HilSim()
    try:
        yield s
    finally:
        s.stop()
