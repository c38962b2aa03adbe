"""Register block and scratchpad window of the model, as the AXI4-Lite port sees them."""

import numpy as np
import pytest

from firmware_sim.accel import SPM_BASE, Accelerator, Ctrl, ErrCode, Reg, RegCopy, Resp
from testbed.sitemap_builds import ARRAY_SIZES, WINDOW_PARTS, BuildError, max_bank_words

OKAY, SLVERR = Resp.OKAY, Resp.SLVERR
CONFIG_MASKS = {
    Reg.IRQ_EN: 0x1,
    Reg.DIM_M: 0xFFF,
    Reg.DIM_K: 0xFFF,
    Reg.DIM_N: 0xFFF,
    Reg.A_ADDR: 0xFFFF,
    Reg.B_ADDR: 0xFFFF,
    Reg.BIAS_ADDR: 0xFFFF,
    Reg.C_ADDR: 0xFFFF,
    Reg.EPILOGUE: 0x1F07,
    Reg.SCRUB_PERIOD: 0xFFFF,
}
READ_ONLY = [
    Reg.ID,
    Reg.PARAMS,
    Reg.SPM_WORDS,
    Reg.CYCLES,
    Reg.MACS,
    Reg.ECC_CORR,
    Reg.ECC_UNCORR,
    Reg.TMR_MISMATCH,
    Reg.SCRUB_PTR,
    Reg.SCRUB_PASSES,
]


def _spm_addr(chip, word, part=0):
    return SPM_BASE + 4 * (chip.parts * word + part)


def test_identity_registers():
    chip = Accelerator(n=8, bank_words=512, interleave=4, ecc=True, scrub=False, tmr=True)
    assert chip.bus_read(0x000) == (0x5CC10100, OKAY)
    assert chip.bus_read(0x004) == (8 | 1 << 8 | 0 << 9 | 1 << 10 | 2 << 12, OKAY)
    assert chip.bus_read(0x008) == (1024, OKAY)
    bare = Accelerator(n=16, ecc=False, scrub=False, tmr=False)
    assert bare.bus_read(0x004) == (16, OKAY)


def test_every_register_resets_to_zero_but_the_identity():
    chip = Accelerator()
    for reg in Reg:
        if reg not in (Reg.ID, Reg.PARAMS, Reg.SPM_WORDS):
            assert chip.bus_read(int(reg)) == (0, OKAY), reg.name


@pytest.mark.parametrize("reg", list(CONFIG_MASKS))
def test_configuration_writes_are_truncated_to_their_fields(reg):
    chip = Accelerator()
    assert chip.bus_write(int(reg), 0xFFFF_FFFF) == OKAY
    assert chip.bus_read(int(reg)) == (CONFIG_MASKS[reg], OKAY)
    assert chip.bus_write(int(reg), 0x1234_5678) == OKAY
    assert chip.bus_read(int(reg)) == (0x1234_5678 & CONFIG_MASKS[reg], OKAY)


@pytest.mark.parametrize("reg", READ_ONLY)
def test_writes_to_read_only_registers_are_refused_and_change_nothing(reg):
    chip = Accelerator()
    before = chip.bus_read(int(reg))
    assert chip.bus_write(int(reg), 0xFFFF_FFFF) == SLVERR
    assert chip.bus_read(int(reg)) == before


@pytest.mark.parametrize("addr", [0x03C, 0x03F, 0x05C, 0x0FC, 0x100, 0x7FFFC, 0x4013])
def test_unmapped_addresses_answer_slverr(addr):
    chip = Accelerator()
    assert chip.bus_read(addr) == (0, SLVERR)
    assert chip.bus_write(addr, 1) == SLVERR


def test_registers_ignore_the_low_two_address_bits():
    chip = Accelerator()
    assert chip.bus_read(0x003) == (0x5CC10100, OKAY)
    assert chip.bus_write(0x016, 1) == OKAY
    assert chip.read_reg(Reg.IRQ_EN) == 1
    assert chip.bus_write(0x009, 1) == SLVERR  # SPM_WORDS is read-only


def test_window_ignores_the_low_two_address_bits():
    chip = Accelerator(n=4)
    assert chip.bus_write(SPM_BASE + 4 * 3 + 2, 0x0BAD_F00D) == OKAY
    assert chip.peek(3)[0] == 0x0BAD_F00D
    assert chip.bus_read(SPM_BASE + 4 * 3 + 1) == (0x0BAD_F00D, OKAY)


