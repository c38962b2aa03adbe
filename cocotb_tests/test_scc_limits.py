"""scc_top at the largest scratchpads the register map allows (docs/REGISTERS.md "Build
parameters"): the bus window reaches the first and last words of both banks, a job
reads and writes the scratchpad's last words, and a descriptor that reaches past the
scratchpad is refused.

The scratchpads are too large to compare whole after each step: the tests compare the
words they touch, with the model and with absolute values.
"""

from __future__ import annotations

import cocotb
import numpy as np
import pytest
from cocotb.triggers import FallingEdge

from cocotb_tests import builds, fcov
from cocotb_tests.sim import hdl_parameters, run
from cocotb_tests.tb import SPM_BASE, SccTb
from cocotb_tests.test_scc import Job, cells_of
from firmware_sim.accel import ErrCode, Reg, Status

WINDOW_END = 1 << 20


@cocotb.test()
async def window_reaches_both_banks_ends(dut):
    """The first and last words of both banks written and read back through the window;
    the last part of the last word is the window's last bus word."""
    tb = SccTb(dut)
    await tb.start()
    bw = tb.bank_words
    assert SPM_BASE + 4 * (tb.parts * 2 * bw - 1) == WINDOW_END - 4
    ends = [0, 1, bw - 1, bw, bw + 1, 2 * bw - 2, 2 * bw - 1]
    values = {word: tb.rng.getrandbits(8 * tb.n) for word in ends}
    for word in ends:
        await tb.write_word(word, values[word])
    for word in ends:
        assert await tb.read_word(word) == values[word], f"word {word}"
        assert tb.data_word(word) == values[word], f"word {word} is not where the RTL holds it"
    tb.compare_words(ends)
    assert await tb.read(int(Reg.SPM_WORDS)) == 2 * bw


@cocotb.test()
async def a_job_at_the_scratchpads_end(dut):
    """The bias and A end at bank 0's last word, B and an int32 C at bank 1's: the job
    reads and writes the top words, and C is A @ B + bias."""
    tb = SccTb(dut)
    await tb.start()
    bw, n, k = tb.bank_words, tb.n, 5
    c_words = 4 * (n + 1)  # int32, one column block
    a_addr = bw - 2 * k  # two row blocks
    c_addr = 2 * bw - c_words
    addresses = {"a_addr": a_addr, "bias_addr": a_addr - 4, "b_addr": c_addr - k,
                 "c_addr": c_addr}  # fmt: skip
    job = Job(tb, n + 1, k, n, seed=11, bias=True, relu=False, out_int32=True, shift=0,
              addresses=addresses)  # fmt: skip
    assert job.place.c_addr + job.place.c_words == 2 * bw
    await job.program(tb)
    await tb.start_job()
    await tb.wait_done()
    await tb.compare_registers()
    tb.compare_words(list(range(a_addr - 4, bw)) + list(range(c_addr - k, 2 * bw)))
    await job.check_absolute(tb)


@cocotb.test()
async def descriptors_past_the_scratchpad_are_refused(dut):
    """A past bank 0's last word, or B, the bias or C starting or ending past the
    scratchpad's, each alone: the job ends at once with DESCRIPTOR and reads or writes
    nothing."""
    tb = SccTb(dut)
    await tb.start()
    bw, spm = tb.bank_words, 2 * tb.bank_words
    job = Job(tb, 5, 6, 7, seed=1, bias=True, out_int32=False)
    last = 0xFFFF  # the largest address a register holds
    breakers = [
        {"A_ADDR": bw - 1},
        {"A_ADDR": last},
        {"B_ADDR": spm - 1},
        {"B_ADDR": last},
        {"BIAS_ADDR": spm - 3},
        {"BIAS_ADDR": last},
        {"C_ADDR": spm - 1},
        {"C_ADDR": last},
    ]
    if spm <= last:
        breakers += [{"B_ADDR": spm}, {"BIAS_ADDR": spm}, {"C_ADDR": spm}]
    # One flipped bit in A and in B: a read of either would count in ECC_CORR.
    cells = cells_of(tb, job.place.a_addr, [3]) + cells_of(tb, job.place.b_addr, [4])
    await FallingEdge(dut.clk_i)
    tb.upset(cells)
    touched = [job.place.a_addr, job.place.b_addr, job.place.c_addr, spm - 1]
    for fields in breakers:
        await job.program(tb)
        await tb.program(**fields)
        await tb.start_job()
        await tb.wait_done()
        await tb.compare_registers()
        tb.compare_words(touched)
        assert await tb.read(int(Reg.STATUS)) == (
            Status.DONE | Status.ERROR | ErrCode.DESCRIPTOR << 4
        ), fields
        assert await tb.read(int(Reg.CYCLES)) == 2, fields
        assert await tb.read(int(Reg.MACS)) == 0, fields
        assert await tb.read(int(Reg.ECC_CORR)) == 0, fields
        assert not np.any([tb.data_word(job.place.c_addr + i) for i in range(job.place.c_words)])
        await tb.write(int(Reg.STATUS), 0x6)


@cocotb.test(skip=hdl_parameters().get("N") != 8)
async def jobs_of_the_largest_dimensions(dut):
    """M, K and then N at the largest value their registers hold (4095), the others small:
    C is A @ B + bias, with CYCLES and MACS by the formulas of docs/REGISTERS.md."""
    tb = SccTb(dut)
    await tb.start()
    largest = fcov.DIM_LARGEST
    for seed, (m, k, ncols) in enumerate([(largest, 1, 2), (3, largest, 2), (1, 2, largest)]):
        job = Job(tb, m, k, ncols, seed=60 + seed, bias=True, relu=False, out_int32=False,
                  shift=4)  # fmt: skip
        tb.log.info("job %d x %d x %d", m, k, ncols)
        await job.program(tb)
        await tb.start_job()
        await tb.wait_done(timeout_us=200_000)
        await tb.compare_registers()
        await job.check_absolute(tb)
        await tb.write(int(Reg.STATUS), 0x6)


# ---- builds -------------------------------------------------------------------------------

BUILDS = builds.LIMITS


@pytest.mark.rtl
@pytest.mark.parametrize("build", list(BUILDS))
def test_scc_limits(build: str) -> None:
    run("scc_top", "cocotb_tests.test_scc_limits", BUILDS[build])
