"""A job's fault-free run, recorded once, so that injected runs of it need not replay it.

``record`` runs the job the registers describe from the chip's current state, fault-free,
in both engines, and keeps what an injected run of the same job from the same state needs
(``Golden``): the end state of each engine (``snapshot.Snapshot``), and for the
cycle-level twin the state of its flops at the start of every job cycle (``cycle.Frame``),
every scratchpad write and the last cycle each scratchpad row is read. The chip is left in
the state it was in.

``Accelerator.run(faults, golden=g)`` uses it:

- faults the analytic job predicts take the analytic end state where it is known what
  they change in it: scratchpad cell flips the job never sees (``unseen_cells``) are
  left flipped in it (a flip scheduled at or after the job's last cycle is not
  injected); one accumulator or result register flip changes the result words the
  recorded sums and FIRSTs say (``run_pe_flip``); TMR copy flips that change no vote
  add their TMR_MISMATCH counts (``run_outvoted``). Other faults of the kind run
  analytically as without ``golden``;
- faults that need the twin start it at the first fault's cycle from the recorded frame
  (``Follow``) instead of from CHECK. From the cycle after the last fault on, the twin's
  state is compared with the recorded one at the start of every cycle; once they agree,
  the rest of the job is the recorded one, and the chip takes the recorded end state.
  They agree when every flop that steers the job or reaches its results is equal and
  the rest differs only where the rest of the job cannot see it: counters differ by an
  offset the job carries to its end, the scrubber's pointer while it waits (it waits
  through a job), the bias buffers in a job without BIAS_EN, scratchpad words that the
  rest of the job neither reads (row by row, as the banks read) nor writes. Otherwise the
  twin runs to the end of the job as without ``golden``, past the recorded job by whole
  tile periods where it is certain to hang (``cycle.LEAP``).

Results are bit-identical to ``run(faults)`` without ``golden``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .cycle import CycleTwin, Frame, TwinResult, load_frame
from .cycle_job import finish_twin, hang_bound, twin_actions
from .cycle_state import Build, PathState
from .faults import (
    AccBit,
    FaultSite,
    JobReport,
    OutBit,
    RegCopy,
    ScheduledFault,
    SeqCopy,
    SpmCell,
)
from .job import Descriptor
from .layout import Layout
from .regs import MASK32, ErrCode
from .snapshot import Snapshot, StateToken

if TYPE_CHECKING:
    from .model import Accelerator

#: Where ``Frame.main`` holds the voted configuration, the scrubber's state, the PE
#: pipeline tags and operands, the accumulators, the result registers, the skew.
_CONFIG, _SCRUB_STATE, _PIPE, _ACC, _OUT, _SKEW = 6, 14, 16, 17, 18, 19
#: ``Frame.main[:_HEAD]``: what the twin keeps in locals (``Watch.at``'s head).
_HEAD = 7

#: Codewords ``Golden.codes_at`` keeps in all (a list of every word per write of the
#: job before it; 2^22 list slots are 32 MiB).
CODES_KEPT = 1 << 22

#: A result write as ``Watch.write`` reports it: (cycle, word, codeword, source).
Write = tuple[int, int, int, tuple[int, int, int] | None]


@dataclass(eq=False)
class Trace:
    """The twin's fault-free run as it goes (a ``cycle.Watch`` that never stops it)."""

    after: int = 0
    records: bool = True
    frames: list[Frame] = field(default_factory=list)
    codes0: list[int] = field(default_factory=list)
    #: Every write in cycle order, the cycles alone, and by word [(cycle, codeword)].
    log: list[Write] = field(default_factory=list)
    log_cycles: list[int] = field(default_factory=list)
    #: Per write of ``log``: the row of result registers it wrote out (-1: a scrub write).
    log_rows: list[int] = field(default_factory=list)
    #: Per row of result registers: the indices in ``log`` of its writes, in order.
    row_writes: dict[int, list[int]] = field(default_factory=dict)
    writes: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    last_read: dict[int, int] = field(default_factory=dict)
    caches: tuple[dict, dict] = ({}, {})

    def at(self, x: int, head: tuple, counters: tuple, twin: CycleTwin) -> bool:
        """Keep the frame (and, before the first cycle, the codewords and caches)."""
        if not self.frames:
            self.codes0 = list(twin.codes)
            self.caches = (twin._decoded, twin._outputs)
        self.frames.append(twin.frame(head, counters))
        return False

    def read(self, x: int, row: int) -> None:
        """Keep the last cycle that reads each row."""
        self.last_read[row] = x

    def write(self, x: int, word: int, code: int, source: tuple[int, int, int] | None) -> None:
        """Keep every write, by word, in cycle order."""
        self.log.append((x, word, code, source))
        self.log_cycles.append(x)
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
    #: Scratchpad rows the job reads and writes.
    rows: Rows
    #: The scrubber waits in every frame from this cycle on.
    quiet_from: int
    #: Per PE [i][j], the clock edges (job cycles, the idle cycles after the job numbered
    #: on) at which a FIRST moves its accumulator into its result register.
    first_edges: list[list[list[int]]]
    #: ``codes_at`` by the number of writes before the cycle.
    _codes: dict[int, list[int]] = field(default_factory=dict, repr=False)

    def code_at(self, word: int, x: int) -> int:
        """The codeword of ``word`` at the start of job cycle ``x``."""
        history = self.trace.writes.get(word)
        if history:
            k = bisect.bisect_left(history, (x, -1))
            if k:
                return history[k - 1][1]
        return self.trace.codes0[word]

    def codes_at(self, x: int) -> list[int]:
        """Every codeword at the start of job cycle ``x`` (a new list)."""
        tr = self.trace
        done = bisect.bisect_left(tr.log_cycles, x)
        # Keyed by the writes before x: every cycle between two writes shares one list.
        codes = self._codes.get(done)
        if codes is None:
            codes = list(tr.codes0)
            for _, word, code, _ in tr.log[:done]:
                codes[word] = code
            if (len(self._codes) + 1) * len(codes) <= CODES_KEPT:
                self._codes[done] = codes
        return list(codes)

    def written_between(self, lo: int, hi: int) -> list[Write]:
        """The writes of job cycles ``lo .. hi-1``, in order."""
        tr = self.trace
        return tr.log[bisect.bisect_left(tr.log_cycles, lo) : bisect.bisect_left(tr.log_cycles, hi)]


