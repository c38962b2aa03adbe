"""GEMM results, epilogue arithmetic, tile order and CYCLES/MACS of the model."""

import numpy as np
import pytest
from scc_cycle_sim import simulate

from firmware_sim.accel import Accelerator, ErrCode, Reg, gemm_reference

SEED = 7321
M32 = 0xFFFF_FFFF


def _sx(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _epilogue_doc(acc: int, bias: int | None, relu: bool, shift: int, out32: bool) -> int:
    """docs/REGISTERS.md "Arithmetic", one element, in Python integers."""
    x = _sx(acc + bias, 32) if bias is not None else acc
    if relu:
        x = max(x, 0)
    if out32:
        return x
    if shift:
        x = (x + (1 << (shift - 1))) >> shift
    return min(127, max(-128, x))


def _program(chip, regs):
    epi = regs["bias_en"] | regs["relu"] << 1 | regs["out32"] << 2 | regs["shift"] << 8
    for reg, value in (
        (Reg.DIM_M, regs["m"]),
        (Reg.DIM_K, regs["k"]),
        (Reg.DIM_N, regs["ncols"]),
        (Reg.A_ADDR, regs["a"]),
        (Reg.B_ADDR, regs["b"]),
        (Reg.BIAS_ADDR, regs["bias"]),
        (Reg.C_ADDR, regs["c"]),
        (Reg.EPILOGUE, epi),
    ):
        chip.write_reg(reg, value)


def _memory(chip):
    return [chip.peek(w) for w in range(chip.spm_words)]


def _random_regs(rng, n, bank_words):
    """Random registers that pass CHECK but for C over an operand, about one time in ten."""
    spm = 2 * bank_words
    while True:
        m, k, ncols = (int(x) for x in rng.integers(1, 3 * n + 2, 3))
        mb, nb = -(-m // n), -(-ncols // n)
        out32 = bool(rng.random() < 0.3)
        c_words = m * nb * (4 if out32 else 1)
        if mb * k <= bank_words and nb * k <= bank_words and c_words <= spm and 4 * nb <= spm:
            break
    regs = {
        "m": m,
        "k": k,
        "ncols": ncols,
        "a": int(rng.integers(0, bank_words - mb * k + 1)),
        "b": int(rng.integers(bank_words, spm - nb * k + 1)),
        "bias": int(rng.integers(0, spm - 4 * nb + 1)),
        "c": int(rng.integers(0, spm - c_words + 1)),
        "bias_en": int(rng.random() < 0.5),
        "relu": int(rng.random() < 0.5),
        "out32": int(out32),
        "shift": int(rng.integers(0, 32)),
    }
    if rng.random() < 0.1:
        return regs
    used = [(regs["a"], mb * k), (regs["b"], nb * k)]
    if regs["bias_en"]:
        used.append((regs["bias"], 4 * nb))
    for _ in range(200):
        c = regs["c"] = int(rng.integers(0, spm - c_words + 1))
        if not any(lo < c + c_words and c < lo + size for lo, size in used):
            break
    return regs


@pytest.mark.parametrize("n", [2, 4, 8])
def test_run_gemm_matches_reference_on_random_shapes(n):
    rng = np.random.default_rng(SEED + n)
    chip = Accelerator(n=n, bank_words=1024)
    for _ in range(25):
        m, k, ncols = (int(x) for x in rng.integers(1, 4 * n + 3, 3))
        a = rng.integers(-128, 128, (m, k))
        b = rng.integers(-128, 128, (k, ncols))
        bias = rng.integers(-(2**31), 2**31, ncols) if rng.random() < 0.5 else None
        relu = bool(rng.random() < 0.5)
        shift = int(rng.integers(0, 32))
        out32 = bool(rng.random() < 0.3)
        c, err = chip.run_gemm(a, b, bias, relu, shift, out32)
        assert err == ErrCode.NONE
        assert np.array_equal(c, gemm_reference(a, b, bias, relu, shift, out32))


@pytest.mark.parametrize("n", [2, 4, 8])
def test_one_by_one_by_one(n):
    chip = Accelerator(n=n, bank_words=64)
    c, err = chip.run_gemm(np.array([[-7]]), np.array([[9]]))
    assert err == ErrCode.NONE and c.tolist() == [[-63]]
    # One tile: P = max(K + 1, 2N + 1) = 2N + 1, then FLUSH of N + 1 + 1 cycles.
    assert chip.read_reg(Reg.CYCLES) == 2 + (2 * n + 1) + n + 1 + 1
    assert chip.read_reg(Reg.MACS) == 1


@pytest.mark.parametrize("n", [2, 4, 8])
def test_identity_b_gives_a_back(n):
    rng = np.random.default_rng(SEED + 100 + n)
    a = rng.integers(-128, 128, (2 * n + 1, n + 3))
    c, err = Accelerator(n=n).run_gemm(a, np.eye(n + 3, dtype=np.int64))
    assert err == ErrCode.NONE and np.array_equal(c, a)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_extreme_operands_and_long_k(n):
    k = 4095
    chip = Accelerator(n=n, bank_words=16384)
    a = np.full((n + 1, k), -128)
    a[1] = 127
    b = np.full((k, 3), -128)
    b[:, 1] = 127
    acc = gemm_reference(a, b, out_int32=True)
    assert acc[0, 0] == k * 16384 and acc[1, 1] == k * 127 * 127
    c32, err = chip.run_gemm(a, b, out_int32=True)
    assert err == ErrCode.NONE and np.array_equal(c32, acc)
    c8, _ = chip.run_gemm(a, b)
    assert c8[0, 0] == 127 and c8[0, 1] == -128
    c8, _ = chip.run_gemm(a, b, shift=31)
    assert np.array_equal(c8, gemm_reference(a, b, shift=31))


def test_bias_add_wraps_in_int32():
    chip = Accelerator(n=4, bank_words=64)
    a, b = np.array([[100]]), np.array([[100, -100]])
    bias = np.array([2**31 - 1, -(2**31)])
    c, _ = chip.run_gemm(a, b, bias, out_int32=True)
    assert c.tolist() == [[_sx(10000 + 2**31 - 1, 32), _sx(-10000 - 2**31, 32)]]
    c, _ = chip.run_gemm(a, b, bias, relu=True, out_int32=True)
    assert c.tolist() == [[0, _sx(-10000 - 2**31, 32)]]


def test_rounding_ties_and_saturation_for_every_shift():
    # A = 0 so that C = epilogue(bias): the bias sets x exactly.
    chip = Accelerator(n=8, bank_words=1024)
    xs = [0, 1, -1, 2**31 - 1, -(2**31), 127, 128, -128, -129]
    for s in range(1, 32):
        for q in (-3, -2, -1, 0, 1, 2, 255, -257):
            xs.append(_sx((2 * q + 1) << (s - 1), 32))  # exact halves
            xs.append(_sx((q << s) - 1, 32))
    xs = sorted(set(xs))
    bias = np.array(xs)
    zero_a, zero_b = np.zeros((1, 1), dtype=int), np.zeros((1, len(xs)), dtype=int)
    for shift in range(32):
        for relu in (False, True):
            c, err = chip.run_gemm(zero_a, zero_b, bias, relu=relu, shift=shift)
            assert err == ErrCode.NONE
            want = [_epilogue_doc(0, x, relu, shift, False) for x in xs]
            assert c[0].tolist() == want, f"shift {shift} relu {relu}"
            assert np.array_equal(c, gemm_reference(zero_a, zero_b, bias, relu, shift))


@pytest.mark.parametrize("n", [2, 4, 8])
def test_jobs_follow_the_documented_schedule_word_by_word(n):
    """Random addresses (C over A, B or the bias now and then), against the cycle-by-cycle
    reading of the doc in scc_cycle_sim."""
    rng = np.random.default_rng(SEED + 200 + n)
    bank_words = 64
    chip = Accelerator(n=n, bank_words=bank_words)
    refused = 0
    for _ in range(30):
        chip.load(0, rng.integers(0, 256, (2 * bank_words, n)).astype(np.uint8))
        regs = _random_regs(rng, n, bank_words)
        before = _memory(chip)
        _program(chip, regs)
        chip.write_reg(Reg.CTRL, 1)
        want = simulate(before, n, bank_words, regs)
        refused += want.err == ErrCode.DESCRIPTOR
        assert chip.read_reg(Reg.STATUS) >> 4 == want.err, regs
        assert _memory(chip) == want.mem, regs
        assert chip.read_reg(Reg.CYCLES) == want.cycles
        assert chip.read_reg(Reg.MACS) == want.macs
    assert 0 < refused < 30


def test_c_over_an_operand_is_refused():
    n = 2
    chip = Accelerator(n=n, bank_words=64)
    a = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    b = np.eye(4, dtype=int)
    before = [chip.peek(w) for w in range(128)]
    c, err = chip.run_gemm(a, b, c_addr=0)
    assert err == ErrCode.DESCRIPTOR and chip.read_reg(Reg.CYCLES) == 2
    assert chip.read_reg(Reg.MACS) == 0
    chip.write_reg(Reg.C_ADDR, 8)  # A takes words 0 .. 7: C right after it runs
    assert chip.run() == ErrCode.NONE
    c = chip.unpack_c(chip.dump(8, 4), 2, 4)
    assert np.array_equal(c, a)
    assert before != [chip.peek(w) for w in range(128)]


def test_tiles_run_column_block_by_column_block():
    # N = 2, M = 5 (MB = 3), DIM_N = 4 (NB = 2): tile T = c*MB + r. A double error in B
    # block 1 ends the job at tile 3 = (0, 1): every tile of column block 0 is written
    # (row-major order would have written only tile (0, 0)), none of column block 1.
    n, m, k, ncols = 2, 5, 3, 4
    chip = Accelerator(n=n, bank_words=64)
    rng = np.random.default_rng(SEED + 5)
    a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, ncols))
    place = chip.load_job(a, b)
    chip.load(place.c_addr, np.full((place.c_words, n), 0x5A, dtype=np.uint8))
    word = place.b_addr + 1 * k + 2
    chip.flip_many([chip.layout.cell_of(word, 0), chip.layout.cell_of(word, 1)])
    assert chip.run() == ErrCode.ECC
    c = chip.unpack_c(chip.dump(place.c_addr, place.c_words), m, ncols)
    assert np.array_equal(c[:, :2], gemm_reference(a, b)[:, :2])
    assert (c[:, 2:] == 0x5A).all()
    period = max(k + 1, 2 * n + 1)
    assert chip.read_reg(Reg.CYCLES) == 2 + period * (3 + 1)
    assert chip.read_reg(Reg.MACS) == m * 2 * k


