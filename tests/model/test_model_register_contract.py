"""Rules of docs/REGISTERS.md that no other model test holds: the SECDED tables as
written in the document, ERR_CODE after the W1C clears, START with CLEAR_COUNTERS,
SOFT_RESET and the scratchpad's staging register, and bias padding."""

import re
from pathlib import Path

import numpy as np

from firmware_sim.accel import SPM_BASE, Accelerator, ErrCode, Reg, Resp
from firmware_sim.accel.secded import WIDTHS, code_for

DOC = Path(__file__).resolve().parents[2] / "docs" / "REGISTERS.md"
OKAY, SLVERR = Resp.OKAY, Resp.SLVERR


def _doc_matrices() -> dict[int, tuple[int, list[int]]]:
    """{DW: (P, masks)} as the ECC section of REGISTERS.md writes them."""
    text = DOC.read_text()
    found: dict[int, tuple[int, list[int]]] = {}
    heads = list(re.finditer(r"^DW = (\d+) \(N = \d+\), P = (\d+):$", text, re.M))
    for head, nxt in zip(heads, heads[1:] + [None], strict=True):
        body = text[head.end() : nxt.start() if nxt else len(text)]
        rows = re.findall(r"^\| (\d+) \| `0x([0-9A-F_]+)` \|$", body, re.M)
        assert [int(p) for p, _ in rows] == list(range(len(rows))), head.group(0)
        found[int(head.group(1))] = (
            int(head.group(2)),
            [int(m.replace("_", ""), 16) for _, m in rows],
        )
    return found


def test_the_documented_secded_matrices_are_the_chips():
    doc = _doc_matrices()
    assert sorted(doc) == sorted(WIDTHS)
    for dw in WIDTHS:
        code = code_for(dw)
        assert doc[dw] == (code.check_bits, list(code.masks)), f"DW = {dw}"


def test_the_documented_column_rule_generates_the_matrices():
    # Odd-weight subsets of 3 or more check bits, by size, then lexicographically.
    for dw in WIDTHS:
        p = code_for(dw).check_bits
        subsets = sorted(
            (s for s in range(1 << p) if s.bit_count() % 2 and s.bit_count() >= 3),
            key=lambda s: (s.bit_count(), [b for b in range(p) if s >> b & 1]),
        )
        assert tuple(subsets[:dw]) == code_for(dw).columns, f"DW = {dw}"
        fewer = [s for s in range(1 << (p - 1)) if s.bit_count() % 2 and s.bit_count() >= 3]
        assert len(fewer) < dw  # P is the smallest that has enough columns


def _job(chip, m=0):
    """A one-element job (m = 0: a descriptor failure)."""
    chip.write_reg(Reg.DIM_M, m)
    chip.write_reg(Reg.DIM_K, 1)
    chip.write_reg(Reg.DIM_N, 1)
    chip.write_reg(Reg.B_ADDR, chip.bank_words)
    chip.write_reg(Reg.C_ADDR, 8)
    chip.write_reg(Reg.CTRL, 1)


def test_err_code_stays_after_done_and_error_are_cleared_until_the_next_start():
    chip = Accelerator()
    _job(chip)
    chip.write_reg(Reg.STATUS, 0b110)
    assert chip.read_reg(Reg.STATUS) == ErrCode.DESCRIPTOR << 4
    chip.write_reg(Reg.CTRL, 0b100)  # CLEAR_COUNTERS leaves it too
    assert chip.read_reg(Reg.STATUS) == ErrCode.DESCRIPTOR << 4
    _job(chip, m=1)
    assert chip.read_reg(Reg.STATUS) == 0b010  # DONE, ERR_CODE NONE


def test_start_with_clear_counters_counts_the_job_from_zero():
    chip = Accelerator(n=4)
    chip.write_word(2, 0x55)
    chip.flip(chip.layout.cell_of(2, 1))
    chip.read_word(2)
    chip.read_word(2)
    assert chip.read_reg(Reg.ECC_CORR) == 2
    a = np.ones((4, 2), dtype=np.int8)
    b = np.ones((2, 4), dtype=np.int8)
    place = chip.load_job(a, b)
    chip.flip(chip.layout.cell_of(place.a_addr, 3))
    chip.write_reg(Reg.CTRL, 0b101)
    assert chip.read_reg(Reg.STATUS) == 0b010
    assert chip.read_reg(Reg.ECC_CORR) == 1  # the job's read, none from before


def _part(chip, word, part):
    return SPM_BASE + 4 * (chip.parts * word + part)


def test_soft_reset_clears_the_staging_register_and_the_read_latch():
    chip = Accelerator(n=8)
    chip.write_word(3, 0x1111_2222_3333_4444)
    assert chip.bus_read(_part(chip, 3, 0)) == (0x3333_4444, OKAY)
    assert chip.bus_write(_part(chip, 5, 0), 0xAAAA_AAAA) == OKAY
    assert chip.bus_write(int(Reg.CTRL), 0b010) == OKAY
    assert chip.bus_read(_part(chip, 3, 1)) == (0, OKAY)  # the latch was cleared
    assert chip.bus_write(_part(chip, 5, 1), 0xBBBB_BBBB) == OKAY
    assert chip.peek(5)[0] == 0xBBBB_BBBB << 32  # the staged part was lost


def test_slverr_reads_return_zero_but_for_an_uncorrectable_word():
    chip = Accelerator(n=4, bank_words=64)
    assert chip.bus_read(0x0FC) == (0, SLVERR)  # no register there
    assert chip.bus_read(0x40000) == (0, SLVERR)  # in neither range
    assert chip.bus_read(_part(chip, 128, 0)) == (0, SLVERR)  # past the scratchpad
    chip.write_word(7, 0x0F0F_0F0F)
    chip.flip(chip.layout.cell_of(7, 0))
    chip.flip(chip.layout.cell_of(7, 9))
    assert chip.bus_read(_part(chip, 7, 0)) == (0x0F0F_0F0F ^ 1 ^ 1 << 9, SLVERR)


def test_bias_padding_is_read_but_never_used():
    chip = Accelerator(n=4)
    a = np.arange(8, dtype=np.int8).reshape(4, 2)
    b = np.ones((2, 3), dtype=np.int8)  # DIM_N = 3: column 3 of the block is padding
    bias = np.array([1, 2, 3], dtype=np.int32)
    place = chip.load_job(a, b, bias=bias, out_int32=True)
    chip.write_reg(Reg.CTRL, 1)
    clean = chip.dump(place.c_addr, 4 * 4)
    # Bias word q holds bytes 4q .. 4q+3 of the vector (N = 4): word 3 is bias[3], padding.
    chip.write_word(place.bias_addr + 3, 0x7F5A_A5F7)
    chip.write_reg(Reg.CTRL, 1)
    assert chip.read_reg(Reg.STATUS) == 0b010
    assert np.array_equal(chip.dump(place.c_addr, 4 * 4), clean)
    c = chip.unpack_c(clean, 4, 3, int32=True)
    assert np.array_equal(c, a.astype(np.int32) @ b.astype(np.int32) + bias)
    # An uncorrectable padding byte still ends the job with ECC.
    chip.flip(chip.layout.cell_of(place.bias_addr + 3, 24))
    chip.flip(chip.layout.cell_of(place.bias_addr + 3, 25))
    chip.write_reg(Reg.CTRL, 1)
    assert chip.read_reg(Reg.STATUS) >> 4 == ErrCode.ECC
