"""scc_top against the model: register bits stuck at 0 or 1 across idle cycles and jobs, in
configuration and sequencer copies, PEs, counters and the scrubber, and a stuck state bit
that starts the idle sequencer.

A stuck bit is held in the RTL by a deposit at every falling edge (Icarus 11 takes a
deposit on one word of an unpacked array such as a TMR register's ``q_q[k]``; each
deposit rewrites the whole word with the bit set to its value): the flop shows the
stuck value to every clock edge, as a bit that cannot change does. The model holds it
with ``Accelerator.stick``. The testbench counts the clock edges from the stick to the
release so that the model is told of every idle cycle (``Accelerator.idle``): a stuck
TMR copy is outvoted in each of them, and TMR_MISMATCH must count them all.
"""

from __future__ import annotations

import cocotb
import numpy as np
import pytest
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from cocotb_tests import builds
from cocotb_tests.sim import hdl_parameters, run
from cocotb_tests.test_scc import Job
from cocotb_tests.test_scc_control_faults import ControlTb, clean_outcome
from firmware_sim import accel
from firmware_sim.accel import AccBit, FlopBit, Reg, RegCopy, SeqCopy
from firmware_sim.accel.regs import CONFIG_STORAGE, JOB_REGISTERS, Status, to_storage

#: Whether the build under simulation has TMR (tests for the other kind are skipped).
TMR = bool(hdl_parameters().get("TMR_EN", 1))


class StuckTb(ControlTb):
    """ControlTb with register bits held stuck in RTL and model alike."""

    def __init__(self, dut) -> None:
        super().__init__(dut)
        self.stuck: list[tuple[object, int, int]] = []
        self._holder = None

    def stick(self, site: accel.FaultSite, value: int) -> None:
        """Stick a bit now (call at a falling edge), in RTL and model."""
        handle, bit = self._handle_bit(site)
        self.stuck.append((handle, bit, value))
        self._hold()
        self.model.stick(site, value)
        if self._holder is None:
            self._holder = cocotb.start_soon(self._hold_every_cycle())

    def unstick_all(self) -> None:
        """Release every stuck bit now (call at a falling edge), in RTL and model."""
        self.stuck.clear()
        if self._holder is not None:
            self._holder.cancel()
            self._holder = None
        self.model.unstick_all()

    def _hold(self) -> None:
        """One deposit per signal, every stuck bit of it at its value."""
        masks: dict[int, tuple[object, int, int]] = {}
        for handle, bit, value in self.stuck:
            _, mask, ones = masks.get(id(handle), (handle, 0, 0))
            masks[id(handle)] = (handle, mask | 1 << bit, ones | value << bit)
        for handle, mask, ones in masks.values():
            handle.value = int(handle.value) & ~mask | ones

    async def _hold_every_cycle(self) -> None:
        while True:
            await FallingEdge(self.dut.clk_i)
            self._hold()

    async def stuck_job(self, sites: list[tuple[accel.FaultSite, int]], during=None) -> int:
        """Stick ``sites`` at a falling edge, START, let the job run, call ``during`` (a
        coroutine function of the testbench, while still stuck), release at a falling
        edge and compare every register and the scratchpad. The model is told of each
        idle cycle between; returns the clock edges from the stick through the release
        cycle (the cycles a stuck TMR copy was outvoted in)."""
        clk = self.dut.clk_i
        await FallingEdge(clk)
        for site, value in sites:
            self.stick(site, value)
        edges = 0
        start: int | None = None

        async def count() -> None:
            nonlocal edges, start
            while True:
                await RisingEdge(clk)
                edges += 1
                await ReadOnly()
                if start is None and int(self.dut.u_seq.job_start_o.value):
                    start = edges

        counter = cocotb.start_soon(count())
        rtl = await self.axil.write(int(Reg.CTRL), (1).to_bytes(4, "little"))
        assert int(rtl.resp) == 0, "START refused"
        while start is None:
            await RisingEdge(clk)
            await ReadOnly()
        # Idle up to and with the START cycle, then the job from CHECK.
        self.model.idle(start)
        self.model.run()
        job_cycles = self.model.last_job.cycles
        assert not self.model.last_job.hung
        while edges < start + job_cycles + 1:
            await RisingEdge(clk)
            await ReadOnly()
        told = start + job_cycles
        if during is not None:
            await FallingEdge(clk)
            await during(self)
        await FallingEdge(clk)
        self.model.idle(edges - 1 - told)
        self.unstick_all()
        counter.cancel()
        await self.compare_registers()
        self.compare_memory()
        return edges + 1


