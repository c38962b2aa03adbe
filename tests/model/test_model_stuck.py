"""Register bits stuck at 0 or 1: held while idle and in every job cycle, counted by TMR; counters
and the scrubber counting around them; the idle sequencer started by one."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest

from firmware_sim.accel import (
    AccBit,
    Accelerator,
    EccStatus,
    NotModelled,
    OutBit,
    Reg,
    RegCopy,
    SeqCopy,
)
from firmware_sim.accel.faults import FlopBit, SetBit, SpmCell
from firmware_sim.accel.regs import Ctrl, Status

SEED = 4242


def matrices(rng: np.random.Generator, m: int, k: int, ncols: int) -> tuple[np.ndarray, ...]:
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, ncols)).astype(np.int8)
    return a, b


def product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A @ B wrapped to int32, from numpy."""
    return (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)


def test_a_stuck_tmr_copy_is_outvoted_every_cycle_idle_and_in_jobs() -> None:
    rng = np.random.default_rng(SEED)
    a, b = matrices(rng, 9, 7, 6)
    chip = Accelerator(n=4, bank_words=256)
    chip.load_job(a, b, out_int32=True)
    k = chip.config("DIM_K")
    chip.stick(RegCopy("DIM_K", 1, 0), 1 - (k & 1))
    assert chip.read_reg(Reg.TMR_MISMATCH) == 1  # the cycle it stuck in
    chip.idle(10)
    assert chip.read_reg(Reg.TMR_MISMATCH) == 11
    c, err = chip.run_gemm(a, b, out_int32=True)
    assert err == 0 and np.array_equal(c, product(a, b))
    cycles = chip.read_reg(Reg.CYCLES)
    assert chip.last_job.engine == "cycle" and chip.last_job.cycles == cycles
    assert chip.read_reg(Reg.TMR_MISMATCH) == 11 + cycles
    # A write loads every copy but the stuck bit: still outvoted, the vote still right.
    chip.write_reg(Reg.DIM_K, k)
    assert chip.config("DIM_K") == k
    chip.idle(5)
    assert chip.read_reg(Reg.TMR_MISMATCH) == 16 + cycles
    assert chip.unstick_all() == 1
    assert chip.read_reg(Reg.TMR_MISMATCH) == 17 + cycles  # outvoted once more, repaired
    chip.idle(100)
    assert chip.read_reg(Reg.TMR_MISMATCH) == 17 + cycles and chip.stuck == {}


def test_a_copy_stuck_at_the_value_it_holds_counts_nothing_until_a_write_changes_it() -> None:
    chip = Accelerator(n=4, bank_words=256)
    chip.write_reg(Reg.C_ADDR, 0b100)
    chip.stick(RegCopy("C_ADDR", 2, 2), 1)
    chip.idle(50)
    assert chip.read_reg(Reg.TMR_MISMATCH) == 0
    chip.write_reg(Reg.C_ADDR, 0)
    chip.idle(7)
    assert chip.read_reg(Reg.TMR_MISMATCH) == 7 and chip.read_reg(Reg.C_ADDR) == 0


def test_two_copies_stuck_alike_outvote_the_third() -> None:
    chip = Accelerator(n=4, bank_words=256)
    chip.stick(RegCopy("DIM_M", 0, 3), 1)
    chip.stick(RegCopy("DIM_M", 2, 3), 1)
    chip.write_reg(Reg.DIM_M, 1)
    assert chip.read_reg(Reg.DIM_M) == 9


def test_a_stuck_configuration_bit_without_tmr_changes_every_later_job() -> None:
    rng = np.random.default_rng(SEED + 1)
    n = 4
    k = 5 * n + 3  # odd, above the shortest STREAM period: one word fewer, one cycle fewer
    a, b = matrices(rng, n - 1, k, n)
    clean = Accelerator(n=n, bank_words=256, tmr=False, scrub=False)
    clean.run_gemm(a, b, out_int32=True)
    chip = Accelerator(n=n, bank_words=256, tmr=False, scrub=False)
    chip.stick(RegCopy("DIM_K", 0, 0), 0)
    for _ in range(2):
        c, err = chip.run_gemm(a, b, out_int32=True)
        assert err == 0 and chip.read_reg(Reg.DIM_K) == k - 1
        assert np.array_equal(c, product(a[:, :-1], b[:-1]))
        assert chip.read_reg(Reg.CYCLES) == clean.read_reg(Reg.CYCLES) - 1
        assert chip.read_reg(Reg.MACS) == (n - 1) * (k - 1) * n
    assert chip.read_reg(Reg.TMR_MISMATCH) == 0


