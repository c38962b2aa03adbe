"""Fault sites, TMR voting, and faults scheduled at cycles of a running job."""

import numpy as np
import pytest
from scc_cycle_sim import simulate

from firmware_sim.accel import (
    AccBit,
    Accelerator,
    EccStatus,
    ErrCode,
    JobPoint,
    NotModelled,
    OutBit,
    Phase,
    Reg,
    RegCopy,
    ScheduledFault,
    SeqCopy,
    SpmCell,
    gemm_reference,
)
from firmware_sim.accel.regs import Status

SEED = 1717
M32 = 0xFFFF_FFFF
# Storage bits of each TMR copy (EPILOGUE keeps {SHIFT, OUT_INT32, RELU, BIAS_EN}).
WIDTHS = {
    "IRQ_EN": 1,
    "DIM_M": 12,
    "DIM_K": 12,
    "DIM_N": 12,
    "A_ADDR": 16,
    "B_ADDR": 16,
    "BIAS_ADDR": 16,
    "C_ADDR": 16,
    "EPILOGUE": 8,
    "SCRUB_PERIOD": 16,
}
SEQ_WIDTHS = {"state": 3, "rb": 12, "cb": 12, "t": 13, "ecc": 1, "status": 6}


def _sx32(v):
    v &= M32
    return v - (1 << 32) if v >> 31 else v


# --- the list of sites ------------------------------------------------------------------


@pytest.mark.parametrize("tmr", [True, False])
@pytest.mark.parametrize("ecc", [True, False])
def test_fault_sites_cover_every_cell_accumulator_bit_and_register_copy(tmr, ecc):
    chip = Accelerator(n=2, bank_words=8, interleave=2, ecc=ecc, scrub=False, tmr=tmr)
    sites = list(chip.fault_sites())
    assert len(sites) == len(set(sites)) == chip.fault_site_count()
    assert [chip.fault_site(i) for i in range(len(sites))] == sites
    cw = 16 + (6 if ecc else 0)
    cells = [s for s in sites if isinstance(s, SpmCell)]
    assert {chip.layout.word_bit_of(c) for c in cells} == {
        (w, b) for w in range(16) for b in range(cw)
    }
    assert sum(isinstance(s, AccBit) for s in sites) == 2 * 2 * 32
    assert sum(isinstance(s, OutBit) for s in sites) == 2 * 2 * 32
    copies = 3 if tmr else 1
    for kind, widths, n_copies in ((RegCopy, WIDTHS, copies), (SeqCopy, SEQ_WIDTHS, 3 * tmr)):
        found = [s for s in sites if isinstance(s, kind)]
        assert len(found) == n_copies * sum(widths.values())
        for name, width in widths.items():
            assert {(s.copy, s.bit) for s in found if s.name == name} == {
                (c, b) for c in range(n_copies) for b in range(width)
            }
    counts = chip.fault_site_counts()
    assert counts[SpmCell] == len(cells)
    assert counts[RegCopy] == copies * sum(WIDTHS.values())


def test_site_outside_the_build_is_rejected():
    chip = Accelerator(n=2, bank_words=8, tmr=False)
    for site in (
        SpmCell(2, 0, 0),
        SpmCell(0, 8, 0),
        SpmCell(0, 0, 22),
        AccBit(2, 0, 0),
        AccBit(0, 0, 32),
        OutBit(0, 2, 0),
        OutBit(0, 0, -1),
        RegCopy("DIM_M", 1, 0),
        RegCopy("DIM_M", 0, 12),
        RegCopy("CYCLES", 0, 0),
    ):
        with pytest.raises(ValueError):
            chip.flip(site)


# --- TMR while idle ---------------------------------------------------------------------


def test_one_flipped_copy_is_outvoted_and_counted():
    chip = Accelerator()
    chip.write_reg(Reg.DIM_K, 0x123)
    chip.flip(RegCopy("DIM_K", 2, 4))
    assert chip.read_reg(Reg.DIM_K) == 0x123
    assert chip.read_reg(Reg.TMR_MISMATCH) == 1
    chip.flip(RegCopy("DIM_K", 2, 4))
    assert chip.read_reg(Reg.TMR_MISMATCH) == 2


