"""The chip's RTL in a simulator as the flight software's chip (``firmware_sim.chip.Chip``).

The flight software runs in a thread of the simulation (cocotb's ``bridge``); each of its
calls here is a coroutine run on the simulator's side (``resume``) while the software
waits, so simulated time passes only when the software uses the chip: a bus transaction
is a real AXI4-Lite transaction (``cocotbext-axi``), waiting for the interrupt lets the
clock run until ``irq_o`` rises, and the clock runs idle, a bounded number of cycles at
a time, while the software does other work (``advance``).

Faults name site-map entries (``firmware_sim.rtl.handles``): a flip is a deposit at a
falling edge, a transient on a TMR register's shared next value flips every copy just
after the edge that loads it (the net feeds the copies alone), a stuck bit is deposited
again whenever its flop loads another value, in the same time step (a memory cell after
every access, job and idle stretch that could write it, as the model's chip holds it).
Faults armed for a job are placed by a watcher that counts the job's cycles from its
START (CHECK is cycle 0), the cycles of the points the job schedule gives the
descriptor (docs/REGISTERS.md). A bus transaction
that gets no answer in ``BUS_TIMEOUT_CYCLES`` (an upset in the bus interface can leave
its handshake hanging) ends with SLVERR, and the chip is reset, as a bus watchdog does.

A job still BUSY at its hang bound (``firmware_sim.accel.cycle_job.hang_bound``) is hung,
as the model has it: the chip's clock is not run further for it while it waits, so it
stays there (bus accesses still take their few cycles) until a soft reset.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.task import Task, resume
from cocotb.triggers import (
    ClockCycles,
    FallingEdge,
    First,
    ReadOnly,
    RisingEdge,
    SimTimeoutError,
    Timer,
    with_timeout,
)
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from firmware_sim.accel import JobPoint
from firmware_sim.accel.cycle_job import hang_bound
from firmware_sim.accel.job import Descriptor
from firmware_sim.accel.regs import (
    SHIFT_LSB,
    SHIFT_MASK,
    SPM_BASE,
    Ctrl,
    Epilogue,
    Reg,
    Resp,
)
from firmware_sim.chip import (
    ACCEL_CLOCK_HZ,
    Act,
    JobInjection,
    SiteFault,
    check_reachable,
    site_entry,
)
from firmware_sim.rtl import handles
from protocol.codes import NotInjectedReason
from testbed.sitemap import Entry, SiteMap
from testbed.sitemap_builds import Build

CLOCK_NS = 10
"""The simulated clock's period."""
IDLE_CYCLES = 2000
"""Most cycles one ``advance`` runs the idle chip: simulated cycles cost wall time."""
BUS_TIMEOUT_CYCLES = 1000
"""Cycles a bus transaction may take before the chip counts as not answering."""
_DESCRIPTOR = (Reg.DIM_M, Reg.DIM_K, Reg.DIM_N, Reg.A_ADDR, Reg.B_ADDR, Reg.BIAS_ADDR,
               Reg.C_ADDR, Reg.EPILOGUE)  # fmt: skip


