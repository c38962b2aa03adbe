"""The two-bank scratchpad: words as numpy bytes, SECDED check bits, ECC counters.

Every codeword written through ``store`` is consistent. Words whose stored codeword may
not be (a flipped cell, a poke with chosen check bits) are kept in ``dirty``: only those
need decoding on a read, so reads of clean memory cost nothing but a copy.
"""

from __future__ import annotations

import numpy as np

from .ecc import EccStatus, WordCodec
from .layout import Cell, Layout
from .regs import MASK32


class Scratchpad:
    """``2 * bank_words`` words of ``n`` bytes, with or without SECDED."""

    def __init__(self, n: int, bank_words: int, interleave: int, ecc: bool) -> None:
        self.n = n
        self.bank_words = bank_words
        self.words = 2 * bank_words
        self.dw = 8 * n
        self.codec = WordCodec(n) if ecc else None
        self.check_bits = self.codec.check_bits if self.codec else 0
        self.layout = Layout(bank_words, self.dw + self.check_bits, interleave)
        self.data = np.zeros((self.words, n), dtype=np.uint8)
        # All-zero data has all-zero check bits: memory powers up consistent.
        self.check = np.zeros(self.words, dtype=np.uint16)
        self.dirty: set[int] = set()
        self.corr = 0
        self.uncorr = 0

    @property
    def ecc(self) -> bool:
        return self.codec is not None

    def clear_counters(self) -> None:
        self.corr = 0
        self.uncorr = 0

    # --- writes ----------------------------------------------------------------------

    def store(self, addr: int, words: np.ndarray) -> None:
        """Write consecutive words from ``addr`` (ECC encoded)."""
        count = words.shape[0]
        self.data[addr : addr + count] = words
        if self.codec:
            self.check[addr : addr + count] = self.codec.encode(words)
            if self.dirty:
                self.dirty.difference_update([w for w in self.dirty if addr <= w < addr + count])

    def store_at(self, addrs: np.ndarray, words: np.ndarray) -> None:
        """Write words to the given addresses, in order (ECC encoded)."""
        self.data[addrs] = words
        if self.codec:
            self.check[addrs] = self.codec.encode(words)
            if self.dirty:
                self.dirty.difference_update(addrs.tolist())

    def poke(self, addr: int, data: int, check: int) -> None:
        """Store a raw codeword (no encoding)."""
        self.data[addr] = np.frombuffer(data.to_bytes(self.n, "little"), dtype=np.uint8)
        self.check[addr] = check
        if self.codec:
            if int(self.codec.encode(self.data[addr : addr + 1])[0]) == check:
                self.dirty.discard(addr)
            else:
                self.dirty.add(addr)

    def poke_many(self, addrs: list[int], codes: list[int]) -> None:
        """Store raw codewords (``check << DW | data``) at distinct addresses, as ``poke``
        does one by one."""
        if not addrs:
            return
        where = np.array(addrs, dtype=np.int64)
        dmask = (1 << self.dw) - 1
        raw = b"".join((code & dmask).to_bytes(self.n, "little") for code in codes)
        data = np.frombuffer(raw, dtype=np.uint8).reshape(len(addrs), self.n)
        check = np.array([code >> self.dw for code in codes], dtype=np.uint16)
        self.data[where] = data
        self.check[where] = check
        if self.codec:
            for addr, clean in zip(addrs, (self.codec.encode(data) == check).tolist(), strict=True):
                if clean:
                    self.dirty.discard(addr)
                else:
                    self.dirty.add(addr)

    def flip(self, word: int, bit: int) -> None:
        """Invert codeword bit ``bit`` of ``word`` (data bits first, then check bits)."""
        if bit < self.dw:
            self.data[word, bit >> 3] ^= np.uint8(1 << (bit & 7))
        else:
            self.check[word] ^= np.uint16(1 << (bit - self.dw))
        if self.codec:
            self.dirty.add(word)

    def flip_cell(self, cell: Cell) -> int:
        """Invert one physical cell; returns the word it belongs to."""
        lay = self.layout
        if not (0 <= cell.bank < 2 and 0 <= cell.row < lay.rows and 0 <= cell.cell < lay.row_cells):
            raise ValueError(
                f"no scratchpad cell {cell}: banks 0..1, rows 0..{lay.rows - 1}, "
                f"cells 0..{lay.row_cells - 1}"
            )
        word, bit = lay.word_bit_of(cell)
        self.flip(word, bit)
        return word

    # --- reads -----------------------------------------------------------------------

    def peek(self, addr: int) -> tuple[int, int]:
        """The raw (data, check) codeword, not decoded, not counted."""
        return int.from_bytes(self.data[addr].tobytes(), "little"), int(self.check[addr])

    def read(self, addr: int) -> tuple[np.ndarray, EccStatus]:
        """Decode one word and count it: (data bytes, status); raw data if uncorrectable."""
        row = self.data[addr : addr + 1]
        if not self.codec or addr not in self.dirty:
            return row[0].copy(), EccStatus.CLEAN
        out, status = self.codec.decode(row, self.check[addr : addr + 1])
        st = EccStatus(int(status[0]))
        self._count(st, 1)
        return out[0], st

    def decode_reads(
        self, addrs: np.ndarray, data: np.ndarray, check: np.ndarray
    ) -> tuple[np.ndarray, int]:
        """Decode and count a sequence of reads of ``addrs`` whose raw codewords are given.

        Returns the data as the reader sees it and how many reads were uncorrectable.
        """
        if not self.codec or not self.dirty:
            return data, 0
        suspect = np.nonzero(np.isin(addrs, np.fromiter(self.dirty, dtype=np.int64)))[0]
        if not suspect.size:
            return data, 0
        fixed, status = self.codec.decode(data[suspect], check[suspect])
        data = data.copy()
        data[suspect] = fixed
        corr = int(np.count_nonzero(status == EccStatus.CORRECTED))
        uncorr = int(np.count_nonzero(status == EccStatus.UNCORRECTABLE))
        self.corr = (self.corr + corr) & MASK32
        self.uncorr = (self.uncorr + uncorr) & MASK32
        return data, uncorr

    def decode_words(self, addrs: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Decode the current codewords of ``addrs`` without counting: (data, status)."""
        idx = np.asarray(addrs, dtype=np.int64)
        return self.codec.decode(self.data[idx], self.check[idx])

    def dirty_in(self, lo: int, hi: int) -> list[int]:
        """Dirty words in ``lo .. hi-1``, ascending."""
        return sorted(w for w in self.dirty if lo <= w < hi)

    def _count(self, status: EccStatus, times: int) -> None:
        if status == EccStatus.CORRECTED:
            self.corr = (self.corr + times) & MASK32
        elif status == EccStatus.UNCORRECTABLE:
            self.uncorr = (self.uncorr + times) & MASK32

    def count(self, status: EccStatus, times: int) -> None:
        """Count ``times`` reads that decoded with ``status``."""
        self._count(status, times)

    # --- scrubbing -------------------------------------------------------------------

    def scrub(self, start: int, count: int) -> None:
        """Scrub steps on words ``start .. start+count-1`` (no wrap; the caller splits)."""
        for w in self.dirty_in(start, start + count):
            out, status = self.codec.decode(self.data[w : w + 1], self.check[w : w + 1])
            st = EccStatus(int(status[0]))
            self._count(st, 1)
            if st == EccStatus.CORRECTED:
                self.store(w, out)
            elif st == EccStatus.CLEAN:
                self.dirty.discard(w)