def test_a_soft_reset_leaves_a_stuck_bit_stuck() -> None:
    chip = Accelerator(n=4, bank_words=256, tmr=False, scrub=False)
    chip.stick(FlopBit("u_regs.u_a_addr.q_q", 4, 0), 1)
    assert chip.read_reg(Reg.A_ADDR) == 16
    chip.write_reg(Reg.CTRL, Ctrl.SOFT_RESET)
    assert chip.read_reg(Reg.A_ADDR) == 16
    assert chip.stuck == {RegCopy("A_ADDR", 0, 4): 1}


def test_a_stuck_accumulator_bit_shows_in_every_result_of_its_pe() -> None:
    rng = np.random.default_rng(SEED + 2)
    n = 4
    a, b = matrices(rng, 2 * n, 5, 2 * n - 1)
    chip = Accelerator(n=n, bank_words=256)
    i, j, bit = 2, 1, 13
    chip.stick(AccBit(i, j, bit), 1)
    c, err = chip.run_gemm(a, b, out_int32=True)
    want = product(a, b)
    mine = np.zeros(c.shape, dtype=bool)
    mine[i::n, j::n] = True
    assert err == 0 and np.array_equal(c[~mine], want[~mine])
    assert np.all(c[mine].view(np.uint32) >> bit & 1)
    assert not np.array_equal(c[mine], want[mine])  # the bit was clear in some sum


def test_a_stuck_result_register_bit_reaches_every_write_of_its_pe() -> None:
    rng = np.random.default_rng(SEED + 3)
    n = 4
    a, b = matrices(rng, n, 6, n)
    chip = Accelerator(n=n, bank_words=256, tmr=False, scrub=False)
    chip.stick(OutBit(0, 3, 31), 0)
    c, _ = chip.run_gemm(a, b, out_int32=True)
    want = product(a, b)
    expect = want.copy()
    expect[0, 3] = want[0, 3] & 0x7FFFFFFF
    assert np.array_equal(c, expect)


def test_a_stuck_bias_buffer_bit_adds_to_its_lane() -> None:
    rng = np.random.default_rng(SEED + 4)
    n = 4
    a, b = matrices(rng, 3, 4, n)
    bias = rng.integers(-(2**20), 2**20, n).astype(np.int32)
    bias[2] &= ~(1 << 5)
    chip = Accelerator(n=n, bank_words=256)
    chip.stick(FlopBit("u_seq.bias0_q", 32 * 2 + 5), 1)
    c, _ = chip.run_gemm(a, b, bias=bias, out_int32=True)
    forced = bias.copy()
    forced[2] |= 1 << 5
    assert np.array_equal(c, product(a, b) + forced)


def test_a_stuck_sequencer_state_bit() -> None:
    rng = np.random.default_rng(SEED + 5)
    n = 4
    a, b = matrices(rng, n, 2 * n, n)
    # With TMR a copy is outvoted in every cycle whose state lacks the bit.
    chip = Accelerator(n=n, bank_words=256)
    chip.load_job(a, b, out_int32=True)
    agree = sum(s.cycles for s in chip.job_schedule() if s.phase in ("bias", "stream"))
    chip.stick(SeqCopy("state", 2, 1), 1)
    c, err = chip.run_gemm(a, b, out_int32=True)
    assert err == 0 and np.array_equal(c, product(a, b))
    assert chip.read_reg(Reg.TMR_MISMATCH) == 1 + chip.read_reg(Reg.CYCLES) - agree
    # Without TMR bit 2 at 0 makes FLUSH (4) IDLE: nothing written, no DONE.
    bare = Accelerator(n=n, bank_words=256, tmr=False, scrub=False)
    bare.stick(SeqCopy("state", 0, 2), 0)
    c, _ = bare.run_gemm(a, b, out_int32=True)
    assert not c.any() and bare.status & Status.DONE == 0
    assert bare.read_reg(Reg.CYCLES) == 1 + chip.descriptor().period


