"""The channel emulator: the impairments sans I/O, then the ptys, the throttle and the CLI."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
import tty
from pathlib import Path

import pytest
from cobs import cobs
from hypothesis import given, settings
from hypothesis import strategies as st

from host.channel import TO_HOST, TO_TARGET, Channel
from host.impairment import ImpairedStream, Impairment

REPO = Path(__file__).resolve().parents[2]


def frames(n: int, seed: int = 0) -> list[bytes]:
    """``n`` distinct COBS frames with their delimiters."""
    rng = random.Random(seed)
    return [
        cobs.encode(i.to_bytes(4, "big") + rng.randbytes(rng.randrange(0, 60))) + b"\x00"
        for i in range(n)
    ]


def chunked(data: bytes, rng: random.Random) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        step = rng.randrange(1, 200)
        out.append(data[pos : pos + step])
        pos += step
    return out


# --- impairments -------------------------------------------------------------------------


def test_clean_line_passes_bytes_unchanged() -> None:
    data = random.Random(1).randbytes(100_000)
    stream = ImpairedStream(Impairment(), seed=3)
    assert b"".join(stream.process(c) for c in chunked(data, random.Random(2))) == data
    assert stream.counters.bytes_out == len(data) and stream.counters.bits_flipped == 0


def test_frame_drop_drops_whole_frames_only() -> None:
    sent = frames(2000)
    stream = ImpairedStream(Impairment(frame_drop=0.3), seed=7)
    out = b"".join(stream.process(c) for c in chunked(b"".join(sent), random.Random(1)))
    arrived = [f + b"\x00" for f in out.split(b"\x00")[:-1]]
    index = {f: i for i, f in enumerate(sent)}
    positions = [index[f] for f in arrived]  # KeyError: a frame arrived cut or merged
    assert positions == sorted(positions), "order kept"
    dropped = len(sent) - len(arrived)
    assert dropped == stream.counters.frames_dropped and stream.counters.frames_in == len(sent)
    assert 0.25 * len(sent) < dropped < 0.35 * len(sent)


def test_empty_frames_pass_and_are_not_counted() -> None:
    stream = ImpairedStream(Impairment(frame_drop=1.0), seed=0)
    assert stream.process(b"\x00\x00\x05abcd\x00\x00") == b"\x00\x00\x00"
    assert stream.counters.frames_in == 1 and stream.counters.frames_dropped == 1


def test_bit_error_rate_is_near_what_was_asked() -> None:
    stream = ImpairedStream(Impairment(ber=1e-3), seed=11)
    data = bytes(125_000)  # 1e6 bits
    out = stream.process(data)
    flipped = sum(bin(b).count("1") for b in out)
    assert flipped == stream.counters.bits_flipped
    assert 800 < flipped < 1200


def test_byte_drops_and_doubles_are_counted() -> None:
    stream = ImpairedStream(Impairment(byte_drop=0.01, byte_dup=0.01), seed=5)
    data = bytes(range(1, 256)) * 400
    out = stream.process(data)
    c = stream.counters
    assert len(out) == len(data) - c.bytes_dropped + c.bytes_duplicated
    assert 700 < c.bytes_dropped < 1300 and 700 < c.bytes_duplicated < 1300


@settings(max_examples=40, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=3000),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=20),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_seeded_runs_reproduce_whatever_the_chunking(data: bytes, cuts: list[int], seed) -> None:
    impairment = Impairment(ber=1e-2, byte_drop=0.01, byte_dup=0.01, frame_drop=0.2)
    whole = ImpairedStream(impairment, seed=seed, name="x").process(data)
    pieces = ImpairedStream(impairment, seed=seed, name="x")
    bounds = [0, *sorted(c for c in cuts if c < len(data)), len(data)]
    out = b"".join(pieces.process(data[a:b]) for a, b in zip(bounds, bounds[1:], strict=False))
    assert out == whole


def test_different_seeds_give_different_errors() -> None:
    data = bytes(10_000)
    a = ImpairedStream(Impairment(ber=1e-3), seed=1).process(data)
    b = ImpairedStream(Impairment(ber=1e-3), seed=2).process(data)
    assert a != b


def test_frame_filter_drops_the_frames_it_picks() -> None:
    sent = frames(50)
    stream = ImpairedStream(seed=0, frame_filter=lambda f: cobs.decode(f)[3] % 2 == 1)
    out = b"".join(stream.process(f) for f in sent)
    assert out == b"".join(sent[0::2]) and stream.counters.frames_filtered == 25


def test_impossible_probability_is_refused() -> None:
    with pytest.raises(ValueError, match=r"Impairment.ber is a probability in 0..1, got 2"):
        Impairment(ber=2)


# --- the ptys --------------------------------------------------------------------------------


def _open(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)
    return fd


def _write_all(fd: int, data: bytes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    view = memoryview(data)
    while view:
        select.select([], [fd], [], max(0.0, deadline - time.monotonic()))
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            n = 0
        view = view[n:]
        assert time.monotonic() < deadline, "the channel stopped taking bytes"


def test_bytes_cross_both_ways_unchanged(read_until) -> None:
    with Channel() as ch:
        host, target = _open(ch.host_path), _open(ch.target_path)
        try:
            data = random.Random(3).randbytes(50_000)
            _write_all(host, data, 5)
            assert read_until(target, lambda d: len(d) >= len(data), 5) == data
            _write_all(target, data[:1000], 5)
            assert read_until(host, lambda d: len(d) >= 1000, 5) == data[:1000]
        finally:
            os.close(host)
            os.close(target)
        counters = ch.counters()
    assert counters[TO_TARGET].bytes_delivered == 50_000
    assert counters[TO_HOST].bytes_delivered == 1000


def test_throttle_holds_the_line_rate(read_until) -> None:
    baud, size = 500_000, 60_000  # 50 kB/s: 1.2 s of line time
    with Channel(baud=baud) as ch:
        host, target = _open(ch.host_path), _open(ch.target_path)
        try:
            start = time.monotonic()
            _write_all(host, bytes(size), 10)
            got = read_until(target, lambda d: len(d) >= size, 10)
            elapsed = time.monotonic() - start
        finally:
            os.close(host)
            os.close(target)
    line_time = size * 10 / baud
    assert len(got) == size
    # Never faster than the line (less one release piece); a loaded machine may be slower.
    assert 0.95 * line_time <= elapsed < 3 * line_time + 1.0, (elapsed, line_time)


def test_latency_delays_each_way(read_until) -> None:
    with Channel(latency_s=0.15) as ch:
        host, target = _open(ch.host_path), _open(ch.target_path)
        try:
            start = time.monotonic()
            _write_all(host, b"\x01\x02\x00", 5)
            assert read_until(target, lambda d: len(d) >= 3, 5) == b"\x01\x02\x00"
            elapsed = time.monotonic() - start
        finally:
            os.close(host)
            os.close(target)
    assert 0.15 <= elapsed < 1.5


def test_host_side_vanishes_and_comes_back_on_the_symlink(tmp_path: Path, read_until) -> None:
    link = tmp_path / "ttyHIL"
    with Channel(link_path=link) as ch:
        first = os.path.realpath(link)
        target = _open(ch.target_path)
        ch.disconnect_host()
        assert not link.exists()
        ch.reconnect_host()
        assert link.exists() and ch.host_pty == os.path.realpath(link)
        host = _open(str(link))
        try:
            _write_all(target, b"\x05back\x00", 5)
            assert read_until(host, lambda d: d.endswith(b"\x00"), 5) == b"\x05back\x00"
        finally:
            os.close(host)
            os.close(target)
    assert first.startswith("/dev/pts/") and not link.exists()


def test_command_line_prints_the_ptys_and_its_counters(read_until) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "host.channel", "--baud", "1000000", "--ber", "0", "--seed", "1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        out = read_until(proc.stdout.fileno(), lambda d: d.count(b"\n") >= 2, 15).decode()
        host_line, target_line = out.splitlines()[:2]
        assert host_line.startswith("PTY /dev/pts/") and target_line.startswith("TARGET /dev/")
        host, target = _open(host_line.split()[1]), _open(target_line.split()[1])
        try:
            _write_all(host, b"\x03hi\x00", 5)
            assert read_until(target, lambda d: len(d) >= 4, 5) == b"\x03hi\x00"
        finally:
            os.close(host)
            os.close(target)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert '"bytes_delivered": 4' in proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_command_line_names_a_missing_target() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "host.channel", "--target", "/dev/ttyNOPE0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 2 and "/dev/ttyNOPE0" in proc.stderr