def test_ctrl_reads_zero():
    chip = Accelerator()
    assert chip.bus_write(int(Reg.CTRL), 0) == OKAY
    assert chip.bus_read(int(Reg.CTRL)) == (0, OKAY)


def _finished_job(chip, m=4, error=False):
    chip.write_reg(Reg.DIM_M, 0 if error else m)
    chip.write_reg(Reg.DIM_K, 1)
    chip.write_reg(Reg.DIM_N, 1)
    chip.write_reg(Reg.B_ADDR, chip.bank_words)
    chip.write_reg(Reg.C_ADDR, 8)
    chip.write_reg(Reg.CTRL, 1)


def test_status_done_and_error_are_write_one_to_clear_and_drive_irq():
    chip = Accelerator()
    _finished_job(chip, error=True)
    assert chip.read_reg(Reg.STATUS) == 0b110 | ErrCode.DESCRIPTOR << 4
    assert not chip.irq
    chip.write_reg(Reg.IRQ_EN, 1)
    assert chip.irq
    chip.write_reg(Reg.STATUS, 0b100)  # ERROR only
    assert chip.read_reg(Reg.STATUS) == 0b010 | ErrCode.DESCRIPTOR << 4
    assert chip.irq
    chip.write_reg(Reg.STATUS, 0xF1)  # BUSY and ERR_CODE are not writable
    assert chip.read_reg(Reg.STATUS) == 0b010 | ErrCode.DESCRIPTOR << 4
    chip.write_reg(Reg.STATUS, 0b010)
    assert chip.read_reg(Reg.STATUS) == ErrCode.DESCRIPTOR << 4
    assert not chip.irq


def test_soft_reset_returns_registers_and_counters_but_keeps_memory():
    chip = Accelerator(n=4)
    chip.write_word(3, 0xDEADBEEF)
    chip.write_word(30, 0x01020304)
    chip.flip(chip.layout.cell_of(30, 0))
    assert chip.read_word(30) == (0x01020304, 1)
    _finished_job(chip)
    chip.write_reg(Reg.IRQ_EN, 1)
    chip.write_reg(Reg.SCRUB_PERIOD, 5)
    assert chip.read_reg(Reg.ECC_CORR) == 1 and chip.read_reg(Reg.CYCLES) > 0
    assert chip.bus_write(int(Reg.CTRL), 0b010) == OKAY
    for reg in Reg:
        if reg not in (Reg.ID, Reg.PARAMS, Reg.SPM_WORDS):
            assert chip.read_reg(reg) == 0, reg.name
    assert not chip.irq
    assert chip.peek(3)[0] == 0xDEADBEEF
    assert chip.peek(30)[0] == 0x01020304 ^ 1  # the flip is still there
    chip.reset()
    assert chip.peek(3)[0] == 0xDEADBEEF


def test_clear_counters_clears_the_five_counters_only():
    chip = Accelerator(n=4, bank_words=16)
    chip.write_word(2, 0x55)
    chip.flip(chip.layout.cell_of(2, 1))
    chip.flip(chip.layout.cell_of(5, 1))
    chip.flip(chip.layout.cell_of(5, 2))
    chip.read_word(2)
    chip.read_word(5)
    chip.flip(RegCopy("DIM_M", 1, 0))
    chip.scrub_steps(3)
    _finished_job(chip)
    assert chip.read_reg(Reg.ECC_CORR) and chip.read_reg(Reg.ECC_UNCORR)
    assert chip.read_reg(Reg.TMR_MISMATCH) == 1 and chip.read_reg(Reg.SCRUB_PTR) == 3
    cycles, macs = chip.read_reg(Reg.CYCLES), chip.read_reg(Reg.MACS)
    chip.write_reg(Reg.CTRL, 0b100)
    for reg in (Reg.ECC_CORR, Reg.ECC_UNCORR, Reg.TMR_MISMATCH, Reg.SCRUB_PTR, Reg.SCRUB_PASSES):
        assert chip.read_reg(reg) == 0
    assert (chip.read_reg(Reg.CYCLES), chip.read_reg(Reg.MACS)) == (cycles, macs)
    assert chip.read_reg(Reg.DIM_M) == 4 and chip.read_reg(Reg.STATUS) == 0b010


def test_soft_reset_wins_over_start_in_the_same_write():
    chip = Accelerator()
    _finished_job(chip)
    chip.write_reg(Reg.STATUS, 0b110)
    chip.write_reg(Reg.DIM_M, 4)
    chip.write_reg(Reg.CTRL, 0b011)
    assert chip.read_reg(Reg.STATUS) == 0 and chip.read_reg(Reg.DIM_M) == 0