def test_flips_in_the_same_cycle_count_once():
    chip = Accelerator()
    chip.flip_many([RegCopy("A_ADDR", 0, 3), RegCopy("EPILOGUE", 1, 7), RegCopy("IRQ_EN", 2, 0)])
    assert chip.read_reg(Reg.TMR_MISMATCH) == 1
    assert chip.read_reg(Reg.A_ADDR) == 0 and chip.read_reg(Reg.EPILOGUE) == 0


def test_two_copies_flipped_together_outvote_the_third():
    chip = Accelerator()
    chip.write_reg(Reg.C_ADDR, 0x0F0F)
    chip.flip_many([RegCopy("C_ADDR", 0, 0), RegCopy("C_ADDR", 2, 0)])
    assert chip.read_reg(Reg.C_ADDR) == 0x0F0E
    assert chip.read_reg(Reg.TMR_MISMATCH) == 1
    chip.flip_many([RegCopy("C_ADDR", 0, 1), RegCopy("C_ADDR", 1, 2)])  # different bits
    assert chip.read_reg(Reg.C_ADDR) == 0x0F0E
    chip.flip_many([RegCopy("C_ADDR", k, 4) for k in range(3)])  # all agree: unseen
    assert chip.read_reg(Reg.C_ADDR) == 0x0F1E
    assert chip.read_reg(Reg.TMR_MISMATCH) == 2


def test_without_tmr_a_flip_changes_the_register():
    chip = Accelerator(tmr=False)
    chip.write_reg(Reg.DIM_N, 4)
    chip.flip(RegCopy("DIM_N", 0, 0))
    assert chip.read_reg(Reg.DIM_N) == 5
    assert chip.read_reg(Reg.TMR_MISMATCH) == 0
    chip.flip(RegCopy("IRQ_EN", 0, 0))
    assert chip.read_reg(Reg.IRQ_EN) == 1


def test_without_tmr_a_flipped_descriptor_steers_the_next_job():
    chip = Accelerator(n=4, tmr=False)
    a, b = np.ones((4, 3), dtype=int), np.ones((3, 8), dtype=int)
    chip.load_job(a, b)
    chip.flip(RegCopy("DIM_N", 0, 0))  # 8 -> 9 columns
    chip.run()
    assert chip.read_reg(Reg.MACS) == 4 * 3 * 9


def test_epilogue_storage_bit_3_is_shift_bit_0():
    chip = Accelerator(tmr=False)
    chip.flip(RegCopy(Reg.EPILOGUE, 0, 3))
    assert chip.read_reg(Reg.EPILOGUE) == 1 << 8
    chip.flip(RegCopy("EPILOGUE", 0, 2))
    assert chip.read_reg(Reg.EPILOGUE) == 1 << 8 | 1 << 2


def test_sequencer_copy_flip_is_outvoted_and_counted_with_config_flips_of_that_cycle():
    chip = Accelerator()
    chip.flip(SeqCopy("state", 1, 2))
    assert chip.read_reg(Reg.TMR_MISMATCH) == 1
    chip.flip_many([SeqCopy("t", 0, 12), RegCopy("DIM_M", 2, 3)])
    assert chip.read_reg(Reg.TMR_MISMATCH) == 2
    assert chip.read_reg(Reg.STATUS) == 0 and chip.read_reg(Reg.DIM_M) == 0


def test_outvoted_sequencer_status_while_idle_changes_status():
    chip = Accelerator()
    chip.write_reg(Reg.IRQ_EN, 1)
    chip.flip_many([SeqCopy("status", 0, 0), SeqCopy("status", 2, 0)])  # DONE
    assert chip.read_reg(Reg.STATUS) == 0b010 and chip.irq
    chip.flip_many([SeqCopy("status", k, 3) for k in (1, 2)])  # ERR_CODE bit 1
    assert chip.read_reg(Reg.STATUS) == 0b010 | 2 << 4
    # Tile counters are reloaded at CHECK: outvoting them while idle changes nothing seen.
    chip.flip_many([SeqCopy("rb", k, 5) for k in (0, 1)])
    assert chip.read_reg(Reg.TMR_MISMATCH) == 3


