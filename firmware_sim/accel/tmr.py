"""A triple-modular-redundant register: the reference for ``scc_tmr_reg.v``."""

from __future__ import annotations


class TmrRegister:
    """Three copies (one without TMR) voted bit by bit; every clock edge repairs them."""

    def __init__(self, width: int, reset: int = 0, tmr: bool = True) -> None:
        self.width = width
        self.mask = (1 << width) - 1
        self.tmr = tmr
        self.reset_value = reset & self.mask
        self.copies = [self.reset_value] * (3 if tmr else 1)

    @property
    def value(self) -> int:
        """The voted value, as the rest of the chip sees it."""
        if not self.tmr:
            return self.copies[0]
        a, b, c = self.copies
        return (a & b) | (b & c) | (a & c)

    @property
    def mismatch(self) -> bool:
        """True while the copies disagree (before the next clock edge repairs them)."""
        return len(set(self.copies)) > 1

    def flip(self, copy: int, bit: int) -> None:
        """Invert one bit of one copy, as a single-event upset does."""
        if not 0 <= copy < len(self.copies):
            raise ValueError(f"copy must be 0..{len(self.copies) - 1}, got {copy}")
        if not 0 <= bit < self.width:
            raise ValueError(f"bit must be 0..{self.width - 1}, got {bit}")
        self.copies[copy] ^= 1 << bit

    def clock(self, write: int | None = None) -> bool:
        """One clock edge: load ``write`` or the voted value into every copy.

        Returns whether the copies disagreed during the cycle that ended.
        """
        mismatch = self.mismatch
        nxt = self.value if write is None else write & self.mask
        self.copies = [nxt] * len(self.copies)
        return mismatch

    def reset(self) -> None:
        self.copies = [self.reset_value] * len(self.copies)
