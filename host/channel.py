"""A channel emulator between host and target: two pseudo-terminals and a noisy line.

The host opens the host-side pty (``host_path``; or ``link_path``, a symlink kept pointing
at it); the target is a device path it is given (``--target /dev/pts/N``, the pty a
``python -m firmware_sim`` printed) or the slave of a second pty it opens
(``target_path``). Bytes go both ways through one thread that waits in ``select`` and,
for each direction: throttles to ``baud / 10`` bytes per second (8-N-1), delays by
``latency_s`` (one way), and impairs what it carries (``host.impairment``: bit errors,
dropped and doubled bytes, dropped frames, a test's frame filter). Counters say what it
did. ``disconnect_host``/``reconnect_host`` make the host's device vanish and come back
(on a new pty, with ``link_path`` repointed), as an unplugged USB adapter would.

    python -m host.channel --target /dev/pts/N --baud 115200 --latency-ms 125 \\
        --ber 1e-4 --frame-drop 0.05 --seed 1

prints ``PTY <host-side path>`` (and ``TARGET <path>`` without ``--target``) and runs until
SIGINT or SIGTERM, then prints its counters on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import select
import signal
import sys
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from host.impairment import FrameFilter, ImpairedStream, Impairment, StreamCounters

TO_TARGET: Final = "to_target"
TO_HOST: Final = "to_host"
DIRECTIONS: Final = (TO_TARGET, TO_HOST)

READ_CHUNK: Final = 65536
PIECE_S: Final = 0.002
"""A throttled direction releases bytes in pieces of this much line time."""
UNTHROTTLED_QUEUE: Final = 1 << 20
"""Without a baud rate, stop reading a side once this many bytes wait to be written."""


@dataclass(slots=True)
class DirectionCounters:
    """A direction's line: what the impairments did, and bytes lost to a vanished side."""

    stream: StreamCounters
    bytes_delivered: int = 0
    bytes_lost_disconnected: int = 0


@dataclass(eq=False)
class _Direction:
    name: str
    stream: ImpairedStream
    baud: int | None
    latency_s: float
    max_queue: int
    src: int | None = None
    dst: int | None = None
    pending: deque[tuple[float, bytes]] = field(default_factory=deque)
    pending_bytes: int = 0
    line_free: float = 0.0
    blocked: bool = False
    delivered: int = 0
    lost: int = 0

    @property
    def rate(self) -> float:
        return self.baud / 10 if self.baud else float("inf")

    def can_read(self, now: float) -> bool:
        if self.src is None:
            return False
        if self.baud is None:
            return self.pending_bytes < UNTHROTTLED_QUEUE
        # The sender's UART buffer: bytes waiting for the line, not those already on it.
        return (self.line_free - now) * self.rate < self.max_queue

    def readable_at(self) -> float:
        """When ``can_read`` turns true again (throttled and full)."""
        return self.line_free - self.max_queue / self.rate

    def ingest(self, data: bytes, now: float) -> None:
        if self.baud is None:
            self._queue(now + self.latency_s, self.stream.process(data))
            return
        piece = max(1, int(self.rate * PIECE_S))
        for off in range(0, len(data), piece):
            chunk = data[off : off + piece]
            self.line_free = max(now, self.line_free) + len(chunk) / self.rate
            self._queue(self.line_free + self.latency_s, self.stream.process(chunk))

    def _queue(self, due: float, data: bytes) -> None:
        if data:
            self.pending.append((due, data))
            self.pending_bytes += len(data)

    def next_due(self) -> float | None:
        return self.pending[0][0] if self.pending and not self.blocked else None

    def flush(self, now: float) -> None:
        """Write what is due; stop (and wait for writable) when the other side is full."""
        self.blocked = False
        while self.pending and self.pending[0][0] <= now:
            due, data = self.pending[0]
            if self.dst is None:
                self.lost += len(data)
                n = len(data)
            else:
                try:
                    n = os.write(self.dst, data)
                except (BlockingIOError, InterruptedError):
                    self.blocked = True
                    return
                except OSError:
                    n = len(data)
                    self.lost += n
                else:
                    self.delivered += n
            self.pending_bytes -= n
            if n < len(data):
                self.pending[0] = (due, data[n:])
                self.blocked = True
                return
            self.pending.popleft()

    def drop_pending(self) -> None:
        self.lost += self.pending_bytes
        self.pending.clear()
        self.pending_bytes = 0
        self.blocked = False


def _raw_pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


