"""A job's fault-free run, recorded once, so that injected runs of it need not replay it.

``record`` runs the job the registers describe from the chip's current state, fault-free,
in both engines, and keeps what an injected run of the same job from the same state needs
(``Golden``): the end state of each engine (``snapshot.Snapshot``), and for the
cycle-level twin the state of its flops at the start of every job cycle (``cycle.Frame``),
every scratchpad write and the last cycle each scratchpad row is read. The chip is left in
the state it was in.

``Accelerator.run(faults, golden=g)`` uses it:

- faults the analytic job predicts run analytically, except cell flips in scratchpad rows
  the job never reads or writes: those are the analytic end state with the cells flipped
  (a flip scheduled at or after the job's last cycle is not injected);
- faults that need the twin start it at the first fault's cycle from the recorded frame
  (``Follow``) instead of from CHECK. From the cycle after the last fault on, the twin's
  state is compared with the recorded one at the start of every cycle; once they agree,
  the rest of the job is the recorded one, and the chip takes the recorded end state.
  They agree when every flop that steers the job or reaches its results is equal and
  the rest differs only where the rest of the job cannot see it: counters differ by an
  offset the job carries to its end, the scrubber's pointer while it waits (it waits
  through a job), the bias buffers in a job without BIAS_EN, scratchpad words that the
  rest of the job neither reads (row by row, as the banks read) nor writes. Otherwise the
  twin runs to the end of the job as without ``golden``.

Results are bit-identical to ``run(faults)`` without ``golden``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .cycle import CycleTwin, Frame, TwinResult
from .cycle_state import Build
from .faults import JobReport, ScheduledFault, SpmCell
from .job import Descriptor
from .regs import MASK32, ErrCode
from .snapshot import Snapshot, StateToken

if TYPE_CHECKING:
    from .model import Accelerator

#: Index of the scrubber's state in ``Frame.main``, and of the voted configuration.
_SCRUB_STATE = 14
_CONFIG = 6


@dataclass(eq=False)
class Trace:
    """The twin's fault-free run as it goes (a ``cycle.Watch`` that never stops it)."""

    after: int = 0
    records: bool = True
    frames: list[Frame] = field(default_factory=list)
    codes0: list[int] = field(default_factory=list)
    writes: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    last_read: dict[int, int] = field(default_factory=dict)
    caches: tuple[dict, dict] = ({}, {})

    def at(self, x: int, frame: Frame, twin: CycleTwin) -> bool:
        """Keep the frame (and, before the first cycle, the codewords and caches)."""
        if not self.frames:
            self.codes0 = list(twin.codes)
            self.caches = (twin._decoded, twin._outputs)
        self.frames.append(frame)
        return False

    def read(self, x: int, row: int) -> None:
        """Keep the last cycle that reads each row."""
        self.last_read[row] = x

    def write(self, x: int, word: int, code: int) -> None:
        """Keep every write, by word, in cycle order."""
        self.writes.setdefault(word, []).append((x, code))


@dataclass(eq=False)
class Golden:
    """A job's fault-free run from one state of one chip (``Accelerator.golden_job``)."""

    #: The state it was recorded from (``snapshot.StateToken``).
    token: StateToken
    descriptor: Descriptor
    #: End state, return value of the analytic job (None where only the twin runs jobs:
    #: stuck bits).
    analytic_end: Snapshot | None
    analytic_err: ErrCode | int
    #: End state, return value, hang and length of the job in the twin.
    twin_end: Snapshot
    twin_err: ErrCode | int
    hung: bool
    cycles: int
    trace: Trace
    #: The scratchpad's dirty words at START (after a scrub step in progress completed).
    dirty0: frozenset[int]
    #: Scratchpad rows (word address // INTERLEAVE) the analytic job may read or write.
    touched_rows: frozenset[int]
    #: The scrubber waits in every frame from this cycle on.
    quiet_from: int

    def code_at(self, word: int, x: int) -> int:
        """The codeword of ``word`` at the start of job cycle ``x``."""
        history = self.trace.writes.get(word)
        if history:
            k = bisect.bisect_left(history, (x, -1))
            if k:
                return history[k - 1][1]
        return self.trace.codes0[word]

    def codes_at(self, x: int) -> list[int]:
        """Every codeword at the start of job cycle ``x``."""
        codes = list(self.trace.codes0)
        for word, history in self.trace.writes.items():
            for cycle, code in history:
                if cycle >= x:
                    break
                codes[word] = code
        return codes


