"""Memory the flight software owns: its data RAM, and the results it keeps with a CRC.

Firmware RAM is a plain byte array (no hardware EDAC): a flipped bit stays flipped.
What protects a job's result is the CRC-32 recorded when the result was verified; the
result is checked against it before every delivery and by a periodic software scrub.

Where each bit sits physically (``RamLayout``, docs/FAULTS.md "Firmware RAM
organisation") decides which bits one particle's multi-bit upset reaches. No source gives
the flight computer's SRAM organisation: rows of ``ROW_CELLS`` cells holding 32-bit words
side by side, not interleaved, are this testbed's assumption.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from protocol.codes import MemoryId

DEFAULT_RAM_BYTES = 64 * 1024
ROW_CELLS = 256
"""Cells in one physical row of the firmware RAM (an assumption: eight 32-bit words)."""
WORD_BITS = 32
"""Bits of the flight computer's memory word; its octets are little-endian."""
INTERLEAVE = 1
"""Words bit-interleaved in a row: 1, none. The RAM has no EDAC, so spreading a
multi-bit upset over several words would buy nothing."""


@dataclass(frozen=True, slots=True)
class RamLayout:
    """Where each bit of a ``size``-octet firmware RAM sits: physical row and cell.

    A row holds ``row_cells / word_bits`` words. They form groups of ``interleave``
    words; in a group, cell ``y`` holds bit ``y // interleave`` of the group's word
    ``y % interleave``. Bit ``k`` of a word is bit ``k % 8`` of its octet ``k // 8``.
    Without interleaving this is plain order: bit ``b`` of octet ``a`` is cell
    ``8 * (a % row_octets) + b`` of row ``a // row_octets``.
    """

    size: int
    row_cells: int = ROW_CELLS
    word_bits: int = WORD_BITS
    interleave: int = INTERLEAVE

    def __post_init__(self) -> None:
        if self.interleave not in (1, 2, 4, 8):
            raise ValueError(f"interleave must be 1, 2, 4 or 8, got {self.interleave}")
        if self.word_bits % 8 or self.row_cells % (self.interleave * self.word_bits):
            raise ValueError(
                f"a row of {self.row_cells} cells does not hold whole groups of "
                f"{self.interleave} words of {self.word_bits} bits"
            )
        if self.size < 0 or self.size % self.row_octets:
            raise ValueError(
                f"firmware RAM of {self.size} octets: a whole number of {self.row_octets}-octet "
                "rows"
            )

    @property
    def row_octets(self) -> int:
        return self.row_cells // 8

    @property
    def rows(self) -> int:
        return self.size // self.row_octets

    def cell_of(self, address: int, bit: int) -> tuple[int, int]:
        """(row, cell) of bit ``bit`` (0 = LSB) of octet ``address``."""
        if not (0 <= address < self.size and 0 <= bit < 8):
            raise ValueError(
                f"octet {address} bit {bit}: octets 0..{self.size - 1}, bits 0..7"
            )
        word_octets, per_row = self.word_bits // 8, self.row_cells // self.word_bits
        word, octet = divmod(address, word_octets)
        row, j = divmod(word, per_row)
        group, slot = divmod(j, self.interleave)
        k = 8 * octet + bit
        return row, group * self.interleave * self.word_bits + k * self.interleave + slot

    def bit_of(self, row: int, cell: int) -> tuple[int, int]:
        """(octet address, bit) held by cell ``cell`` of row ``row``."""
        if not (0 <= row < self.rows and 0 <= cell < self.row_cells):
            raise ValueError(
                f"row {row} cell {cell}: rows 0..{self.rows - 1}, cells 0..{self.row_cells - 1}"
            )
        per_row = self.row_cells // self.word_bits
        group, y = divmod(cell, self.interleave * self.word_bits)
        k, slot = divmod(y, self.interleave)
        word = row * per_row + group * self.interleave + slot
        return word * (self.word_bits // 8) + k // 8, k % 8

    def cluster(
        self, address: int, bit: int, offsets: Iterable[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        """The (octet, bit) pairs of a multi-bit upset whose first cell holds bit ``bit`` of
        octet ``address``, the others ``(drow, dcell)`` from it (``testbed.clusters``).

        A cluster stays inside the array: one that runs past the last row or past its
        row's last cell is refused (``ValueError``).
        """
        row, cell = self.cell_of(address, bit)
        out = []
        for dr, dc in offsets:
            r, c = row + dr, cell + dc
            if not (0 <= r < self.rows and 0 <= c < self.row_cells):
                raise ValueError(
                    f"a cluster from octet {address} bit {bit} (row {row} cell {cell}) reaches "
                    f"row {r} cell {c}: rows 0..{self.rows - 1}, cells 0..{self.row_cells - 1}"
                )
            out.append(self.bit_of(r, c))
        return out


class FirmwareRam:
    """``size`` octets, with bits that may be stuck at 0 or 1 (injected damage), laid out
    in rows as ``layout`` says."""

    def __init__(self, size: int = DEFAULT_RAM_BYTES) -> None:
        self.size = size
        self.layout = RamLayout(size)
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
