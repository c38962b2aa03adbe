"""scc_top at edges the main regression passes by, found by mutation testing (``make
mutate``, docs/VERIFICATION.md): every bit of every PE's result reaching C both ways,
results small enough to pass the epilogue unsaturated at shifts 0 and 1, every address
bit beyond the bus map, and a write whose data comes after its address.

Each test checks absolute values (docs/REGISTERS.md, or A @ B without the model) and
compares the RTL with the model after each step.
"""

from __future__ import annotations

import itertools

import cocotb
import numpy as np
import pytest

from cocotb_tests import builds
from cocotb_tests.sim import run
from cocotb_tests.tb import SPM_BASE, SccTb
from cocotb_tests.test_scc import Job, job_done
from firmware_sim.accel import Reg, Resp

WINDOW_END = 1 << 20


@cocotb.test()
async def every_result_bit_of_every_pe_reaches_c_as_0_and_as_1(dut):
    """int32 jobs, no bias, ReLU or shift: C is the array's results as they are. Jobs run
    until each of the 32 bits of each PE's result has been 0 and 1 in some tile."""
    tb = SccTb(dut)
    await tb.start()
    n = tb.n
    rng = np.random.default_rng(cocotb.RANDOM_SEED)
    seen_one = np.zeros((n, n), dtype=np.uint32)
    seen_zero = np.zeros((n, n), dtype=np.uint32)
    for round_ in range(8):
        job = Job(tb, 2 * n, 60, 2 * n, seed=int(rng.integers(1 << 30)), bias=False,
                  relu=False, out_int32=True, shift=0)  # fmt: skip
        await job.program(tb)
        await tb.start_job()
        await job_done(tb, job)
        c = job.reference().astype(np.int64) & 0xFFFFFFFF
        for i, j in itertools.product(range(job.m), range(job.ncols)):
            seen_one[i % n, j % n] |= np.uint32(c[i, j])
            seen_zero[i % n, j % n] |= np.uint32(~c[i, j] & 0xFFFFFFFF)
        if (seen_one == 0xFFFFFFFF).all() and (seen_zero == 0xFFFFFFFF).all():
            tb.log.info("every result bit seen both ways after %d jobs", round_ + 1)
            break
    assert (seen_one == 0xFFFFFFFF).all() and (seen_zero == 0xFFFFFFFF).all(), (
        "the jobs left a result bit of some PE never 0 or never 1: the test's stimulus "
        "is too weak for its seed"
    )


@cocotb.test()
async def small_results_pass_the_epilogue_exactly_at_shift_0_and_1(dut):
    """Operands small enough that C fits int8 before the shift: with shift 0, C is A @ B
    (+ bias, ReLU) unchanged; with shift 1 it is halved, rounding half up."""
    tb = SccTb(dut)
    await tb.start()
    n = tb.n
    for shift, relu, bias in ((0, False, False), (1, False, False), (0, True, True),
                              (1, True, False)):  # fmt: skip
        job = Job(tb, 2 * n - 1, 5, 2 * n, seed=100 + shift, bias=bias, relu=relu,
                  out_int32=False, shift=shift)  # fmt: skip
        rng = np.random.default_rng(shift + 2 * relu)
        job.a = rng.integers(-3, 4, job.a.shape).astype(np.int8)
        job.b = rng.integers(-3, 4, job.b.shape).astype(np.int8)
        job.bias = rng.integers(-40, 41, job.bias.shape).astype(np.int32)
        reload(tb, job)
        assert np.abs(job.reference()).max() < 127
        await job.program(tb)
        await tb.start_job()
        await job_done(tb, job)


def reload(tb: SccTb, job: Job) -> None:
    """Load a job's (changed) operands again, into RTL and model."""
    from firmware_sim import accel
    from firmware_sim.accel.packing import words_to_int

    words: dict[int, int] = {}
    packed = [(job.place.a_addr, accel.pack_a(job.a, tb.n)),
              (job.place.b_addr, accel.pack_b(job.b, tb.n))]  # fmt: skip
    if job.bias_en:
        packed.append((job.place.bias_addr, accel.pack_bias(job.bias, tb.n)))
    for base, words_of in packed:
        for i, word in enumerate(words_of):
            words[base + i] = words_to_int(word)
    tb.preload(words)


@cocotb.test()
async def every_address_bit_beyond_the_map_is_refused(dut):
    """A read and a write at each address with one bit set above the register block, and
    at each scratchpad word address with one bit set at or beyond SPM_WORDS: SLVERR,
    RDATA 0, nothing written."""
    tb = SccTb(dut)
    await tb.start()
    value = 0x5A5A_A5A5
    await tb.write_word(0, 0x0123_4567_89AB_CDEF & ((1 << 8 * tb.n) - 1))
    registers = [1 << b for b in range(8, 19)]
    first_past = (2 * tb.bank_words * tb.parts * 4).bit_length() - 1
    window = [SPM_BASE | 1 << b for b in range(first_past, 19)]
    for addr in registers + window:
        assert await tb.read(addr) == 0, f"read {addr:#07x}"
        assert tb.model.bus_read(addr)[1] == Resp.SLVERR, f"{addr:#07x} is in the map"
        assert await tb.write(addr, value) == Resp.SLVERR, f"write {addr:#07x}"
    await tb.compare_registers()
    tb.compare_memory()


@cocotb.test()
async def a_write_whose_data_comes_late_waits_for_it(dut):
    """Write data offered cycles after its address (and an address after its data): the
    chip takes neither alone, and every value written reads back."""
    tb = SccTb(dut)
    await tb.start()
    for late in (tb.axil.write_if.w_channel, tb.axil.write_if.aw_channel):
        late.set_pause_generator(itertools.cycle([1, 1, 1, 0]))
        values = {reg: tb.rng.getrandbits(12) for reg in (Reg.DIM_M, Reg.DIM_K, Reg.DIM_N)}
        for reg, v in values.items():
            assert await tb.write(int(reg), v) == Resp.OKAY
        for word in (3, tb.bank_words + 5):
            await tb.write_word(word, tb.rng.getrandbits(8 * tb.n))
        late.set_pause_generator(itertools.repeat(0))  # None would leave it paused
        for reg, v in values.items():
            assert await tb.read(int(reg)) == v
    await tb.compare_registers()
    tb.compare_memory()


# ---- builds -------------------------------------------------------------------------------

BUILDS = builds.EDGES


@pytest.mark.rtl
@pytest.mark.parametrize("build", list(BUILDS))
def test_scc_edges(build: str) -> None:
    run("scc_top", "cocotb_tests.test_scc_edges", BUILDS[build])