def test_idle_state_voted_to_check_runs_the_programmed_job_unstarted():
    chip = Accelerator()
    rng = np.random.default_rng(SEED + 40)
    a = rng.integers(-128, 128, (6, 5)).astype(np.int8)
    b = rng.integers(-128, 128, (5, 7)).astype(np.int8)
    place = chip.load_job(a, b, out_int32=True)
    assert chip.run() == ErrCode.NONE
    cycles = chip.read_reg(Reg.CYCLES)
    chip.write_reg(Reg.STATUS, Status.DONE | Status.ERROR)
    for word in range(place.c_addr, place.c_addr + place.c_words):
        chip.write_word(word, 0)
    chip.flip_many([SeqCopy("state", 0, 0), SeqCopy("state", 1, 0)])
    # CHECK with no START: the same job again, DONE, CYCLES counting on, one mismatch.
    assert chip.last_wake is not None and not chip.last_wake.hung
    assert chip.last_wake.cycles == cycles
    assert chip.read_reg(Reg.STATUS) == Status.DONE
    assert chip.read_reg(Reg.CYCLES) == 2 * cycles
    assert chip.read_reg(Reg.TMR_MISMATCH) == 1
    again = chip.unpack_c(chip.dump(place.c_addr, place.c_words), 6, 7, True)
    assert np.array_equal(again, (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32))
    # One copy alone is outvoted: nothing runs.
    chip.write_reg(Reg.STATUS, Status.DONE)
    chip.last_wake = None
    chip.flip(SeqCopy("state", 2, 0))
    assert chip.last_wake is None and chip.read_reg(Reg.STATUS) == 0
    # Without TMR a tile counter flipped while idle is reloaded at CHECK: nothing to see.
    bare = Accelerator(tmr=False)
    bare.flip(SeqCopy("rb", 0, 0))
    assert bare.read_reg(Reg.STATUS) == 0 and bare.read_reg(Reg.TMR_MISMATCH) == 0


# --- faults during a job ----------------------------------------------------------------


def _job(n=4, m=6, k=7, ncols=7, seed=SEED, **kw):
    rng = np.random.default_rng(seed)
    chip = Accelerator(n=n, bank_words=256, **kw)
    a = rng.integers(-128, 128, (m, k))
    b = rng.integers(-128, 128, (k, ncols))
    return chip, a, b


def test_tmr_copy_flips_during_a_job_count_once_per_cycle():
    chip, a, b = _job()
    faults = [
        (JobPoint(0, "stream", 3), RegCopy("DIM_K", 0, 1)),
        (JobPoint(0, "stream", 3), RegCopy("C_ADDR", 2, 7)),
        (JobPoint(1, "write", 0), RegCopy("EPILOGUE", 1, 2)),
        (JobPoint(3, "stream", 0), RegCopy("IRQ_EN", 0, 0)),
    ]
    c, err = chip.run_gemm(a, b, faults=faults)
    assert err == ErrCode.NONE and np.array_equal(c, gemm_reference(a, b))
    assert chip.read_reg(Reg.TMR_MISMATCH) == 3


def test_sequencer_copy_flips_during_a_job_are_counted_or_not_modelled():
    chip, a, b = _job()
    one = [
        (JobPoint(0, "stream", 5), SeqCopy("t", 2, 0)),
        (JobPoint(0, "stream", 5), RegCopy("DIM_N", 0, 0)),
        (JobPoint(2, "write", 1), SeqCopy("state", 0, 1)),
    ]
    c, err = chip.run_gemm(a, b, faults=one)
    assert err == ErrCode.NONE and np.array_equal(c, gemm_reference(a, b))
    assert chip.read_reg(Reg.TMR_MISMATCH) == 2
    two = [(JobPoint(2, "bias", 0), SeqCopy("ecc", k, 0)) for k in (0, 2)]
    chip.write_reg(Reg.EPILOGUE, 1)
    with pytest.raises(NotModelled, match=r"job cycle \d+.*ecc"):
        chip.run(two, engine="analytic")
    assert chip.read_reg(Reg.TMR_MISMATCH) == 2 and chip.read_reg(Reg.STATUS) == 0b010
    # The cycle-level twin predicts it: an outvoted ECC flag ends the job at its tile.
    assert chip.run(two) == ErrCode.ECC and chip.last_job.engine == "cycle"


def test_copies_outvoting_the_good_one_during_a_job_are_not_modelled():
    chip, a, b = _job()
    two = [(JobPoint(0, "stream", 1), RegCopy("DIM_K", k, 0)) for k in (0, 1)]
    chip.load_job(a, b)
    with pytest.raises(NotModelled):
        chip.run(two, engine="analytic")
    # IRQ_EN does not steer the job: the vote just changes it.
    irq = [(JobPoint(0, "stream", 1), RegCopy("IRQ_EN", k, 0)) for k in (0, 1)]
    chip.run_gemm(a, b, faults=irq)
    assert chip.read_reg(Reg.IRQ_EN) == 1 and chip.irq


