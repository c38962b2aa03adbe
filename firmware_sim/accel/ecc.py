"""SECDED over scratchpad words held as byte rows, vectorised with lookup tables.

The code itself is ``secded.code_for(8 * n)``; this module only makes it fast for
numpy arrays of words (``uint8[words, n]``, byte ``i`` = data bits ``8i .. 8i+7``).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from .secded import Code, code_for


class EccStatus(IntEnum):
    """Outcome of decoding one word."""

    CLEAN = 0
    CORRECTED = 1
    UNCORRECTABLE = 2


class WordCodec:
    """Encoder and decoder of the Hsiao code for words of ``n`` bytes."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.code: Code = code_for(8 * n)
        self.check_bits = self.code.check_bits
        columns = np.array(self.code.columns, dtype=np.uint16).reshape(n, 8)
        # The check bits of a word are the XOR of the columns of its set data bits,
        # so per byte position a 256-entry table of partial syndromes does it.
        values = np.arange(256)
        table = np.zeros((n, 256), dtype=np.uint16)
        for b in range(8):
            table ^= np.where((values >> b) & 1, columns[:, b : b + 1], 0).astype(np.uint16)
        self._table = table
        self._positions = np.arange(n)
        size = 1 << self.check_bits
        kind = np.full(size, EccStatus.UNCORRECTABLE, dtype=np.uint8)
        kind[0] = EccStatus.CLEAN
        kind[1 << np.arange(self.check_bits)] = EccStatus.CORRECTED
        kind[np.array(self.code.columns)] = EccStatus.CORRECTED
        flip = np.full(size, -1, dtype=np.int16)
        flip[np.array(self.code.columns)] = np.arange(8 * n)
        self._kind = kind
        self._flip = flip

    def encode(self, data: np.ndarray) -> np.ndarray:
        """Check bits (``uint16[words]``) of words given as ``uint8[words, n]``."""
        partial = self._table[self._positions, data]
        return np.bitwise_xor.reduce(partial, axis=1).astype(np.uint16)

    def decode(self, data: np.ndarray, check: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(corrected copy of data, ``uint8`` EccStatus per word); uncorrectable words stay raw."""
        syndrome = self.encode(data) ^ check.astype(np.uint16)
        status = self._kind[syndrome]
        out = np.array(data, dtype=np.uint8, copy=True)
        bits = self._flip[syndrome]
        rows = np.nonzero(bits >= 0)[0]
        if rows.size:
            b = bits[rows].astype(np.int64)
            out[rows, b >> 3] ^= (1 << (b & 7)).astype(np.uint8)
        return out, status
