"""What a noisy serial line does to a byte stream, sans I/O and seeded.

``ImpairedStream.process(data)`` takes the next bytes of one direction and returns what
arrives: whole frames dropped (a frame is the bytes up to and including a 0x00 delimiter),
frames dropped by a test's filter, single bytes dropped or doubled, and bits flipped at a
bit error rate. Each effect draws from its own generator seeded from ``seed``, and the
outcome depends only on the bytes, not on how they were chunked, so a seeded run
reproduces exactly. Rare events are drawn as gaps between hits (geometric), so a 1e-4 bit
error rate costs one draw per flipped bit, not one per bit.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass

FrameFilter = Callable[[bytes], bool]
"""Called with each complete frame (COBS octets, no delimiter); True drops it."""


@dataclass(frozen=True, slots=True)
class Impairment:
    """Probabilities per bit (``ber``), per byte (``byte_drop``, ``byte_dup``) and per
    non-empty frame (``frame_drop``)."""

    ber: float = 0.0
    byte_drop: float = 0.0
    byte_dup: float = 0.0
    frame_drop: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Impairment.{name} is a probability in 0..1, got {value}")

    @property
    def clean(self) -> bool:
        return not any(asdict(self).values())


@dataclass(slots=True)
class StreamCounters:
    """What one direction did to the bytes it carried."""

    bytes_in: int = 0
    bytes_out: int = 0
    frames_in: int = 0
    frames_dropped: int = 0
    frames_filtered: int = 0
    bytes_dropped: int = 0
    bytes_duplicated: int = 0
    bits_flipped: int = 0


class _Hits:
    """Positions of successes in an endless run of Bernoulli(p) trials, consumed in order."""

    def __init__(self, p: float, rng: random.Random) -> None:
        self.p = p
        self.rng = rng
        self._gap = self._draw()

    def _draw(self) -> float:
        """Trials that fail before the next success."""
        if self.p <= 0.0:
            return math.inf
        if self.p >= 1.0:
            return 0
        u = 1.0 - self.rng.random()  # in (0, 1]
        return math.floor(math.log(u) / math.log1p(-self.p))

    def take(self, n: int) -> list[int]:
        """Hit positions among the next ``n`` trials."""
        hits: list[int] = []
        pos = self._gap
        while pos < n:
            hits.append(int(pos))
            pos += 1 + self._draw()
        self._gap = pos - n
        return hits


class ImpairedStream:
    """One direction of the line (see the module docstring)."""

    def __init__(
        self,
        impairment: Impairment | None = None,
        seed: int | str = 0,
        name: str = "",
        frame_filter: FrameFilter | None = None,
    ) -> None:
        self.seed = seed
        self.name = name
        self.frame_filter = frame_filter
        self.counters = StreamCounters()
        self._rngs = {
            what: random.Random(f"{seed}/{name}/{what}") for what in ("frame", "drop", "dup", "ber")
        }
        self._in_frame = False
        self._dropping = False
        self._held = bytearray()
        self.set_impairment(impairment or Impairment())

    def set_impairment(self, impairment: Impairment) -> None:
        """Change the probabilities from the next byte on (each generator carries on)."""
        self.impairment = impairment
        self._drop = _Hits(impairment.byte_drop, self._rngs["drop"])
        self._dup = _Hits(impairment.byte_dup, self._rngs["dup"])
        self._ber = _Hits(impairment.ber, self._rngs["ber"])

    def process(self, data: bytes) -> bytes:
        """The bytes that arrive for ``data`` sent."""
        self.counters.bytes_in += len(data)
        framed = self._frames(data)
        out = self._bytes(framed)
        self.counters.bytes_out += len(out)
        return bytes(out)

    def _frames(self, data: bytes) -> bytes:
        q = self.impairment.frame_drop
        passthrough = q <= 0.0 and self.frame_filter is None and not self._dropping
        passthrough = passthrough and not self._held
        out = bytearray()
        parts = data.split(b"\x00")
        last = len(parts) - 1
        for i, part in enumerate(parts):
            if part and not self._in_frame:
                self._in_frame = True
                self.counters.frames_in += 1
                self._dropping = q > 0.0 and self._rngs["frame"].random() < q
                passthrough = passthrough and not self._dropping
            if passthrough:
                if i == last:
                    break
                self._in_frame = False
                continue
            if part:
                if self._dropping:
                    self.counters.bytes_dropped += len(part)
                elif self.frame_filter is not None:
                    self._held += part
                else:
                    out += part
            if i == last:
                break
            if not self._in_frame:
                out.append(0)  # an empty frame: a lone delimiter passes
                continue
            if self._dropping:
                self.counters.frames_dropped += 1
                self.counters.bytes_dropped += 1
            elif self.frame_filter is not None:
                frame = bytes(self._held)
                self._held.clear()
                if self.frame_filter(frame):
                    self.counters.frames_filtered += 1
                    self.counters.bytes_dropped += len(frame) + 1
                else:
                    out += frame
                    out.append(0)
            else:
                out.append(0)
            self._in_frame = self._dropping = False
        return data if passthrough else bytes(out)

    def _bytes(self, data: bytes) -> bytearray:
        n = len(data)
        drops = self._drop.take(n)
        dups = self._dup.take(n)
        if drops or dups:
            dropped, doubled = set(drops), set(dups) - set(drops)
            out = bytearray()
            for i, byte in enumerate(data):
                if i in dropped:
                    continue
                out.append(byte)
                if i in doubled:
                    out.append(byte)
            self.counters.bytes_dropped += len(dropped)
            self.counters.bytes_duplicated += len(doubled)
        else:
            out = bytearray(data)
        for bit in self._ber.take(8 * len(out)):
            out[bit >> 3] ^= 0x80 >> (bit & 7)
            self.counters.bits_flipped += 1
        return out