def test_without_tmr_register_flips_during_a_job_are_not_modelled_and_change_nothing():
    chip, a, b = _job(tmr=False)
    c0, _ = chip.run_gemm(a, b)
    status, mem = chip.read_reg(Reg.STATUS), chip.dump(0, chip.spm_words)
    with pytest.raises(NotModelled, match="without TMR"):
        chip.run([ScheduledFault(JobPoint(0, Phase.STREAM, 2), RegCopy("IRQ_EN", 0, 0))],
                 engine="analytic")  # fmt: skip
    assert chip.read_reg(Reg.STATUS) == status
    assert np.array_equal(chip.dump(0, chip.spm_words), mem)


def test_a_write_point_and_a_stream_point_of_the_same_cycle_vote_once():
    chip, a, b = _job()  # N = 4, MB = NB = 2: tile 0's word 1 is written in tile 1's cycle 6
    faults = [
        (JobPoint(0, "write", 1), RegCopy("DIM_K", 0, 1)),
        (JobPoint(1, "stream", 4 + 1 + 1), RegCopy("C_ADDR", 2, 7)),
        (JobPoint(3, "write", 0), RegCopy("DIM_M", 1, 0)),
        (JobPoint(3, "flush", 4 + 1), RegCopy("DIM_N", 2, 0)),
    ]
    c, err = chip.run_gemm(a, b, faults=faults)
    assert err == ErrCode.NONE and np.array_equal(c, gemm_reference(a, b))
    assert chip.read_reg(Reg.TMR_MISMATCH) == 2
    # Two copies of one register in one cycle, named by two points: they outvote the third.
    with pytest.raises(NotModelled):
        chip.run([(JobPoint(0, "write", 0), RegCopy("DIM_K", k, 0)) for k in (0, 1)][:1]
                 + [(JobPoint(1, "stream", 5), RegCopy("DIM_K", 1, 0))],
                 engine="analytic")  # fmt: skip


# _job(m=6): N = 4, K = 7, DIM_N = 7: MB = NB = 2, P = max(8, 2*4 + 1) = 9, V = 4, 2;
# tiles 0 (r 0, c 0), 1 (r 1, c 0), 2 (r 0, c 1), 3 (r 1, c 1); FLUSH 4 + 1 + 2 cycles.
@pytest.mark.parametrize(
    ("when", "epi"),
    [
        (JobPoint(4, "stream", 0), 0),
        (JobPoint(0, "bias", 0), 0),
        (JobPoint(1, "bias", 0), 1),  # BIAS belongs to tiles 0 and 2
        (JobPoint(2, "bias", 5), 1),
        (JobPoint(0, "stream", 9), 0),
        (JobPoint(2, "write", 4), 0),
        (JobPoint(3, "write", 2), 0),
        (JobPoint(0, "write", 16), 4),
        (JobPoint(2, "flush", 0), 0),  # FLUSH belongs to the last tile
        (JobPoint(3, "flush", 7), 0),
        (JobPoint(-1, "stream", 0), 0),
    ],
)
def test_points_outside_the_job_are_rejected(when, epi):
    chip, a, b = _job(m=6)
    chip.load_job(a, b)
    chip.write_reg(Reg.EPILOGUE, epi)
    with pytest.raises(ValueError):
        chip.run([(when, AccBit(0, 0, 0))])
    assert chip.read_reg(Reg.STATUS) == 0


def test_job_schedule_lists_every_part_and_adds_up_to_cycles():
    chip, a, b = _job(m=6)
    chip.load_job(a, b, np.zeros(7, dtype=int), out_int32=True)
    period = max(7 + 1, 5 * 4 + 1)  # 21
    spans = chip.job_schedule()
    assert [(s.tile, s.phase, s.cycles) for s in spans] == [
        (0, "bias", 5),
        (0, "stream", period),
        (1, "stream", period),
        (2, "bias", 5),
        (2, "stream", period),
        (3, "stream", period),
        (3, "flush", 4 + 1 + 4 * 2),
    ]
    starts = [1]
    for s in spans[:-1]:
        starts.append(starts[-1] + s.cycles)
    assert [s.start for s in spans] == starts
    writes = [s for s in chip.job_schedule(writes=True) if s.phase == Phase.WRITE]
    assert [(s.tile, s.cycles) for s in writes] == [(0, 16), (1, 8), (2, 16), (3, 8)]
    follow = {0: spans[2], 1: spans[4], 2: spans[5], 3: spans[6]}
    for s in writes:
        assert s.start == follow[s.tile].start + 4 + 1
        assert chip.job_cycle((s.tile, "write", 3)) == s.start + 3
    chip.run()
    assert chip.read_reg(Reg.CYCLES) == 2 + sum(s.cycles for s in spans)
    assert chip.read_reg(Reg.CYCLES) == 2 + 5 * 2 + period * 4 + 4 + 1 + 4 * 2


