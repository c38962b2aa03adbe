"""Descriptor rules checked at START (docs/REGISTERS.md, "Descriptor rules")."""

import numpy as np
import pytest

from firmware_sim.accel import Accelerator, ErrCode, Reg
from testbed.sitemap_builds import max_bank_words

N, BANK = 4, 64
SPM = 2 * BANK
# M = 6 (MB = 2), K = 5, DIM_N = 7 (NB = 2): A and B take 10 words, bias 8, C 12 or 48.
GOOD = {"m": 6, "k": 5, "ncols": 7, "a": 0, "b": BANK, "bias": 20, "c": 40, "epi": 0}
BIAS_EN, OUT32 = 1, 4

BAD = {
    "M is 0": {"m": 0},
    "K is 0": {"k": 0},
    "DIM_N is 0": {"ncols": 0},
    "A runs past bank 0": {"a": BANK - 10 + 1},
    "A far past bank 0": {"a": 0xFFFF},
    "B starts in bank 0": {"b": BANK - 1},
    "B runs past the scratchpad": {"b": SPM - 10 + 1},
    "bias runs past the scratchpad": {"bias": SPM - 8 + 1, "epi": BIAS_EN},
    "int8 C runs past the scratchpad": {"c": SPM - 12 + 1},
    "int32 C runs past the scratchpad": {"c": SPM - 48 + 1, "epi": OUT32},
    "int8-sized room for int32 C": {"c": SPM - 12, "epi": OUT32},
    # C must overlap neither A, nor B, nor (with BIAS_EN) the bias.
    "C over A": {"c": 0},
    "C's last word on A's first": {"a": 20, "c": 20 - 12 + 1},
    "C's first word on A's last": {"c": 9},
    "C over B": {"c": BANK + 5},
    "C's last word on B's first": {"c": BANK - 11},
    "int32 C reaching into B": {"c": BANK - 47, "epi": OUT32},
    "C over the bias": {"c": 25, "epi": BIAS_EN},
    "C's first word on the bias's last": {"c": 27, "epi": BIAS_EN},
    "bias's first word on C's last": {"bias": 51, "epi": BIAS_EN},
}

EDGE_OK = {
    "A ends at bank 0's end": {"a": BANK - 10},
    "B starts at bank 1": {"b": BANK},
    "B ends at the scratchpad's end": {"b": SPM - 10},
    "bias ends at the end": {"bias": SPM - 8, "epi": BIAS_EN},
    "bias out of range but unused": {"bias": 0xFFFF},
    "int8 C ends at the end": {"c": SPM - 12},
    "int32 C ends at the end": {"c": SPM - 48, "epi": OUT32},
    "C right after A": {"c": 10},
    "C right before B": {"c": BANK - 12},
    "int32 C right before B": {"c": BANK - 48, "epi": OUT32},
    "C right after the bias": {"c": 28, "epi": BIAS_EN},
    "C right before the bias": {"bias": 52, "epi": BIAS_EN},
    "C over the bias without BIAS_EN": {"c": 20},
}


def _chip_with(desc):
    chip = Accelerator(n=N, bank_words=BANK)
    rng = np.random.default_rng(99)
    chip.load(0, rng.integers(0, 256, (SPM, N)).astype(np.uint8))
    # A single-bit error in A: a job that reads A would count it.
    chip.flip(chip.layout.cell_of(desc["a"] % BANK, 3))
    for reg, key in (
        (Reg.DIM_M, "m"),
        (Reg.DIM_K, "k"),
        (Reg.DIM_N, "ncols"),
        (Reg.A_ADDR, "a"),
        (Reg.B_ADDR, "b"),
        (Reg.BIAS_ADDR, "bias"),
        (Reg.C_ADDR, "c"),
        (Reg.EPILOGUE, "epi"),
    ):
        chip.write_reg(reg, desc[key])
    return chip


def _snapshot(chip):
    return [chip.peek(w) for w in range(chip.spm_words)]


@pytest.mark.parametrize("case", list(BAD))
def test_descriptor_rule_broken_fails_in_two_cycles_without_touching_memory(case):
    chip = _chip_with({**GOOD, **BAD[case]})
    before = _snapshot(chip)
    chip.write_reg(Reg.CTRL, 1)
    assert chip.read_reg(Reg.STATUS) == 0b110 | ErrCode.DESCRIPTOR << 4
    assert chip.read_reg(Reg.CYCLES) == 2
    assert chip.read_reg(Reg.MACS) == 0
    assert chip.read_reg(Reg.ECC_CORR) == 0 and chip.read_reg(Reg.ECC_UNCORR) == 0
    assert _snapshot(chip) == before


@pytest.mark.parametrize("case", list(EDGE_OK))
def test_descriptor_at_the_limits_runs(case):
    chip = _chip_with({**GOOD, **EDGE_OK[case]})
    chip.write_reg(Reg.CTRL, 1)
    assert chip.read_reg(Reg.STATUS) == 0b010
    assert chip.read_reg(Reg.MACS) == 6 * 5 * 7


@pytest.mark.parametrize("n", [2, 8, 16])
def test_operands_past_the_largest_scratchpad_are_refused(n):
    # The largest build of each word width: the 16-bit address registers reach past its
    # end (n = 16) or exactly to it (n = 2, 8), and no sum wraps.
    bank = max_bank_words(n)
    spm = 2 * bank
    good = {"m": 6, "k": 5, "ncols": 7, "a": 0, "b": bank, "bias": 20, "c": 40, "epi": BIAS_EN}
    past = [{"a": bank - 1}, {"a": 0xFFFF}, {"b": spm - 1}, {"b": 0xFFFF}, {"bias": spm - 3},
            {"bias": 0xFFFF}, {"c": spm - 1}, {"c": 0xFFFF}]  # fmt: skip
    if spm <= 0xFFFF:
        past += [{"b": spm}, {"bias": spm}, {"c": spm}]
    chip = Accelerator(n=n, bank_words=bank)
    for case in past:
        desc = {**good, **case}
        for reg, key in ((Reg.DIM_M, "m"), (Reg.DIM_K, "k"), (Reg.DIM_N, "ncols"),
                         (Reg.A_ADDR, "a"), (Reg.B_ADDR, "b"), (Reg.BIAS_ADDR, "bias"),
                         (Reg.C_ADDR, "c"), (Reg.EPILOGUE, "epi")):  # fmt: skip
            chip.write_reg(reg, desc[key])
        chip.write_reg(Reg.CTRL, 1)
        assert chip.read_reg(Reg.STATUS) == 0b110 | ErrCode.DESCRIPTOR << 4, case
        assert chip.read_reg(Reg.CYCLES) == 2, case
    # The same job with B and C ending at the scratchpad's last word runs.
    nb = -(-7 // n)
    chip.write_reg(Reg.A_ADDR, 0)
    chip.write_reg(Reg.BIAS_ADDR, 20)
    chip.write_reg(Reg.B_ADDR, spm - 5 * nb - 6 * nb)
    chip.write_reg(Reg.C_ADDR, spm - 6 * nb)
    chip.write_reg(Reg.CTRL, 1)
    assert chip.read_reg(Reg.STATUS) == 0b010
    assert chip.read_reg(Reg.MACS) == 6 * 5 * 7
