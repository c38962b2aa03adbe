"""CCSDS 14-bit packet sequence counts."""

from __future__ import annotations

from typing import Final

SEQ_COUNT_MODULO: Final[int] = 1 << 14
MAX_SEQ_COUNT: Final[int] = SEQ_COUNT_MODULO - 1


def seq_diff(newer: int, older: int) -> int:
    """Signed distance ``newer - older`` modulo 2**14, in -8192 .. 8191."""
    return (newer - older + SEQ_COUNT_MODULO // 2) % SEQ_COUNT_MODULO - SEQ_COUNT_MODULO // 2


class SeqCounter:
    """Source sequence counter of one APID: 0, 1, ..., 16383, 0, ..."""

    __slots__ = ("_next",)

    def __init__(self, start: int = 0) -> None:
        if not 0 <= start <= MAX_SEQ_COUNT:
            raise ValueError(f"sequence count must be in 0..{MAX_SEQ_COUNT}, got {start}")
        self._next = start

    @property
    def peek(self) -> int:
        """The count the next call to ``next`` returns."""
        return self._next

    def next(self) -> int:
        """Return the current count and advance, wrapping after 16383."""
        value = self._next
        self._next = (value + 1) % SEQ_COUNT_MODULO
        return value