# --- accumulator and result bits --------------------------------------------------------

# No BIAS: tile T's STREAM period starts at job cycle 1 + P*T, FLUSH at 1 + P*tiles. The
# FIRST beat of tile T reaches PE (i, j) in its period's cycle 1 + i + j; the product of
# step t lands at the end of cycle 1 + i + j + t.


def _partial(a, b, r, c, n, i, j, x):
    """Sum of the products PE (i, j) of tile (r, c) has added before its period's cycle x."""
    k = a.shape[1]
    return sum(int(a[r * n + i, t]) * int(b[t, c * n + j]) for t in range(k) if t + 1 + i + j < x)


def _flipped(c, row, col, bit, partial=None):
    """C (int32) with element (row, col) as if ``bit`` was flipped in its accumulator when
    it held ``partial`` (None: the full sum)."""
    c = c.copy()
    if partial is None:
        c[row, col] = _sx32(int(c[row, col]) ^ (1 << bit))
    else:
        p = partial & M32
        c[row, col] = _sx32(int(c[row, col]) + ((p ^ (1 << bit)) - p))
    return c


@pytest.mark.parametrize("n", [2, 4, 8])
def test_accumulator_flip_in_stream_lands_in_the_tile_the_pe_is_summing(n):
    rng = np.random.default_rng(SEED + n)
    m, k, ncols = 2 * n, 9, 2 * n - 1
    chip, a, b = _job(n=n, m=m, k=k, ncols=ncols, seed=SEED + n)
    clean, _ = chip.run_gemm(a, b, out_int32=True)
    mb, period = 2, max(k + 1, 5 * n + 1)
    for _ in range(16):
        tile = int(rng.integers(0, 4))
        c, r = divmod(tile, mb)
        i = int(rng.integers(0, n))
        j = int(rng.integers(0, min(n, ncols - c * n)))
        bit = int(rng.integers(0, 32))
        x = int(rng.integers(0, period))
        site = AccBit(i, j, bit)
        got, err = chip.run_gemm(a, b, out_int32=True, faults=[(JobPoint(tile, "stream", x), site)])
        assert err == ErrCode.NONE
        if x > 1 + i + j:  # tile T's FIRST has reached the PE
            p = _partial(a, b, r, c, n, i, j, x)
            want = _flipped(clean, r * n + i, c * n + j, bit, p)
        elif tile:  # the PE still holds tile T-1's sum: FIRST moves it to the result
            pr, pc = (tile - 1) % mb, (tile - 1) // mb
            want = _flipped(clean, pr * n + i, pc * n + j, bit)
        else:  # what the PE held before the job is never written
            want = clean
        assert np.array_equal(got, want), (tile, i, j, bit, x)


def test_accumulator_flip_in_flush_reaches_the_last_tile_until_the_flush_tag_does():
    chip, a, b = _job(n=4, m=4, k=5, ncols=4)  # one tile; P = max(6, 21) = 21
    clean, _ = chip.run_gemm(a, b, out_int32=True)
    for x in range(4 + 1 + 16):
        got, _ = chip.run_gemm(a, b, out_int32=True, faults=[((0, "flush", x), AccBit(1, 2, 30))])
        # FLUSH's tag reaches PE (1, 2) in FLUSH cycle 1 + 1 + 2 = 4.
        want = _flipped(clean, 1, 2, 30) if x <= 4 else clean
        assert np.array_equal(got, want), x