def reference(job: Job) -> np.ndarray:
    """A @ B as int32 (no bias, no ReLU), from numpy."""
    return (job.a.astype(np.int64) @ job.b.astype(np.int64)).astype(np.int32)


def result(tb: StuckTb, job: Job) -> np.ndarray:
    """C of a job as the chip holds it (the RTL's memory equals the model's)."""
    words = tb.model.dump(job.place.c_addr, job.place.c_words)
    return tb.model.unpack_c(words, job.m, job.ncols, job.out32)


def plain_job(tb: StuckTb, m: int, k: int, ncols: int, seed: int) -> Job:
    """An int32-output job without bias or ReLU, so C is A @ B."""
    return Job(tb, m, k, ncols, seed=seed, bias=False, relu=False, out_int32=True, shift=0)


@cocotb.test(skip=not TMR)
async def stuck_tmr_copy_is_outvoted_every_cycle(dut):
    """A configuration copy stuck at the value the others do not hold: every job stays
    right, and TMR_MISMATCH counts every cycle from the stick through the release."""
    tb = StuckTb(dut)
    await tb.start()
    rng = np.random.default_rng(cocotb.RANDOM_SEED)
    for round_ in range(3):
        job = plain_job(tb, 2 * tb.n + 1, int(rng.integers(2, 3 * tb.n)), tb.n + 2, 10 + round_)
        await job.program(tb)
        clean = clean_outcome(tb)
        name = str(rng.choice(sorted(JOB_REGISTERS)))
        copy, bit = int(rng.integers(3)), int(rng.integers(len(CONFIG_STORAGE[name])))
        value = 1 - (to_storage(name, tb.model.config(name)) >> bit & 1)
        tb.log.info("round %d: %s copy %d bit %d stuck at %d", round_, name, copy, bit, value)
        await tb.write(int(Reg.CTRL), int(accel.Ctrl.CLEAR_COUNTERS))
        edges = await tb.stuck_job([(RegCopy(name, copy, bit), value)])
        assert (tb.model.dump(0, tb.model.spm_words).tobytes(), tb.model.status) == clean[:2]
        assert np.array_equal(result(tb, job), reference(job))
        assert await tb.read(int(Reg.TMR_MISMATCH)) == edges
        await tb.write(int(Reg.STATUS), 0x6)


@cocotb.test(skip=TMR)
async def stuck_dim_k_bit_without_tmr_shortens_every_job(dut):
    """DIM_K bit 0 stuck at 0 with an odd K: the job reads K - 1 words, so C is A @ B
    over the first K - 1 columns of A, one cycle shorter, M N fewer MACs; a write of
    DIM_K reads back with the bit still 0."""
    tb = StuckTb(dut)
    await tb.start()
    # Odd K above the shortest STREAM period, so each word fewer is a cycle fewer.
    k = 5 * tb.n + 3
    job = plain_job(tb, tb.n - 1, k, tb.n, seed=21)
    await job.program(tb)
    clean = clean_outcome(tb)
    clean_macs = job.m * job.k * job.ncols

    async def during(tb: StuckTb) -> None:
        assert await tb.read(int(Reg.DIM_K)) == k - 1
        await tb.write(int(Reg.DIM_K), k)
        assert await tb.read(int(Reg.DIM_K)) == k - 1
        await tb.compare_registers()

    await tb.stuck_job([(RegCopy("DIM_K", 0, 0), 0)], during)
    short = (job.a[:, :-1].astype(np.int64) @ job.b[:-1].astype(np.int64)).astype(np.int32)
    assert np.array_equal(result(tb, job), short)
    assert await tb.read(int(Reg.CYCLES)) == clean[2] - 1
    assert await tb.read(int(Reg.MACS)) == clean_macs - job.m * job.ncols
    assert await tb.read(int(Reg.DIM_K)) == k - 1  # released, the register keeps it


@cocotb.test()
async def stuck_accumulator_bit_shows_in_its_pe_only(dut):
    """acc_q bit stuck at 1 in one PE: every result that PE computes has the bit set,
    every other result is A @ B."""
    tb = StuckTb(dut)
    await tb.start()
    rng = np.random.default_rng(cocotb.RANDOM_SEED + 1)
    job = plain_job(tb, 2 * tb.n, int(rng.integers(2, 2 * tb.n)), 2 * tb.n - 1, seed=31)
    await job.program(tb)
    i, j, bit = int(rng.integers(tb.n)), int(rng.integers(tb.n - 1)), int(rng.integers(32))
    tb.log.info("acc_q of PE (%d, %d) bit %d stuck at 1", i, j, bit)
    await tb.stuck_job([(AccBit(i, j, bit), 1)])
    got, want = result(tb, job), reference(job)
    mine = np.zeros(got.shape, dtype=bool)
    mine[i :: tb.n, j :: tb.n] = True
    assert np.array_equal(got[~mine], want[~mine])
    assert np.all(got[mine].view(np.uint32) >> bit & 1)
    assert tb.model.status == Status.DONE