def test_stick_refuses_what_the_build_lacks_or_the_model_cannot_hold() -> None:
    chip = Accelerator(n=4, bank_words=256)
    bare = Accelerator(n=4, bank_words=256, tmr=False, scrub=False)
    with pytest.raises(ValueError, match=r"copies 0\.\.2"):
        chip.stick(RegCopy("DIM_K", 3, 0), 1)
    with pytest.raises(ValueError, match=r"copies 0\.\.0"):
        bare.stick(RegCopy("DIM_K", 1, 0), 1)
    with pytest.raises(ValueError, match=r"0\.\.3"):
        chip.stick(AccBit(4, 0, 0), 1)
    with pytest.raises(ValueError, match="registers are"):
        chip.stick(RegCopy("NOPE", 0, 0), 1)
    with pytest.raises(ValueError, match="0 or 1"):
        chip.stick(AccBit(0, 0, 0), 2)
    with pytest.raises(ValueError, match="scratchpad cells"):
        chip.stick(SpmCell(0, 0, 0), 1)
    with pytest.raises(ValueError, match="transient"):
        chip.stick(SetBit("u_seq.u_t.q_q", 0), 1)
    with pytest.raises(ValueError, match="no flop"):
        bare.stick(FlopBit("g_scrub.u_scrub.ptr_q", 0), 1)
    # Off WAIT for good, the scrubber would keep the scratchpad port: a bus access there
    # would never complete.
    for bit in (0, 1):
        with pytest.raises(NotModelled, match="never completes"):
            chip.stick(FlopBit("g_scrub.u_scrub.state_q", bit), 1)
    assert chip.stuck == {} and bare.stuck == {}
    chip.stick(AccBit(0, 0, 0), 1)
    with pytest.raises(NotModelled, match="stuck"):
        chip.run(engine="analytic")


# --- counters and the scrubber ------------------------------------------------------------


def counted(value: int, cycles: int, bit: int, stuck: int) -> int:
    """A 32-bit counter after ``cycles`` cycles of + 1, one bit forced after each, one
    cycle at a time."""
    value = value & ~(1 << bit) | stuck << bit
    for _ in range(cycles):
        value = ((value + 1) & 0xFFFFFFFF) & ~(1 << bit) | stuck << bit
    return value


def single_errors(chip: Accelerator, words: list[int], seed: int) -> None:
    """Random data in the whole scratchpad, one flipped bit in each of ``words``."""
    rng = np.random.default_rng(seed)
    chip.load(0, rng.integers(0, 256, (chip.spm_words, chip.n)).astype(np.uint8))
    for w in words:
        chip.flip(chip.layout.cell_of(w, int(rng.integers(chip.layout.codeword_bits))))


def test_a_stuck_ecc_counter_bit_reads_held_and_counts_around_it() -> None:
    chip = Accelerator(n=4, bank_words=64)
    single_errors(chip, list(range(12)), SEED + 6)
    chip.stick(FlopBit("u_regs.corr_q", 2), 1)
    assert chip.read_reg(Reg.ECC_CORR) == 4
    seen = []
    for w in range(5):
        chip.read_word(w)
        seen.append(chip.read_reg(Reg.ECC_CORR))
    # The carry passes the bit stuck at 1: 4 + 1, + 2, + 3, then 8 + 4 + 0, + 1.
    assert seen == [5, 6, 7, 12, 13]
    chip.write_reg(Reg.CTRL, Ctrl.CLEAR_COUNTERS)
    assert chip.read_reg(Reg.ECC_CORR) == 4
    chip.write_reg(Reg.CTRL, Ctrl.SOFT_RESET)
    assert chip.read_reg(Reg.ECC_CORR) == 4
    # Bit 0 stuck at 0 eats every carry: the counter cannot count at all.
    chip.unstick_all()
    chip.write_reg(Reg.CTRL, Ctrl.CLEAR_COUNTERS)
    chip.stick(FlopBit("u_regs.corr_q", 0), 0)
    for w in range(5, 12):
        assert chip.read_word(w)[1] == EccStatus.CORRECTED
    assert chip.read_reg(Reg.ECC_CORR) == 0
    assert chip.unstick_all() == 1
    chip.flip(chip.layout.cell_of(20, 1))
    chip.read_word(20)
    assert chip.read_reg(Reg.ECC_CORR) == 1


