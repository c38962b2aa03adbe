"""Fault sites of the SCC and the points in a job where a fault can be scheduled.

Sites (docs/REGISTERS.md, "Fault sites"):

- ``SpmCell(bank, row, cell)``: a physical scratchpad cell (``layout.Cell``; the map to
  codeword bits is ``layout.Layout``);
- ``AccBit(i, j, bit)``: bit of the int32 accumulator of PE (i, j);
- ``RegCopy(name, copy, bit)``: storage bit of TMR copy ``copy`` of a configuration
  register (copy 0 only without TMR; ``regs.CONFIG_STORAGE`` maps storage to register
  bits: EPILOGUE's storage bit 3 is SHIFT bit 0);
- ``SeqCopy(name, copy, bit)``: bit of TMR copy ``copy`` of a sequencer register
  (``regs.SEQ_WIDTHS``), modelled with TMR only.

Timing of a fault scheduled during a job, at ``JobPoint(tile, phase, cycle)``: the RTL
flop is flipped (deposited) at the falling edge inside that cycle of that state of that
tile, so it takes effect for the clock edge that ends the cycle:

- a scratchpad read issued in cycle t samples the cell at the edge ending cycle t, so
  it sees flips made in cycles <= t (BIAS reads word q in BIAS cycle q; STREAM reads
  A and B word t in STREAM cycle t); a scratchpad write in cycle t overwrites a flip
  made in cycles <= t of the word it writes;
- PE (i, j) accumulates the product of step t at the edge ending STREAM cycle
  t + 1 + i + j, and is cleared at the edge ending STREAM cycle 0: a flip in STREAM
  cycle x is XORed in after the products with t + 1 + i + j < x (lost if x = 0, and
  before STREAM, since the clear follows); a flip in WRITE cycle w is seen by the
  word written in cycle w and later ones;
- a TMR copy flipped in a cycle is outvoted at the edge ending it (TMR_MISMATCH + 1 for
  that cycle, however many copies of however many registers disagreed).

What the model does not predict raises ``NotModelled``: a configuration copy flipped
during a job without TMR, two copies of a job register outvoting the good one during a
job, a sequencer copy without TMR, and a sequencer register whose vote changes, except
``status`` (STATUS changes) and ``rb``, ``cb``, ``t``, ``ecc`` (reloaded at CHECK) while
idle.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from .layout import Cell
from .regs import Reg

#: A physical scratchpad cell (bank, row, cell): the layout module's Cell.
SpmCell = Cell


@dataclass(frozen=True, slots=True)
class AccBit:
    """Bit ``bit`` (0 = LSB of the int32) of the accumulator of PE (i, j)."""

    i: int
    j: int
    bit: int


@dataclass(frozen=True, slots=True)
class RegCopy:
    """Bit ``bit`` of TMR copy ``copy`` of the configuration register ``name``."""

    name: str
    copy: int
    bit: int

    def __post_init__(self) -> None:
        if isinstance(self.name, Reg):
            object.__setattr__(self, "name", self.name.name)


@dataclass(frozen=True, slots=True)
class SeqCopy:
    """Bit ``bit`` of TMR copy ``copy`` of the sequencer register ``name`` (state, rb, ...)."""

    name: str
    copy: int
    bit: int


FaultSite = SpmCell | AccBit | RegCopy | SeqCopy


class Phase(StrEnum):
    """Per-tile states of a job in which a fault can be scheduled."""

    BIAS = "bias"
    STREAM = "stream"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class JobPoint:
    """Cycle ``cycle`` (from 0) of state ``phase`` of tile ``tile`` (= r * NB + c)."""

    tile: int
    phase: Phase
    cycle: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "phase", Phase(self.phase))


class ScheduledFault(NamedTuple):
    """A fault site flipped at a point of the next job; a plain (when, site) tuple works too."""

    when: JobPoint
    site: FaultSite


@dataclass(frozen=True, slots=True)
class PhaseSpan:
    """One state of one tile of a job and how many cycles it lasts."""

    tile: int
    phase: Phase
    cycles: int


class NotModelled(Exception):
    """The fault changes the chip's behaviour in a way the model does not predict."""
