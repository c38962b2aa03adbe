"""Testbench for scc_top: clock, reset, AXI4-Lite master, the model as scoreboard.

Every bus transaction goes to the RTL and to the bit-exact model alike and the
answers must agree; memory and registers are compared whole after each step.
Expected values therefore always come from ``firmware_sim.accel``.
"""

from __future__ import annotations

import itertools
import logging
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import (
    ClockCycles,
    FallingEdge,
    First,
    ReadOnly,
    RisingEdge,
    with_timeout,
)
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from cocotb_tests import fcov
from cocotb_tests.axil_checker import AxiLiteChecker
from cocotb_tests.sim import hdl_parameters
from firmware_sim import accel
from firmware_sim.accel.job import Descriptor
from firmware_sim.accel.layout import Cell, Layout
from firmware_sim.accel.regs import CONFIG_STORAGE, SEQ_WIDTHS, Ctrl, Reg
from firmware_sim.accel.secded import code_for
from testbed.sitemap_builds import bus_parts

#: Sequencer state codes of scc_seq.v that a job point can name.
STATE_PHASE = {2: "bias", 3: "stream", 4: "flush"}
#: The scrubber's state (scc_scrub.v) in the cycle its read's word is decoded.
SCRUB_FIX = 2

SPM_BASE = 0x80000


def cycle_pause():
    """Stall one cycle in four on a bus channel (Forencich's idle/backpressure pattern)."""
    return itertools.cycle([1, 1, 1, 0])


