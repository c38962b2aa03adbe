"""A job of the SCC at transaction level: descriptor check, tiles, epilogue, cycle count.

Tiles run in the RTL's order (r outer, c inner) and each one reads the scratchpad as the
tiles before it left it, since C may overlap A, B or the bias. When nothing can make the
order matter (no fault scheduled, C apart from the operands) the whole GEMM is one numpy
product instead; both paths give the same memory, counters and cycle count.
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
    Phase,
    PhaseSpan,
    RegCopy,
    ScheduledFault,
    SeqCopy,
    SpmCell,
)
from .regs import MASK32, ErrCode
from .scratchpad import Scratchpad

_PHASE_ORDER = {Phase.BIAS: 0, Phase.STREAM: 1, Phase.WRITE: 2}


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
        """Words written per row of a tile."""
        return 4 if self.out_int32 else 1

    @property
    def c_words(self) -> int:
        return self.m * self.nb * self.per_row

    @property
    def read_cycles(self) -> int:
        """Cycles of BIAS and STREAM of one tile."""
        return 5 * self.bias_en + self.k + 2 * self.n - 1

    def valid(self) -> bool:
        """The descriptor rules checked at START."""
        spm = 2 * self.bank_words
        return (
            self.m >= 1
            and self.k >= 1
            and self.ncols >= 1
            and self.a_addr + self.mb * self.k <= self.bank_words
            and self.b_addr >= self.bank_words
            and self.b_addr + self.nb * self.k <= spm
            and (not self.bias_en or self.bias_addr + 4 * self.nb <= spm)
            and self.c_addr + self.c_words <= spm
        )

    def rows(self, r: int) -> int:
        """V: valid rows of row block r."""
        return min(self.n, self.m - r * self.n)

    def cols(self, c: int) -> int:
        """Valid columns of column block c."""
        return min(self.n, self.ncols - c * self.n)

    def phase_cycles(self, tile: int, phase: Phase) -> int:
        """Cycles of a state of a tile (0 for BIAS without BIAS_EN)."""
        if phase == Phase.BIAS:
            return 5 if self.bias_en else 0
        if phase == Phase.STREAM:
            return self.k + 2 * self.n - 1
        return self.rows(tile // self.nb) * self.per_row

    def schedule(self) -> list[PhaseSpan]:
        """Every state of every tile, in execution order."""
        spans = []
        for tile in range(self.tiles):
            for phase in Phase:
                cycles = self.phase_cycles(tile, phase)
                if cycles:
                    spans.append(PhaseSpan(tile, phase, cycles))
        return spans

    def totals(self, tiles_done: int, abandoned: bool) -> tuple[int, int]:
        """(cycles, MACs) from CHECK to DONE after ``tiles_done`` written tiles, plus an
        abandoned one; not yet wrapped to 32 bits."""
        ra, ca = divmod(tiles_done, self.nb)
        rows_before = min(self.m, ra * self.n)
        v_last = self.rows(ra) if ra < self.mb else 0
        cycles = (
            2
            + (tiles_done + abandoned) * self.read_cycles
            + self.per_row * (self.nb * rows_before + ca * v_last)
        )
        macs = self.k * (rows_before * self.ncols + v_last * min(self.ncols, ca * self.n))
        return cycles, macs


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


class Job:
    """One run of the sequencer over a valid descriptor."""

    def __init__(self, spm: Scratchpad, desc: Descriptor, on_regs: RegHook) -> None:
        self.spm = spm
        self.d = desc
        self.on_regs = on_regs

    def run(self, faults: Sequence[ScheduledFault]) -> JobOutcome:
        d = self.d
        by_tile: dict[int, list[ScheduledFault]] = {}
        for f in faults:
            by_tile.setdefault(f.when.tile, []).append(f)
        # Tiles between faulted ones go in bulk, unless C may feed a later tile's reads.
        if self._c_overlaps_operands():
            alone = list(range(d.tiles))
        else:
            alone = sorted(by_tile)
        done = 0
        abandoned = False
        for tile in [*alone, d.tiles]:
            if done < tile:
                bad = self._run_range(done, tile)
                if bad is not None:
                    done, abandoned = bad, True
                    break
                done = tile
            if tile == d.tiles:
                break
            if not self._run_tile(*divmod(tile, d.nb), by_tile.get(tile, [])):
                abandoned = True
                break
            done = tile + 1
        cycles, macs = d.totals(done, abandoned)
        err = ErrCode.ECC if abandoned else ErrCode.NONE
        return JobOutcome(err, cycles & MASK32, macs & MASK32)

    # --- bulk path -------------------------------------------------------------------

    def _regions(self) -> list[tuple[str, int, int]]:
        d = self.d
        regions = [
            ("a", d.a_addr, d.a_addr + d.mb * d.k),
            ("b", d.b_addr, d.b_addr + d.nb * d.k),
        ]
        if d.bias_en:
            regions.append(("bias", d.bias_addr, d.bias_addr + 4 * d.nb))
        return regions

    def _c_overlaps_operands(self) -> bool:
        lo, hi = self.d.c_addr, self.d.c_addr + self.d.c_words
        return any(r_lo < hi and lo < r_hi for _, r_lo, r_hi in self._regions())

    def _run_range(self, t0: int, t1: int) -> int | None:
        """Tiles t0 .. t1-1 at once, when nothing they write is read by them.

        Returns the tile abandoned for an uncorrectable read, or None.
        """
        d, spm = self.d, self.spm
        k, nb = d.k, d.nb
        r0, r1 = t0 // nb, (t1 - 1) // nb + 1
        regions = self._regions()
        regions[0] = ("a", d.a_addr + r0 * k, d.a_addr + r1 * k)
        words = {name: spm.data[lo:hi] for name, lo, hi in regions}

        def tiles_of_column(c: int, lo: int, hi: int) -> tuple[int, int]:
            """Row blocks r with lo <= r*nb + c <= hi, as an inclusive range."""
            return -((c - lo) // nb), (hi - c) // nb

        first_bad = t1
        reads: list[tuple[str, int, int]] = []  # (region, block, status) of dirty words
        if spm.ecc and spm.dirty:
            for name, lo, hi in regions:
                dirty = spm.dirty_in(lo, hi)
                if not dirty:
                    continue
                fixed, status = spm.decode_words(dirty)
                words[name] = words[name].copy()
                words[name][np.array(dirty) - lo] = fixed
                per_block = 4 if name == "bias" else k
                base = r0 if name == "a" else 0
                for w, st in zip(dirty, status.tolist(), strict=True):
                    if st == EccStatus.CLEAN:
                        continue
                    block = base + (w - lo) // per_block
                    reads.append((name, block, st))
                    if st == EccStatus.UNCORRECTABLE:
                        if name == "a":
                            first = max(t0, block * nb)
                        else:
                            first = tiles_of_column(block, t0, t1 - 1)[0] * nb + block
                        first_bad = min(first_bad, first)
            last = first_bad if first_bad < t1 else t1 - 1
            for name, block, st in reads:
                if name == "a":
                    times = min(last, block * nb + nb - 1) - max(t0, block * nb) + 1
                else:
                    lo_r, hi_r = tiles_of_column(block, t0, last)
                    times = min(hi_r, d.mb - 1) - lo_r + 1
                spm.count(EccStatus(st), max(0, times))
        end = first_bad  # tiles t0 .. end-1 are written
        if end > t0:
            self._write_range(words, r0, t0, end)
        return first_bad if first_bad < t1 else None

    def _write_range(self, words: dict[str, np.ndarray], r0: int, t0: int, t1: int) -> None:
        """Compute and write the C words of tiles t0 .. t1-1 (row blocks from r0)."""
        d = self.d
        n, k, nb, per = d.n, d.k, d.nb, d.per_row
        r1 = (t1 - 1) // nb + 1
        m0, m1 = r0 * n, min(d.m, r1 * n)
        a = words["a"][: (r1 - r0) * k].view(np.int8).reshape(r1 - r0, k, n)
        a = a.transpose(0, 2, 1).reshape((r1 - r0) * n, k)[: m1 - m0]
        b = words["b"].view(np.int8).reshape(nb, k, n).transpose(1, 0, 2).reshape(k, nb * n)
        # Exact in float64: |sum| < K * 2^14 < 2^53.
        acc = wrap32((a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64))
        bias = None
        if d.bias_en:
            bias = np.ascontiguousarray(words["bias"]).reshape(-1).view("<i4")
            bias = bias.astype(np.int64)[None, :]
        out = epilogue(acc, bias, d)
        out[:, d.ncols :] = 0
        c_words = _to_words(out, d)  # word (m*nb + c)*per + q, rows from m0
        if t0 == r0 * nb and t1 == r1 * nb:  # whole row blocks: one run of words
            self.spm.store(d.c_addr + m0 * nb * per, c_words)
            return
        rows = np.arange(m0, m1)[:, None, None]
        cols = np.arange(nb)[None, :, None]
        index = ((rows * nb + cols) * per + np.arange(per)[None, None, :]).reshape(-1)
        tile = np.broadcast_to((rows // n) * nb + cols, (m1 - m0, nb, per)).reshape(-1)
        keep = (tile >= t0) & (tile < t1)
        self.spm.store_at(d.c_addr + index[keep], c_words[keep])

    # --- tile-by-tile path -----------------------------------------------------------

    def _run_tile(self, r: int, c: int, faults: list[ScheduledFault]) -> bool:
        """One tile; False when it is abandoned for an uncorrectable read."""
        d, spm = self.d, self.spm
        n, k = d.n, d.k
        tb = 5 if d.bias_en else 0
        parts = []
        times = []
        if d.bias_en:
            parts.append(d.bias_addr + 4 * c + np.arange(4))
            times.append(np.arange(4))
        parts += [d.a_addr + r * k + np.arange(k), d.b_addr + c * k + np.arange(k)]
        times += [tb + np.arange(k), tb + np.arange(k)]
        addrs = np.concatenate(parts)
        when = np.concatenate(times)
        data = spm.data[addrs]
        check = spm.check[addrs]

        groups = _group(faults)
        acc_flips: list[tuple[int, AccBit]] = []
        for point, sites in groups:
            if point.phase == Phase.WRITE:
                continue
            time = point.cycle if point.phase == Phase.BIAS else tb + point.cycle
            self._regs(sites)
            for site in sites:
                if isinstance(site, SpmCell):
                    word, bit = spm.layout.word_bit_of(site)
                    spm.flip_cell(site)
                    hit = np.nonzero((addrs == word) & (when >= time))[0]
                    if bit < spm.dw:
                        data[hit, bit >> 3] ^= np.uint8(1 << (bit & 7))
                    else:
                        check[hit] ^= np.uint16(1 << (bit - spm.dw))
                elif isinstance(site, AccBit) and point.phase == Phase.STREAM and point.cycle:
                    acc_flips.append((point.cycle, site))
        data, uncorr = spm.decode_reads(addrs, data, check)
        if uncorr:
            return False

        ofs = 4 if d.bias_en else 0
        a = data[ofs : ofs + k].view(np.int8)  # a[t, i] = A[r*n + i][t]
        b = data[ofs + k :].view(np.int8)  # b[t, j] = B[t][c*n + j]
        acc = (a.T.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
        for (i, j), flips in _by_pe(acc_flips).items():
            acc[i, j] = _faulty_acc(a[:, i], b[:, j], i + j, flips)
        acc = wrap32(acc)
        bias = None
        if d.bias_en:
            bias = np.ascontiguousarray(data[:4]).reshape(-1).view("<i4").astype(np.int64)

        v, live = d.rows(r), d.cols(c)
        per = d.per_row
        row_words = (r * n + np.arange(v)) * d.nb + c
        if per == 4:
            addrs_out = (d.c_addr + 4 * row_words[:, None] + np.arange(4)).reshape(-1)
        else:
            addrs_out = d.c_addr + row_words
        write_groups = [(p, s) for p, s in groups if p.phase == Phase.WRITE]
        if not write_groups:
            out = epilogue(acc[:v], bias, d)
            out[:, live:] = 0
            spm.store_at(addrs_out, _to_words(out, d))
            return True
        pending = {p.cycle: s for p, s in write_groups}
        for cyc in range(v * per):
            sites = pending.get(cyc, [])
            self._regs(sites)
            for site in sites:
                if isinstance(site, SpmCell):
                    spm.flip_cell(site)
                elif isinstance(site, AccBit):
                    acc[site.i, site.j] = wrap32(acc[site.i, site.j] ^ (1 << site.bit))
            row, q = divmod(cyc, per)
            out = epilogue(acc[row : row + 1], bias, d)
            out[:, live:] = 0
            spm.store_at(addrs_out[cyc : cyc + 1], _to_words(out, d)[q : q + 1])
        return True

    def _regs(self, sites: list) -> None:
        regs = [s for s in sites if isinstance(s, RegCopy | SeqCopy)]
        if regs:
            self.on_regs(regs)


def _group(faults: list[ScheduledFault]) -> list[tuple[JobPoint, list]]:
    """Faults of one tile grouped by cycle, in time order."""
    groups: dict[JobPoint, list] = {}
    for f in faults:
        groups.setdefault(f.when, []).append(f.site)
    return sorted(groups.items(), key=lambda g: (_PHASE_ORDER[g[0].phase], g[0].cycle))


def _by_pe(flips: list[tuple[int, AccBit]]) -> dict[tuple[int, int], list[tuple[int, int]]]:
    out: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for cycle, site in flips:
        out.setdefault((site.i, site.j), []).append((cycle, 1 << site.bit))
    return out


def _faulty_acc(a: np.ndarray, b: np.ndarray, skew: int, flips: list[tuple[int, int]]) -> int:
    """PE accumulator after its K products with bits XORed in at STREAM cycles (x >= 1).

    The product of step t lands at the end of cycle t + 1 + skew; a flip in cycle x
    comes after the products with t + 1 + skew < x.
    """
    prefix = np.concatenate(([0], np.cumsum(a.astype(np.int64) * b.astype(np.int64))))
    k = a.shape[0]
    u = 0
    done = 0
    for cycle, mask in sorted(flips):
        upto = min(max(cycle - 1 - skew, 0), k)
        u = (u + int(prefix[upto] - prefix[done])) & MASK32
        u ^= mask
        done = upto
    u = (u + int(prefix[k] - prefix[done])) & MASK32
    return u - (1 << 32) if u >> 31 else u