@cocotb.test()
async def stuck_sequencer_state_bit(dut):
    """With TMR, a state copy's bit 1 stuck at 1 is outvoted in every cycle whose state
    lacks bit 1 (all but BIAS and STREAM) and the job is right; without TMR, bit 2 stuck
    at 0 turns FLUSH into IDLE: the job stops before writing, without DONE."""
    tb = StuckTb(dut)
    await tb.start()
    job = plain_job(tb, tb.n, 2 * tb.n, tb.n, seed=41)
    await job.program(tb)
    clean = clean_outcome(tb)
    if tb.tmr:
        await tb.write(int(Reg.CTRL), int(accel.Ctrl.CLEAR_COUNTERS))
        spans = tb.model.job_schedule()
        agree = sum(s.cycles for s in spans if s.phase in (accel.Phase.BIAS, accel.Phase.STREAM))
        edges = await tb.stuck_job([(SeqCopy("state", 2, 1), 1)])
        assert np.array_equal(result(tb, job), reference(job))
        assert await tb.read(int(Reg.TMR_MISMATCH)) == edges - agree
        assert await tb.read(int(Reg.CYCLES)) == clean[2]
    else:
        await tb.stuck_job([(SeqCopy("state", 0, 2), 0)])
        assert tb.model.status == 0
        assert not result(tb, job).any()
        flush = tb.n + 1 + 4 * job.m
        assert await tb.read(int(Reg.CYCLES)) == clean[2] - flush - 1


# ---- counters, the scrubber, the idle sequencer ----------------------------------------------

COUNTERS = {"cycles_q": Reg.CYCLES, "macs_q": Reg.MACS, "corr_q": Reg.ECC_CORR,
            "uncorr_q": Reg.ECC_UNCORR}  # fmt: skip


def plant_single_errors(tb: StuckTb, words: list[int], rng: np.random.Generator) -> None:
    """One flipped codeword bit in each of ``words``, in RTL and model (at a falling edge)."""
    bits = [int(rng.integers(tb.cw)) for _ in words]
    tb.upset([tb.layout.cell_of(w, b) for w, b in zip(words, bits, strict=True)])


@cocotb.test()
async def stuck_counter_bits_read_held_and_count_around_it(dut):
    """A counter bit stuck at 0 or 1 while a job counts (single-bit errors in A for
    ECC_CORR): the register reads the bit at its value, and RTL and model agree after the
    release. CYCLES bit 0 at 1 counts a job of C cycles as 2C + 1 (the carry passes it);
    ECC_CORR bit 0 at 0 never counts (the carry dies in it)."""
    tb = StuckTb(dut)
    await tb.start()
    rng = np.random.default_rng(cocotb.RANDOM_SEED + 2)
    draws = [("cycles_q", 0, 1), ("corr_q", 0, 0) if tb.ecc else ("macs_q", 4, 1)]
    for _ in range(2):
        name = str(rng.choice(list(COUNTERS)))
        draws.append((name, int(rng.integers(12)), int(rng.integers(2))))
    for round_, (name, bit, value) in enumerate(draws):
        tb.log.info("round %d: %s bit %d stuck at %d", round_, name, bit, value)
        job = plain_job(tb, 2 * tb.n + 1, int(rng.integers(2, 3 * tb.n)), tb.n + 2, 60 + round_)
        await job.program(tb)
        await FallingEdge(dut.clk_i)
        if tb.ecc:
            plant_single_errors(tb, [job.place.a_addr + w for w in (0, job.k, 2 * job.k - 1)], rng)
        clean = clean_outcome(tb)
        await tb.write(int(Reg.CTRL), int(accel.Ctrl.CLEAR_COUNTERS))
        reg = COUNTERS[name]

        async def during(tb: StuckTb, reg: Reg = reg, bit: int = bit, value: int = value) -> None:
            assert (await tb.read(int(reg))) >> bit & 1 == value
            await tb.compare_registers()

        await tb.stuck_job([(FlopBit(f"u_regs.{name}", bit), value)], during)
        assert np.array_equal(result(tb, job), reference(job))
        if (name, bit, value) == ("cycles_q", 0, 1):
            assert await tb.read(int(Reg.CYCLES)) == 2 * clean[2] + 1
        if (name, bit, value) == ("corr_q", 0, 0):
            assert await tb.read(int(Reg.ECC_CORR)) == 0
        await tb.write(int(Reg.STATUS), 0x6)