def touched_rows(d: Descriptor, interleave: int) -> frozenset[int]:
    """Rows of the scratchpad the job of ``d`` reads (A, B, bias) or writes (C)."""
    if not d.valid():
        return frozenset()
    spans = [(d.a_addr, d.mb * d.k), (d.b_addr, d.nb * d.k), (d.c_addr, d.c_words)]
    if d.bias_en:
        spans.append((d.bias_addr, 4 * d.nb))
    rows: set[int] = set()
    for lo, count in spans:
        if count:
            rows.update(range(lo // interleave, (lo + count - 1) // interleave + 1))
    return frozenset(rows)


def record(chip: Accelerator) -> Golden:
    """Record the fault-free job of ``chip``'s registers from its state; leaves the chip
    in that state (``golden_job``)."""
    start = chip.snapshot()
    d = chip.descriptor()
    analytic_end, analytic_err = None, ErrCode.NONE
    if not chip._stuck:
        analytic_err = chip.run(engine="analytic")
        analytic_end = chip.snapshot()
        chip.restore(start)
    chip._finish_scrub_step()
    chip._scrub_timer = 0
    dirty0 = frozenset(chip.spm.dirty)
    trace = Trace()
    twin_err = chip._run_twin(d, [], [], watch=trace)
    report = chip.last_job
    assert report is not None
    twin_end = chip.snapshot()
    chip.restore(start)
    quiet = len(trace.frames)
    while quiet and trace.frames[quiet - 1].main[_SCRUB_STATE] == 0:
        quiet -= 1
    return Golden(
        token=start.token,
        descriptor=d,
        analytic_end=analytic_end,
        analytic_err=analytic_err,
        twin_end=twin_end,
        twin_err=twin_err,
        hung=report.hung,
        cycles=report.cycles,
        trace=trace,
        dirty0=dirty0,
        touched_rows=touched_rows(d, chip.interleave),
        quiet_from=quiet,
    )


def untouched_cells(golden: Golden, timed: list[tuple[int, object]], interleave: int,
                    layout: object) -> list[tuple[int, int]] | None:  # fmt: skip
    """(word, bit) of each fault if every one is a cell in a row the job never touches,
    else None."""
    out = []
    for _, site in timed:
        if not isinstance(site, SpmCell):
            return None
        word, bit = layout.word_bit_of(site)  # type: ignore[attr-defined]
        if word // interleave in golden.touched_rows:
            return None
        out.append((word, bit))
    return out


def run_untouched(
    chip: Accelerator,
    golden: Golden,
    scheduled: list[ScheduledFault],
    timed: list[tuple[int, object]],
    cells: list[tuple[int, int]],
) -> ErrCode | int:
    """The analytic job with cell flips the job never sees: its end state, cells flipped."""
    assert golden.analytic_end is not None
    chip.restore(golden.analytic_end)
    chip._token = None
    end = chip._cycles - 1
    skipped = []
    for fault, (x, _), (word, bit) in zip(scheduled, timed, cells, strict=True):
        if 0 <= x < end:
            chip.spm.flip(word, bit)
        else:
            skipped.append(fault)
    chip.last_job = JobReport("analytic", False, chip._cycles, tuple(skipped))
    return golden.analytic_err


@dataclass(eq=False)
class Follow:
    """Compares an injected twin run with the recorded one (a ``cycle.Watch``): stops it
    once the rest of the job is the recorded one (see the module docstring)."""

    golden: Golden
    build: Build
    #: Words whose codewords a fault flipped.
    flipped: set[int]
    start: int
    after: int
    records: bool = False
    #: Where the run stopped: its frame, and the words whose codewords it keeps.
    frame: Frame | None = None
    keep: dict[int, int] = field(default_factory=dict)

    def at(self, x: int, frame: Frame, twin: CycleTwin) -> bool:
        """True if the rest of the job from cycle ``x`` is the recorded one."""
        g = self.golden
        frames = g.trace.frames
        if x >= len(frames):
            return False
        ref = frames[x]
        if frame.main != ref.main:
            return False
        if frame.bias != ref.bias and dict(ref.main[_CONFIG])["EPILOGUE"] & 1:
            return False
        if frame.scrub != ref.scrub and not (self.build.scrub and x >= g.quiet_from):
            return False
        il = self.build.interleave
        words = self.flipped | twin.written
        for word, history in g.trace.writes.items():
            if any(self.start <= cycle < x for cycle, _ in history):
                words.add(word)
        keep = {}
        codes = twin.codes
        for word in words:
            code = codes[word]
            if code == g.code_at(word, x):
                continue
            if g.trace.last_read.get(word // il, -1) >= x:
                return False  # the rest of the job reads it
            history = g.trace.writes.get(word)
            if not history or history[-1][0] < x:
                keep[word] = code  # not written again: the job leaves it so
        self.frame, self.keep = frame, keep
        return True


def run_from(
    chip: Accelerator,
    golden: Golden,
    scheduled: list[ScheduledFault],
    timed: list[tuple[int, object]],
) -> ErrCode | int:
    """A job with faults in the twin, started at the first fault's recorded frame."""
    from .cycle import load_frame
    from .cycle_job import finish_twin, hang_bound, twin_actions

    g = golden
    reached = [x for x, _ in timed if x >= 0]
    first = min(reached, default=g.cycles + 1)
    if first > g.cycles:
        # No fault is reached: the recorded job.
        chip.restore(g.twin_end)
        chip._token = None
        chip.last_job = JobReport("cycle", g.hung, g.cycles, tuple(scheduled))
        return g.twin_err
    actions = twin_actions(timed, chip.spm.layout)  # type: ignore[arg-type]
    flipped = {a[1] for acts in actions.values() for _, a in acts if a[0] == "mem"}
    last = max((x for x in reached if x < g.cycles), default=first)
    follow = Follow(g, chip.build, flipped, first, last + 1)
    path = chip._path
    load_frame(path, g.trace.frames[first])
    twin = CycleTwin(chip.build, path, g.codes_at(first), chip._held)
    twin._decoded, twin._outputs = g.trace.caches
    result = twin.run(actions, hang_bound(g.descriptor), start=first, watch=follow)
    if result.converged:
        return _take_recorded(chip, g, follow, result, scheduled)
    words: Iterable[int] = set(g.trace.writes) | twin.written | flipped
    out = finish_twin(twin, result, chip.spm, g.trace.codes0, len(timed), words)
    return chip._take_twin(result, out, scheduled)


def _take_recorded(
    chip: Accelerator,
    g: Golden,
    follow: Follow,
    result: TwinResult,
    scheduled: list[ScheduledFault],
) -> ErrCode | int:
    """The chip after a run that joined the recorded one: the recorded end state, with
    the differences the rest of the job carried along."""
    frame = follow.frame
    assert frame is not None
    ref = g.trace.frames[result.cycles]
    chip.restore(g.twin_end)
    chip._token = None
    p, spm = chip._path, chip.spm
    if frame.counters != ref.counters:
        delta = [(a - b) & MASK32 for a, b in zip(frame.counters, ref.counters, strict=True)]
        names = ("cycles_q", "macs_q", "corr_q", "uncorr_q", "mismatch_q")
        for name, dx in zip(names, delta, strict=True):
            p.counters[name] = (p.counters[name] + dx) & MASK32
        chip._cycles = (chip._cycles + delta[0]) & MASK32
        chip._macs = (chip._macs + delta[1]) & MASK32
        spm.corr = (spm.corr + delta[2]) & MASK32
        spm.uncorr = (spm.uncorr + delta[3]) & MASK32
        chip._tmr_mismatch = (chip._tmr_mismatch + delta[4]) & MASK32
    if frame.scrub != ref.scrub:
        ptr, passes, _ = frame.scrub
        p.scrub["ptr_q"], p.scrub["passes_q"] = ptr, passes
        p.scrub_bank_q = (ptr >> chip.build.aw) & 1
        chip._scrub_ptr, chip._scrub_passes = ptr, passes
    if frame.bias != ref.bias:
        p.bias = np.frombuffer(frame.bias, dtype=np.uint8).reshape(p.bias.shape).copy()
    dmask = (1 << spm.dw) - 1
    for word, code in follow.keep.items():
        if code == g.trace.codes0[word]:
            # The job left the word as it found it: not written back, dirty as it was.
            spm.poke(word, code & dmask, code >> spm.dw)
            if word in g.dirty0:
                spm.dirty.add(word)
            else:
                spm.dirty.discard(word)
        else:
            spm.poke(word, code & dmask, code >> spm.dw)
    applied = set(result.applied)
    skipped = tuple(f for i, f in enumerate(scheduled) if i not in applied)
    chip.last_job = JobReport("cycle", g.hung, g.cycles, skipped)
    return g.twin_err