async def edges(clk, n: int) -> None:
    """Wait for the ``n``-th rising edge of ``clk`` from now (call between edges, or just
    after one): one timer and one edge, where ``ClockCycles`` wakes Python at every edge.
    The clock's rising edges fall on multiples of ``CLOCK_NS`` (it starts at time 0)."""
    if n <= 0:
        return
    if n > 1:
        now = get_sim_time("ns")
        target = (now // CLOCK_NS + n) * CLOCK_NS
        await Timer(target - CLOCK_NS // 2 - now, "ns")  # the falling edge before it
    await RisingEdge(clk)


class RtlChip:
    """``scc_top`` of one build in a running simulation, as the flight software's chip.

    Its blocking methods (``firmware_sim.chip.Chip``) are called from the flight
    software's thread; the coroutines behind them (``bus_write``, ``wait_irq``,
    ``place_faults``, ...) run in the simulator's, where a test bench may await them.
    """

    name = "rtl"

    def __init__(self, dut, build: Build, clock_hz: float = ACCEL_CLOCK_HZ) -> None:
        self.dut = dut
        self.build = build
        self.clock_hz = clock_hz
        self.axil = AxiLiteMaster(
            AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk_i, dut.rst_ni, reset_active_level=False
        )
        self.axil.write_if.log.setLevel(logging.WARNING)
        self.axil.read_if.log.setLevel(logging.WARNING)
        self._sitemap: SiteMap | None = None
        self.armed: list[SiteFault] = []
        self.stuck_cells: dict[tuple[str, int], SiteFault] = {}
        self.stuck_registers: dict[tuple[str, int], SiteFault] = {}
        self.power_cycles = 0
        self.bus_timeouts = 0
        self._holder: Task | None = None
        self._held_registers: handles.Held = []
        self._watcher: Task | None = None
        self._pending: list[SiteFault] = []
        self._tally: JobInjection | None = None
        self._settled: JobInjection | None = None
        # The run in progress (a job, or an idle sequencer an upset woke): the time of
        # its START cycle and its hang bound in cycles.
        self._run: tuple[int, int] | None = None

    @property
    def sitemap(self) -> SiteMap:
        if self._sitemap is None:
            self._sitemap = SiteMap.for_build(**self.build.options())
        return self._sitemap

    # --- the simulator's side ------------------------------------------------------

    async def power_on(self) -> None:
        """Start the clock and hold the chip in reset for two cycles. The clock runs in
        the simulator (cocotb's C++ clock): no Python wakes at its edges."""
        self.dut.rst_ni.value = 0
        # Low for half a period first: the bus handshakes leave X before the first edge,
        # and rising edges fall on multiples of the period (``edges``).
        await Timer(CLOCK_NS // 2, "ns")
        Clock(self.dut.clk_i, CLOCK_NS, unit="ns", impl="gpi").start(start_high=False)
        await self._reset_pulse()

    async def _reset_pulse(self) -> None:
        self.dut.rst_ni.value = 0
        await ClockCycles(self.dut.clk_i, 2)
        self.dut.rst_ni.value = 1
        await ClockCycles(self.dut.clk_i, 2)

    def _busy(self) -> bool:
        return bool(int(self.dut.u_seq.busy_o.value))

    async def bus_write(self, addr: int, value: int) -> Resp:
        ctrl = addr == Reg.CTRL
        start = ctrl and value & Ctrl.START and not value & Ctrl.SOFT_RESET and not self._busy()
        if start:
            self._arm(await self.descriptor())
        data = (value & 0xFFFF_FFFF).to_bytes(4, "little")
        reply = await self._bus(self.axil.write(addr, data))
        if ctrl and value & Ctrl.SOFT_RESET:
            self._end_run()
        if addr >= SPM_BASE and self.stuck_cells:
            self._hold_cells()
        return Resp.SLVERR if reply is None else Resp(int(reply.resp))

    def _arm(self, d: Descriptor) -> None:
        """The faults armed go with the job ``d`` about to start (a watcher places them)."""
        self._watcher = cocotb.start_soon(self._watch(self.armed, d))
        self.armed = []

    async def start(self, d: Descriptor) -> Resp:
        """START the job the registers hold, which the caller knows to be ``d`` (a test
        bench that programmed them), with the faults armed."""
        self._arm(d)
        start = int(Ctrl.START).to_bytes(4, "little")
        reply = await self._bus(self.axil.write(int(Reg.CTRL), start))
        return Resp.SLVERR if reply is None else Resp(int(reply.resp))

    async def bus_write_block(self, writes: Sequence[tuple[int, int]]) -> list[Resp]:
        out = []
        for addr, value in writes:
            out.append(await self.bus_write(addr, value))
            if out[-1] != Resp.OKAY:
                break
        return out

    async def bus_read_block(self, addrs: Sequence[int]) -> list[tuple[int, Resp]]:
        return [await self.bus_read(addr) for addr in addrs]

    async def bus_read(self, addr: int) -> tuple[int, Resp]:
        reply = await self._bus(self.axil.read(addr, 4))
        if reply is None:
            return 0, Resp.SLVERR
        return int.from_bytes(reply.data, "little"), Resp(int(reply.resp))

    async def _bus(self, transaction):
        """A bus transaction's reply, or None if the chip gave none within
        ``BUS_TIMEOUT_CYCLES``: the chip is then reset (``rst_ni``), which ends it."""
        try:
            return await with_timeout(transaction, BUS_TIMEOUT_CYCLES * CLOCK_NS, "ns")
        except SimTimeoutError:
            self.bus_timeouts += 1
            self._end_run()
            await self._reset_pulse()
            return None

    async def descriptor(self) -> Descriptor:
        """The job the configuration registers describe (their voted values)."""
        v = {}
        for reg in _DESCRIPTOR:
            v[reg], _ = await self.bus_read(int(reg))
        epi = v[Reg.EPILOGUE]
        return Descriptor(
            n=self.build.n, bank_words=self.build.bank_words, m=v[Reg.DIM_M], k=v[Reg.DIM_K],
            ncols=v[Reg.DIM_N], a_addr=v[Reg.A_ADDR], b_addr=v[Reg.B_ADDR],
            bias_addr=v[Reg.BIAS_ADDR], c_addr=v[Reg.C_ADDR],
            bias_en=bool(epi & Epilogue.BIAS_EN), relu=bool(epi & Epilogue.RELU),
            out_int32=bool(epi & Epilogue.OUT_INT32), shift=(epi >> SHIFT_LSB) & SHIFT_MASK,
        )  # fmt: skip

    async def _watch(self, faults: list[SiteFault], d: Descriptor) -> None:
        """Find the job's START, then place each armed fault in its job cycle."""
        clk, seq = self.dut.clk_i, self.dut.u_seq
        tally = JobInjection(len(faults))
        self._tally, self._pending = tally, []
        while True:
            await RisingEdge(clk)
            await ReadOnly()
            if int(seq.job_start_o.value):
                break
        bound = hang_bound(d)
        self._run = (int(get_sim_time("ns")), bound)
        by_cycle: dict[int, list[SiteFault]] = {}
        for fault in faults:
            x = fault.when
            if isinstance(x, JobPoint):
                try:
                    if not d.valid():
                        raise ValueError("the job fails CHECK")
                    d.check_point(x)
                except ValueError:
                    tally.not_injected[NotInjectedReason.NO_SUCH_POINT] += 1
                    continue
                x = d.job_cycle(x)
            assert isinstance(x, int)
            if x >= bound:
                tally.not_injected[NotInjectedReason.JOB_ENDED_BEFORE] += 1
                continue
            by_cycle.setdefault(x, []).append(fault)
            self._pending.append(fault)
        at = -1  # the START cycle
        for x in sorted(by_cycle):
            await edges(clk, x - at)
            at = x
            await ReadOnly()
            if not int(seq.busy_o.value):
                return  # the job ended first: ``settle`` counts what is still pending
            await FallingEdge(clk)
            due = by_cycle[x]
            for fault in due:
                self._pending.remove(fault)
            if await self._apply(due):
                at += 1

    async def _apply(self, faults: list[SiteFault]) -> bool:
        """Flip faults now (at a falling edge). A transient on a TMR register's shared
        next value is latched by every copy at the next rising edge: that net feeds the
        copies alone, so each copy is flipped just after that edge, as if it had loaded
        the glitched value (True if one was: that edge has passed)."""
        flips: list[tuple[Entry, int]] = []
        latched: list[tuple[Entry, int]] = []
        copies = 3 if self.build.tmr else 1
        for fault in faults:
            entry = self.sitemap.entry(fault.entry)
            if fault.act is Act.TRANSIENT and self.build.tmr and entry.copy is not None:
                base = entry.name.rsplit("[", 1)[0]
                latched += [(self.sitemap.entry(f"{base}[{c}]"), fault.bit) for c in range(copies)]
            elif fault.act is Act.TRANSIENT:
                # Every register bit that loads the same net takes it (SiteMap.loads).
                loads = self.sitemap.loads(entry.name, fault.bit)
                flips += [(self.sitemap.entry(name), b) for name, b in loads]
            else:
                flips.append((entry, fault.bit))
        handles.flip(self.dut, flips)
        if not latched:
            return False
        await RisingEdge(self.dut.clk_i)
        await Timer(1, unit="ns")  # the copies have loaded the next value
        handles.flip(self.dut, latched)
        return True

    def _cycles_left(self) -> int | None:
        """Cycles the run in progress may still go before its hang bound (None: no run)."""
        if self._run is None:
            return None
        start, bound = self._run
        done = (int(get_sim_time("ns")) - start) // CLOCK_NS
        return max(bound + 1 - done, 0)

    async def wait_irq(self, cycles: int) -> bool:
        irq = self.dut.irq_o
        if not int(irq.value):
            left = self._cycles_left()
            limit = cycles if left is None else min(cycles, left)
            if limit > 0:
                await First(RisingEdge(irq), Timer(limit * CLOCK_NS, "ns"))
        await ReadOnly()
        fired = bool(int(irq.value))
        if not self._busy() and self._run is not None:
            self._run = None
        await FallingEdge(self.dut.clk_i)
        if self.stuck_cells:
            self._hold_cells()
        return fired

    async def run_idle(self, cycles: int) -> None:
        if self._busy():
            left = self._cycles_left()
            if left is None:  # BUSY with no START seen: an upset woke the sequencer
                d = await self.descriptor()
                self._run = (int(get_sim_time("ns")), hang_bound(d))
                left = self._cycles_left()
            cycles = min(cycles, left or 0)
        if cycles > 0:
            await edges(self.dut.clk_i, cycles)
            await FallingEdge(self.dut.clk_i)
        if self.stuck_cells:
            self._hold_cells()

    async def power_off_on(self) -> None:
        self._end_run()
        self._stop_holding()
        self.stuck_registers.clear()  # register bits are state: power clears them
        await FallingEdge(self.dut.clk_i)
        for bank in (0, 1):
            memory = handles.resolve(self.dut, f"u_spm.u_bank{bank}.mem_q")
            for row in range(len(memory)):
                memory[row].value = 0
        await self._reset_pulse()
        await FallingEdge(self.dut.clk_i)
        if self.stuck_cells:
            self._hold_cells()

    async def place_faults(self, faults: list[SiteFault]) -> None:
        now = [f for f in faults if f.when is None and not f.act.stuck]
        stuck = [f for f in faults if f.act.stuck]
        self.armed += [f for f in faults if f.when is not None and not f.act.stuck]
        if not (now or stuck):
            return
        await FallingEdge(self.dut.clk_i)
        if now:
            # Between jobs every copy of a TMR register loads a transient: as flipping each.
            flips = []
            for fault in now:
                entry = self.sitemap.entry(fault.entry)
                if fault.act is Act.TRANSIENT and entry.copy is not None:
                    base = entry.name.rsplit("[", 1)[0]
                    copies = 3 if self.build.tmr else 1
                    flips += [SiteFault(Act.FLIP, f"{base}[{c}]", fault.bit) for c in range(copies)]
                else:
                    flips.append(fault)
            await self._apply(flips)
        for fault in stuck:
            entry = self.sitemap.entry(fault.entry)
            key = (fault.entry, fault.bit)
            if entry.kind == "memory":
                self.stuck_cells[key] = fault
            else:
                self.stuck_registers[key] = fault
        self._held_registers = self._held(self.stuck_registers)
        self._hold_cells()
        self._hold_registers()
        if self.stuck_registers and self._holder is None:
            self._holder = cocotb.start_soon(self._hold_every_cycle())

    def _held(self, faults: dict[tuple[str, int], SiteFault]) -> handles.Held:
        bits = [(self.sitemap.entry(f.entry), f.bit, f.act.level) for f in faults.values()]
        return handles.held(self.dut, bits)

    def _hold_cells(self) -> None:
        handles.hold(self._held(self.stuck_cells))

    def _hold_registers(self) -> None:
        handles.hold(self._held_registers)

    async def _hold_every_cycle(self) -> None:
        """Set the stuck bits again whenever their flop loads another value (in the time
        step it loads it, so that every edge samples the stuck value)."""
        while True:
            signals = self._held_registers
            if not signals:
                return
            await First(*(handle.value_change for handle, _, _ in signals))
            self._hold_registers()

    def _stop_holding(self) -> None:
        self._held_registers = []
        if self._holder is not None:
            self._holder.cancel()
            self._holder = None

    async def clear_faults(self) -> int:
        count = len(self.stuck_cells) + len(self.stuck_registers) + len(self.armed)
        self.stuck_cells.clear()
        self.stuck_registers.clear()
        self.armed.clear()
        self._stop_holding()
        return count

    async def settle_faults(self) -> JobInjection | None:
        if self._tally is not None:
            if self._watcher is not None and not self._watcher.done():
                self._watcher.cancel()
            self._close_tally()
        out, self._settled = self._settled, None
        return out

    def _end_run(self) -> None:
        """The run in progress ended (DONE, idle again, or reset): stop placing its faults."""
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()
        self._watcher = None
        self._run = None
        self._close_tally()

    def _close_tally(self) -> None:
        if self._tally is not None:
            if self._pending:
                # The job ended (or was reset) before their cycle.
                missed = NotInjectedReason.JOB_ENDED_BEFORE
                self._tally.not_injected[missed] += len(self._pending)
            self._settled, self._tally, self._pending = self._tally, None, []

    # --- the flight software's side (``firmware_sim.chip.Chip``) ----------------------

    def write(self, addr: int, value: int) -> Resp:
        return resume(self.bus_write)(addr, value)

    def read(self, addr: int) -> tuple[int, Resp]:
        return resume(self.bus_read)(addr)

    def write_block(self, writes: Sequence[tuple[int, int]]) -> list[Resp]:
        return resume(self.bus_write_block)(list(writes))

    def read_block(self, addrs: Sequence[int]) -> list[tuple[int, Resp]]:
        return resume(self.bus_read_block)(list(addrs))

    def wait_for_interrupt(self, cycles: int) -> bool:
        return resume(self.wait_irq)(cycles)

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            resume(self.run_idle)(min(math.ceil(seconds * self.clock_hz), IDLE_CYCLES))

    def power_cycle(self) -> None:
        resume(self.power_off_on)()
        self.power_cycles += 1

    def check(self, faults: Sequence[SiteFault], waiting: Sequence[SiteFault] = ()) -> None:
        # The RTL has every storage element of its map: only a site or a point that does
        # not exist is refused.
        for i, fault in enumerate(faults):
            site_entry(self.sitemap, fault, i)
            check_reachable(fault, self.build.n, i)

    def place(self, faults: Sequence[SiteFault]) -> None:
        resume(self.place_faults)(list(faults))

    def active(self) -> list[SiteFault]:
        return [*self.stuck_cells.values(), *self.stuck_registers.values(), *self.armed]

    def clear(self) -> int:
        return resume(self.clear_faults)()

    def settle(self) -> JobInjection | None:
        return resume(self.settle_faults)()