@cocotb.test(skip=not TMR)
async def stuck_mismatch_bit_counts_an_outvoted_copy_around_it(dut):
    """TMR_MISMATCH bit 0 stuck at 0 beside an outvoted copy never counts: after the
    release only the release cycle is counted (1); other bits (seeded) as the model says."""
    tb = StuckTb(dut)
    await tb.start()
    rng = np.random.default_rng(cocotb.RANDOM_SEED + 3)
    draws = [(0, 0)] + [(int(rng.integers(12)), int(rng.integers(2))) for _ in range(2)]
    for round_, (bit, value) in enumerate(draws):
        job = plain_job(tb, tb.n + 1, int(rng.integers(2, 2 * tb.n)), tb.n, 70 + round_)
        await job.program(tb)
        name = str(rng.choice(sorted(JOB_REGISTERS)))
        copy, cbit = int(rng.integers(3)), int(rng.integers(len(CONFIG_STORAGE[name])))
        against = 1 - (to_storage(name, tb.model.config(name)) >> cbit & 1)
        tb.log.info("round %d: mismatch_q bit %d at %d, %s copy %d bit %d at %d", round_,
                    bit, value, name, copy, cbit, against)  # fmt: skip
        await tb.write(int(Reg.CTRL), int(accel.Ctrl.CLEAR_COUNTERS))
        await tb.stuck_job([(FlopBit("u_regs.mismatch_q", bit), value),
                            (RegCopy(name, copy, cbit), against)])  # fmt: skip
        assert np.array_equal(result(tb, job), reference(job))
        if (bit, value) == (0, 0):
            assert await tb.read(int(Reg.TMR_MISMATCH)) == 1
        await tb.write(int(Reg.STATUS), 0x6)


SCRUB_KINDS = ("ptr", "passes", "timer_up", "timer_down", "state0", "state1", "corr")


def scrub_draw(tb: StuckTb, kind: str, period: int, rng: np.random.Generator):
    """The stuck bit of a scrubber round of ``kind``: (site, value)."""
    words_bits = (2 * tb.bank_words).bit_length() - 1
    if kind == "ptr":
        return FlopBit("g_scrub.u_scrub.ptr_q", int(rng.integers(words_bits))), int(rng.integers(2))
    if kind == "passes":
        return FlopBit("g_scrub.u_scrub.passes_q", int(rng.integers(3))), int(rng.integers(2))
    if kind == "timer_up":  # at least the period: the timer fires in every WAIT cycle
        return FlopBit("g_scrub.u_scrub.timer_q", period.bit_length()), 1
    if kind == "timer_down":  # a bit period - 1 needs, at 0: the timer never gets there
        bits = [b for b in range(16) if (period - 1) >> b & 1]
        return FlopBit("g_scrub.u_scrub.timer_q", int(rng.choice(bits))), 0
    if kind in ("state0", "state1"):
        return FlopBit("g_scrub.u_scrub.state_q", int(kind[-1])), 0
    return FlopBit("u_regs.corr_q", int(rng.integers(4))), int(rng.integers(2))