def _first_edges(build: Build, frames: list[Frame], hung: bool) -> list[list[list[int]]]:
    """``Golden.first_edges`` from the frames (the FIRST tags each edge leaves in the
    PEs), and, after a job that ended, from the idle cycles that let the beats land."""
    n = build.n
    edges: list[list[list[int]]] = [[[] for _ in range(n)] for _ in range(n)]
    masks = [np.frombuffer(f.main[_PIPE], dtype=np.int64).reshape(4, n, n)[2] != 0
             for f in frames[1:]]  # fmt: skip
    if not hung and frames:
        # The idle cycles after the job (CycleTwin.settle), on the tags alone.
        scratch = PathState(build)
        scratch.pipe = np.frombuffer(frames[-1].main[_PIPE], dtype=np.int64).reshape(4, n, n) * 1
        scratch.skew = np.frombuffer(frames[-1].main[_SKEW], dtype=np.int64).reshape(4, n, n) * 1
        for arr in (scratch.pipe, scratch.skew):
            arr[0] = arr[3] = 0
        idle = CycleTwin(build, scratch, [])
        zeros = np.zeros(n, dtype=np.int64)
        for _ in range(3 * n):
            idle._array_edge(0, 0, zeros, zeros)
            masks.append(scratch.pipe[2] != 0)
    for edge, mask in enumerate(masks):
        if mask.any():
            for i, j in zip(*np.nonzero(mask), strict=True):
                edges[i][j].append(edge)
    return edges


