"""Fault sites of the SCC and the points in a job where a fault can be scheduled.

Sites (docs/REGISTERS.md, "Fault sites"):

- ``SpmCell(bank, row, cell)``: a physical scratchpad cell (``layout.Cell``; the map to
  codeword bits is ``layout.Layout``);
- ``AccBit(i, j, bit)``: bit of the int32 accumulator ``acc_q`` of PE (i, j);
- ``OutBit(i, j, bit)``: bit of the int32 result register ``out_q`` of PE (i, j);
- ``RegCopy(name, copy, bit)``: storage bit of TMR copy ``copy`` of a configuration
  register (copy 0 only without TMR; ``regs.CONFIG_STORAGE`` maps storage to register
  bits: EPILOGUE's storage bit 3 is SHIFT bit 0);
- ``SeqCopy(name, copy, bit)``: bit of TMR copy ``copy`` of a sequencer register
  (``regs.SEQ_WIDTHS``; copy 0 only without TMR);
- ``FlopBit(path, bit, copy)``: any flop of the job path by its RTL path below scc_top
  (``cycle_state.flop_list``), the sites above included;
- ``SetBit(path, bit)``: a transient on the next value shared by a TMR register's copies.

Points of a job, ``JobPoint(tile, phase, cycle)``, tile ``T = c*MB + r`` in execution
order (column blocks outer): ``bias`` cycles 0..4 of the BIAS of T's column block (T must
be the block's first tile), ``stream`` cycles 0..P-1 of T's STREAM period, ``flush``
cycles 0..FLUSH-1 (T must be the last tile), ``write`` cycle ``u`` = the cycle in which
word ``u`` of T's results is written (cycle N+1+u of the next STREAM period, or of FLUSH;
so it is also a ``stream``/``flush`` point). ``Descriptor.job_cycle`` maps a point to its
cycle of the job (CHECK = 0); faults in the same job cycle happen together.

Timing: the RTL flop is flipped (deposited) at the falling edge inside that cycle, so it
takes effect for the clock edge that ends the cycle:

- a scratchpad read issued in cycle x samples the cell at the edge ending x, so it sees
  flips made in cycles <= x (BIAS reads bias word q in its cycle q, STREAM reads A and B
  word t in its cycle t); a write in cycle x overwrites a flip of that word made in
  cycles <= x;
- the beat of step t issued in cycle t of tile T's period reaches PE (i, j) in cycle
  t + 1 + i + j of that period (counting on through the next period, BIAS or FLUSH); at
  the end of that cycle the PE adds the product to ``acc_q``, or, for step 0 (FIRST),
  moves ``acc_q`` to ``out_q`` and restarts ``acc_q`` from the product; FLUSH's FIRST in
  its cycle 0 restarts it from 0. So an ``acc_q`` flip in cycle x lands in the tile whose
  FIRST reached the PE before x, after that tile's products that arrived before x (a
  flip in the cycle of a FIRST goes to ``out_q`` with the previous tile's sum);
- a write in cycle x reads ``out_q`` (through the epilogue) in cycle x, so it sees
  ``out_q`` flips made in cycles <= x; ``out_q`` holds tile T's sum from T+1's FIRST (or
  FLUSH's) to the next FIRST;
- a TMR copy flipped in a cycle is outvoted at the edge ending it (TMR_MISMATCH + 1 for
  that cycle, however many copies of however many registers disagreed).

A point the job never reaches (after an ECC abort) is never flipped.

PE registers between jobs: ``acc_q`` and ``out_q`` keep their values, but no job the
analytic path predicts can show them: a job's first FIRST moves ``acc_q`` to ``out_q``
and restarts ``acc_q``, and that ``out_q`` is overwritten by the next FIRST before any
write of the job reads it. A control-path upset can show them (a job that writes before
its first FIRST, a bias buffer no BIAS of the job loaded), so the model keeps the job
path's pipeline state between jobs (``cycle_state.PathState``).

What the analytic job (``job``) does not predict, the cycle-level twin (``cycle``) does:
a configuration copy flipped during a job without TMR, copies outvoting the good one
during a job, sequencer copies with or without TMR, ``FlopBit`` and ``SetBit`` sites and
faults at raw job cycles, and a sequencer state voted out of IDLE between jobs (a copy
flip or a ``SetBit``, which every copy loads): the twin runs the chip from that idle state,
with no START, until it is back in IDLE or hung (``Accelerator.last_wake``), and the next
job starts from there. ``NotModelled`` is left for a flipped bank read slot without
interleaving (an undefined bit in the RTL). Between jobs the scrubber (``scrubber``) keeps
the banks' read registers as the RTL does, so a flip that enters FIX without its READ
writes back what the register holds.

Without a golden run (``golden``) each job is worked out, or replayed in the twin, from
CHECK. With one (``Accelerator.run(faults, golden=...)``, from the state it was recorded
in), a scratchpad flip the analytic job never reads or that a result write clears, one
accumulator or result register flip, and TMR copy flips that change no vote take the
recorded end state with what they change in it, and the twin starts in the first
fault's cycle from the recorded flops, stopping once they agree with the recorded run
again (up to differences the rest of the job carries along unread: counter offsets, words
it does not read again, offsets in the PE sums that only reach result words); the results
are the same bit for bit.
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
class OutBit:
    """Bit ``bit`` (0 = LSB of the int32) of the result register of PE (i, j)."""

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


@dataclass(frozen=True, slots=True)
class FlopBit:
    """Bit ``bit`` of the flop at ``path`` below scc_top (cocotb's naming, as in a site map:
    ``u_seq.u_state.q_q``, ``u_array.g_row[0].g_col[1].u_pe.a_q``); ``copy`` is the TMR copy
    index of a ``scc_tmr_reg`` (its ``q_q[copy]``), None for a plain flop.
    ``cycle_state.flop_list`` lists the paths of a build."""

    path: str
    bit: int
    copy: int | None = None


@dataclass(frozen=True, slots=True)
class SetBit:
    """A single-event transient on bit ``bit`` of the next value of the TMR register at
    ``path`` (``u_seq.u_t.q_q``): the net all copies load from, so every copy takes the
    flipped value at the edge that ends the cycle and TMR cannot correct it."""

    path: str
    bit: int


FaultSite = SpmCell | AccBit | OutBit | RegCopy | SeqCopy | FlopBit | SetBit


class Phase(StrEnum):
    """Parts of a job in which a fault can be scheduled (see the module docstring)."""

    BIAS = "bias"
    STREAM = "stream"
    WRITE = "write"
    FLUSH = "flush"


@dataclass(frozen=True, slots=True)
class JobPoint:
    """Cycle ``cycle`` (from 0) of ``phase`` of tile ``tile`` (= c * MB + r)."""

    tile: int
    phase: Phase
    cycle: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "phase", Phase(self.phase))


class ScheduledFault(NamedTuple):
    """A fault site flipped at a point of the next job, or at a raw job cycle (an int,
    CHECK = 0); a plain (when, site) tuple works too."""

    when: JobPoint | int
    site: FaultSite


@dataclass(frozen=True)
class JobReport:
    """How a job ran: ``engine`` "analytic" or "cycle" (the twin), ``hung`` (still BUSY
    at the bound), its job cycles (CYCLES), and the scheduled faults whose cycle the job
    never reached, so never injected."""

    engine: str
    hung: bool
    cycles: int
    not_injected: tuple[ScheduledFault, ...] = ()


@dataclass(frozen=True, slots=True)
class PhaseSpan:
    """One part of a job: its tile, phase, length and first cycle (CHECK is cycle 0).

    BIAS, STREAM and FLUSH spans follow each other; a WRITE span (tile T's result words,
    one a cycle) lies inside the next STREAM span or FLUSH, from its cycle N + 1.
    """

    tile: int
    phase: Phase
    cycles: int
    start: int = 0


class NotModelled(Exception):
    """The fault changes the chip's behaviour in a way the model does not predict."""
