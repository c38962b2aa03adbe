"""The serial edge: a pseudo-terminal the flight software creates, or a real device.

Both give a file descriptor to wait on, ``read`` (whatever has arrived, never blocks)
and ``write`` (queued; sent as the line takes it). A UART with nobody listening still
sends; a pty with nobody reading fills up, so output beyond ``MAX_BACKLOG`` is dropped
oldest first, cut at a frame delimiter so the receiver loses whole frames only.
"""

from __future__ import annotations

import os
import tty
from typing import Protocol

import serial

MAX_BACKLOG = 256 * 1024
READ_CHUNK = 65536


class Port(Protocol):
    path: str

    def fileno(self) -> int: ...

    def read(self) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    @property
    def backlog(self) -> int: ...

    @property
    def frames_dropped(self) -> int: ...

    def send_some(self) -> None: ...

    def close(self) -> None: ...


class _Backlog:
    """Output waiting for the line, bounded."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.dropped = 0
        self.frames_dropped = 0

    def add(self, data: bytes) -> None:
        self.buf += data
        excess = len(self.buf) - MAX_BACKLOG
        if excess > 0:
            cut = self.buf.find(0, excess)
            cut = len(self.buf) if cut < 0 else cut + 1
            self.dropped += cut
            self.frames_dropped += self.buf.count(0, 0, cut)
            del self.buf[:cut]


class _QueuedOutput:
    """``write`` and ``backlog`` of a port whose ``send_some`` drains ``self._out``."""

    _out: _Backlog

    def write(self, data: bytes) -> None:
        if data:
            self._out.add(data)
        self.send_some()

    @property
    def backlog(self) -> int:
        return len(self._out.buf)

    @property
    def frames_dropped(self) -> int:
        """TM frames dropped, oldest first, because the backlog was full."""
        return self._out.frames_dropped

    def send_some(self) -> None:
        raise NotImplementedError


class PtyPort(_QueuedOutput):
    """A pseudo-terminal in raw mode; ``path`` is the end a client opens."""

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        # Raw: no echo, no line discipline, no character translation (ICD section 2).
        tty.setraw(self._slave)
        tty.setraw(self._master)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._out = _Backlog()

    def fileno(self) -> int:
        return self._master

    def read(self) -> bytes:
        try:
            return os.read(self._master, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:  # EIO: no client has the other end open
            return b""

    def send_some(self) -> None:
        buf = self._out.buf
        while buf:
            try:
                sent = os.write(self._master, buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                buf.clear()
                return
            del buf[:sent]

    def close(self) -> None:
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


class DevicePort(_QueuedOutput):
    """A serial device through pyserial (8-N-1, no flow control), e.g. a board's UART."""

    def __init__(self, device: str, baud: int) -> None:
        self.path = device
        self._port = serial.Serial(
            device, baud, bytesize=8, parity="N", stopbits=1, timeout=0, write_timeout=0,
            xonxoff=False, rtscts=False, dsrdtr=False,
        )  # fmt: skip
        self._out = _Backlog()

    def fileno(self) -> int:
        return self._port.fileno()

    def read(self) -> bytes:
        return self._port.read(max(1, self._port.in_waiting))

    def send_some(self) -> None:
        buf = self._out.buf
        if not buf:
            return
        try:
            sent = self._port.write(bytes(buf)) or 0
        except serial.SerialTimeoutException:
            return
        del buf[:sent]

    def close(self) -> None:
        self._port.close()
