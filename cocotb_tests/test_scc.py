"""scc_top against the bit-exact model: registers, bus window, jobs, ECC, scrubber, TMR, faults.

Every test runs each bus transaction on RTL and model, compares the answers, and
compares all registers and the whole scratchpad after each job.
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
import pytest
from cocotb.handle import Force, Release
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from cocotb_tests import builds, fcov
from cocotb_tests.sim import SIMULATOR_ENV, hdl_parameters, run
from cocotb_tests.tb import SPM_BASE, SccTb
from firmware_sim import accel
from firmware_sim.accel import Epilogue, ErrCode, Reg, Resp, Status
from firmware_sim.accel.packing import words_to_int
from firmware_sim.accel.reference import gemm_reference
from firmware_sim.accel.regs import SEQ_WIDTHS

#: Whether the build under simulation has the scrubber (its test is skipped otherwise).
SCRUB = bool(hdl_parameters().get("SCRUB_EN", 1))

# ---- helpers ------------------------------------------------------------------------


def random_matrix(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """int8 values with the extremes -128 and 127 well represented."""
    x = rng.integers(-128, 128, shape)
    mask = rng.random(shape) < 0.2
    x[mask] = rng.choice([-128, 127], size=int(mask.sum()))
    return x.astype(np.int8)


class Job:
    """A GEMM placed in the scratchpad, loaded through the backdoor into RTL and model;
    ``addresses`` (``a_addr=...``, ``c_addr=...``) places operands instead of the default
    placement."""

    def __init__(self, tb: SccTb, m: int, k: int, ncols: int, *, seed: int, **opts) -> None:
        rng = np.random.default_rng(seed)
        self.m, self.k, self.ncols = m, k, ncols
        self.bias_en = opts.get("bias", bool(rng.integers(2)))
        self.relu = opts.get("relu", bool(rng.integers(2)))
        self.out32 = opts.get("out_int32", bool(rng.integers(2)))
        self.shift = opts.get("shift", int(rng.integers(0, 32)))
        self.a = random_matrix(rng, (m, k))
        self.b = random_matrix(rng, (k, ncols))
        self.bias = rng.integers(-(2**31), 2**31, ncols).astype(np.int32)
        self.place = accel.place_operands(
            tb.n, tb.bank_words, m, k, ncols, bias=self.bias_en, out_int32=self.out32,
            **opts.get("addresses", {}),
        )  # fmt: skip
        words: dict[int, int] = {}
        for base, packed in (
            (self.place.a_addr, accel.pack_a(self.a, tb.n)),
            (self.place.b_addr, accel.pack_b(self.b, tb.n)),
        ) + (((self.place.bias_addr, accel.pack_bias(self.bias, tb.n)),) if self.bias_en else ()):
            for i, word in enumerate(packed):
                words[base + i] = words_to_int(word)
        tb.preload(words)

    @property
    def epilogue(self) -> int:
        return int(
            Epilogue.BIAS_EN * self.bias_en
            | Epilogue.RELU * self.relu
            | Epilogue.OUT_INT32 * self.out32
        ) | (self.shift << 8)

    async def program(self, tb: SccTb) -> None:
        await tb.program(
            IRQ_EN=1,
            DIM_M=self.m,
            DIM_K=self.k,
            DIM_N=self.ncols,
            A_ADDR=self.place.a_addr,
            B_ADDR=self.place.b_addr,
            BIAS_ADDR=self.place.bias_addr,
            C_ADDR=self.place.c_addr,
            EPILOGUE=self.epilogue,
        )

    def tiles(self, tb: SccTb) -> int:
        return -(-self.m // tb.n) * -(-self.ncols // tb.n)

    def reference(self) -> np.ndarray:
        """C as docs/REGISTERS.md "Arithmetic" computes it, without the model."""
        return gemm_reference(self.a, self.b, self.bias if self.bias_en else None,
                              relu=self.relu, shift=self.shift, out_int32=self.out32)  # fmt: skip

    def period(self, tb: SccTb) -> int:
        """Cycles of a STREAM period (docs/REGISTERS.md "Job schedule")."""
        return max(self.k + 1, ((4 if self.out32 else 1) + 1) * tb.n + 1)

    def cycles(self, tb: SccTb) -> int:
        """CYCLES of the job run to its end, by the formula of docs/REGISTERS.md."""
        w = 4 if self.out32 else 1
        mb, nb = -(-self.m // tb.n), -(-self.ncols // tb.n)
        v_last = self.m - (mb - 1) * tb.n
        return 2 + 5 * self.bias_en * nb + self.period(tb) * mb * nb + tb.n + 1 + w * v_last

    def c_of_rtl(self, tb: SccTb) -> np.ndarray:
        """C read from the RTL's memory, unpacked by the layout of docs/REGISTERS.md."""
        n, nb = tb.n, -(-self.ncols // tb.n)
        words = [tb.data_word(self.place.c_addr + i) for i in range(self.place.c_words)]
        raw = np.frombuffer(b"".join(w.to_bytes(n, "little") for w in words), np.uint8)
        if self.out32:
            # The four words of a row's column block are its int32 vector, little-endian.
            return raw.view("<i4").reshape(self.m, nb * n)[:, : self.ncols]
        return raw.view(np.int8).reshape(self.m, nb * n)[:, : self.ncols]

    async def check_absolute(self, tb: SccTb) -> None:
        """C, STATUS, CYCLES and MACS of a job that ran to its end, as docs/REGISTERS.md
        computes them, with no help from the model."""
        assert np.array_equal(self.c_of_rtl(tb), self.reference()), "C differs from A @ B"
        assert await tb.read(int(Reg.STATUS)) == Status.DONE
        assert await tb.read(int(Reg.CYCLES)) == self.cycles(tb)
        assert await tb.read(int(Reg.MACS)) == self.m * self.ncols * self.k


def random_shape(tb: SccTb, rng: np.random.Generator, biggest: int = 40) -> tuple[int, int, int]:
    """M, K, N that fit the scratchpad, not multiples of the array size as a rule."""
    while True:
        m, k, ncols = (int(v) for v in rng.integers(1, biggest + 1, 3))
        try:
            accel.place_operands(tb.n, tb.bank_words, m, k, ncols, bias=True, out_int32=True)
        except ValueError:
            continue
        return m, k, ncols


async def job_done(tb: SccTb, job: Job | None = None) -> None:
    """Wait for the job, compare RTL and model, and with ``job`` check the job's absolute
    results too; then clear DONE and ERROR."""
    await tb.wait_done()
    await tb.compare_registers()
    tb.compare_memory()
    if job is not None:
        await job.check_absolute(tb)
    await tb.write(int(Reg.STATUS), 0x6)


# ---- registers and bus ----------------------------------------------------------------


@cocotb.test()
async def registers_read_write_and_refusals(dut):
    """Every register after reset, random writes, and each refused access, with a stalling bus."""
    tb = SccTb(dut, stall=True)
    await tb.start()
    await tb.compare_registers()
    # CTRL's command bits and a running scrubber (its progress is the scrubber test's
    # business) are left out of the random values.
    quiet = {Reg.CTRL: ~0x7, Reg.SCRUB_PERIOD: 0}
    for reg in Reg:
        await tb.write(int(reg), tb.rng.getrandbits(32) & quiet.get(reg, 0xFFFFFFFF))
    await tb.compare_registers()
    # Unmapped offsets and ranges are refused.
    for addr in (0x03C, 0x05C, 0x0FC, 0x100, 0x4_0000, 0x7_FFFC):
        await tb.read(addr)
        await tb.write(addr, 0x1234)
    await tb.write(int(Reg.STATUS), 0x6)
    await tb.compare_registers()


# Verilator does not honour a Force on a top-level output, which this test breaks the bus with.
@cocotb.test(skip=os.environ.get(SIMULATOR_ENV) == "verilator")
async def the_bus_checker_catches_a_response_without_a_request(dut):
    """The AXI4-Lite checker every top-level test runs: quiet on the chip's own traffic,
    and it reports a read response that no read asked for, and one held in reset."""
    tb = SccTb(dut)
    await tb.start()
    assert await tb.read(int(Reg.ID)) == tb.model.bus_read(int(Reg.ID))[0]
    tb.checker.check()  # the chip's own bus traffic breaks no rule
    assert tb.checker.handshakes["ar"] == tb.checker.handshakes["r"] >= 1
    dut.s_axil_rvalid.value = Force(1)
    await ClockCycles(dut.clk_i, 2)
    assert any("RVALID with no read waiting" in v for v in tb.checker.violations)
    dut.rst_ni.value = 0
    await ClockCycles(dut.clk_i, 2)
    assert any("RVALID high during reset" in v for v in tb.checker.violations)
    dut.s_axil_rvalid.value = Release()
    dut.rst_ni.value = 1
    await ClockCycles(dut.clk_i, 2)
    tb.checker.violations.clear()
    tb.model.reset()  # the pulse above reset the chip: the model follows
    assert await tb.read(int(Reg.ID)) == tb.model.bus_read(int(Reg.ID))[0]
    tb.checker.check()


@cocotb.test()
async def scratchpad_window_round_trip(dut):
    """Words written part by part through the window read back, the first and last words
    of both banks among them; a corrected and an uncorrectable word at the banks' ends;
    past the end is refused."""
    tb = SccTb(dut)
    await tb.start()
    bw = tb.bank_words
    ends = [0, bw - 1, bw, 2 * bw - 1]
    inner = tb.rng.sample(range(1, bw - 1), 18) + tb.rng.sample(range(bw + 1, 2 * bw - 1), 18)
    words = ends + inner
    values = {word: tb.rng.getrandbits(8 * tb.n) for word in words}
    for word in words:
        await tb.write_word(word, values[word])
    for word in words:
        assert await tb.read_word(word) == values[word], f"word {word}"
    for word in ends:
        assert tb.data_word(word) == values[word], f"word {word} is not where the RTL holds it"
    if tb.ecc:
        # One flipped bit at the end of bank 0, two flipped data bits at the end of bank 1.
        top = 8 * tb.n - 1
        await FallingEdge(dut.clk_i)
        single = cells_of(tb, bw - 1, [tb.rng.randrange(tb.cw)])
        tb.upset(single + cells_of(tb, 2 * bw - 1, [0, top]))
        assert await tb.read_word(bw - 1) == values[bw - 1]
        assert await tb.read_word(2 * bw - 1) == values[2 * bw - 1] ^ 1 ^ 1 << top
        assert await tb.read(int(Reg.ECC_CORR)) == 1
        assert await tb.read(int(Reg.ECC_UNCORR)) == 1
    past = SPM_BASE + 4 * tb.parts * 2 * bw
    if past < 1 << 20:  # a build that fills the window has no word past its end
        await tb.read(past)
        assert await tb.write(past, 1) == Resp.SLVERR
    await tb.compare_registers()
    tb.compare_memory()


@cocotb.test()
async def partial_writes_are_refused(dut):
    """Writes with fewer than four byte strobes to a register, CTRL, a staged part and the
    committing part of a scratchpad word: SLVERR, and nothing changes."""
    tb = SccTb(dut)
    await tb.start()
    lane_runs = [range(0, 1), range(1, 2), range(3, 4), range(0, 2), range(2, 4), range(0, 3),
                 range(1, 4)]  # fmt: skip
    await tb.write(int(Reg.DIM_M), 0x123)
    for lanes in lane_runs:
        assert await tb.write_lanes(int(Reg.DIM_M), 0xFFFF_FFFF, lanes) == Resp.SLVERR
        assert await tb.write_lanes(int(Reg.CTRL), 0x7, lanes) == Resp.SLVERR
    assert await tb.read(int(Reg.DIM_M)) == 0x123  # neither written nor reset
    assert await tb.read(int(Reg.STATUS)) == 0  # no job started
    word = tb.bank_words + 3

    def addr(part: int) -> int:
        return SPM_BASE + 4 * (tb.parts * word + part)

    value = tb.rng.getrandbits(8 * tb.n)
    await tb.write_word(word, value)
    for part in range(tb.parts):
        for lanes in lane_runs:
            assert await tb.write_lanes(addr(part), ~value >> 32 * part, lanes) == Resp.SLVERR
    assert await tb.read_word(word) == value and tb.data_word(word) == value
    if tb.parts > 1:
        # A refused write to a staged part leaves the staged value for the commit.
        new = tb.rng.getrandbits(8 * tb.n)
        for part in range(tb.parts - 1):
            await tb.write(addr(part), new >> 32 * part)
        assert await tb.write_lanes(addr(0), ~new, range(0, 2)) == Resp.SLVERR
        await tb.write(addr(tb.parts - 1), new >> 32 * (tb.parts - 1))
        assert await tb.read_word(word) == new and tb.data_word(word) == new
    await tb.compare_registers()
    tb.compare_memory()


# ---- jobs -------------------------------------------------------------------------------


#: Dimension classes against the array size N that constrained-random jobs cycle through
#: (the largest dimension is the limits test's: it needs a large scratchpad).
SHAPE_CLASSES = [c for c in fcov.DIM_CLASSES if c != "largest"]


def dimension_in(cls: str, n: int, rng: np.random.Generator) -> int:
    """A random dimension of class ``cls`` (``fcov.DIM_CLASSES``) against array size ``n``;
    ``below_n`` with N = 2 (no such dimension) gives 1."""
    if cls == "one" or (cls == "below_n" and n == 2):
        return 1
    if cls == "below_n":
        return int(rng.integers(2, n))
    if cls == "equal_n":
        return n
    if cls == "multiple_of_n":
        return n * int(rng.integers(2, 4))
    return n * int(rng.integers(1, 3)) + int(rng.integers(1, n))


def constrained_shape(tb: SccTb, rng: np.random.Generator, i: int) -> tuple[int, int, int]:
    """Job ``i``'s M, K, N: each from a class of ``SHAPE_CLASSES``, shifted by one per
    dimension so that every class meets every dimension within five jobs; drawn again
    until it fits the scratchpad."""
    classes = [SHAPE_CLASSES[(i + d) % len(SHAPE_CLASSES)] for d in range(3)]
    while True:
        m, k, ncols = (dimension_in(c, tb.n, rng) for c in classes)
        try:
            accel.place_operands(tb.n, tb.bank_words, m, k, ncols, bias=True, out_int32=True)
        except ValueError:
            continue
        return m, k, ncols


@cocotb.test()
async def random_jobs_match_model(dut):
    """Back-to-back jobs, constrained random: 1 x 1 x 1, then every epilogue mode once (in a
    random order, random shift) on shapes whose dimensions go through every class against
    the array size, with random values (extremes well represented)."""
    tb = SccTb(dut)
    await tb.start()
    rng = np.random.default_rng(cocotb.RANDOM_SEED)
    modes = rng.permutation(len(fcov.EPILOGUE_MODES))
    jobs = [((1, 1, 1), int(rng.integers(len(modes))))]
    jobs += [(constrained_shape(tb, rng, i), int(mode)) for i, mode in enumerate(modes)]
    for i, ((m, k, ncols), mode) in enumerate(jobs):
        flags = {f.name.lower(): bool(mode & f) for f in fcov.EPILOGUE_FLAGS}
        job = Job(tb, m, k, ncols, seed=int(rng.integers(1 << 30)), bias=flags["bias_en"],
                  relu=flags["relu"], out_int32=flags["out_int32"])  # fmt: skip
        tb.log.info("job %d: %d x %d x %d, epilogue %#x", i, m, k, ncols, job.epilogue)
        await job.program(tb)
        await tb.start_job()
        await job_done(tb, job)


@cocotb.test()
async def epilogue_saturates_and_rounds(dut):
    """Extreme operands with every shift: saturation to int8 and rounding ties."""
    tb = SccTb(dut)
    await tb.start()
    for shift in (0, 1, 7, 15, 31):
        job = Job(tb, tb.n + 1, 17, tb.n, seed=shift, bias=True, relu=False, out_int32=False,
                  shift=shift)
        await job.program(tb)
        await tb.start_job()
        await job_done(tb, job)


@cocotb.test()
async def bad_descriptors_are_refused(dut):
    """Each descriptor rule broken alone ends the job with DESCRIPTOR and writes nothing."""
    tb = SccTb(dut)
    await tb.start()
    job = Job(tb, 5, 6, 7, seed=1, bias=True, out_int32=False)
    bw = tb.bank_words
    breakers = [
        {"DIM_M": 0},
        {"DIM_K": 0},
        {"DIM_N": 0},
        {"A_ADDR": bw - 1},
        {"B_ADDR": bw - 1},
        {"B_ADDR": 2 * bw - 1},
        {"BIAS_ADDR": 2 * bw - 2},
        {"C_ADDR": 2 * bw - 1},
        {"C_ADDR": job.place.a_addr + 1},
        {"C_ADDR": job.place.b_addr},
        {"C_ADDR": job.place.bias_addr - 1},
    ]
    for fields in breakers:
        await job.program(tb)
        await tb.program(**fields)
        await tb.start_job()
        await job_done(tb)


@cocotb.test()
async def reset_in_the_middle_of_a_job(dut):
    """SOFT_RESET and rst_ni mid-job: registers reset, memory outside C kept, next job right."""
    tb = SccTb(dut)
    await tb.start()
    m, k, ncols = 3 * tb.n, 20, 2 * tb.n
    for how in ("soft", "hard"):
        job = Job(tb, m, k, ncols, seed=7, out_int32=False)
        await job.program(tb)
        await tb.axil.write(int(Reg.CTRL), (1).to_bytes(4, "little"))
        await ClockCycles(dut.clk_i, 40 + tb.rng.randrange(60))
        assert int(dut.u_seq.busy_o.value), "the job ended before the reset"
        if how == "soft":
            await tb.write(int(Reg.CTRL), int(accel.Ctrl.SOFT_RESET))
        else:
            await tb.hard_reset()
        tb.model.reset()
        await tb.compare_registers()
        c_lo, c_hi = job.place.c_addr, job.place.c_addr + job.place.c_words
        for word in range(2 * tb.bank_words):
            if not c_lo <= word < c_hi:
                data, check = tb.model.peek(word)
                assert tb.codeword(word) == (check << 8 * tb.n) | data, f"word {word}"
        await job.program(tb)
        await tb.start_job()
        await job_done(tb)


#: The directed tests of every sequencer state, chained jobs, ECC readers and sequencer
#: voters run on one build that has every protection (their bins need no other).
EVERY_PROTECTION = (
    all(hdl_parameters().get(p, 1) for p in ("ECC_EN", "SCRUB_EN", "TMR_EN"))
    and hdl_parameters().get("N") == 4
    and hdl_parameters().get("INTERLEAVE", 1) == 1
)


def adopt_rtl_words(tb: SccTb, words: range) -> None:
    """Tell the model what the RTL holds in ``words`` (C of a job a reset cut short: the
    model ran it whole at START)."""
    dw = 8 * tb.n
    for word in words:
        code = tb.codeword(word)
        tb.model.poke(word, code & ((1 << dw) - 1), code >> dw if tb.ecc else None)


async def until_state(tb: SccTb, state: int) -> None:
    """Wait, cycle by cycle, for the sequencer to be in ``state`` (then at ReadOnly)."""
    for _ in range(100_000):
        await RisingEdge(tb.dut.clk_i)
        await ReadOnly()
        if int(tb.dut.u_seq.state.value) == state:
            return
    raise AssertionError(f"the sequencer never reached state {state}")


async def state_at_soft_reset(tb: SccTb) -> int:
    """The sequencer's state in the cycle the next SOFT_RESET reaches the registers."""
    await RisingEdge(tb.dut.u_regs.soft_reset_o)
    await ReadOnly()
    return int(tb.dut.u_seq.state.value)


async def soft_reset_latency(tb: SccTb) -> int:
    """Clock edges from launching a SOFT_RESET write at a falling edge to the cycle it
    reaches the registers (the bus idle); the model resets with the chip."""
    dut = tb.dut
    await FallingEdge(dut.clk_i)
    soft_reset = int(accel.Ctrl.SOFT_RESET).to_bytes(4, "little")
    write = cocotb.start_soon(tb.axil.write(int(Reg.CTRL), soft_reset))
    edges = 0
    while True:
        await ReadOnly()
        if int(dut.u_regs.soft_reset_o.value):
            break
        await RisingEdge(dut.clk_i)
        edges += 1
    assert int(dut.u_seq.state.value) == 0
    await write
    tb.model.bus_write(int(Reg.CTRL), int(accel.Ctrl.SOFT_RESET))
    return edges


@cocotb.test(skip=not EVERY_PROTECTION)
async def reset_in_every_sequencer_state(dut):
    """rst_ni in every sequencer state and SOFT_RESET in every state a bus write can reach
    (not CHECK: a write reaches the registers three cycles after the START's at the
    earliest), an interrupt pending in IDLE: registers reset, STATUS, CYCLES and MACS 0,
    the memory outside C kept, C untouched in CHECK and whole in DONE, the next job right."""
    tb = SccTb(dut)
    await tb.start()
    job = Job(tb, 2 * tb.n + 1, 2 * tb.n + 3, 2 * tb.n, seed=21, bias=True, out_int32=False)
    c_words = range(job.place.c_addr, job.place.c_addr + job.place.c_words)
    d = None
    names = {v: k for k, v in fcov.SEQ_STATES.items()}
    latency = None
    for kind in fcov.RESETS:
        for name in fcov.SEQ_STATES.values():
            if (kind, name) in fcov.SOFT_RESET_NEVER:
                continue
            state = names[name]
            tb.preload(dict.fromkeys(c_words, 0))
            await job.program(tb)
            if name == "IDLE":
                # A finished job whose DONE is still set: its interrupt drops with the reset.
                await tb.start_job()
                await tb.wait_done()
                assert int(dut.irq_o.value)
            if kind == "hard":
                if name == "CHECK":
                    # The START's response is due in CHECK: the reset takes it, nobody waits.
                    cocotb.start_soon(tb.axil.write(int(Reg.CTRL), b"\x01\0\0\0"))
                    tb.model.run()
                elif name != "IDLE":
                    await tb.start_job()
                if name != "IDLE":
                    await until_state(tb, state)
                await tb.hard_reset()
                tb.model.reset()
            elif name == "IDLE":
                latency = await soft_reset_latency(tb)
            else:
                assert latency is not None
                await tb.start_job()
                d = tb.model.descriptor()
                x = {
                    "BIAS": d.bias_start(1) + 2,
                    "STREAM": d.stream_start(1) + 2,
                    "FLUSH": d.flush_start + 1,
                    "DONE": tb.model.last_job.cycles - 1,
                }[name]
                while True:  # CYCLES reads j in job cycle j
                    await FallingEdge(dut.clk_i)
                    now = int(dut.u_regs.cycles_q.value)
                    assert now < x - latency, f"too late for a SOFT_RESET in {name}"
                    if now == x - latency - 1:
                        break
                seen = cocotb.start_soon(state_at_soft_reset(tb))
                await FallingEdge(dut.clk_i)
                await tb.write(int(Reg.CTRL), int(accel.Ctrl.SOFT_RESET))
                assert await seen == state, f"SOFT_RESET missed {name}"
            tb.log.info("%s reset in %s", kind, name)
            assert await tb.read(int(Reg.STATUS)) == 0
            assert await tb.read(int(Reg.CYCLES)) == 0 and await tb.read(int(Reg.MACS)) == 0
            assert not int(dut.irq_o.value)
            if name == "CHECK":
                assert not any(tb.data_word(w) for w in c_words), "C written in CHECK"
            if name in ("DONE", "IDLE"):
                assert np.array_equal(job.c_of_rtl(tb), job.reference()), name
            adopt_rtl_words(tb, c_words)
            await tb.compare_registers()
            tb.compare_memory()
    await job.program(tb)
    await tb.start_job()
    await job_done(tb, job)


@cocotb.test(skip=not EVERY_PROTECTION)
async def back_to_back_jobs_and_the_interrupt(dut):
    """Jobs chained without clearing DONE (after a clean one, a refused descriptor and an
    ECC error), a START while a job runs (ignored: CYCLES is the one job's), and the
    interrupt raised by each outcome and by IRQ_EN while DONE, dropped by IRQ_EN, START,
    STATUS and reset."""
    tb = SccTb(dut)
    await tb.start()
    job = Job(tb, tb.n + 1, 5, tb.n + 2, seed=31, bias=True, out_int32=False)
    done = Status.DONE
    await job.program(tb)
    await tb.start_job()
    await tb.wait_done()
    assert await tb.read(int(Reg.STATUS)) == done
    # IRQ_EN off and on again while DONE stays set.
    await tb.write(int(Reg.IRQ_EN), 0)
    assert not int(dut.irq_o.value)
    await tb.write(int(Reg.IRQ_EN), 1)
    assert int(dut.irq_o.value)
    # A refused descriptor started with DONE still set: START drops the interrupt.
    await tb.program(DIM_K=0)
    await tb.start_job()
    await tb.wait_done()
    assert await tb.read(int(Reg.STATUS)) == done | Status.ERROR | ErrCode.DESCRIPTOR << 4
    # An uncorrectable A word, started after the refusal.
    await tb.program(DIM_K=job.k)
    good = tb.codeword(job.place.a_addr)
    await FallingEdge(dut.clk_i)
    tb.upset(cells_of(tb, job.place.a_addr, [0, 1]))
    await tb.start_job()
    await tb.wait_done()
    assert await tb.read(int(Reg.STATUS)) == done | Status.ERROR | ErrCode.ECC << 4
    await FallingEdge(dut.clk_i)
    tb.upset(cells_of(tb, job.place.a_addr, [0, 1]))
    await RisingEdge(dut.clk_i)  # the deposit has landed
    assert tb.codeword(job.place.a_addr) == good
    # The clean job again after the ECC error, with a START while it runs.
    await tb.start_job()
    await ClockCycles(dut.clk_i, 4)
    assert int(dut.u_seq.busy_o.value)
    rtl = await tb.axil.write(int(Reg.CTRL), b"\x01\0\0\0")  # the model is not told
    assert int(rtl.resp) == Resp.OKAY and int(dut.u_seq.busy_o.value)
    await job_done(tb, job)  # CYCLES of one job; STATUS written 1s: the interrupt drops
    assert not int(dut.irq_o.value)


@cocotb.test(skip=not EVERY_PROTECTION)
async def ecc_errors_by_every_reader_in_every_region(dut):
    """A corrected and an uncorrectable word read by the bus and by the scrubber in each
    bank, and by a job in A, B and the bias: each counted once in ECC_CORR or
    ECC_UNCORR, a job ended with ECC by B and by the bias, the scrubber's single-bit words
    repaired and its double-bit words left."""
    tb = SccTb(dut)
    await tb.start()
    bw = tb.bank_words
    await FallingEdge(dut.clk_i)

    def flip(word: int, bits: int) -> list[accel.SpmCell]:
        return cells_of(tb, word, tb.rng.sample(range(tb.cw), bits))

    # The bus: words 10 and 11 of each bank, set right again after (a read corrects only
    # what it returns).
    bus = [(bank * bw + 10 + i, 1 + i) for bank in (0, 1) for i in (0, 1)]
    cells = [c for word, bits in bus for c in flip(word, bits)]
    tb.upset(cells)
    for word, _ in bus:
        await tb.read_word(word)
    assert await tb.read(int(Reg.ECC_CORR)) == 2 and await tb.read(int(Reg.ECC_UNCORR)) == 2
    await FallingEdge(dut.clk_i)
    tb.upset(cells)
    # The scrubber: words 100 and 101 of each bank, from word 0 into bank 1.
    await tb.write(int(Reg.CTRL), int(accel.Ctrl.CLEAR_COUNTERS))
    scrubbed = [(bank * bw + 100 + i, 1 + i) for bank in (0, 1) for i in (0, 1)]
    good = {word: tb.codeword(word) for word, _ in scrubbed}
    await FallingEdge(dut.clk_i)
    tb.upset([c for word, bits in scrubbed for c in flip(word, bits)])
    await tb.write(int(Reg.SCRUB_PERIOD), 1)
    scrub = dut.g_scrub.u_scrub
    while int(scrub.ptr_q.value) < bw + 102:
        await ClockCycles(dut.clk_i, 64)
    await tb.write(int(Reg.SCRUB_PERIOD), 0)
    await ClockCycles(dut.clk_i, 4)
    tb.model.scrub_steps(int(scrub.ptr_q.value))
    await tb.compare_registers()
    tb.compare_memory()
    assert await tb.read(int(Reg.ECC_CORR)) == 2 and await tb.read(int(Reg.ECC_UNCORR)) == 2
    for word, bits in scrubbed:
        assert (tb.codeword(word) == good[word]) == (bits == 1), f"word {word}"
    # A job: a single-bit error in A; a double-bit one in B, then in the bias.
    await tb.write(int(Reg.CTRL), int(accel.Ctrl.CLEAR_COUNTERS))
    job = Job(tb, tb.n, 4, tb.n, seed=41, bias=True, out_int32=False)
    await job.program(tb)
    await FallingEdge(dut.clk_i)
    tb.upset(flip(job.place.a_addr + 1, 1))
    await tb.start_job()
    await job_done(tb, job)
    assert await tb.read(int(Reg.ECC_CORR)) == 1
    for n, word in enumerate((job.place.b_addr + 2, job.place.bias_addr + 3), start=1):
        clean = tb.codeword(word)
        await FallingEdge(dut.clk_i)
        cells = flip(word, 2)
        tb.upset(cells)
        await tb.start_job()
        await tb.wait_done()
        status = await tb.read(int(Reg.STATUS))
        assert status == Status.DONE | Status.ERROR | ErrCode.ECC << 4, f"word {word}"
        assert await tb.read(int(Reg.ECC_UNCORR)) == n
        await job_done(tb)
        await FallingEdge(dut.clk_i)
        tb.upset(cells)
        await RisingEdge(dut.clk_i)
        assert tb.codeword(word) == clean


@cocotb.test(skip=not EVERY_PROTECTION)
async def a_flipped_copy_of_every_sequencer_register_is_outvoted(dut):
    """One copy of each sequencer register flipped in its own cycle of a job: outvoted,
    the job right, and TMR_MISMATCH counts one cycle for each."""
    tb = SccTb(dut)
    await tb.start()
    job = Job(tb, 2 * tb.n, 6, tb.n, seed=51, bias=True, out_int32=False)
    await job.program(tb)
    faults = [
        accel.ScheduledFault(accel.JobPoint(0, accel.Phase.STREAM, 1 + i),
                             accel.SeqCopy(name, tb.rng.randrange(3), tb.rng.randrange(width)))
        for i, (name, width) in enumerate(SEQ_WIDTHS.items())
    ]  # fmt: skip
    tb.log.info("faults %s", faults)
    await tb.start_job(faults)
    await job_done(tb, job)
    assert await tb.read(int(Reg.TMR_MISMATCH)) == len(SEQ_WIDTHS)


# ---- ECC, scrubbing, TMR and faults ----------------------------------------------------


def cells_of(tb: SccTb, word: int, bits: list[int]) -> list[accel.SpmCell]:
    return [tb.layout.cell_of(word, b) for b in bits]


@cocotb.test()
async def single_bit_upsets_in_operands(dut):
    """One flipped bit in several operand words: corrected (with ECC) and counted per read."""
    tb = SccTb(dut)
    await tb.start()
    job = Job(tb, 2 * tb.n + 1, 9, 2 * tb.n, seed=3, bias=True)
    targets = [job.place.a_addr, job.place.a_addr + 9 + 4, job.place.b_addr + 2,
               job.place.bias_addr + 1]
    await FallingEdge(dut.clk_i)
    tb.upset([c for w in targets for c in cells_of(tb, w, [tb.rng.randrange(tb.cw)])])
    await job.program(tb)
    await tb.start_job()
    # With ECC every flipped bit is corrected on its way to the array.
    await job_done(tb, job if tb.ecc else None)


@cocotb.test()
async def double_bit_upset_ends_the_job(dut):
    """Two flipped bits in one A word of a late row block: ECC ends the job there."""
    tb = SccTb(dut)
    await tb.start()
    job = Job(tb, 3 * tb.n, 8, 2 * tb.n, seed=4, out_int32=False)
    word = job.place.a_addr + 2 * 8 + 5  # row block 2, step 5
    await FallingEdge(dut.clk_i)
    tb.upset(cells_of(tb, word, tb.rng.sample(range(tb.cw), 2)))
    await job.program(tb)
    await tb.start_job()
    await tb.wait_done()
    if tb.ecc:
        # Tile 2 (row block 2 of column block 0) reads the word once and ends the job:
        # tiles 0 and 1 are written, nothing after them.
        status = await tb.read(int(Reg.STATUS))
        assert status == Status.DONE | Status.ERROR | ErrCode.ECC << 4
        assert await tb.read(int(Reg.ECC_UNCORR)) == 1
        cycles = 2 + 5 * job.bias_en + job.period(tb) * 3
        assert await tb.read(int(Reg.CYCLES)) == cycles
        c = job.c_of_rtl(tb)
        written = 2 * tb.n
        assert np.array_equal(c[:written, : tb.n], job.reference()[:written, : tb.n])
        assert not c[written:].any() and not c[:, tb.n :].any()
    await job_done(tb)


@cocotb.test()
async def faults_during_a_job(dut):
    """Memory cells, accumulators, result registers and TMR copies flipped at random cycles
    of a running job: in BIAS, STREAM periods, write cycles and FLUSH."""
    tb = SccTb(dut)
    await tb.start()
    rng = np.random.default_rng(cocotb.RANDOM_SEED)
    n = tb.n
    for round_ in range(4):
        k = 11 if round_ % 2 else 3 * n + 7
        out32 = bool(round_ % 2)
        job = Job(tb, 2 * n + 1, k, 2 * n - 1, seed=round_, bias=True, out_int32=out32)
        await job.program(tb)
        w = 4 if out32 else 1
        period = max(k + 1, (w + 1) * n + 1)
        mb, tiles = -(-job.m // n), job.tiles(tb)
        rows = [min(n, job.m - (t % mb) * n) for t in range(tiles)]

        def pe() -> tuple[int, int, int]:
            return int(rng.integers(n)), int(rng.integers(n)), int(rng.integers(32))

        def at(tile: int, phase: accel.Phase, cycles: int) -> accel.JobPoint:
            return accel.JobPoint(tile, phase, int(rng.integers(cycles)))

        faults = []
        for _ in range(3):
            tile = int(rng.integers(tiles))
            faults.append(accel.ScheduledFault(
                at(tile, accel.Phase.STREAM, period), accel.AccBit(*pe())))
            faults.append(accel.ScheduledFault(
                at(tile, accel.Phase.STREAM, period), accel.OutBit(*pe())))
        tile = int(rng.integers(tiles))
        faults.append(accel.ScheduledFault(
            at(tile, accel.Phase.WRITE, w * rows[tile]), accel.OutBit(*pe())))
        first_of_block = mb * int(rng.integers(-(-job.ncols // n)))
        word = job.place.b_addr + int(rng.integers(k))
        faults.append(accel.ScheduledFault(
            at(first_of_block, accel.Phase.BIAS, 5),
            tb.layout.cell_of(word, int(rng.integers(tb.cw)))))
        faults.append(accel.ScheduledFault(
            at(tiles - 1, accel.Phase.FLUSH, n + 1 + w * rows[-1]), accel.OutBit(*pe())))
        if tb.tmr:
            faults.append(accel.ScheduledFault(
                accel.JobPoint(tile, accel.Phase.STREAM, 2),
                accel.RegCopy("DIM_K", int(rng.integers(3)), int(rng.integers(12)))))
            faults.append(accel.ScheduledFault(
                accel.JobPoint(tile, accel.Phase.STREAM, 3),
                accel.SeqCopy("t", int(rng.integers(3)), int(rng.integers(13)))))
        tb.log.info("round %d: K=%d, int32 %s, faults %s", round_, k, out32, faults)
        await tb.start_job(faults)
        await job_done(tb)


@cocotb.test()
async def tmr_copy_upsets_while_idle(dut):
    """A flipped copy of each configuration register is outvoted and counted (with TMR)."""
    tb = SccTb(dut)
    await tb.start()
    copies = 3 if tb.tmr else 1
    widths = {"IRQ_EN": 1, "DIM_M": 12, "DIM_K": 12, "DIM_N": 12, "A_ADDR": 16,
              "B_ADDR": 16, "BIAS_ADDR": 16, "C_ADDR": 16, "EPILOGUE": 8, "SCRUB_PERIOD": 16}
    if not tb.tmr:
        # Unvoted, a flipped SCRUB_PERIOD starts the scrubber, whose progress over time
        # the model is told about only in the scrubber test.
        del widths["SCRUB_PERIOD"]
    for name, width in widths.items():
        await FallingEdge(dut.clk_i)
        tb.upset([accel.RegCopy(name, tb.rng.randrange(copies), tb.rng.randrange(width))])
        await RisingEdge(dut.clk_i)
        await tb.compare_registers()
    if tb.tmr:
        # Two copies of one register hit in the same cycle outvote the third.
        await FallingEdge(dut.clk_i)
        tb.upset([accel.RegCopy("DIM_N", 0, 3), accel.RegCopy("DIM_N", 2, 3)])
        await tb.compare_registers()


@cocotb.skipif(not SCRUB, reason="the build has no scrubber (SCRUB_EN = 0)")
@cocotb.test()
async def scrubber_repairs_single_bit_errors(dut):
    """Upsets across the scratchpad; after more than a pass the scrubber has repaired them."""
    tb = SccTb(dut)
    await tb.start()
    words = tb.rng.sample(range(2 * tb.bank_words), 12)
    await FallingEdge(dut.clk_i)
    cells = [c for w in words[:-1] for c in cells_of(tb, w, [tb.rng.randrange(tb.cw)])]
    cells += cells_of(tb, words[-1], tb.rng.sample(range(tb.cw), 2))
    tb.upset(cells)
    await tb.write(int(Reg.SCRUB_PERIOD), 1)
    scrub = dut.g_scrub.u_scrub
    while int(scrub.passes_q.value) < 1 or int(scrub.ptr_q.value) < 5:
        await ClockCycles(dut.clk_i, 256)
    await tb.write(int(Reg.SCRUB_PERIOD), 0)
    await ClockCycles(dut.clk_i, 4)
    steps = int(scrub.passes_q.value) * 2 * tb.bank_words + int(scrub.ptr_q.value)
    tb.model.scrub_steps(steps)
    await tb.compare_registers()
    tb.compare_memory()


@cocotb.test()
async def multi_bit_upset_of_adjacent_cells(dut):
    """Adjacent cells of one row: interleaving spreads them over words ECC can correct."""
    tb = SccTb(dut)
    await tb.start()
    job = Job(tb, 2 * tb.n, 16, 2 * tb.n, seed=5, out_int32=True)
    first = tb.layout.cell_of(job.place.a_addr + 4, 1)
    start = accel.SpmCell(first.bank, first.row, 0)
    await FallingEdge(dut.clk_i)
    tb.upset(tb.layout.adjacent(start, min(3, tb.interleave + 1)))
    await job.program(tb)
    await tb.start_job()
    await job_done(tb)


# ---- builds -------------------------------------------------------------------------------

BUILDS = builds.SCC


@pytest.mark.rtl
@pytest.mark.parametrize("build", list(BUILDS))
def test_scc(build: str) -> None:
    run("scc_top", "cocotb_tests.test_scc", BUILDS[build])
