"""COBS framing of packets on a byte stream, with a sans-I/O decoder in h11's shape.

On the wire each frame is ``cobs(packet) + b"\\x00"``. The decoder is fed arbitrary chunks
with ``receive_data`` and hands out events with ``next_event``: a ``Frame``, a
``FrameRejected``, or ``NEED_DATA``. It never raises on what the peer sends.

The COBS layer knows nothing about packets. A validator (any callable that raises
``PacketError``, such as ``protocol.packets.PacketValidator``) can be plugged in so that
header, length, CRC and APID rejections come out of the same event stream.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from cobs import cobs

from protocol.codes import RejectReason
from protocol.errors import PacketError
from protocol.link import MAX_FRAME_LEN

DELIMITER: Final[int] = 0x00

Validator = Callable[[bytes], None]
"""Checks a decoded payload; raises PacketError (with a reason) to reject it."""


def encode_frame(packet: bytes | bytearray) -> bytes:
    """COBS-encode ``packet`` and append the 0x00 delimiter."""
    return cobs.encode(bytes(packet)) + b"\x00"


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame that decoded (and passed the validator, if any)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A frame that was dropped; ``raw_len`` is its encoded length seen (delimiter excluded)."""

    reason: RejectReason
    detail: str
    raw_len: int


class NeedData(enum.Enum):
    """Sentinel type: the decoder needs more bytes before it can produce an event."""

    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA

Event = Frame | FrameRejected | Literal[NeedData.NEED_DATA]


@dataclass(slots=True)
class FrameCounters:
    """What a decoder has seen since it was made."""

    frames_ok: int = 0
    empty_frames: int = 0
    bytes_received: int = 0
    rejected: dict[RejectReason, int] = field(
        default_factory=lambda: dict.fromkeys(RejectReason, 0)
    )

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


class FrameDecoder:
    """Turns a byte stream into frame events; bounded memory per incomplete frame.

    ``receive_data`` only keeps a reference to the chunk. ``next_event`` scans it: bytes of
    a frame are copied into the frame buffer, which never holds more than
    ``max_frame_len`` bytes. A frame that grows past the bound is reported as TOO_LONG at
    once, and the rest of it is skipped without being stored, up to the next delimiter.
    An empty frame (two delimiters in a row) is how a sender resynchronises: it is
    counted, not reported.
    """

    def __init__(
        self, max_frame_len: int = MAX_FRAME_LEN, validator: Validator | None = None
    ) -> None:
        if max_frame_len < 1:
            raise ValueError(f"max_frame_len must be at least 1, got {max_frame_len}")
        self.max_frame_len = max_frame_len
        self.validator = validator
        self.counters = FrameCounters()
        self._pending: deque[bytes] = deque()
        self._offset = 0
        self._frame = bytearray()
        self._skipping = False

    @property
    def frame_buffer_len(self) -> int:
        """Bytes of the incomplete frame held (at most ``max_frame_len``)."""
        return len(self._frame)

    @property
    def pending_len(self) -> int:
        """Bytes received but not yet scanned by ``next_event``."""
        return sum(len(c) for c in self._pending) - self._offset

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Queue bytes from the stream; nothing is parsed until ``next_event``."""
        if data:
            self._pending.append(bytes(data))

    def next_event(self) -> Event:
        """The next frame or rejection, or NEED_DATA when the queued bytes are used up."""
        while self._pending:
            chunk = self._pending[0]
            start = self._offset
            end = chunk.find(DELIMITER, start)
            found = end >= 0
            if not found:
                end = len(chunk)
            self._consume(chunk, end + 1 if found else end)
            self.counters.bytes_received += end - start + int(found)
            if self._skipping:
                self._skipping = not found
                continue
            seen = len(self._frame) + end - start
            if seen > self.max_frame_len:
                self._frame.clear()
                self._skipping = not found
                what = "" if found else "at least "
                return self._reject(
                    RejectReason.TOO_LONG,
                    f"frame of {what}{seen} encoded bytes exceeds the limit of "
                    f"{self.max_frame_len}; dropped up to the next 0x00",
                    seen,
                )
            self._frame += chunk[start:end]
            if not found:
                continue
            raw = bytes(self._frame)
            self._frame.clear()
            if not raw:
                self.counters.empty_frames += 1
                continue
            return self._decode(raw)
        return NEED_DATA

    def events(self) -> list[Frame | FrameRejected]:
        """All events available now (convenience: calls ``next_event`` until NEED_DATA)."""
        out: list[Frame | FrameRejected] = []
        while (event := self.next_event()) is not NEED_DATA:
            out.append(event)
        return out

    def _consume(self, chunk: bytes, upto: int) -> None:
        if upto >= len(chunk):
            self._pending.popleft()
            self._offset = 0
        else:
            self._offset = upto

    def _decode(self, raw: bytes) -> Frame | FrameRejected:
        try:
            payload = cobs.decode(raw)
        except cobs.DecodeError as exc:
            return self._reject(
                RejectReason.BAD_COBS, f"COBS decoding of a {len(raw)}-byte frame: {exc}", len(raw)
            )
        if self.validator is not None:
            try:
                self.validator(payload)
            except PacketError as exc:
                reason = exc.reason if exc.reason is not None else RejectReason.BAD_HEADER
                return self._reject(reason, exc.message, len(raw))
        self.counters.frames_ok += 1
        return Frame(payload=payload)

    def _reject(self, reason: RejectReason, detail: str, raw_len: int) -> FrameRejected:
        self.counters.rejected[reason] += 1
        return FrameRejected(reason=reason, detail=detail, raw_len=raw_len)