def test_a_stuck_cycles_bit_counts_every_job_cycle_around_it() -> None:
    rng = np.random.default_rng(SEED + 7)
    a, b = matrices(rng, 5, 7, 6)
    clean = Accelerator(n=4, bank_words=256)
    want, _ = clean.run_gemm(a, b, out_int32=True)
    cycles = clean.read_reg(Reg.CYCLES)
    chip = Accelerator(n=4, bank_words=256)
    chip.stick(FlopBit("u_regs.cycles_q", 0), 1)
    assert chip.read_reg(Reg.CYCLES) == 1
    for _ in range(2):
        c, err = chip.run_gemm(a, b, out_int32=True)
        assert err == 0 and np.array_equal(c, want)
        # Bit 0 reads 1 and passes every carry: the other bits count the job's cycles.
        assert chip.read_reg(Reg.CYCLES) == 2 * cycles + 1
    chip.stick(FlopBit("u_regs.macs_q", 31), 1)
    chip.run_gemm(a, b, out_int32=True)
    assert chip.read_reg(Reg.MACS) == clean.read_reg(Reg.MACS) | 1 << 31


def test_a_stuck_mismatch_bit_counts_an_outvoted_copy_around_it() -> None:
    chip = Accelerator(n=4, bank_words=256)
    chip.stick(FlopBit("u_regs.mismatch_q", 1), 1)
    assert chip.read_reg(Reg.TMR_MISMATCH) == 2
    chip.stick(RegCopy("DIM_M", 0, 4), 1)  # outvoted from this cycle on
    chip.idle(10)
    assert chip.read_reg(Reg.TMR_MISMATCH) == counted(0, 11, 1, 1)
    chip.unstick_all()
    assert chip.read_reg(Reg.TMR_MISMATCH) == counted(0, 11, 1, 1) + 1  # taken freely
    bare = Accelerator(n=4, bank_words=256)
    bare.stick(FlopBit("u_regs.mismatch_q", 0), 0)
    bare.stick(RegCopy("DIM_M", 2, 4), 1)
    bare.idle(1000)
    assert bare.read_reg(Reg.TMR_MISMATCH) == 0


def test_a_stuck_scrubber_pointer_bit_scrubs_only_the_words_it_reaches() -> None:
    chip = Accelerator(n=4, bank_words=32)
    errors = list(range(0, 64, 5))
    single_errors(chip, errors, SEED + 8)
    chip.stick(FlopBit("g_scrub.u_scrub.ptr_q", 0), 1)
    assert chip.read_reg(Reg.SCRUB_PTR) == 1
    chip.write_reg(Reg.SCRUB_PERIOD, 2)
    chip.idle(4 * 40)  # a step every 4 cycles: 40 steps, over the 32 odd words
    assert chip.read_reg(Reg.SCRUB_PTR) == 2 * (40 - 32) + 1
    assert chip.read_reg(Reg.SCRUB_PASSES) == 1  # word 63 is odd: the pass ends
    odd = [w for w in errors if w % 2]
    assert chip.read_reg(Reg.ECC_CORR) == len(odd)
    assert sorted(chip.spm.dirty) == [w for w in errors if w % 2 == 0]
    # Bit 15 at 1: word ptr mod 64 is scrubbed, and ptr never meets the last word.
    high = Accelerator(n=4, bank_words=32)
    single_errors(high, errors, SEED + 8)
    high.stick(FlopBit("g_scrub.u_scrub.ptr_q", 15), 1)
    high.write_reg(Reg.SCRUB_PERIOD, 1)
    high.idle(3 * 200)
    assert high.read_reg(Reg.SCRUB_PTR) == 0x8000 + 200
    assert high.read_reg(Reg.SCRUB_PASSES) == 0 and not high.spm.dirty


def test_stuck_scrubber_timer_bits_change_its_period() -> None:
    chip = Accelerator(n=4, bank_words=32)
    chip.write_reg(Reg.SCRUB_PERIOD, 8)
    # Bit 2 at 0: the timer counts 0..3 and wraps back to 0, never reaching 7.
    chip.stick(FlopBit("g_scrub.u_scrub.timer_q", 2), 0)
    chip.idle(100_000)
    assert chip.read_reg(Reg.SCRUB_PTR) == 0
    chip.unstick_all()
    # Bit 3 at 1: the timer is at least 8 and fires in every WAIT cycle: a step every 3.
    chip.stick(FlopBit("g_scrub.u_scrub.timer_q", 3), 1)
    chip.idle(3 * 20)
    assert chip.read_reg(Reg.SCRUB_PTR) == 20