@dataclass(frozen=True)
class Rows:
    """Scratchpad rows (word address // INTERLEAVE) of a job: those its operand reads
    touch (A, B, bias), those it writes (C), and the rows of its last A and B words (the
    bank read registers keep them after the job)."""

    read: frozenset[int]
    written: frozenset[int]
    kept: frozenset[int]

    @classmethod
    def of(cls, d: Descriptor, interleave: int) -> Rows:
        """The rows of the job of ``d`` (none for a job that fails CHECK)."""
        if not d.valid():
            return cls(frozenset(), frozenset(), frozenset())

        def span(lo: int, count: int) -> range:
            return range(lo // interleave, (lo + count - 1) // interleave + 1 if count else 0)

        read = set(span(d.a_addr, d.mb * d.k)) | set(span(d.b_addr, d.nb * d.k))
        if d.bias_en:
            read.update(span(d.bias_addr, 4 * d.nb))
        r, c = d.tile_rc(d.tiles - 1)
        last = (d.a_addr + r * d.k + d.k - 1, d.b_addr + c * d.k + d.k - 1)
        return cls(frozenset(read), frozenset(span(d.c_addr, d.c_words)),
                   frozenset(w // interleave for w in last))  # fmt: skip


def record(chip: Accelerator) -> Golden:
    """Record the fault-free job of ``chip``'s registers from its state; leaves the chip
    in that state (``golden_job``)."""
    start = chip.snapshot()
    d = chip.descriptor()
    if chip._hung:
        # START is ignored while BUSY: run() never gets as far as the recorded run.
        return Golden(token=start.token, descriptor=d, analytic_end=start,
                      analytic_err=chip._err_code, twin_end=start, twin_err=chip._err_code,
                      hung=True, cycles=0, trace=Trace(), dirty0=frozenset(chip.spm.dirty),
                      rows=Rows.of(d, chip.interleave), quiet_from=0,
                      first_edges=[])  # fmt: skip
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
    n = chip.n
    out32 = {}
    for c, _, _, source in trace.log:
        if source is None:
            trace.log_rows.append(-1)
            continue
        cfg = trace.frames[c].main[_CONFIG]
        if cfg not in out32:
            out32[cfg] = dict(cfg)["EPILOGUE"] & 4
        trace.log_rows.append((source[1] >> 2 if out32[cfg] else source[1]) & (n - 1))
        trace.row_writes.setdefault(trace.log_rows[-1], []).append(len(trace.log_rows) - 1)
    quiet = len(trace.frames)
    while quiet and trace.frames[quiet - 1].main[_SCRUB_STATE] == 0:
        quiet -= 1
    return Golden(
        first_edges=_first_edges(chip.build, trace.frames, report.hung),
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
        rows=Rows.of(d, chip.interleave),
        quiet_from=quiet,
    )


def unseen_cells(
    golden: Golden, timed: list[tuple[int, FaultSite]], layout: Layout
) -> list[tuple[int, int, bool]] | None:
    """(word, bit, flipped at the end) of each fault if every one is a scratchpad cell
    the analytic job never sees, else None.

    A cell is unseen in a row the job neither reads nor writes; in a row of operands
    after its last read (but the rows the bank read registers keep after the job); in a
    row of results alone (flipped before the write of its word, the write clears it).
    """
    g, rows = golden, golden.rows
    d = g.descriptor
    il = layout.interleave
    out = []
    for x, site in timed:
        if not isinstance(site, SpmCell):
            return None
        word, bit = layout.word_bit_of(site)
        row = word // il
        if row in rows.read:
            if row in rows.kept or x <= g.trace.last_read.get(row, -1) or row in rows.written:
                return None
            out.append((word, bit, True))
        elif row in rows.written:
            rel = word - d.c_addr
            if 0 <= rel < d.c_words:
                mw, q = divmod(rel, d.per_row)
                m, c = divmod(mw, d.nb)
                tile = c * d.mb + m // d.n
                out.append((word, bit, x > d.write_start(tile) + (m % d.n) * d.per_row + q))
            else:
                out.append((word, bit, True))
        else:
            out.append((word, bit, True))
    return out


def run_unseen(
    chip: Accelerator,
    golden: Golden,
    scheduled: list[ScheduledFault],
    timed: list[tuple[int, FaultSite]],
    cells: list[tuple[int, int, bool]],
) -> ErrCode | int:
    """The analytic job with cell flips it never sees: its end state, cells flipped."""
    assert golden.analytic_end is not None
    chip.restore(golden.analytic_end)
    chip._token = None
    end = chip._cycles - 1
    skipped = []
    for fault, (x, _), (word, bit, stays) in zip(scheduled, timed, cells, strict=True):
        if not 0 <= x < end:
            skipped.append(fault)
        elif stays:
            chip.spm.flip(word, bit)
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
    #: Where the run stopped: its frame, the words whose codewords it keeps, and the
    #: offsets its accumulators and result registers keep to the end (or None).
    frame: Frame | None = None
    keep: dict[int, int] = field(default_factory=dict)
    sums: tuple[np.ndarray, np.ndarray] | None = None

    def at(self, x: int, head: tuple, counters: tuple, twin: CycleTwin) -> bool:
        """True if the rest of the job from cycle ``x`` is the recorded one, up to
        differences it carries along without acting on them."""
        g = self.golden
        frames = g.trace.frames
        if x >= len(frames):
            self.after = 1 << 62  # past the recorded job (a longer job, a hang): stop looking
            return False
        if head != frames[x].main[:_HEAD]:
            return False
        ref = frames[x]
        # Operands in flight steer the job (see below): compared before a whole frame is made.
        st = twin.st
        if st.pipe.tobytes() != ref.main[_PIPE] or st.skew.tobytes() != ref.main[_SKEW]:
            return False
        frame = twin.frame(head, counters)
        m, r = frame.main, ref.main
        offsets = m != r
        if offsets and not (m[:_ACC] == r[:_ACC] and m[_SKEW] == r[_SKEW] and not twin.stuck):
            return False
        if frame.bias != ref.bias and dict(r[_CONFIG])["EPILOGUE"] & 1:
            return False
        if frame.scrub != ref.scrub and not (self.build.scrub and x >= g.quiet_from):
            return False
        il = self.build.interleave
        words = self.flipped | twin.written
        words.update(w for _, w, _, _ in g.written_between(self.start, x))
        keep = {}
        codes = twin.codes
        for word in words:
            code = codes[word]
            if code != g.code_at(word, x):
                if g.trace.last_read.get(word // il, -1) >= x:
                    return False  # the rest of the job reads it
                history = g.trace.writes.get(word)
                if not history or history[-1][0] < x:
                    keep[word] = code  # a word the rest of the job writes ends as written
        sums = None
        if offsets:
            sums = self._offset_writes(x, frame, ref, twin, keep)
            if sums is None:
                return False
        self.frame, self.keep, self.sums = frame, keep, sums
        return True

    def _offset_writes(
        self, x: int, frame: Frame, ref: Frame, twin: CycleTwin, keep: dict
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Where only accumulators and result registers differ from the recorded run."""
        n = self.build.n
        d_acc = _sums(frame.main[_ACC], n) - _sums(ref.main[_ACC], n)
        d_out = _sums(frame.main[_OUT], n) - _sums(ref.main[_OUT], n)
        found = offset_writes(self.golden, x, d_acc, d_out, twin)
        if found is None:
            return None
        keep.update(found[0])
        return found[1]


def offset_writes(
    g: Golden, x: int, d_acc: np.ndarray, d_out: np.ndarray, twin: CycleTwin
) -> tuple[dict[int, int], tuple[np.ndarray, np.ndarray]] | None:
    """The rest of the recorded job from cycle ``x`` with offsets ``d_acc``, ``d_out`` on
    the PEs' accumulators and result registers: FIRSTs move an offset from accumulator
    to result register and clear it, the result writes take it through the epilogue.
    Returns the words those writes leave otherwise than recorded (word -> codeword) and
    the offsets left at the end, or None if a later read would see a changed word."""
    n = twin.b.n
    live = [(int(i), int(j)) for i, j in zip(*np.nonzero(d_acc | d_out), strict=True)]
    # Per PE with an offset: the first two FIRST edges from x on.
    firsts = {}
    for i, j in live:
        edges = g.first_edges[i][j]
        k = bisect.bisect_left(edges, x)
        firsts[i, j] = edges[k : k + 2]
    il = twin.b.interleave
    tr = g.trace
    frames = tr.frames
    # Per row with an offset: (column, offset in the result register, in the
    # accumulator, the FIRST edges) of each PE, in Python ints (a few per write).
    by_row: dict[int, list[tuple[int, int, int, list[int]]]] = {}
    for (i, j), edges in firsts.items():
        by_row.setdefault(i, []).append((j, int(d_out[i, j]), int(d_acc[i, j]), edges))
    # A write after a PE's second FIRST sees no offset of it.
    horizon = max((e[1] if len(e) == 2 else len(frames) for e in firsts.values()), default=x)
    last: dict[int, int] = {}
    lo = bisect.bisect_left(tr.log_cycles, x)
    hi = bisect.bisect_right(tr.log_cycles, horizon, lo)
    # Row by row: a word is always written out of the same row, so each word's writes
    # are still taken in order (scrub writes and rows without an offset are not looked at).
    for wrow, pes in by_row.items():
        ks = tr.row_writes.get(wrow, [])
        for k in ks[bisect.bisect_left(ks, lo) : bisect.bisect_left(ks, hi)]:
            c, word, code, source = tr.log[k]
            assert source is not None
            delta = [0] * n
            for j, dout, dacc, edges in pes:
                # FIRST edges before c (edges are in order): 0, 1 or 2.
                delta[j] = (dout, dacc, 0)[bisect.bisect_left(edges, c)]
            if not any(delta):
                last.pop(word, None)
                continue
            main = frames[c].main
            row = np.frombuffer(main[_OUT], dtype=np.int64, count=n, offset=8 * n * wrow).tolist()
            row = [v + dv for v, dv in zip(row, delta, strict=True)]
            faulty = twin.result_code(main[_CONFIG], row, frames[c].bias, source)
            if faulty == code:
                last.pop(word, None)
                continue
            if tr.last_read.get(word // il, -1) > c:
                return None
            last[word] = faulty
    end_acc, end_out = d_acc.copy(), d_out.copy()
    for (i, j), edges in firsts.items():
        moved = len(edges)
        end_out[i, j] = (d_out[i, j], d_acc[i, j], 0)[moved]
        end_acc[i, j] = d_acc[i, j] if moved == 0 else 0
    return last, (end_acc, end_out)


def run_pe_flip(
    chip: Accelerator, golden: Golden, scheduled: list[ScheduledFault], x: int,
    site: AccBit | OutBit,
) -> ErrCode | int | None:  # fmt: skip
    """One accumulator or result register flip the analytic job would work out: the
    analytic end state with the result words it changes (through the recorded run's
    sums and FIRSTs, ``offset_writes``); None where that cannot say (a job that ended
    by ECC, a later read of a changed word)."""
    g = golden
    if g.analytic_end is None or g.analytic_err != ErrCode.NONE or not 0 <= x < len(g.trace.frames):
        return None
    n = chip.n
    frame = g.trace.frames[x]
    name = _ACC if isinstance(site, AccBit) else _OUT
    sums = _sums(frame.main[name], n)
    was = int(sums[site.i, site.j])
    # As PathState.flip does it: the bit of the sum as held, then wrapped to int32.
    now = ((was ^ (1 << site.bit)) + (1 << 31) & MASK32) - (1 << 31)
    delta = np.zeros((n, n), dtype=np.int64)
    delta[site.i, site.j] = now - was
    zero = np.zeros((n, n), dtype=np.int64)
    twin = CycleTwin(chip.build, chip._path, [])
    found = offset_writes(g, x, delta if name == _ACC else zero,
                          delta if name == _OUT else zero, twin)  # fmt: skip
    if found is None:
        return None
    chip.restore(g.analytic_end)
    chip._token = None
    chip.spm.poke_many(list(found[0]), list(found[0].values()))
    chip.last_job = JobReport("analytic", False, chip._cycles, ())
    return g.analytic_err


def run_outvoted(
    chip: Accelerator, golden: Golden, timed: list[tuple[int, FaultSite]]
) -> ErrCode | int | None:
    """TMR copy flips that never change a vote: the analytic end state, TMR_MISMATCH
    counted once per cycle with a flip; None if a flip changes a vote."""
    if golden.analytic_end is None:
        return None
    by_cycle: dict[int, list] = {}
    for x, site in timed:
        if not isinstance(site, RegCopy | SeqCopy):
            return None
        by_cycle.setdefault(x, []).append(site)
    counted = 0
    for sites in by_cycle.values():
        mismatch, config, status = chip._vote_copy_flips(sites, during_job=True)
        if config or status:
            return None
        counted += mismatch
    chip.restore(golden.analytic_end)
    chip._token = None
    chip._tmr_mismatch = (chip._tmr_mismatch + counted) & MASK32
    chip.last_job = JobReport("analytic", False, chip._cycles, ())
    return golden.analytic_err


def _sums(raw: bytes, n: int) -> np.ndarray:
    """Accumulators or result registers of a frame as a writable int64 [N, N]."""
    return np.frombuffer(raw, dtype=np.int64).reshape(n, n).copy()


def run_from(
    chip: Accelerator,
    golden: Golden,
    scheduled: list[ScheduledFault],
    timed: list[tuple[int, object]],
) -> ErrCode | int:
    """A job with faults in the twin, started at the first fault's recorded frame."""
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
    if follow.sums is not None:
        # Offsets the job carried to its end (``Follow._offset_writes``).
        p.acc = p.acc + follow.sums[0]
        p.out = p.out + follow.sums[1]
    if frame.bias != ref.bias:
        p.bias = np.frombuffer(frame.bias, dtype=np.uint8).reshape(p.bias.shape).copy()
    spm.poke_many(list(follow.keep), list(follow.keep.values()))
    for word, code in follow.keep.items():
        if code == g.trace.codes0[word]:
            # The job left the word as it found it: not written back, dirty as it was.
            if word in g.dirty0:
                spm.dirty.add(word)
            else:
                spm.dirty.discard(word)
    applied = set(result.applied)
    skipped = tuple(f for i, f in enumerate(scheduled) if i not in applied)
    chip.last_job = JobReport("cycle", g.hung, g.cycles, skipped)
    return g.twin_err
