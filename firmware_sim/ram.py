"""Memory the flight software owns: its data RAM, and the results it keeps with a CRC.

Firmware RAM is a plain byte array (no hardware EDAC): a flipped bit stays flipped.
What protects a job's result is the CRC-32 recorded when the result was verified; the
result is checked against it before every delivery and by a periodic software scrub.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from protocol.codes import MemoryId

DEFAULT_RAM_BYTES = 64 * 1024


class FirmwareRam:
    """``size`` octets, with bits that may be stuck at 0 or 1 (injected damage)."""

    def __init__(self, size: int = DEFAULT_RAM_BYTES) -> None:
        self.size = size
        self.data = bytearray(size)
        self.stuck: dict[tuple[int, int], int] = {}

    def contains(self, address: int, length: int) -> bool:
        return 0 <= address and length >= 0 and address + length <= self.size

    def read(self, address: int, length: int) -> bytes:
        return bytes(self.data[address : address + length])

    def write(self, address: int, data: bytes) -> None:
        self.data[address : address + len(data)] = data
        if self.stuck:
            self.reassert()

    def flip(self, address: int, bit: int) -> None:
        """Invert bit ``bit`` (0 = LSB) of octet ``address``."""
        self.data[address] ^= 1 << bit
        if self.stuck:
            self.reassert()

    def stick(self, address: int, bit: int, value: int) -> None:
        self.stuck[(address, bit)] = value
        self.reassert()

    def reassert(self) -> None:
        for (address, bit), value in self.stuck.items():
            self.data[address] = self.data[address] & ~(1 << bit) | value << bit


@dataclass(slots=True)
class Result:
    """Where a job put (or would have put) its result, and what it should read as."""

    job_id: int
    memory: MemoryId
    address: int
    length: int
    crc32: int
    err_code: int = 0
    """0: good. Otherwise the ERR_CODE a delivery of this range fails with."""

    def overlaps(self, memory: int, address: int, length: int) -> bool:
        return (
            memory == self.memory
            and address < self.address + self.length
            and self.address < address + length
        )


class ResultStore:
    """The last ``capacity`` job results, newest last."""

    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self.results: list[Result] = []

    def add(self, result: Result) -> None:
        """Record a result; older ones it overwrites are forgotten."""
        self.forget(result.memory, result.address, result.length)
        self.results.append(result)
        del self.results[: -self.capacity]

    def forget(self, memory: int, address: int, length: int) -> None:
        """Drop results in a range that was written by something else."""
        self.results = [r for r in self.results if not r.overlaps(memory, address, length)]

    def forget_memory(self, memory: int) -> None:
        self.results = [r for r in self.results if r.memory != memory]

    def overlapping(self, memory: int, address: int, length: int) -> list[Result]:
        return [r for r in self.results if r.overlaps(memory, address, length)]


def crc32(data: bytes) -> int:
    """CRC-32 (ISO-HDLC, as zlib) of a result."""
    return zlib.crc32(data) & 0xFFFFFFFF