def test_result_flip_reaches_the_words_written_from_that_cycle():
    # One tile, N = 4, int32: row v is written in FLUSH cycles 5 + 4v + q, word q holding
    # element j = q. FLUSH's tag captures PE (1, 2)'s sum in FLUSH cycle 4.
    chip, a, b = _job(n=4, m=4, k=5, ncols=4)
    clean, _ = chip.run_gemm(a, b, out_int32=True)
    for x, seen in ((0, False), (4, False), (5, True), (11, True), (12, False), (20, False)):
        got, _ = chip.run_gemm(a, b, out_int32=True, faults=[((0, "flush", x), OutBit(1, 2, 30))])
        want = _flipped(clean, 1, 2, 30) if seen else clean
        assert np.array_equal(got, want), x
    # The same cycles named as WRITE points: word u is written in FLUSH cycle 5 + u.
    for u in range(16):
        got, _ = chip.run_gemm(a, b, out_int32=True, faults=[((0, "write", u), OutBit(1, 2, 30))])
        want = _flipped(clean, 1, 2, 30) if u <= 4 * 1 + 2 else clean
        assert np.array_equal(got, want), u
    # int8: row i written in FLUSH cycle 5 + i, through the epilogue.
    clean8, _ = chip.run_gemm(a, b, shift=4)
    got, _ = chip.run_gemm(a, b, shift=4, faults=[((0, "write", 2), OutBit(2, 0, 12))])
    acc = gemm_reference(a, b, out_int32=True)
    acc[2, 0] = _sx32(int(acc[2, 0]) ^ (1 << 12))
    assert np.array_equal(got, _requant(acc, 4))
    got, _ = chip.run_gemm(a, b, shift=4, faults=[((0, "write", 3), OutBit(2, 0, 12))])
    assert np.array_equal(got, clean8)


def test_result_flip_between_tiles_hits_the_previous_tile_only_once_captured():
    # N = 2, M = 4, K = 3, DIM_N = 2 (tiles 0, 1 in one column block), int8: P = 5. Tile 1's
    # period writes tile 0's row v in its cycle 3 + v; tile 1's FIRST captures tile 0's
    # sum in PE (i, j) in cycle 1 + i + j.
    chip, a, b = _job(n=2, m=4, k=3, ncols=2)
    clean, _ = chip.run_gemm(a, b, out_int32=False)
    acc = gemm_reference(a, b, out_int32=True)
    for x in range(5):
        got, _ = chip.run_gemm(a, b, faults=[((1, "stream", x), OutBit(1, 1, 3))])
        # PE (1, 1): captured in cycle 3, row 1 written in cycle 4.
        want = acc.copy()
        if 3 < x <= 4:
            want[1, 1] = _sx32(int(acc[1, 1]) ^ (1 << 3))
        assert np.array_equal(got, np.clip(want, -128, 127)), x
    assert np.array_equal(clean, np.clip(acc, -128, 127))


@pytest.mark.parametrize("site", [AccBit(0, 0, 7), OutBit(1, 1, 31), AccBit(1, 0, 30)])
def test_pe_flips_while_idle_never_show(site):
    chip, a, b = _job(n=2, m=4, k=3, ncols=4)
    clean, _ = chip.run_gemm(a, b, np.arange(4), out_int32=True)
    chip.flip(site)
    chip.flip_many([site, RegCopy("DIM_M", 0, 5)])
    got, _ = chip.run_gemm(a, b, np.arange(4), out_int32=True)
    assert np.array_equal(got, clean)
    assert chip.read_reg(Reg.TMR_MISMATCH) == 1


def test_faults_at_points_an_ecc_abort_skips_never_happen():
    chip, a, b = _job(n=2, m=2, k=3, ncols=4)  # tiles 0, 1; P = 2*2 + 1 = 5
    place = chip.load_job(a, b)
    word = place.b_addr + 3  # B block 1, read by tile 1: the job ends after tile 1
    cells = [chip.layout.cell_of(word, 0), chip.layout.cell_of(word, 1)]
    other = chip.layout.cell_of(100, 4)
    faults = [((0, "stream", 0), cells[0]), ((0, "stream", 0), cells[1])]
    faults += [((1, "flush", 0), other), ((1, "stream", 4), RegCopy("DIM_K", 0, 0))]
    assert chip.run(faults) == ErrCode.ECC
    assert chip.read_reg(Reg.CYCLES) == 2 + 5 * 2
    assert chip.read_reg(Reg.TMR_MISMATCH) == 1
    assert chip.read_word(100)[1] == EccStatus.CLEAN
    c = chip.unpack_c(chip.dump(place.c_addr, place.c_words), 2, 4)
    assert np.array_equal(c[:, :2], gemm_reference(a, b)[:, :2])