def _close(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


class Channel:
    """The emulator (see the module docstring); ``with Channel(...) as ch:`` runs it."""

    def __init__(
        self,
        target: str | None = None,
        *,
        baud: int | None = None,
        latency_s: float = 0.0,
        impairment: Impairment | None = None,
        to_target: Impairment | None = None,
        to_host: Impairment | None = None,
        seed: int = 0,
        link_path: str | Path | None = None,
        max_queue: int = 4096,
    ) -> None:
        if baud is not None and (isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0):
            raise ValueError(f"baud must be a positive integer or None, got {baud!r}")
        if latency_s < 0:
            raise ValueError(f"latency must be >= 0 s, got {latency_s}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1 byte, got {max_queue}")
        self.target = target
        self.baud = baud
        self.latency_s = latency_s
        self.seed = seed
        self.link_path = Path(link_path) if link_path is not None else None
        both = impairment or Impairment()
        self._dirs = {
            name: _Direction(
                name,
                ImpairedStream(imp if imp is not None else both, seed=seed, name=name),
                baud,
                latency_s,
                max_queue,
            )
            for name, imp in ((TO_TARGET, to_target), (TO_HOST, to_host))
        }
        self.host_pty = ""
        self.target_path = target or ""
        self._host_master: int | None = None
        self._host_slave: int | None = None
        self._target_fd: int | None = None
        self._target_slave: int | None = None
        self._wake_r, self._wake_w = -1, -1
        self._requests: deque[tuple[Callable[[], Any], threading.Event, list]] = deque()
        self._lock = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def host_path(self) -> str:
        """What the host opens: the symlink if one was asked for, else the pty itself."""
        return str(self.link_path) if self.link_path is not None else self.host_pty

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> Channel:
        """Open the ptys (and the target) and start pumping."""
        if self.target is not None:
            try:
                fd = os.open(self.target, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            except OSError as exc:
                raise FileNotFoundError(
                    f"channel target {self.target}: cannot open ({exc.strerror})"
                ) from exc
            with contextlib.suppress(OSError):
                tty.setraw(fd)
            self._target_fd = fd
        else:
            self._target_fd, self._target_slave, self.target_path = _raw_pty()
        self._open_host()
        self._dirs[TO_TARGET].src = self._dirs[TO_HOST].dst = self._host_master
        self._dirs[TO_HOST].src = self._dirs[TO_TARGET].dst = self._target_fd
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="channel", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop pumping and close every descriptor the channel opened."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake()
        self._thread.join(timeout=5.0)
        self._thread = None
        self._close_host()
        _close(self._target_fd, self._target_slave, self._wake_r, self._wake_w)
        self._target_fd = self._target_slave = None

    def __enter__(self) -> Channel:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- control from other threads ---------------------------------------------------------

    def set_impairment(self, direction: str, impairment: Impairment) -> None:
        """New probabilities for one direction, from its next byte on."""
        stream = self._dirs[direction].stream
        self._call(lambda: stream.set_impairment(impairment))

    def set_frame_filter(self, direction: str, frame_filter: FrameFilter | None) -> None:
        """Drop the frames of one direction for which ``frame_filter`` returns True."""
        stream = self._dirs[direction].stream
        self._call(lambda: setattr(stream, "frame_filter", frame_filter))

    def disconnect_host(self) -> None:
        """The host's device vanishes: its pty closes (the host reads EIO/EOF), the symlink
        goes, bytes on their way to the host are lost."""
        self._call(self._disconnect_host)

    def reconnect_host(self) -> str:
        """The host's device comes back, on a new pty; returns its path (``link_path``, if
        given, points at it)."""
        self._call(self._reconnect_host)
        return self.host_path

    def counters(self) -> dict[str, DirectionCounters]:
        """A snapshot of both directions' counters."""
        with self._lock:
            return {
                name: DirectionCounters(
                    StreamCounters(**asdict(d.stream.counters)), d.delivered, d.lost
                )
                for name, d in self._dirs.items()
            }

    def _call(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run ``fn`` in the pump thread (which owns the descriptors) and wait for it."""
        if self._thread is None:
            return fn()
        done = threading.Event()
        box: list = []
        self._requests.append((fn, done, box))
        self._wake()
        if not done.wait(timeout):
            raise TimeoutError(f"channel thread did not run the request within {timeout} s")
        if box and isinstance(box[0], BaseException):
            raise box[0]
        return box[0] if box else None

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # --- the pump thread ---------------------------------------------------------------------

    def _open_host(self) -> None:
        self._host_master, self._host_slave, self.host_pty = _raw_pty()
        if self.link_path is not None:
            tmp = self.link_path.with_name(self.link_path.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.host_pty)
            os.replace(tmp, self.link_path)

    def _close_host(self) -> None:
        if self.link_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link_path.unlink()
        _close(self._host_master, self._host_slave)
        self._host_master = self._host_slave = None

    def _disconnect_host(self) -> None:
        self._close_host()
        self._dirs[TO_TARGET].src = None
        self._dirs[TO_HOST].dst = None
        self._dirs[TO_HOST].drop_pending()

    def _reconnect_host(self) -> None:
        if self._host_master is not None:
            return
        self._open_host()
        self._dirs[TO_TARGET].src = self._host_master
        self._dirs[TO_HOST].dst = self._host_master

    def _run(self) -> None:
        try:
            while not self._stopping:
                self._serve_requests()
                self._step()
        except BaseException as exc:  # kept for the owner to see; the thread ends
            self.error = exc
            raise
        finally:
            self._serve_requests()

    def _serve_requests(self) -> None:
        while self._requests:
            fn, done, box = self._requests.popleft()
            try:
                with self._lock:
                    box.append(fn())
            except BaseException as exc:
                box.append(exc)
            done.set()

    def _step(self) -> None:
        now = time.monotonic()
        dirs = list(self._dirs.values())
        readers = [self._wake_r] + [d.src for d in dirs if d.can_read(now) and d.src is not None]
        writers = [d.dst for d in dirs if d.blocked and d.dst is not None]
        wake_at = [t for d in dirs if (t := d.next_due()) is not None]
        wake_at += [
            d.readable_at() for d in dirs if d.baud and d.src is not None and not d.can_read(now)
        ]
        timeout = max(0.0, min(wake_at) - now) if wake_at else None
        readable, _, _ = select.select(readers, writers, [], timeout)
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)
        with self._lock:
            now = time.monotonic()
            for d in dirs:
                if d.src is not None and d.src in readable:
                    data = self._read(d)
                    if data:
                        d.ingest(data, now)
            for d in dirs:
                d.flush(now)

    def _read(self, d: _Direction) -> bytes:
        assert d.src is not None
        try:
            data = os.read(d.src, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data and d.src == self._target_fd:
            # Readable yet nothing to read: the target closed its end; stop reading it.
            d.src = None
        return data


DESCRIPTION = "orbit-hil channel emulator: a noisy serial line between two ptys"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a probability must be in 0..1, got {text}")
    return value


def add_options(p: argparse.ArgumentParser) -> None:
    """The channel's options, for ``python -m host.channel`` and ``hil channel``."""
    p.add_argument("--target", help="the target's device (e.g. the pty firmware_sim printed); "
                   "without it a second pty is opened and printed as TARGET")  # fmt: skip
    p.add_argument("--baud", type=_positive_int, default=None,
                   help="line rate; bytes/s = baud/10 (default: as fast as the ptys go)")
    p.add_argument("--latency-ms", type=_non_negative, default=0.0, help="one-way delay in ms")
    p.add_argument("--ber", type=_probability, default=0.0, help="bit error rate")
    p.add_argument("--byte-drop", type=_probability, default=0.0, help="byte drop probability")
    p.add_argument("--byte-dup", type=_probability, default=0.0, help="byte doubling probability")
    p.add_argument("--frame-drop", type=_probability, default=0.0,
                   help="probability of dropping a whole frame")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p.add_argument("--link", help="keep a symlink here pointing at the host-side pty")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m host.channel", description=DESCRIPTION)
    add_options(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the channel of ``args`` until SIGINT or SIGTERM; its counters on stderr."""
    impairment = Impairment(
        ber=args.ber, byte_drop=args.byte_drop, byte_dup=args.byte_dup, frame_drop=args.frame_drop
    )
    channel = Channel(
        args.target, baud=args.baud, latency_s=args.latency_ms / 1000, impairment=impairment,
        seed=args.seed, link_path=args.link,
    )  # fmt: skip
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        channel.start()
    except FileNotFoundError as exc:
        print(f"host.channel: {exc}", file=sys.stderr)
        return 2
    try:
        print(f"PTY {channel.host_path}", flush=True)
        if args.target is None:
            print(f"TARGET {channel.target_path}", flush=True)
        while not stop.wait(1.0):  # wakes for signals; the channel runs in its thread
            if channel.error is not None:
                print(f"host.channel: stopped: {channel.error!r}", file=sys.stderr)
                return 1
    finally:
        channel.stop()
        counters = {k: asdict(v) for k, v in channel.counters().items()}
        print(json.dumps(counters), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