def test_stuck_scrubber_state_bits_at_zero_stop_its_steps() -> None:
    period = 5
    chip = Accelerator(n=4, bank_words=32)
    single_errors(chip, [0, 1], SEED + 9)
    chip.write_reg(Reg.SCRUB_PERIOD, period)
    # Bit 1 at 0: READ falls back to WAIT, never FIX: word 0 is read, counted, never fixed.
    chip.stick(FlopBit("g_scrub.u_scrub.state_q", 1), 0)
    chip.idle(10 * (period + 1))
    assert chip.read_reg(Reg.ECC_CORR) == 10 and chip.read_reg(Reg.SCRUB_PTR) == 0
    assert sorted(chip.spm.dirty) == [0, 1]
    # Bit 0 at 0: READ never starts.
    chip.unstick_all()
    chip.stick(FlopBit("g_scrub.u_scrub.state_q", 0), 0)
    chip.idle(10_000)
    assert chip.read_reg(Reg.ECC_CORR) == 10 and sorted(chip.spm.dirty) == [0, 1]
    chip.unstick_all()
    chip.idle(2 * (period + 2))
    assert chip.read_reg(Reg.SCRUB_PTR) == 2 and not chip.spm.dirty


def test_a_stuck_passes_bit_counts_passes_around_it() -> None:
    chip = Accelerator(n=4, bank_words=16)
    chip.stick(FlopBit("g_scrub.u_scrub.passes_q", 0), 1)
    chip.write_reg(Reg.SCRUB_PERIOD, 1)
    chip.idle(3 * 32 * 5)
    assert chip.read_reg(Reg.SCRUB_PASSES) == 2 * 5 + 1


@pytest.mark.parametrize("seed", range(40))
def test_idle_spans_taken_whole_equal_cycle_by_cycle_with_stuck_bits(seed: int) -> None:
    rng = random.Random(seed)
    chip = Accelerator(n=4, bank_words=16, interleave=rng.choice([1, 2, 4]))
    single_errors(chip, rng.sample(range(32), rng.randrange(6)), seed)
    chip.flip_many([chip.layout.cell_of(9, 0), chip.layout.cell_of(9, 1)])
    chip.write_reg(Reg.SCRUB_PERIOD, rng.choice([1, 2, 3, 7, 20]))
    widths = {"state_q": 2, "timer_q": 16, "ptr_q": 16, "passes_q": 32}
    for _ in range(rng.randrange(1, 4)):
        name = rng.choice(list(widths) + ["corr_q", "uncorr_q"])
        path = f"u_regs.{name}" if name in ("corr_q", "uncorr_q") else f"g_scrub.u_scrub.{name}"
        bit = rng.randrange(min(widths.get(name, 32), 6))
        chip.stick(FlopBit(path, bit), 0 if name == "state_q" else rng.randrange(2))
    if rng.random() < 0.5:
        chip.flip(FlopBit("g_scrub.u_scrub.state_q", rng.randrange(2)))
    whole, stepped = copy.deepcopy(chip), copy.deepcopy(chip)
    cycles = rng.randrange(1, 3000)
    whole.idle(cycles)
    for _ in range(cycles):
        stepped.idle(1)
    for reg in (Reg.SCRUB_PTR, Reg.SCRUB_PASSES, Reg.ECC_CORR, Reg.ECC_UNCORR):
        assert whole.read_reg(reg) == stepped.read_reg(reg), reg.name
    assert whole.spm.data.tobytes() == stepped.spm.data.tobytes()
    assert whole.spm.check.tobytes() == stepped.spm.check.tobytes()
    assert whole._path.rrow == stepped._path.rrow
    assert whole._path.scrub_bank_q == stepped._path.scrub_bank_q
    assert (whole._scrub_state, whole._scrub_timer) == (stepped._scrub_state, stepped._scrub_timer)