def _requant(acc, shift):
    return np.clip((acc.astype(np.int64) + (1 << (shift - 1))) >> shift, -128, 127)


# --- everything at once, against the cycle-by-cycle reading of the doc ------------------


@pytest.mark.parametrize("seed", range(60))
def test_random_faults_match_the_cycle_by_cycle_schedule(seed):
    rng = np.random.default_rng(SEED + 5000 + seed)
    n, bank = (2, 4, 8)[seed % 3], 64
    ecc = seed % 5 != 4
    chip = Accelerator(n=n, bank_words=bank, ecc=ecc, scrub=False)
    chip.load(0, rng.integers(0, 256, (2 * bank, n)).astype(np.uint8))
    while True:
        m, k, ncols = (int(x) for x in rng.integers(1, 3 * n + 2, 3))
        mb, nb = -(-m // n), -(-ncols // n)
        out32 = int(rng.random() < 0.4)
        cw = m * nb * (4 if out32 else 1)
        if mb * k <= bank // 2 and nb * k <= bank and cw <= bank // 2 - 4 * nb:
            break
    a_addr = int(rng.integers(0, bank // 2 - mb * k + 1))
    regs = {
        "m": m, "k": k, "ncols": ncols, "a": a_addr,
        "b": int(rng.integers(bank, 2 * bank - nb * k + 1)),
        "bias": bank // 2, "c": bank // 2 + 4 * nb, "bias_en": int(rng.random() < 0.5),
        "relu": int(rng.random() < 0.5), "out32": out32, "shift": int(rng.integers(0, 12)),
    }  # fmt: skip
    chip.load_job(
        np.zeros((m, k), dtype=int), np.zeros((k, ncols), dtype=int),
        np.zeros(ncols, dtype=int) if regs["bias_en"] else None, bool(regs["relu"]),
        regs["shift"], bool(out32), a_addr=regs["a"], b_addr=regs["b"],
        bias_addr=regs["bias"], c_addr=regs["c"],
    )  # fmt: skip
    chip.load(0, rng.integers(0, 256, (2 * bank, n)).astype(np.uint8))  # random operands
    codeword = chip.layout.codeword_bits
    for _ in range(int(rng.integers(0, 3))):  # errors already in memory
        w = int(rng.integers(0, 2 * bank))
        bits = rng.choice(codeword, 1 if rng.random() < 0.7 else 2, replace=False)
        chip.flip_many([chip.layout.cell_of(w, int(x)) for x in bits])
    spans = chip.job_schedule(writes=True)
    model_faults, sim_faults = [], []
    for _ in range(int(rng.integers(1, 7))):
        span = spans[int(rng.integers(len(spans)))]
        when = JobPoint(span.tile, span.phase, int(rng.integers(span.cycles)))
        point = (when.tile, when.phase.value, when.cycle)
        kind = int(rng.integers(3))
        if kind == 0:
            base = (regs["a"], regs["b"], regs["bias"], regs["c"])[int(rng.integers(4))]
            w, bit = base + int(rng.integers(0, 6)), int(rng.integers(codeword))
            model_faults.append((when, chip.layout.cell_of(w, bit)))
            sim_faults.append((point, ("word", w, bit)))
        else:
            i, j, bit = int(rng.integers(n)), int(rng.integers(n)), int(rng.integers(32))
            model_faults.append((when, (AccBit if kind == 1 else OutBit)(i, j, bit)))
            sim_faults.append((point, ("acc" if kind == 1 else "out", i, j, bit)))
    before = [chip.peek(w) for w in range(2 * bank)]
    err = chip.run(model_faults)
    want = simulate(before, n, bank, regs, ecc=ecc, faults=sim_faults)
    assert [chip.peek(w) for w in range(2 * bank)] == want.mem
    assert (int(err), chip.read_reg(Reg.CYCLES), chip.read_reg(Reg.MACS)) == (
        want.err,
        want.cycles,
        want.macs,
    )
    assert (chip.read_reg(Reg.ECC_CORR), chip.read_reg(Reg.ECC_UNCORR)) == (
        want.corr,
        want.uncorr,
    )
    for span in spans:  # the model's job cycles are the doc's
        for x in {0, span.cycles - 1}:
            key = (span.tile, span.phase.value, x)
            assert chip.job_cycle(key) == want.points[key], key


# --- scratchpad cells during a job ------------------------------------------------------

# N = 2, M = 2 (one row block), K = 6, DIM_N = 4: tiles 0 and 1 both read every A word.


def _two_tiles(ecc):
    chip, a, b = _job(n=2, m=2, k=6, ncols=4, ecc=ecc, scrub=ecc)
    place = chip.load_job(a, b, np.array([10, 20, 30, 40]), out_int32=True)
    return chip, a, b, place


@pytest.mark.parametrize("x", [0, 2, 3, 4, 8])
def test_cell_flip_in_stream_reaches_reads_from_that_cycle_on(x):
    t0 = 3  # A word t0 is read in STREAM cycle 3 of each tile
    chip, a, b, place = _two_tiles(ecc=False)
    bias = np.array([10, 20, 30, 40])
    site = chip.layout.cell_of(place.a_addr + t0, 8 + 1)  # byte 1 (row 1), bit 1
    chip.run([(JobPoint(0, "stream", x), site)])
    c = chip.unpack_c(chip.dump(place.c_addr, place.c_words), 2, 4, int32=True)
    flipped = a.copy()
    flipped[1, t0] = np.uint8((a[1, t0] & 0xFF) ^ 2).astype(np.int8)
    good = gemm_reference(a, b, bias, out_int32=True)
    bad = gemm_reference(flipped, b, bias, out_int32=True)
    want = np.hstack([(bad if x <= t0 else good)[:, :2], bad[:, 2:]])
    assert np.array_equal(c, want)

    chip, a, b, place = _two_tiles(ecc=True)
    chip.run([(JobPoint(0, "stream", x), site)])
    c = chip.unpack_c(chip.dump(place.c_addr, place.c_words), 2, 4, int32=True)
    assert np.array_equal(c, good)
    assert chip.read_reg(Reg.ECC_CORR) == (2 if x <= t0 else 1)


@pytest.mark.parametrize(("x", "counted"), [(0, 1), (2, 1), (3, 0), (4, 0)])
def test_cell_flip_in_bias_reaches_bias_reads_from_that_cycle_on(x, counted):
    chip, a, b, place = _two_tiles(ecc=True)
    word = place.bias_addr + 2  # bias word q = 2 of column block 0, read in BIAS cycle 2
    chip.run([(JobPoint(0, "bias", x), chip.layout.cell_of(word, 5))])
    assert chip.read_reg(Reg.ECC_CORR) == counted
    assert chip.read_word(word)[1] == EccStatus.CORRECTED  # the flip stays in memory


def test_double_error_made_during_a_tile_ends_the_job_where_it_is_first_read():
    chip, a, b, place = _two_tiles(ecc=True)
    word = place.a_addr + 1  # read in STREAM cycle 1
    cells = [chip.layout.cell_of(word, 0), chip.layout.cell_of(word, 1)]
    late = [(JobPoint(0, "stream", 2), cell) for cell in cells]
    assert chip.run(late) == ErrCode.ECC
    c = chip.unpack_c(chip.dump(place.c_addr, place.c_words), 2, 4, int32=True)
    assert np.array_equal(
        c[:, :2], gemm_reference(a, b, np.array([10, 20, 30, 40]), out_int32=True)[:, :2]
    )
    assert chip.read_reg(Reg.ECC_UNCORR) == 1
    chip, a, b, place = _two_tiles(ecc=True)
    early = [(JobPoint(0, "stream", 1), cells[0]), (JobPoint(0, "stream", 0), cells[1])]
    assert chip.run(early) == ErrCode.ECC
    assert chip.read_reg(Reg.MACS) == 0


def test_cell_flip_in_write_is_overwritten_unless_its_word_was_already_written():
    chip, a, b, place = _two_tiles(ecc=True)
    # Tile 0 (int32, N = 2, V = 2) writes words c + 4*(m*NB) + q in cycles 4m + q.
    later = place.c_addr + 4 * (1 * 2) + 1  # row 1, part 1: written in cycle 5
    earlier = place.c_addr + 4 * 0 + 2  # row 0, part 2: written in cycle 2
    faults = [
        (JobPoint(0, "write", 5), chip.layout.cell_of(later, 3)),
        (JobPoint(0, "write", 3), chip.layout.cell_of(earlier, 3)),
    ]
    chip.run(faults)
    data, _ = chip.peek(later)
    assert chip.read_word(later) == (data, EccStatus.CLEAN)
    raw, _ = chip.peek(earlier)
    assert chip.read_word(earlier) == (raw ^ (1 << 3), EccStatus.CORRECTED)