def _cycles_from_doc(n, m, k, ncols, bias_en, out32):
    """CYCLES = 2 + 5*BIAS_EN*NB + P*tiles + N + 1 + w*V_last."""
    mb, nb = -(-m // n), -(-ncols // n)
    w = 4 if out32 else 1
    period = max(k + 1, (w + 1) * n + 1)
    v_last = min(n, m - (mb - 1) * n)
    return 2 + 5 * bias_en * nb + period * mb * nb + n + 1 + w * v_last


@pytest.mark.parametrize("n", [2, 4, 8])
def test_cycles_and_macs_follow_the_formula(n):
    rng = np.random.default_rng(SEED + 300 + n)
    chip = Accelerator(n=n, bank_words=512)
    for _ in range(20):
        m, k, ncols = (int(x) for x in rng.integers(1, 5 * n, 3))
        bias_en, out32 = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        bias = np.zeros(ncols, dtype=int) if bias_en else None
        _, err = chip.run_gemm(
            np.ones((m, k), dtype=int), np.ones((k, ncols), dtype=int), bias, out_int32=out32
        )
        assert err == ErrCode.NONE
        assert chip.read_reg(Reg.CYCLES) == _cycles_from_doc(n, m, k, ncols, bias_en, out32)
        assert chip.read_reg(Reg.MACS) == m * k * ncols
        assert chip.read_reg(Reg.CYCLES) == 2 + sum(s.cycles for s in chip.job_schedule())


def test_clean_job_is_fast():
    import time

    rng = np.random.default_rng(SEED)
    chip = Accelerator(n=8, bank_words=1024)
    chip.load_job(rng.integers(-128, 128, (64, 64)), rng.integers(-128, 128, (64, 64)))
    chip.run()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        chip.run()
        best = min(best, time.perf_counter() - t0)
    assert best < 0.010


def test_start_clears_status_cycles_and_macs_before_the_next_job():
    chip = Accelerator(n=4, bank_words=64)
    chip.run_gemm(np.ones((4, 4), dtype=int), np.ones((4, 4), dtype=int))
    assert chip.read_reg(Reg.MACS) == 64
    chip.write_reg(Reg.DIM_M, 0)
    chip.write_reg(Reg.CTRL, 1)
    assert chip.read_reg(Reg.MACS) == 0 and chip.read_reg(Reg.CYCLES) == 2
    assert chip.read_reg(Reg.STATUS) == 0b10 | 0b100 | ErrCode.DESCRIPTOR << 4