@pytest.mark.parametrize("n", [2, 4])
def test_narrow_words_go_straight_to_memory(n):
    chip = Accelerator(n=n)
    dw_mask = (1 << (8 * n)) - 1
    assert chip.bus_write(_spm_addr(chip, 5), 0xA5C3_9617) == OKAY
    assert chip.peek(5)[0] == 0xA5C3_9617 & dw_mask
    assert chip.bus_read(_spm_addr(chip, 5)) == (0xA5C3_9617 & dw_mask, OKAY)


@pytest.mark.parametrize("n", [8, 16])
def test_wide_words_are_staged_and_latched(n):
    chip = Accelerator(n=n)
    parts = n // 4
    value = int.from_bytes(np.random.default_rng(n).bytes(n), "little")
    word = 7
    for p in range(parts - 1):
        assert chip.bus_write(_spm_addr(chip, word, p), value >> (32 * p) & 0xFFFF_FFFF) == OKAY
        assert chip.peek(word)[0] == 0  # nothing written before the last part
    assert chip.bus_write(_spm_addr(chip, word, parts - 1), value >> (32 * (parts - 1))) == OKAY
    assert chip.peek(word)[0] == value
    assert chip.read_word(word) == (value, 0)
    # Part 0 reads memory and latches the rest; the other parts do not touch memory.
    assert chip.bus_read(_spm_addr(chip, word, 0)) == (value & 0xFFFF_FFFF, OKAY)
    chip.poke(word, 0)
    for p in range(1, parts):
        assert chip.bus_read(_spm_addr(chip, word, p)) == (value >> (32 * p) & 0xFFFF_FFFF, OKAY)


def test_the_staging_register_is_shared_by_all_words():
    chip = Accelerator(n=8)
    chip.bus_write(_spm_addr(chip, 1, 0), 0x1111_1111)
    chip.bus_write(_spm_addr(chip, 2, 1), 0x2222_2222)
    assert chip.peek(2)[0] == 0x2222_2222_1111_1111
    assert chip.peek(1)[0] == 0


def test_wide_reads_of_later_parts_do_not_count_errors():
    chip = Accelerator(n=8)
    chip.write_word(4, 0x0123_4567_89AB_CDEF)
    chip.flip(chip.layout.cell_of(4, 40))
    assert chip.bus_read(_spm_addr(chip, 4, 0)) == (0x89AB_CDEF, OKAY)
    assert chip.bus_read(_spm_addr(chip, 4, 1)) == (0x0123_4567, OKAY)
    assert chip.bus_read(_spm_addr(chip, 4, 1)) == (0x0123_4567, OKAY)
    assert chip.read_reg(Reg.ECC_CORR) == 1


def test_scratchpad_words_past_the_end_answer_slverr_and_change_nothing():
    chip = Accelerator(n=8, bank_words=64)
    chip.bus_write(_spm_addr(chip, 0, 0), 0xAAAA_AAAA)
    assert chip.bus_write(_spm_addr(chip, 128, 0), 0x5555_5555) == SLVERR
    assert chip.bus_write(_spm_addr(chip, 128, 1), 0x5555_5555) == SLVERR
    assert chip.bus_read(_spm_addr(chip, 128, 0)) == (0, SLVERR)
    assert chip.bus_read(_spm_addr(chip, 128, 1)) == (0, SLVERR)
    assert chip.bus_read(0xFFFFC) == (0, SLVERR)
    chip.bus_write(_spm_addr(chip, 0, 1), 0)
    assert chip.peek(0)[0] == 0xAAAA_AAAA  # the staged part survived the refused write


def test_uncorrectable_read_returns_raw_data_with_slverr_and_counts():
    chip = Accelerator(n=8)
    chip.write_word(3, 0x1122_3344_5566_7788)
    chip.flip(chip.layout.cell_of(3, 0))
    chip.flip(chip.layout.cell_of(3, 63))
    raw = 0x1122_3344_5566_7788 ^ 1 ^ 1 << 63
    assert chip.bus_read(_spm_addr(chip, 3, 0)) == (raw & 0xFFFF_FFFF, SLVERR)
    assert chip.bus_read(_spm_addr(chip, 3, 1)) == (raw >> 32, OKAY)
    assert chip.read_reg(Reg.ECC_UNCORR) == 1 and chip.read_reg(Reg.ECC_CORR) == 0
    assert chip.peek(3)[0] == raw  # reads never write corrections back