@cocotb.test(skip=not hdl_parameters().get("SCRUB_EN", 1))
async def stuck_scrubber_bits_hold_over_its_idle_rounds(dut):
    """A scrubber bit stuck (pointer, passes, timer, a state bit at 0, or ECC_CORR) while
    it scrubs a scratchpad with single-bit errors for more than a pass, started and stopped
    by flipping every copy of SCRUB_PERIOD at a falling edge so that the model is told of
    every cycle: registers and memory agree. What the bit does is checked too: a pointer
    bit at v never reaches the words whose bit differs, so their errors stay; state bit 0 at
    0 never reads, bit 1 at 0 never writes nor moves on; a timer bit at 1 at or above the
    period fires the timer in every WAIT cycle (a step every 3 cycles), a bit at 0 that
    period - 1 needs keeps it from firing."""
    tb = StuckTb(dut)
    await tb.start()
    clk = dut.clk_i
    rng = np.random.default_rng(cocotb.RANDOM_SEED + 4)
    words = 2 * tb.bank_words
    copies = range(3 if tb.tmr else 1)
    for round_, kind in enumerate(SCRUB_KINDS):
        period = int(rng.integers(2 if kind == "timer_down" else 1, 4))
        site, value = scrub_draw(tb, kind, period, rng)
        await FallingEdge(clk)
        errors = sorted(int(w) for w in rng.choice(words, size=24, replace=False))
        good = {w: tb.codeword(w) for w in errors}
        plant_single_errors(tb, errors, rng)
        ptr = await tb.read(int(Reg.SCRUB_PTR))
        passes = await tb.read(int(Reg.SCRUB_PASSES))
        corr = await tb.read(int(Reg.ECC_CORR))
        cycles = (period + 2) * (words + 40)
        tb.log.info("round %d: %s, %s stuck at %d, period %d, %d cycles", round_, kind, site,
                    value, period, cycles)  # fmt: skip
        flips = [RegCopy("SCRUB_PERIOD", c, b) for c in copies for b in range(16)
                 if period >> b & 1]  # fmt: skip
        await FallingEdge(clk)
        tb.stick(site, value)
        tb.upset(flips)  # SCRUB_PERIOD 0 -> period in every copy: no vote, no mismatch
        await ClockCycles(clk, cycles)
        tb.model.idle(cycles)
        await FallingEdge(clk)
        tb.upset(flips)  # back to 0: a step in progress ends, no other starts
        await ClockCycles(clk, 4)
        tb.model.idle(4)
        await tb.compare_registers()
        tb.compare_memory()
        # Steps taken (a pointer that never meets the last word aside).
        moved = ((await tb.read(int(Reg.SCRUB_PASSES)) - passes) * words
                 + await tb.read(int(Reg.SCRUB_PTR)) - ptr)  # fmt: skip
        still = [w for w in errors if tb.codeword(w) != good[w]]
        if kind == "ptr":
            assert (await tb.read(int(Reg.SCRUB_PTR))) >> site.bit & 1 == value
            assert all(w in still for w in errors if (w >> site.bit & 1) != value)
        elif kind in ("state0", "state1"):
            assert moved == 0 and still == errors
            if kind == "state0":
                assert await tb.read(int(Reg.ECC_CORR)) == corr
        elif kind == "timer_up":
            assert cycles // 3 <= moved <= cycles // 3 + 1, moved
        elif kind == "timer_down":
            assert moved == 0
        else:
            reg = Reg.SCRUB_PASSES if kind == "passes" else Reg.ECC_CORR
            assert (await tb.read(int(reg))) >> site.bit & 1 == value
        await FallingEdge(clk)
        tb.unstick_all()
        await ClockCycles(clk, 2)
        tb.model.idle(2)
        await tb.compare_registers()


@cocotb.test()
async def stuck_state_bit_runs_the_idle_sequencer_for_good(dut):
    """State bit 0 stuck at 1 (in two copies with TMR, one cycle apart) while idle: IDLE
    reads CHECK, so the programmed job runs with no START, FLUSH reads DONE, so its last
    tile is never written, and DONE's IDLE reads CHECK again. Still BUSY at the model's
    hang bound, memory as the model's; released and soft-reset, the chip runs a job right."""
    tb = StuckTb(dut)
    await tb.start()
    clk = dut.clk_i
    await tb.write(int(Reg.SCRUB_PERIOD), 0)
    rng = np.random.default_rng(cocotb.RANDOM_SEED + 5)
    m = 2 * tb.n + 1
    job = plain_job(tb, m, int(rng.integers(2, 2 * tb.n)), tb.n, seed=80)
    await job.program(tb)
    await FallingEdge(clk)
    if tb.tmr:
        tb.stick(SeqCopy("state", 0, 0), 1)  # outvoted: the chip stays idle
        assert tb.model.last_wake is None
        await FallingEdge(clk)
    tb.stick(SeqCopy("state", 1 if tb.tmr else 0, 0), 1)
    wake = tb.model.last_wake
    assert wake is not None and wake.hung and tb.model.hung
    await ClockCycles(clk, wake.cycles)
    await ReadOnly()
    assert int(dut.u_seq.busy_o.value), "RTL not BUSY at the hang bound"
    tb.compare_memory()
    c = result(tb, job)
    last = (m - 1) // tb.n * tb.n  # the last tile's first row
    assert np.array_equal(c[:last], reference(job)[:last]) and not c[last:].any()
    await FallingEdge(clk)
    tb.unstick_all()
    await tb.recover_from_hang()
    await tb.compare_registers()
    job = plain_job(tb, m, 5, tb.n, seed=81)
    await job.program(tb)
    await tb.run_faulty_job([])
    assert np.array_equal(result(tb, job), reference(job))


# ---- builds -------------------------------------------------------------------------------

BUILDS = builds.STUCK


@pytest.mark.rtl
@pytest.mark.parametrize("build", list(BUILDS))
def test_scc_stuck(build: str) -> None:
    run("scc_top", "cocotb_tests.test_scc_stuck", BUILDS[build])