class SccTb:
    """One scc_top build under test, with its model."""

    def __init__(self, dut, stall: bool = False) -> None:
        self.dut = dut
        p = hdl_parameters()
        self.n = p.get("N", 4)
        self.bank_words = p.get("BANK_WORDS", 1024)
        self.interleave = p.get("INTERLEAVE", 1)
        self.ecc = bool(p.get("ECC_EN", 1))
        self.scrub = bool(p.get("SCRUB_EN", 1))
        self.tmr = bool(p.get("TMR_EN", 1))
        self.log = logging.getLogger("cocotb.tb")
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.log.info("seed %d, parameters %s", cocotb.RANDOM_SEED, p)
        fcov.record()
        self.model = accel.Accelerator(
            n=self.n,
            bank_words=self.bank_words,
            interleave=self.interleave,
            ecc=self.ecc,
            scrub=self.scrub,
            tmr=self.tmr,
        )
        dw = 8 * self.n
        self.code = code_for(dw) if self.ecc else None
        self.cw = dw + (self.code.check_bits if self.code else 0)
        self.layout = Layout(self.bank_words, self.cw, self.interleave)
        self.parts = bus_parts(self.n)
        self.axil = AxiLiteMaster(
            AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk_i, dut.rst_ni, reset_active_level=False
        )
        self.checker = AxiLiteChecker(dut, dut.clk_i, dut.rst_ni)
        self._handles: dict[str, object] = {}
        self.axil.write_if.log.setLevel(logging.WARNING)
        self.axil.read_if.log.setLevel(logging.WARNING)
        if stall:
            for channel in (
                self.axil.write_if.aw_channel,
                self.axil.write_if.w_channel,
                self.axil.write_if.b_channel,
                self.axil.read_if.ar_channel,
                self.axil.read_if.r_channel,
            ):
                channel.set_pause_generator(cycle_pause())

    # ---- clock and reset ---------------------------------------------------

    async def start(self) -> None:
        """Start the clock, reset chip and model, and clear the RTL memory to match the new
        model (the simulator keeps memory from one test to the next)."""
        Clock(self.dut.clk_i, 10, unit="ns").start()
        self.checker.start()
        for monitor in (self._watch_control, self._watch_ctrl_writes, self._watch_ecc,
                        self._watch_voters):  # fmt: skip
            cocotb.start_soon(monitor())
        for bank in range(2):
            for row in range(self.layout.rows):
                self._row(bank, row).value = 0
        await self.hard_reset()

    async def hard_reset(self) -> None:
        """Pulse rst_ni (from a falling edge once out of reset); the model resets alike
        (memory kept on both)."""
        if self.dut.rst_ni.value.is_resolvable and int(self.dut.rst_ni.value):
            await FallingEdge(self.dut.clk_i)
            fcov.sample_reset("hard", self._signals("u_seq.state")["u_seq.state"])
        self.dut.rst_ni.value = 0
        await ClockCycles(self.dut.clk_i, 2)
        self.dut.rst_ni.value = 1
        await ClockCycles(self.dut.clk_i, 2)
        self.model.reset()

    # ---- functional coverage (cocotb_tests.fcov): what the RTL did -------------

    def _signals(self, *names: str) -> dict[str, int]:
        """Single values of RTL signals by path below scc_top; an unknown one reads -1."""
        values = {}
        for name in names:
            handle = self._handles.get(name)
            if handle is None:
                handle = self.dut
                for part in name.split("."):
                    handle = getattr(handle, part)
                self._handles[name] = handle
            value = handle.value
            values[name] = int(value) if value.is_resolvable else -1
        return values

    async def _watch_control(self) -> None:
        """STARTs taken, jobs started and ended, resets, and the edges of irq_o."""
        dut, seq, regs = self.dut, self.dut.u_seq, self.dut.u_regs
        names = ("irq_o", "rst_ni", "soft_rst_q", "u_regs.start_o", "u_regs.soft_reset_o",
                 "u_regs.irq_en_o", "u_seq.job_start_o", "u_seq.done_o", "u_seq.busy_o",
                 "u_seq.err_code_o", "u_seq.state")  # fmt: skip
        watched = (dut.irq_o, dut.rst_ni, regs.start_o, regs.soft_reset_o, regs.irq_en_o,
                   seq.job_start_o, seq.done_o)  # fmt: skip
        before = self._signals(*names)
        job: Descriptor | None = None
        while True:
            await First(*(s.value_change for s in watched))
            await ReadOnly()
            now = self._signals(*names)
            if now["u_regs.soft_reset_o"] == 1 and before["u_regs.soft_reset_o"] != 1:
                fcov.sample_reset("soft", now["u_seq.state"])
            if now["rst_ni"] == 0 or now["soft_rst_q"] == 1:
                job = None
            if now["u_regs.start_o"] == 1 and before["u_regs.start_o"] != 1:
                fcov.sample_start(False, now["u_seq.done_o"] == 1, now["u_seq.err_code_o"])
            if now["u_seq.job_start_o"] == 1 and before["u_seq.job_start_o"] != 1:
                job = self._descriptor()
            if now["u_seq.done_o"] == 1 and before["u_seq.done_o"] == 0:
                fcov.sample_outcome(now["u_seq.err_code_o"])
                if job is not None and now["u_seq.err_code_o"] == 0 and job.valid():
                    # Its operands from the model's scratchpad, which every test holds
                    # equal to the RTL's (C overlaps none of them).
                    fcov.sample_job(job, self.model.dump)
                job = None
            if now["irq_o"] == 1 and before["irq_o"] == 0:
                rose_with_done = before["u_seq.done_o"] == 0
                fcov.sample_irq(True, f"done_{fcov.code_name(now['u_seq.err_code_o'])}"
                                if rose_with_done else "irq_en_set_while_done")  # fmt: skip
            elif now["irq_o"] == 0 and before["irq_o"] == 1:
                if now["rst_ni"] == 0:
                    cause = "hard_reset"
                elif now["soft_rst_q"] == 1:
                    cause = "soft_reset"
                elif now["u_regs.irq_en_o"] == 0:
                    cause = "irq_en_cleared"
                elif now["u_seq.busy_o"] == 1:
                    cause = "start"
                else:
                    cause = "status_w1c"
                fcov.sample_irq(False, cause)
            before = now

    def _descriptor(self) -> Descriptor:
        """The job the RTL's configuration registers describe."""
        outputs = ("m", "k", "n", "a_addr", "b_addr", "bias_addr", "c_addr", "bias_en", "relu",
                   "out32", "shift")  # fmt: skip
        v = list(self._signals(*(f"u_regs.{o}_o" for o in outputs)).values())
        return Descriptor(self.n, self.bank_words, *v[:7], bool(v[7]), bool(v[8]), bool(v[9]),
                          v[10])  # fmt: skip

    async def _watch_ctrl_writes(self) -> None:
        """A START written while a job runs (which the chip ignores; ``start_o`` stays low)."""
        regs = self.dut.u_regs
        while True:
            await RisingEdge(regs.req_i)
            await ReadOnly()
            r = self._signals("u_regs.we_i", "u_regs.addr_i", "u_regs.wdata_i", "u_seq.busy_o")
            if (r["u_regs.we_i"] == 1 and r["u_regs.addr_i"] == int(Reg.CTRL)
                    and r["u_regs.wdata_i"] & Ctrl.START and r["u_seq.busy_o"] == 1):  # fmt: skip
                fcov.sample_start(True, False, 0)

    async def _watch_ecc(self) -> None:
        """Each decoded read with an error: the bank, who read it and, for a job, which
        operand (by the sequencer's phase: BIAS reads the bias, STREAM A from bank 0 and
        B from bank 1)."""
        if not self.ecc:
            return
        regs = self.dut.u_regs
        scrub_state = "g_scrub.u_scrub.state_q" if self.scrub else None
        while True:
            await First(regs.corr_inc_i.value_change, regs.uncorr_inc_i.value_change)
            await ReadOnly()
            if self._signals("u_regs.corr_inc_i", "u_regs.uncorr_inc_i") == {
                "u_regs.corr_inc_i": 0, "u_regs.uncorr_inc_i": 0}:  # fmt: skip
                continue  # the cycle after an error
            r = self._signals("u_seq.busy_o", "u_seq.state",
                              *([scrub_state] if scrub_state else []))  # fmt: skip
            for bank in (0, 1):
                b = self._signals(f"u_spm.u_bank{bank}.rvalid_o", f"u_spm.u_bank{bank}.single_o",
                                  f"u_spm.u_bank{bank}.double_o")  # fmt: skip
                valid, single, double = b.values()
                if valid != 1 or (single, double) == (0, 0):
                    continue
                if r["u_seq.busy_o"] == 1:
                    phase = STATE_PHASE.get(r["u_seq.state"])
                    where = "job.bias" if phase == "bias" else f"job.{'ab'[bank]}"
                elif scrub_state and r[scrub_state] == SCRUB_FIX:
                    where = f"scrubber.bank{bank}"
                else:
                    where = f"bus.bank{bank}"
                fcov.sample_ecc(where, double == 1)

    async def _watch_voters(self) -> None:
        """Each TMR voter that saw its copies disagree (with TMR). A voter is watched until
        its first disagreement: a copy held stuck disagrees in every cycle, and watching it
        on would cost Python in every cycle for a bin already hit."""
        if not self.tmr:
            return
        voters = {name: getattr(self.dut.u_regs, f"u_{name.lower()}").mismatch_o
                  for name in CONFIG_STORAGE}  # fmt: skip
        voters |= {f"seq.{name}": getattr(self.dut.u_seq, f"u_{name}").mismatch_o
                   for name in SEQ_WIDTHS}  # fmt: skip
        while voters:
            await First(*(v.value_change for v in voters.values()))
            await ReadOnly()
            for name, voter in list(voters.items()):
                if voter.value.is_resolvable and int(voter.value):
                    fcov.sample_tmr(name)
                    del voters[name]

    # ---- bus ---------------------------------------------------------------

    async def write(self, addr: int, value: int) -> int:
        """Write over AXI4-Lite and to the model; the responses must agree."""
        value &= 0xFFFFFFFF
        rtl = await self.axil.write(addr, value.to_bytes(4, "little"))
        self.checker.check()
        expected = self.model.bus_write(addr, value)
        assert int(rtl.resp) == int(expected), (
            f"write {addr:#07x}={value:#x}: RTL resp {int(rtl.resp)}, model {int(expected)}"
        )
        fcov.sample_bus(True, addr, int(rtl.resp))
        return int(rtl.resp)

    async def write_lanes(self, addr: int, value: int, lanes: range) -> int:
        """Write only the byte lanes ``lanes`` of the word at ``addr`` (a contiguous run, as
        the AXI4-Lite master issues a write of fewer than four bytes) over AXI4-Lite, and
        to the model with the same WSTRB; the responses must agree."""
        assert 0 <= lanes.start < lanes.stop <= 4 and lanes.step == 1, lanes
        strobe = sum(1 << lane for lane in lanes)
        data = (value & 0xFFFFFFFF).to_bytes(4, "little")[lanes.start : lanes.stop]
        rtl = await self.axil.write((addr & ~3) + lanes.start, data)
        self.checker.check()
        wdata = int.from_bytes(data, "little") << (8 * lanes.start)
        expected = self.model.bus_write(addr & ~3, wdata, strobe)
        assert int(rtl.resp) == int(expected), (
            f"write {addr:#07x} strobe {strobe:#06b}: RTL resp {int(rtl.resp)}, "
            f"model {int(expected)}"
        )
        fcov.sample_bus(True, addr, int(rtl.resp))
        return int(rtl.resp)

    async def read(self, addr: int) -> int:
        """Read over AXI4-Lite and from the model; data and response must agree."""
        rtl = await self.axil.read(addr, 4)
        self.checker.check()
        value, resp = self.model.bus_read(addr)
        got = int.from_bytes(rtl.data, "little")
        assert (got, int(rtl.resp)) == (value, int(resp)), (
            f"read {addr:#07x}: RTL {got:#x} resp {int(rtl.resp)}, "
            f"model {value:#x} resp {int(resp)}"
        )
        fcov.sample_bus(False, addr, int(rtl.resp))
        return got

    async def write_word(self, word: int, data: int) -> None:
        """Write one scratchpad word through the bus window, part by part."""
        for part in range(self.parts):
            await self.write(SPM_BASE + 4 * (self.parts * word + part), data >> (32 * part))

    async def read_word(self, word: int) -> int:
        """Read one scratchpad word through the bus window, part 0 first."""
        value = 0
        for part in range(self.parts):
            value |= await self.read(SPM_BASE + 4 * (self.parts * word + part)) << (32 * part)
        return value

    # ---- backdoor memory ---------------------------------------------------

    def _row(self, bank: int, row: int):
        return getattr(self.dut.u_spm, f"u_bank{bank}").mem_q[row]

    def codeword(self, word: int) -> int:
        """The codeword of a scratchpad word as the RTL holds it, gathered from its cells."""
        value = 0
        rows: dict[tuple[int, int], int] = {}
        for bit in range(self.cw):
            cell = self.layout.cell_of(word, bit)
            key = (cell.bank, cell.row)
            if key not in rows:
                rows[key] = int(self._row(*key).value)
            value |= (rows[key] >> cell.cell & 1) << bit
        return value

    def preload(self, words: dict[int, int]) -> None:
        """Store data words, ECC-encoded, in RTL and model without bus traffic or counting."""
        rows: dict[tuple[int, int], int] = {}
        dw = 8 * self.n
        for word, data in words.items():
            check = self.code.encode(data) if self.code else 0
            self.model.poke(word, data, check)
            code = (check << dw) | data
            for bit in range(self.cw):
                cell = self.layout.cell_of(word, bit)
                key = (cell.bank, cell.row)
                if key not in rows:
                    rows[key] = int(self._row(*key).value)
                rows[key] = rows[key] & ~(1 << cell.cell) | ((code >> bit & 1) << cell.cell)
        for (bank, row), value in rows.items():
            self._row(bank, row).value = value

    def data_word(self, word: int) -> int:
        """The data bits of a scratchpad word as the RTL holds it (check bits dropped)."""
        return self.codeword(word) & ((1 << 8 * self.n) - 1)

    def compare_words(self, words: list[int]) -> None:
        """The codewords of some scratchpad words equal the model's (for scratchpads too
        large to compare whole)."""
        for word in words:
            data, check = self.model.peek(word)
            expected = (check << 8 * self.n) | data
            assert self.codeword(word) == expected, f"word {word}: RTL differs from model"

    def compare_memory(self) -> None:
        """Every codeword of the scratchpad equals the model's."""
        dw = 8 * self.n
        for bank in range(2):
            for row in range(self.layout.rows):
                value = int(self._row(bank, row).value)
                for slot in range(self.interleave):
                    word = bank * self.bank_words + row * self.interleave + slot
                    code = 0
                    for bit in range(self.cw):
                        code |= (value >> (bit * self.interleave + slot) & 1) << bit
                    data, check = self.model.peek(word)
                    expected = (check << dw) | data
                    assert code == expected, (
                        f"word {word}: RTL codeword {code:#x}, model {expected:#x}"
                    )

    async def compare_registers(self) -> None:
        """Every readable register reads the same from RTL and model."""
        for reg in Reg:
            await self.read(int(reg))

    # ---- jobs --------------------------------------------------------------

    async def program(self, **fields: int) -> None:
        """Write job descriptor registers given by name (DIM_M=..., EPILOGUE=...)."""
        for name, value in fields.items():
            assert await self.write(int(Reg[name]), value) == 0, f"writing {name} refused"

    async def start_job(self, faults: list[accel.ScheduledFault] | None = None) -> None:
        """Write CTRL.START: the model runs the whole job at once (with the faults
        scheduled in it), the RTL starts it and a watcher deposits the same faults."""
        if faults:
            cocotb.start_soon(self._inject_during_job(faults))
        rtl = await self.axil.write(int(Reg.CTRL), (1).to_bytes(4, "little"))
        assert int(rtl.resp) == 0, "START refused"
        self.model.run(faults or [])

    async def wait_done(self, timeout_us: int = 20000) -> None:
        """Wait for the RTL's interrupt (IRQ_EN must be set) that ends the job."""
        if not int(self.dut.irq_o.value):
            await with_timeout(RisingEdge(self.dut.irq_o), timeout_us, "us")

    async def run_job(self) -> None:
        """Start a job, wait for it on the RTL and compare registers and memory."""
        await self.start_job()
        await self.wait_done()
        await self.compare_registers()
        self.compare_memory()

    def _handle_bit(self, site: accel.FaultSite):
        """The RTL signal and bit that hold a fault site."""
        if isinstance(site, Cell):
            return self._row(site.bank, site.row), site.cell
        if isinstance(site, accel.AccBit):
            return self.dut.u_array.g_row[site.i].g_col[site.j].u_pe.acc_q, site.bit
        if isinstance(site, accel.OutBit):
            return self.dut.u_array.g_row[site.i].g_col[site.j].u_pe.out_q, site.bit
        if isinstance(site, accel.RegCopy):
            return getattr(self.dut.u_regs, f"u_{site.name.lower()}").q_q[site.copy], site.bit
        if isinstance(site, accel.SeqCopy):
            return getattr(self.dut.u_seq, f"u_{site.name.lower()}").q_q[site.copy], site.bit
        raise TypeError(f"not a fault site: {site!r}")

    def deposit(self, sites: list[accel.FaultSite]) -> None:
        """Flip fault sites in the RTL with one deposit per signal: deposits land at the end
        of the time step, so a second read-modify-write of one signal would undo the first."""
        masks: dict[int, tuple[object, int]] = {}
        for site in sites:
            handle, bit = self._handle_bit(site)
            _, mask = masks.get(id(handle), (handle, 0))
            masks[id(handle)] = (handle, mask ^ (1 << bit))
        for handle, mask in masks.values():
            handle.value = int(handle.value) ^ mask

    def upset(self, sites: list[accel.FaultSite]) -> None:
        """Flip sites in RTL and model in the same cycle (call at a falling edge)."""
        self.deposit(sites)
        self.model.flip_many(sites)

    async def _inject_during_job(self, faults: list[accel.ScheduledFault]) -> None:
        """Deposit each fault at the falling edge inside its job point's cycle.

        A cycle of STREAM (or FLUSH) past N is also the write cycle of the tile
        before (or of the last tile), so it answers to both names.
        """
        pending: dict[tuple[int, str, int], list[accel.FaultSite]] = {}
        for when, site in faults:
            key = (when.tile, accel.Phase(when.phase).value, when.cycle)
            pending.setdefault(key, []).append(site)
        seq = self.dut.u_seq
        mb = -(-self.model.read_reg(Reg.DIM_M) // self.n)
        while pending:
            await RisingEdge(self.dut.clk_i)
            await ReadOnly()
            state = int(seq.state.value)
            if state == 0 and int(seq.done_o.value):
                break
            phase = STATE_PHASE.get(state)
            if phase is None:
                continue
            tile = int(seq.cb.value) * mb + int(seq.rb.value)
            t = int(seq.t.value)
            keys = [(tile, phase, t)]
            if phase != "bias" and t >= self.n + 1:
                keys.append((tile if phase == "flush" else tile - 1, "write", t - self.n - 1))
            sites = [site for key in keys for site in pending.pop(key, [])]
            if sites:
                await FallingEdge(self.dut.clk_i)
                self.deposit(sites)
        assert not pending, f"job ended before the fault points {sorted(pending)}"