def test_corrected_read_returns_good_data_and_leaves_memory_alone():
    chip = Accelerator(n=4)
    chip.write_word(6, 0xCAFEF00D)
    chip.flip(chip.layout.cell_of(6, 35))  # a check bit (DW = 32)
    chip.flip(chip.layout.cell_of(7, 4))
    assert chip.bus_read(_spm_addr(chip, 6)) == (0xCAFEF00D, OKAY)
    assert chip.bus_read(_spm_addr(chip, 7)) == (0, OKAY)
    assert chip.bus_read(_spm_addr(chip, 7)) == (0, OKAY)
    assert chip.read_reg(Reg.ECC_CORR) == 3
    assert chip.peek(7)[0] == 1 << 4


def test_bus_arguments_outside_the_bus_are_programming_errors():
    chip = Accelerator()
    with pytest.raises(ValueError, match="20-bit"):
        chip.bus_read(0x100000)
    with pytest.raises(ValueError, match="32-bit"):
        chip.bus_write(0x14, 1 << 32)


@pytest.mark.parametrize("strobe", [0x0, 0x1, 0x2, 0x3, 0x5, 0x7, 0x8, 0xC, 0xE])
def test_partial_writes_answer_slverr_and_change_nothing(strobe):
    chip = Accelerator(n=8)
    chip.write_reg(Reg.DIM_M, 0x123)
    assert chip.bus_write(int(Reg.DIM_M), 0xFFF, strobe) == SLVERR
    assert chip.bus_write(int(Reg.CTRL), Ctrl.START | Ctrl.SOFT_RESET, strobe) == SLVERR
    assert chip.read_reg(Reg.DIM_M) == 0x123 and chip.read_reg(Reg.STATUS) == 0
    # A staged part and a committing part of a scratchpad word.
    assert chip.bus_write(_spm_addr(chip, 5, 0), 0x1111_1111) == OKAY
    assert chip.bus_write(_spm_addr(chip, 5, 0), 0x2222_2222, strobe) == SLVERR
    assert chip.bus_write(_spm_addr(chip, 6, 1), 0x3333_3333, strobe) == SLVERR
    assert chip.peek(6)[0] == 0
    assert chip.bus_write(_spm_addr(chip, 5, 1), 0x4444_4444) == OKAY
    assert chip.peek(5)[0] == 0x4444_4444_1111_1111


def test_a_write_with_all_four_strobes_is_a_plain_write():
    chip = Accelerator(n=4)
    assert chip.bus_write(int(Reg.DIM_K), 7, 0xF) == OKAY
    assert chip.bus_write(_spm_addr(chip, 9), 0xCAFE_F00D, 0b1111) == OKAY
    assert chip.read_reg(Reg.DIM_K) == 7 and chip.peek(9)[0] == 0xCAFE_F00D


@pytest.mark.parametrize("strobe", [-1, 0x10])
def test_a_strobe_that_is_no_wstrb_is_a_programming_error(strobe):
    with pytest.raises(ValueError, match="4-bit WSTRB"):
        Accelerator().bus_write(int(Reg.DIM_K), 1, strobe)


@pytest.mark.parametrize("n", ARRAY_SIZES)
def test_the_window_reaches_every_bank_end_of_the_largest_build(n):
    chip = Accelerator(n=n, bank_words=max_bank_words(n))
    bw = chip.bank_words
    assert 2 * bw * chip.parts <= WINDOW_PARTS
    for word in (0, bw - 1, bw, 2 * bw - 1):
        value = int.from_bytes(np.random.default_rng(word).bytes(n), "little")
        for p in range(chip.parts):
            addr = _spm_addr(chip, word, p)
            assert addr <= 0xFFFFC
            assert chip.bus_write(addr, value >> (32 * p) & 0xFFFF_FFFF) == OKAY
        assert chip.peek(word)[0] == value
        got = sum(chip.bus_read(_spm_addr(chip, word, p))[0] << (32 * p) for p in range(chip.parts))
        assert got == value


@pytest.mark.parametrize("n", ARRAY_SIZES)
def test_a_bank_the_window_cannot_reach_is_no_build(n):
    with pytest.raises(BuildError, match="'bank_words'"):
        Accelerator(n=n, bank_words=2 * max_bank_words(n))


def test_n16_banks_stop_at_16384_words():
    assert max_bank_words(16) == 16384 and max_bank_words(8) == 32768
    with pytest.raises(BuildError, match=r"at most 16384 with 'n' 16 \(.* 131072 .*\), got 32768"):
        Accelerator(n=16, bank_words=32768)
