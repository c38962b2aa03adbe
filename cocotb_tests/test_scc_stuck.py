"""scc_top against the model: register bits stuck at 0 or 1 across idle cycles and jobs.

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
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from cocotb_tests.sim import hdl_parameters, run
from cocotb_tests.test_scc import Job
from cocotb_tests.test_scc_control_faults import ControlTb, clean_outcome
from firmware_sim import accel
from firmware_sim.accel import AccBit, Reg, RegCopy, SeqCopy
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


# ---- builds -------------------------------------------------------------------------------

BUILDS = {
    "n4": {"N": 4, "BANK_WORDS": 256},
    "n4-no-tmr": {"N": 4, "BANK_WORDS": 256, "TMR_EN": 0, "SCRUB_EN": 0},
}


@pytest.mark.rtl
@pytest.mark.parametrize("build", list(BUILDS))
def test_scc_stuck(build: str) -> None:
    run("scc_top", "cocotb_tests.test_scc_stuck", BUILDS[build])
