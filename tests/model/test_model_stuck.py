"""Register bits stuck at 0 or 1: held while idle and in every job cycle, counted by TMR."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_sim.accel import (
    AccBit,
    Accelerator,
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
    with pytest.raises(NotModelled, match="counter"):
        chip.stick(FlopBit("u_regs.cycles_q", 3), 1)
    with pytest.raises(NotModelled, match="IDLE"):
        bare.stick(SeqCopy("state", 0, 0), 1)
    assert chip.stuck == {} and bare.stuck == {}
    chip.stick(AccBit(0, 0, 0), 1)
    with pytest.raises(NotModelled, match="stuck"):
        chip.run(engine="analytic")
