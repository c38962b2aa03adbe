"""A job of the SCC at transaction level: descriptor check, schedule, tiles, epilogue.

The schedule is docs/REGISTERS.md, "Job schedule and cycle count": column blocks outer,
tile ``T = c*MB + r``; BIAS once per column block, a STREAM period of P cycles per tile,
tile T-1's results written during tile T's period, the last tile's during FLUSH. Job
cycles here count from CHECK = cycle 0 (``Descriptor.job_cycle``).

C overlaps none of the operands (a descriptor rule), so no write of a job changes what
it reads. The model reads every operand word as the job's reads see it (decoded as it
stood at START, or, for a word a fault scheduled during the job flips, as it stood at
each of its reads), finds the first tile with an uncorrectable read, computes every
written tile with one numpy product and redoes only the tiles a scheduled fault touches.
See ``faults`` for the timing of faults scheduled during a job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .ecc import EccStatus
from .faults import (
    AccBit,
    JobPoint,
    OutBit,
    Phase,
    PhaseSpan,
    RegCopy,
    ScheduledFault,
    SeqCopy,
    SpmCell,
)
from .regs import MASK32, ErrCode
from .scratchpad import Scratchpad


def wrap32(x: np.ndarray) -> np.ndarray:
    """int64 values wrapped to the int32 range (two's complement)."""
    return ((x + (1 << 31)) & MASK32) - (1 << 31)


@dataclass(frozen=True)
class Descriptor:
    """A job as the configuration registers describe it."""

    n: int
    bank_words: int
    m: int
    k: int
    ncols: int
    a_addr: int
    b_addr: int
    bias_addr: int
    c_addr: int
    bias_en: bool
    relu: bool
    out_int32: bool
    shift: int

    @property
    def mb(self) -> int:
        return -(-self.m // self.n)

    @property
    def nb(self) -> int:
        return -(-self.ncols // self.n)

    @property
    def tiles(self) -> int:
        return self.mb * self.nb

    @property
    def per_row(self) -> int:
        """w: words written per row of a tile."""
        return 4 if self.out_int32 else 1

    @property
    def c_words(self) -> int:
        return self.m * self.nb * self.per_row

    @property
    def period(self) -> int:
        """P: cycles of one tile's STREAM period."""
        return max(self.k + 1, (self.per_row + 1) * self.n + 1)

    @property
    def bias_cycles(self) -> int:
        """Cycles of the BIAS of one column block (0 without BIAS_EN)."""
        return 5 if self.bias_en else 0

    @property
    def flush_cycles(self) -> int:
        return self.n + 1 + self.per_row * self.rows(self.mb - 1)

    def regions(self) -> list[tuple[str, int, int]]:
        """Word ranges [lo, hi) the job reads: A, B and (with BIAS_EN) the bias."""
        regions = [
            ("a", self.a_addr, self.a_addr + self.mb * self.k),
            ("b", self.b_addr, self.b_addr + self.nb * self.k),
        ]
        if self.bias_en:
            regions.append(("bias", self.bias_addr, self.bias_addr + 4 * self.nb))
        return regions

    def valid(self) -> bool:
        """The descriptor rules checked at START."""
        # A descriptor is immutable: the answer is kept (a golden run reuses one).
        known = self.__dict__.get("_valid")
        if known is None:
            known = self._valid_now()
            object.__setattr__(self, "_valid", known)
        return known

    def _valid_now(self) -> bool:
        spm = 2 * self.bank_words
        if not (
            self.m >= 1
            and self.k >= 1
            and self.ncols >= 1
            and self.a_addr + self.mb * self.k <= self.bank_words
            and self.b_addr >= self.bank_words
            and self.b_addr + self.nb * self.k <= spm
            and (not self.bias_en or self.bias_addr + 4 * self.nb <= spm)
            and self.c_addr + self.c_words <= spm
        ):
            return False
        lo, hi = self.c_addr, self.c_addr + self.c_words
        return not any(r_lo < hi and lo < r_hi for _, r_lo, r_hi in self.regions())

    def rows(self, r: int) -> int:
        """V: valid rows of row block r."""
        return min(self.n, self.m - r * self.n)

    def cols(self, c: int) -> int:
        """Valid columns of column block c."""
        return min(self.n, self.ncols - c * self.n)

    def tile_rc(self, tile: int) -> tuple[int, int]:
        """(r, c) of tile number ``tile`` (= c*MB + r)."""
        c, r = divmod(tile, self.mb)
        return r, c

    def write_words(self, tile: int) -> int:
        """Result words of a tile: w * V."""
        return self.per_row * self.rows(tile % self.mb)

    # --- cycles of the job, CHECK = 0 ------------------------------------------------

    def bias_start(self, c: int) -> int:
        """Job cycle of BIAS cycle 0 of column block c."""
        return 1 + c * (self.bias_cycles + self.mb * self.period)

    def stream_start(self, tile: int) -> int:
        """Job cycle of cycle 0 of a tile's STREAM period."""
        return 1 + self.bias_cycles * (tile // self.mb + 1) + self.period * tile

    @property
    def flush_start(self) -> int:
        return 1 + self.bias_cycles * self.nb + self.period * self.tiles

    def first_start(self, index: int) -> int:
        """Job cycle in which the FIRST beat of tile ``index`` is issued (FLUSH's for
        ``index == tiles``)."""
        return self.flush_start if index >= self.tiles else self.stream_start(index)

    def write_start(self, tile: int) -> int:
        """Job cycle in which word 0 of a tile's results is written."""
        return self.first_start(tile + 1) + self.n + 1

    def epoch(self, y: int) -> int:
        """The last FIRST beat issued in job cycles <= y: a tile, ``tiles`` for FLUSH's,
        or -1 before tile 0's."""
        if y >= self.flush_start:
            return self.tiles
        c = min(max((y - 1) // (self.bias_cycles + self.mb * self.period), 0), self.nb - 1)
        off = y - self.bias_start(c) - self.bias_cycles
        if off < 0:
            return c * self.mb - 1
        return c * self.mb + min(off // self.period, self.mb - 1)

    def phase_cycles(self, tile: int, phase: Phase) -> int:
        """Cycles of ``phase`` at ``tile`` (0 where the tile has no such phase)."""
        if not 0 <= tile < self.tiles:
            return 0
        if phase == Phase.BIAS:
            return self.bias_cycles if tile % self.mb == 0 else 0
        if phase == Phase.STREAM:
            return self.period
        if phase == Phase.FLUSH:
            return self.flush_cycles if tile == self.tiles - 1 else 0
        return self.write_words(tile)

    def check_point(self, when: JobPoint) -> None:
        """ValueError, saying why, if the job has no such point."""
        if not 0 <= when.tile < self.tiles:
            raise ValueError(f"{when}: the job has tiles 0 .. {self.tiles - 1}")
        span = self.phase_cycles(when.tile, when.phase)
        if span == 0:
            why = {
                Phase.BIAS: "BIAS_EN is 0"
                if not self.bias_en
                else f"BIAS belongs to the first tile of a column block (multiples of {self.mb})",
                Phase.FLUSH: f"FLUSH belongs to the last tile, {self.tiles - 1}",
            }[when.phase]
            raise ValueError(f"{when}: no such point ({why})")
        if not 0 <= when.cycle < span:
            raise ValueError(
                f"{when}: {when.phase.value} of tile {when.tile} has cycles 0 .. {span - 1}"
            )

    def job_cycle(self, point: JobPoint) -> int:
        """Job cycle (CHECK = 0) of a point; the point must exist (``check_point``)."""
        tile, phase, cycle = point.tile, point.phase, point.cycle
        if phase == Phase.BIAS:
            return self.bias_start(tile // self.mb) + cycle
        if phase == Phase.STREAM:
            return self.stream_start(tile) + cycle
        if phase == Phase.FLUSH:
            return self.flush_start + cycle
        return self.write_start(tile) + cycle

    def schedule(self, writes: bool = False) -> list[PhaseSpan]:
        """BIAS, STREAM and FLUSH spans in execution order (they add up to CYCLES - 2);
        with ``writes``, also each tile's WRITE span, ordered by start."""
        spans = []
        for c in range(self.nb):
            if self.bias_en:
                spans.append(PhaseSpan(c * self.mb, Phase.BIAS, 5, self.bias_start(c)))
            for tile in range(c * self.mb, (c + 1) * self.mb):
                spans.append(PhaseSpan(tile, Phase.STREAM, self.period, self.stream_start(tile)))
        spans.append(PhaseSpan(self.tiles - 1, Phase.FLUSH, self.flush_cycles, self.flush_start))
        if writes:
            spans += [
                PhaseSpan(t, Phase.WRITE, self.write_words(t), self.write_start(t))
                for t in range(self.tiles)
            ]
            spans.sort(key=lambda s: s.start)
        return spans

    def done_cycle(self, abort: int | None) -> int:
        """Job cycle of DONE, for a job ended by ECC at tile ``abort`` or not."""
        if abort is None:
            known = self.__dict__.get("_done")
            if known is None:
                known = self.flush_start + self.flush_cycles
                object.__setattr__(self, "_done", known)
            return known
        return self.stream_start(abort) + self.period

    def macs(self, tiles_done: int) -> int:
        """MACS after the STREAM periods of tiles 0 .. tiles_done-1 (not yet wrapped)."""
        full, part = divmod(tiles_done, self.mb)
        macs = self.k * self.m * min(self.ncols, full * self.n)
        if part:
            macs += self.k * min(self.m, part * self.n) * self.cols(full)
        return macs


class JobOutcome(NamedTuple):
    err: ErrCode
    cycles: int
    macs: int


def epilogue(acc: np.ndarray, bias: np.ndarray | None, d: Descriptor) -> np.ndarray:
    """The RTL epilogue on wrapped int32 accumulators (int64 in, int64 out)."""
    x = acc if bias is None else wrap32(acc + bias)
    if d.relu:
        x = np.maximum(x, 0)
    if d.out_int32:
        return x
    if d.shift:
        # int64 holds x + 2^(shift-1) exactly: the "without overflow" of the doc.
        x = (x + (1 << (d.shift - 1))) >> d.shift
    return np.clip(x, -128, 127)


def _to_words(out: np.ndarray, d: Descriptor) -> np.ndarray:
    """Rows of epilogue results ([rows, width]) as the words they are written as."""
    if d.out_int32:
        return out.astype("<i4").view(np.uint8).reshape(-1, d.n)
    return out.astype(np.int8).view(np.uint8).reshape(-1, d.n)


RegHook = Callable[[list[RegCopy | SeqCopy]], None]


class _Reads:
    """What the job's operand reads see: data, ECC statuses, the tile they abort at.

    ``words`` holds A, B and bias words as decoded at START (bias: as its one read saw
    it); ``override[tile]`` lists (region, index, data) of A/B words a tile read
    differently because a fault scheduled during the job flipped them first.
    """

    def __init__(self, spm: Scratchpad, d: Descriptor, flips: list[tuple[int, int, int]]):
        regions = d.regions()
        self.words = {name: spm.data[lo:hi] for name, lo, hi in regions}
        self.override: dict[int, list[tuple[str, int, np.ndarray]]] = {}
        self.abort: int | None = None
        self._tiles: list[np.ndarray] = []
        self._status: list[np.ndarray] = []
        by_word: dict[int, list[tuple[int, int]]] = {}
        for x, word, bit in flips:
            if any(lo <= word < hi for _, lo, hi in regions):
                by_word.setdefault(word, []).append((x, bit))
        suspect = set(by_word)
        if spm.ecc and spm.dirty:
            for _, lo, hi in regions:
                suspect.update(spm.dirty_in(lo, hi))
        if not suspect:
            return
        self.words = {name: w.copy() for name, w in self.words.items()}
        first_bad = d.tiles
        for word in sorted(suspect):
            data, status, times = _versions(spm, word, by_word.get(word, []))
            for name, lo, hi in regions:
                if not lo <= word < hi:
                    continue
                index = word - lo
                tiles, when = _reads_of(d, name, index)
                version = np.searchsorted(times, when, side="right")
                st = status[version]
                self._tiles.append(tiles)
                self._status.append(st)
                bad = tiles[st == EccStatus.UNCORRECTABLE]
                if bad.size:
                    first_bad = min(first_bad, int(bad.min()))
                if name == "bias":  # read once: the buffer holds what that read saw
                    self.words[name][index] = data[version[0]]
                    continue
                self.words[name][index] = data[0]
                for v in np.unique(version[version > 0]).tolist():
                    if np.array_equal(data[v], data[0]):
                        continue
                    for tile in tiles[version == v].tolist():
                        self.override.setdefault(tile, []).append((name, index, data[v]))
        if first_bad < d.tiles:
            self.abort = first_bad

    def count(self, spm: Scratchpad) -> None:
        """Count the reads the job makes (those of tiles up to the abort)."""
        for tiles, status in zip(self._tiles, self._status, strict=True):
            if self.abort is not None:
                status = status[tiles <= self.abort]
            for st in (EccStatus.CORRECTED, EccStatus.UNCORRECTABLE):
                spm.count(st, int(np.count_nonzero(status == st)))


def _versions(
    spm: Scratchpad, word: int, flips: list[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Data and ECC status of a word as it stands at START and after each flip during
    the job (in time order), and the job cycles of those flips."""
    flips = sorted(flips)
    data = np.repeat(spm.data[word : word + 1], len(flips) + 1, axis=0)
    check = np.repeat(spm.check[word : word + 1], len(flips) + 1)
    for v, (_, bit) in enumerate(flips, start=1):
        if bit < spm.dw:
            data[v:, bit >> 3] ^= np.uint8(1 << (bit & 7))
        else:
            check[v:] ^= np.uint16(1 << (bit - spm.dw))
    times = np.array([x for x, _ in flips], dtype=np.int64)
    if not spm.ecc:
        return data, np.zeros(len(data), dtype=np.int64), times
    fixed, status = spm.codec.decode(data, check)
    return fixed, np.asarray(status, dtype=np.int64), times


def _reads_of(d: Descriptor, name: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(tile, job cycle) of every read of word ``index`` of an operand region."""
    if name == "bias":
        c, q = divmod(index, 4)
        return np.array([c * d.mb]), np.array([d.bias_start(c) + q])
    block, t = divmod(index, d.k)
    if name == "a":
        tiles = np.arange(d.nb, dtype=np.int64) * d.mb + block
    else:
        tiles = block * d.mb + np.arange(d.mb, dtype=np.int64)
    c = tiles // d.mb
    starts = 1 + d.bias_cycles * (c + 1) + d.period * tiles
    return tiles, starts + t


class Job:
    """One run of the sequencer over a valid descriptor."""

    def __init__(self, spm: Scratchpad, desc: Descriptor, on_regs: RegHook) -> None:
        self.spm = spm
        self.d = desc
        self.on_regs = on_regs
        #: What the job's reads saw and how many tiles it wrote, once it has run.
        self.reads: _Reads | None = None
        self.done = 0

    def run(self, faults: Sequence[ScheduledFault]) -> JobOutcome:
        d, spm = self.d, self.spm
        timed = sorted(
            ((f.when if isinstance(f.when, int) else d.job_cycle(f.when), n, f.site)
             for n, f in enumerate(faults)),  # fmt: skip
            key=lambda e: (e[0], e[1]),
        )
        cells = []
        for x, _, site in timed:
            if isinstance(site, SpmCell):
                word, bit = spm.layout.word_bit_of(site)
                cells.append((x, word, bit))
        reads = _Reads(spm, d, cells)
        end = d.done_cycle(reads.abort)
        timed = [e for e in timed if e[0] < end]
        reads.count(spm)
        at = 0
        while at < len(timed):  # register copies, one vote per cycle
            x = timed[at][0]
            group = []
            while at < len(timed) and timed[at][0] == x:
                group.append(timed[at][2])
                at += 1
            regs = [s for s in group if isinstance(s, RegCopy | SeqCopy)]
            if regs:
                self.on_regs(regs)
        done = d.tiles if reads.abort is None else reads.abort
        self.reads, self.done = reads, done
        if done:
            pe = [(x, s) for x, _, s in timed if isinstance(s, AccBit | OutBit)]
            self._write(reads, done, pe)
        self._flip_cells([(x, w, b) for x, w, b in cells if x < end], done)
        err = ErrCode.NONE if reads.abort is None else ErrCode.ECC
        return JobOutcome(err, (end + 1) & MASK32, d.macs(done) & MASK32)

    def _flip_cells(self, cells: list[tuple[int, int, int]], done: int) -> None:
        """Leave scheduled cell flips in memory, unless a later write of C overwrote them."""
        d, spm = self.d, self.spm
        for x, word, bit in cells:
            rel = word - d.c_addr
            if 0 <= rel < d.c_words:
                mw, q = divmod(rel, d.per_row)
                m, c = divmod(mw, d.nb)
                tile = c * d.mb + m // d.n
                if tile < done and x <= d.write_start(tile) + (m % d.n) * d.per_row + q:
                    continue
            spm.flip(word, bit)

    def _write(self, reads: _Reads, done: int, pe: list[tuple[int, AccBit | OutBit]]) -> None:
        """Compute and write the results of tiles 0 .. done-1."""
        d, spm = self.d, self.spm
        n, k, mb, nb = d.n, d.k, d.mb, d.nb
        words = reads.words
        a = words["a"].view(np.int8).reshape(mb, k, n).transpose(0, 2, 1).reshape(mb * n, k)
        a = a[: d.m]
        b = words["b"].view(np.int8).reshape(nb, k, n).transpose(1, 0, 2).reshape(k, nb * n)
        # Exact in float64: |sum| < K * 2^14 < 2^53.
        acc = wrap32((a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64))
        bias = None
        if d.bias_en:
            bias = np.ascontiguousarray(words["bias"]).reshape(-1).view("<i4")
            bias = bias.astype(np.int64)[None, :]

        acc_flips: dict[int, list[tuple[int, AccBit]]] = {}
        out_flips: dict[int, list[tuple[int, OutBit]]] = {}
        for x, site in pe:
            epoch = d.epoch(x - 2 - site.i - site.j)  # last FIRST at the PE before x
            if isinstance(site, AccBit):
                if 0 <= epoch < done:
                    acc_flips.setdefault(epoch, []).append((x, site))
            elif 0 <= epoch - 1 < done:
                out_flips.setdefault(epoch - 1, []).append((x, site))
        special = {t for t in reads.override if t < done} | set(acc_flips)
        for tile in sorted(special):
            r, c = d.tile_rc(tile)
            rows, cols = slice(r * n, (r + 1) * n), slice(c * n, (c + 1) * n)
            a_t = words["a"][r * k : (r + 1) * k].copy()
            b_t = words["b"][c * k : (c + 1) * k].copy()
            for name, index, data in reads.override.get(tile, []):
                (a_t if name == "a" else b_t)[index % k] = data
            a_t, b_t = a_t.view(np.int8), b_t.view(np.int8)
            block = (a_t.T.astype(np.int64) @ b_t.astype(np.int64))[: d.rows(r)]
            start = d.stream_start(tile)
            for (i, j), flips in _by_pe(acc_flips.get(tile, [])).items():
                if i >= block.shape[0]:
                    continue  # a row past M: never written
                block[i, j] = _faulty_acc(a_t[:, i], b_t[:, j], start + 1 + i + j, flips)
            acc[rows, cols] = wrap32(block)

        out = epilogue(acc, bias, d)
        out[:, d.ncols :] = 0
        c_words = _to_words(out, d)  # word (m*nb + c)*per + q
        if done == d.tiles:
            spm.store(d.c_addr, c_words)
        else:
            m = np.arange(d.m)[:, None, None]
            tile = np.broadcast_to(
                np.arange(nb)[None, :, None] * mb + m // n, (d.m, nb, d.per_row)
            ).reshape(-1)
            keep = np.nonzero(tile < done)[0]
            spm.store_at(d.c_addr + keep, c_words[keep])
        for tile, flips in sorted(out_flips.items()):
            self._rewrite(tile, acc, bias, flips)

    def _rewrite(
        self, tile: int, acc: np.ndarray, bias: np.ndarray | None, flips: list[tuple[int, OutBit]]
    ) -> None:
        """Rewrite the words of a tile whose result registers were flipped before they
        were written: word u sees the flips made up to its cycle."""
        d, n, per = self.d, self.d.n, self.d.per_row
        r, c = d.tile_rc(tile)
        start = d.write_start(tile)
        for i in sorted({s.i for _, s in flips if s.i < d.rows(r)}):
            m = r * n + i
            base = acc[m, c * n : (c + 1) * n].copy()
            for q in range(per):
                y = start + i * per + q
                row = base.copy()
                for x, s in flips:
                    if s.i == i and x <= y:
                        row[s.j] = wrap32(np.int64(row[s.j] ^ (1 << s.bit)))
                bias_c = None if bias is None else bias[:, c * n : (c + 1) * n]
                val = epilogue(row[None, :], bias_c, d)
                val[:, max(d.cols(c), 0) :] = 0
                word = _to_words(val, d)[q : q + 1]
                self.spm.store_at(np.array([d.c_addr + (m * d.nb + c) * per + q]), word)


def _by_pe(flips: list[tuple[int, AccBit]]) -> dict[tuple[int, int], list[tuple[int, int]]]:
    out: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for cycle, site in flips:
        out.setdefault((site.i, site.j), []).append((cycle, 1 << site.bit))
    return out


def _faulty_acc(a: np.ndarray, b: np.ndarray, first: int, flips: list[tuple[int, int]]) -> int:
    """A PE's sum for a tile with bits XORed into its accumulator at job cycles x.

    The FIRST beat reaches the PE in job cycle ``first`` and step t's product lands at
    the end of cycle first + t; a flip in cycle x (first < x <= the next FIRST) comes
    after the products with first + t < x and before the others.
    """
    prefix = np.concatenate(([0], np.cumsum(a.astype(np.int64) * b.astype(np.int64))))
    k = a.shape[0]
    u = 0
    done = 0
    for cycle, mask in sorted(flips):
        upto = min(max(cycle - first, 0), k)
        u = (u + int(prefix[upto] - prefix[done])) & MASK32
        u ^= mask
        done = upto
    u = (u + int(prefix[k] - prefix[done])) & MASK32
    return u - (1 << 32) if u >> 31 else u
