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
from cocotb.triggers import ClockCycles, FallingEdge
from cocotb.utils import get_sim_time

from cocotb_tests import builds
from cocotb_tests.sim import hdl_parameters, run
from cocotb_tests.tb import SPM_BASE, SccTb
from cocotb_tests.test_scc import Job, cells_of, job_done
from cocotb_tests.test_scc_control_faults import ControlTb
from firmware_sim.accel import Ctrl, ErrCode, FlopBit, Reg, RegCopy, Resp, Status

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


@cocotb.test()
async def counters_carry_into_and_hold_their_top_bits(dut):
    """Top bits of every 32-bit counter set by an upset (idle, or in a job for CYCLES and
    MACS, which a job clears): each counter goes on counting from there, and reads the
    bit it was given."""
    tb = ControlTb(dut)
    await tb.start()
    job = Job(tb, tb.n + 1, 6, tb.n, seed=9, bias=False, out_int32=False)
    await job.program(tb)
    top = {"cycles_q": 30, "macs_q": 29}
    await tb.run_faulty_job([(3, FlopBit(f"u_regs.{name}", bit)) for name, bit in top.items()])
    assert await tb.read(int(Reg.CYCLES)) == job.cycles(tb) + (1 << 30)
    assert await tb.read(int(Reg.MACS)) == job.m * job.ncols * job.k + (1 << 29)
    await tb.write(int(Reg.STATUS), 0x6)
    idle = [FlopBit(f"u_regs.{name}", bit) for name, bit in
            (("corr_q", 31), ("uncorr_q", 30), ("mismatch_q", 29))]  # fmt: skip
    if tb.scrub:
        idle.append(FlopBit("g_scrub.u_scrub.passes_q", 11))
    await FallingEdge(dut.clk_i)
    tb.upset(idle)
    await tb.compare_registers()
    if tb.scrub:
        assert await tb.read(int(Reg.SCRUB_PASSES)) == 1 << 11
        await FallingEdge(dut.clk_i)
        tb.upset([FlopBit("g_scrub.u_scrub.passes_q", b) for b in (11, 31)])
        assert await tb.read(int(Reg.SCRUB_PASSES)) == 1 << 31
    assert await tb.read(int(Reg.ECC_CORR)) == 1 << 31
    assert await tb.read(int(Reg.ECC_UNCORR)) == 1 << 30
    assert await tb.read(int(Reg.TMR_MISMATCH)) == 1 << 29
    # Counting on from the top bits: a corrected and an uncorrectable read, an outvoted copy.
    await FallingEdge(dut.clk_i)
    tb.upset(cells_of(tb, 5, [1]) + cells_of(tb, 6, [0, 2])
             + ([RegCopy("DIM_M", 1, 0)] if tb.tmr else []))  # fmt: skip
    await tb.read_word(5)
    await tb.read_word(6)
    await tb.compare_registers()
    assert await tb.read(int(Reg.ECC_CORR)) == (1 << 31) + 1
    assert await tb.read(int(Reg.ECC_UNCORR)) == (1 << 30) + 1
    if tb.tmr:
        assert await tb.read(int(Reg.TMR_MISMATCH)) == (1 << 29) + 1
    await tb.write(int(Reg.CTRL), int(Ctrl.CLEAR_COUNTERS))
    await tb.compare_registers()
    for reg in (Reg.ECC_CORR, Reg.ECC_UNCORR, Reg.TMR_MISMATCH, Reg.SCRUB_PTR,
                Reg.SCRUB_PASSES):
        assert await tb.read(int(reg)) == 0, reg
    tb.compare_memory()