def test_a_job_with_a_stuck_counter_bit_runs_the_same_with_a_golden_recording() -> None:
    rng = np.random.default_rng(SEED + 10)
    a, b = matrices(rng, 6, 9, 5)
    chip = Accelerator(n=4, bank_words=256)
    chip.load_job(a, b, out_int32=True)
    chip.stick(FlopBit("u_regs.cycles_q", 2), 1)
    start = chip.snapshot()
    golden = chip.golden_job()
    x = chip.job_cycle((1, "stream", 2))
    fault = [(x, FlopBit("u_regs.cycles_q", 5))]
    chip.run(fault, golden=golden)
    fast = (chip.read_reg(Reg.CYCLES), chip.dump(0, 512).tobytes())
    chip.restore(start)
    chip.run(fault)
    assert fast == (chip.read_reg(Reg.CYCLES), chip.dump(0, 512).tobytes())
    assert chip.read_reg(Reg.CYCLES) >> 2 & 1


# --- the idle sequencer ---------------------------------------------------------------------


def test_a_stuck_state_bit_that_votes_the_idle_sequencer_out_of_idle_runs_it_for_good() -> None:
    rng = np.random.default_rng(SEED + 11)
    n = 4
    a, b = matrices(rng, n + 1, 6, n)
    chip = Accelerator(n=n, bank_words=256, tmr=False, scrub=False)
    place = chip.load_job(a, b, out_int32=True)
    # Bit 0 at 1: IDLE reads CHECK, so the programmed job runs with no START; FLUSH (4)
    # reads DONE (5), so its last tile is never written; DONE goes to IDLE, which reads
    # CHECK again: for good.
    chip.stick(SeqCopy("state", 0, 0), 1)
    assert chip.last_wake is not None and chip.last_wake.hung and chip.hung
    assert chip.status & Status.BUSY and chip.status & Status.DONE
    c = chip.unpack_c(chip.dump(place.c_addr, place.c_words), n + 1, n, True)
    assert np.array_equal(c[:n], product(a, b)[:n]) and not c[n:].any()
    assert chip.run() == chip.status >> 2  # START is ignored while BUSY
    # A soft reset while the bit is stuck starts it again.
    chip.write_reg(Reg.CTRL, Ctrl.SOFT_RESET)
    assert chip.hung and chip.status & Status.BUSY
    assert chip.unstick_all() == 1
    chip.write_reg(Reg.CTRL, Ctrl.SOFT_RESET)
    assert not chip.hung and chip.status == 0
    c, err = chip.run_gemm(a, b, out_int32=True)
    assert err == 0 and np.array_equal(c, product(a, b))


def test_with_tmr_two_stuck_state_copies_wake_the_sequencer_one_does_not() -> None:
    chip = Accelerator(n=4, bank_words=256)
    chip.load_job(*matrices(np.random.default_rng(SEED + 12), 4, 5, 4), out_int32=True)
    chip.stick(SeqCopy("state", 0, 2), 1)
    assert chip.last_wake is None and not chip.hung
    assert chip.read_reg(Reg.TMR_MISMATCH) == 1
    # FLUSH with no START: the tile counters' last tile written again, then DONE, then
    # IDLE, which reads FLUSH: for good.
    chip.stick(SeqCopy("state", 1, 2), 1)
    assert chip.last_wake is not None and chip.last_wake.hung and chip.hung


def test_a_flip_beside_a_stuck_state_copy_outvotes_the_third_and_runs_the_job() -> None:
    rng = np.random.default_rng(SEED + 13)
    a, b = matrices(rng, 5, 6, 4)
    chip = Accelerator(n=4, bank_words=256)
    place = chip.load_job(a, b, out_int32=True)
    chip.write_reg(Reg.SCRUB_PERIOD, 0)
    chip.stick(SeqCopy("state", 0, 0), 1)
    assert chip.last_wake is None
    # Copy 1 flipped to CHECK too: the vote is CHECK, the job runs unstarted; the flipped
    # copy is repaired at the edge, so the vote is IDLE again after DONE.
    chip.flip(SeqCopy("state", 1, 0))
    assert chip.last_wake is not None and not chip.last_wake.hung
    assert chip.status == Status.DONE and not chip.hung
    words = chip.dump(place.c_addr, place.c_words)
    assert np.array_equal(chip.unpack_c(words, 5, 4, True), product(a, b))