@cocotb.test(skip=not hdl_parameters().get("SCRUB_EN", 1))
async def the_scrubber_steps_once_per_period_plus_two_cycles(dut):
    """SCRUB_PERIOD P, with bits 0 to 11 among the periods tried: one step (a word
    read, and written back if corrected) every P + 2 idle cycles, so that after W cycles
    SCRUB_PTR is W // (P + 2), give or take the step in progress."""
    tb = ControlTb(dut)
    await tb.start()
    for period in (1, 3, 0x2A5, 0x0D5A):
        await tb.write(int(Reg.CTRL), int(Ctrl.CLEAR_COUNTERS))
        await tb.write(int(Reg.SCRUB_PERIOD), period)
        start = get_sim_time("ns")
        await ClockCycles(dut.clk_i, (3 if period < 0x400 else 2) * (period + 2) + period // 2)
        await tb.write(int(Reg.SCRUB_PERIOD), 0)
        ran = int(get_sim_time("ns") - start) // 10  # cycles between the two writes
        await ClockCycles(dut.clk_i, 4)
        steps = int(dut.g_scrub.u_scrub.ptr_q.value)
        assert abs(steps - ran // (period + 2)) <= 1, (period, ran, steps)
        tb.model.scrub_steps(steps)
        await tb.compare_registers()
        assert await tb.read(int(Reg.SCRUB_PTR)) == steps
    # Across the end of the scratchpad: from its last word but one, three steps end a
    # pass and start the next at word 1.
    await tb.write(int(Reg.CTRL), int(Ctrl.CLEAR_COUNTERS))
    last = 2 * tb.bank_words - 2
    await FallingEdge(dut.clk_i)
    tb.upset([FlopBit("g_scrub.u_scrub.ptr_q", b) for b in range(16) if last >> b & 1])
    await tb.write(int(Reg.SCRUB_PERIOD), 0x2A5)
    await ClockCycles(dut.clk_i, 3 * (0x2A5 + 2) + 0x2A5 // 2)
    await tb.write(int(Reg.SCRUB_PERIOD), 0)
    await ClockCycles(dut.clk_i, 4)
    scrub = dut.g_scrub.u_scrub
    assert (int(scrub.ptr_q.value), int(scrub.passes_q.value)) == (1, 1)
    tb.model.scrub_steps(3)
    await tb.compare_registers()
    assert await tb.read(int(Reg.SCRUB_PTR)) == 1
    assert await tb.read(int(Reg.SCRUB_PASSES)) == 1
    tb.compare_memory()


@cocotb.test()
async def every_single_bit_error_is_corrected_and_pairs_are_detected(dut):
    """Each bit of a codeword flipped alone in a word of its own: the read returns the data
    written, OKAY, and ECC_CORR counts one each; pairs of flipped data and check bits:
    SLVERR with the raw data, ECC_UNCORR counts them (with ECC)."""
    tb = SccTb(dut)
    await tb.start()
    if not tb.ecc:
        return
    values = {w: tb.rng.getrandbits(8 * tb.n) for w in range(tb.cw + 8)}
    tb.preload(values)
    await FallingEdge(dut.clk_i)
    tb.upset([c for bit in range(tb.cw) for c in cells_of(tb, bit, [bit])])
    for bit in range(tb.cw):
        assert await tb.read_word(bit) == values[bit], f"bit {bit} not corrected"
    assert await tb.read(int(Reg.ECC_CORR)) == tb.cw
    pairs = [(0, 8 * tb.n), (1, tb.cw - 1), (8 * tb.n - 1, 8 * tb.n + 1), (3, 17),
             (8 * tb.n + 2, 8 * tb.n + 3), (5, 6), (30, 31), (12, tb.cw - 2)]
    await FallingEdge(dut.clk_i)
    tb.upset([c for k, pair in enumerate(pairs) for c in cells_of(tb, tb.cw + k, list(pair))])
    for k in range(len(pairs)):
        await tb.read_word(tb.cw + k)
    assert await tb.read(int(Reg.ECC_UNCORR)) == len(pairs)
    await tb.compare_registers()
    tb.compare_memory()


EPILOGUE_VALUES = sorted({s * ((1 << b) + d) for b in range(0, 31) for d in (-1, 0, 1)
                          for s in (1, -1)} | {-(1 << 31), (1 << 31) - 1, 0, 127, 128, -128,
                                                -129, -(1 << 22) - 5, 255, 256})  # fmt: skip


@cocotb.test()
async def the_epilogue_of_chosen_values(dut):
    """A = 0, so each result is its column's bias: the epilogue of values at and next to
    every power of two (both signs) and the int8 bounds, under several shifts, with and
    without ReLU, int8 and int32 out. C is checked against the reference."""
    tb = SccTb(dut)
    await tb.start()
    values = np.array([v for v in EPILOGUE_VALUES if -(1 << 31) <= v < 1 << 31], np.int64)
    for shift, relu, out32 in ((0, False, False), (1, False, False), (7, True, False),
                               (22, False, False), (31, False, False), (0, True, True)):
        job = Job(tb, 1, 1, len(values), seed=shift, bias=True, relu=relu, out_int32=out32,
                  shift=shift)  # fmt: skip
        job.a = np.zeros(job.a.shape, np.int8)
        job.bias = values.astype(np.int32)
        reload(tb, job)
        await job.program(tb)
        await tb.start_job()
        await job_done(tb, job)


@cocotb.test()
async def configuration_while_busy_reads_and_refuses_writes(dut):
    """During a job every configuration register reads OKAY with its value, and a write
    to it is SLVERR and changes nothing."""
    tb = SccTb(dut)
    await tb.start()
    job = Job(tb, 2 * tb.n, 40, 2 * tb.n, seed=21, bias=True, out_int32=False)
    await job.program(tb)
    await tb.start_job()
    assert int(dut.irq_o.value) == 0
    # The model ran the whole job at START, so these accesses go to the RTL alone; the
    # configuration they read is the model's, which the job does not change.
    for reg in (Reg.IRQ_EN, Reg.DIM_M, Reg.DIM_K, Reg.A_ADDR, Reg.EPILOGUE, Reg.SCRUB_PERIOD):
        value = tb.model.read_reg(reg)
        read = await tb.axil.read(int(reg), 4)
        assert (int.from_bytes(read.data, "little"), int(read.resp)) == (value, Resp.OKAY), reg
        write = await tb.axil.write(int(reg), (~value & 0xFFFF_FFFF).to_bytes(4, "little"))
        assert int(write.resp) == Resp.SLVERR, reg
        read = await tb.axil.read(int(reg), 4)
        assert int.from_bytes(read.data, "little") == value, reg
    assert int(dut.u_seq.busy_o.value), "the job ended before the accesses"
    await job_done(tb, job)


@cocotb.test()
async def regions_that_reach_past_the_16_bit_address_space_are_refused(dut):
    """B, the bias or C starting near 0xFFFF, so that its end passes 65536 (where a
    16-bit sum would wrap to a small address inside the scratchpad): DESCRIPTOR, nothing
    read or written."""
    tb = SccTb(dut)
    await tb.start()
    job = Job(tb, 5, 6, 7, seed=1, bias=True, out_int32=False)
    for fields in ({"C_ADDR": 0xFFFF}, {"C_ADDR": 0xFFF8}, {"BIAS_ADDR": 0xFFFE},
                   {"B_ADDR": 0xFFFC}):  # fmt: skip
        await job.program(tb)
        await tb.program(**fields)
        await tb.start_job()
        await tb.wait_done()
        assert await tb.read(int(Reg.STATUS)) == (
            Status.DONE | Status.ERROR | ErrCode.DESCRIPTOR << 4), fields
        assert await tb.read(int(Reg.CYCLES)) == 2, fields
        await job_done(tb)


@cocotb.test()
async def a_job_of_more_than_64_column_blocks(dut):
    """C with 70 column blocks (K = 1, two rows): C is A @ B in every block."""
    tb = SccTb(dut)
    await tb.start()
    for m, ncols in ((2, 70 * tb.n - 1),):
        job = Job(tb, m, 1, ncols, seed=m, bias=False, relu=False, out_int32=False, shift=0)
        await job.program(tb)
        await tb.start_job()
        await job_done(tb, job)


@cocotb.test(skip=not hdl_parameters().get("TMR_EN", 1))
async def a_whole_copy_flipped_is_outvoted_by_the_other_two(dut):
    """Each configuration register all ones, then all zeros, with one whole copy flipped:
    the two others outvote it at every bit, and the register reads its value."""
    tb = SccTb(dut)
    await tb.start()
    widths = {"IRQ_EN": 1, "DIM_M": 12, "DIM_K": 12, "DIM_N": 12, "A_ADDR": 16,
              "B_ADDR": 16, "BIAS_ADDR": 16, "C_ADDR": 16, "EPILOGUE": 8}
    epilogue_ones = 0x1F07  # the stored bits: SHIFT and the three flags
    for name, width in widths.items():
        ones = epilogue_ones if name == "EPILOGUE" else (1 << width) - 1
        for value in (ones, 0):
            await tb.write(int(Reg[name]), value)
            for copy in range(3):
                await FallingEdge(dut.clk_i)
                tb.upset([RegCopy(name, copy, bit) for bit in range(width)])
                assert await tb.read(int(Reg[name])) == value, (name, value, copy)
    await tb.compare_registers()


@cocotb.test()
async def every_double_error_syndrome_is_reported_double(dut):
    """For each even, non-zero syndrome that two flipped bits of a codeword can give, a
    word with such a pair: the read is SLVERR with the raw data, never "corrected" into
    a third bit (with ECC)."""
    tb = SccTb(dut)
    await tb.start()
    if not tb.ecc:
        return
    dw = 8 * tb.n
    column = [tb.code.encode(1 << b) for b in range(dw)] + [1 << p for p in
                                                            range(tb.code.check_bits)]
    pairs: dict[int, tuple[int, int]] = {}
    for a, b in itertools.combinations(range(tb.cw), 2):
        pairs.setdefault(column[a] ^ column[b], (a, b))
    base = 2 * tb.cw
    values = {base + k: tb.rng.getrandbits(dw) for k in range(len(pairs))}
    tb.preload(values)
    await FallingEdge(dut.clk_i)
    tb.upset([c for k, pair in enumerate(pairs.values()) for c in cells_of(tb, base + k,
                                                                            list(pair))])
    for k in range(len(pairs)):
        await tb.read_word(base + k)
    assert await tb.read(int(Reg.ECC_UNCORR)) == len(pairs)
    assert await tb.read(int(Reg.ECC_CORR)) == 0


# ---- builds -------------------------------------------------------------------------------

BUILDS = builds.EDGES


@pytest.mark.rtl
@pytest.mark.parametrize("build", list(BUILDS))
def test_scc_edges(build: str) -> None:
    run("scc_top", "cocotb_tests.test_scc_edges", BUILDS[build])
