"""The cocotb test that runs a campaign's injections on the chip's RTL, one simulator run
for many injections (``campaign.rtl_backend`` starts it and feeds it).

For each chip job of the workload (``campaign.workloads``) it builds the pre-job state
the model backend starts every run of that job from (the job's operands in the
scratchpad, its registers programmed, the scrubber stopped), runs each job clean once as
its golden run, then takes injections one by one from the worker over a socket (a line
of JSON, ``Injection.to_json``) and answers each with its outcome:

- back to the pre-job state of the injection's job: ``rst_ni`` (every flop to its reset
  value), the scratchpad rows that differ from their pre-job value written back, the job
  registers programmed over AXI4-Lite;
- the fault armed (``firmware_sim.rtl.chip.RtlChip``: flips and transients placed at the
  job cycle of their point, a stuck bit held from before START to the read-back);
- START, and the clock run until the sequencer leaves BUSY or the job's hang bound;
- C read back as the flight software reads it: a word with an error goes through the
  RTL's own decoder over the bus (corrected and counted, or refused), the others are read
  from the cells; then STATUS and the EDAC counters over the bus;
- the run's result made from that C (``CampaignWorkload.finish``) and classified against
  the golden run's (``campaign.outcome``).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import time
from dataclasses import dataclass, field

import cocotb
import numpy as np
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, FallingEdge, First, ReadOnly, Timer
from pydantic import TypeAdapter

from campaign.outcome import (
    ENDED_WITHOUT_DONE,
    MITIGATION_COUNTERS,
    Observation,
    Outcome,
    Verdict,
    classify,
)
from campaign.plan import Injection
from campaign.workloads import CampaignWorkload, ChipJob, make_workload
from firmware_sim.accel import Accelerator, Descriptor, JobPoint, Phase
from firmware_sim.accel.cycle_job import hang_bound
from firmware_sim.accel.layout import Cell
from firmware_sim.accel.packing import Placement, unpack_c
from firmware_sim.accel.regs import ERR_CODE_SHIFT, SPM_BASE, Reg, Resp, Status
from firmware_sim.accel.secded import code_for
from firmware_sim.chip import Act, SiteFault, cell_fault, spm_layout
from firmware_sim.rtl import handles
from firmware_sim.rtl.chip import CLOCK_NS, RtlChip
from testbed.clusters import shape
from testbed.config.campaign import WorkloadSpec
from testbed.sitemap import SiteClass
from testbed.sitemap_builds import Build

BUILD_ENV = "ORBIT_HIL_CAMPAIGN_BUILD"
WORKLOAD_ENV = "ORBIT_HIL_CAMPAIGN_WORKLOAD"
SOCKET_ENV = "ORBIT_HIL_CAMPAIGN_SOCKET"
#: The registers a run programs, in this order (the model's values after ``load_job``).
PROGRAMMED = (Reg.IRQ_EN, Reg.DIM_M, Reg.DIM_K, Reg.DIM_N, Reg.A_ADDR, Reg.B_ADDR,
              Reg.BIAS_ADDR, Reg.C_ADDR, Reg.EPILOGUE, Reg.SCRUB_PERIOD)  # fmt: skip
#: HK names of the counters a run compares, and their registers.
COUNTERS = {"ecc_corrected": Reg.ECC_CORR, "ecc_uncorrectable": Reg.ECC_UNCORR,
            "tmr_mismatches": Reg.TMR_MISMATCH}  # fmt: skip


@dataclass
class _Job:
    """One chip job's pre-job state as the model builds it, and its golden run."""

    place: Placement
    registers: dict[Reg, int]
    descriptor: Descriptor
    bound: int
    rows: dict[int, list[int]]
    counters: dict[str, int] = field(default_factory=dict)


class InjectionBench:
    """One build's RTL, the campaign's workload in it, and injections run on it."""

    def __init__(self, dut, build: Build, workload: CampaignWorkload) -> None:
        self.dut = dut
        self.build = build
        self.workload = workload
        self.chip = RtlChip(dut, build)
        self.layout = spm_layout(build)
        self.code = code_for(8 * build.n) if build.ecc else None
        self.masks = self.code.masks if self.code is not None else ()
        self.jobs = [self._job(job) for job in workload.jobs]
        self.memory = {b: [row for row in handles.resolve(dut, f"u_spm.u_bank{b}.mem_q")]
                       for b in (0, 1)}  # fmt: skip
        #: Wall seconds per part of a run, and the clock cycles simulated, since start.
        self.spent: dict[str, float] = dict.fromkeys(("restore", "job", "read_back"), 0.0)
        self.cycles = 0

    def _job(self, job: ChipJob) -> _Job:
        model = Accelerator(**self.build.options())
        model.write_reg(Reg.SCRUB_PERIOD, 0)  # as on the model: a run is one job
        place = model.load_job(**job.job_args())
        descriptor = model.descriptor()
        registers = {r: model.read_reg(r) for r in PROGRAMMED}
        rows = {b: self._model_rows(model, b) for b in (0, 1)}
        return _Job(place, registers, descriptor, hang_bound(descriptor), rows)

    def _model_rows(self, model: Accelerator, bank: int) -> list[int]:
        """The pre-job value of each physical row of a bank (docs/REGISTERS.md layout)."""
        lay, dw, il = self.layout, 8 * self.build.n, self.build.interleave
        rows = []
        for row in range(lay.rows):
            value = 0
            for slot in range(il):
                data, check = model.peek(bank * self.build.bank_words + row * il + slot)
                code = (check or 0) << dw | data
                for bit in range(lay.codeword_bits):
                    value |= (code >> bit & 1) << (bit * il + slot)
            rows.append(value)
        return rows

    async def start(self) -> None:
        """Power on, and every clean job once: the golden runs, each checked against the
        workload's reference."""
        await self.chip.power_on()
        for j, job in enumerate(self.jobs):
            clean, _ = await self._run(j, [])
            label = self.workload.jobs[j].label
            if clean.error or clean.hung or clean.result is None:
                raise RuntimeError(f"the golden run of {label} on the RTL failed: {clean}")
            if not np.array_equal(clean.result, self.workload.job_golden(j)):
                raise RuntimeError(f"the RTL's fault-free {label} differs from the reference")
            job.counters = clean.counters or {}

    async def _restore(self, job: _Job) -> None:
        dut = self.dut
        await FallingEdge(dut.clk_i)
        dut.rst_ni.value = 0
        for bank, rows in job.rows.items():
            memory = self.memory[bank]
            for row, want in enumerate(rows):
                cell = memory[row]
                if handles.read_int(cell) != want:
                    cell.value = want
        await ClockCycles(dut.clk_i, 2)
        dut.rst_ni.value = 1
        await ClockCycles(dut.clk_i, 1)
        for reg, value in job.registers.items():
            resp = await self.chip.bus_write(int(reg), value)
            assert resp == Resp.OKAY, f"programming {reg.name} answered {resp.name}"

    async def _run(self, j: int, faults: list[SiteFault]) -> tuple[Observation, int]:
        """One run of chip job ``j`` from its pre-job state with ``faults``: what the
        software would see (the job's C), and how many of the faults the job never
        reached."""
        t0, c0 = time.perf_counter(), get_sim_time("ns")
        stalls = self.chip.bus_timeouts
        job = self.jobs[j]
        await self._restore(job)
        t1 = time.perf_counter()
        chip = self.chip
        stuck = [f for f in faults if f.act.stuck]
        if stuck:
            await chip.place_faults(stuck)
        chip.armed = [f for f in faults if not f.act.stuck]
        await chip.start(job.descriptor)
        seq = self.dut.u_seq
        await First(FallingEdge(seq.busy_o), Timer((job.bound + 2) * CLOCK_NS, "ns"))
        await ReadOnly()
        hung = bool(int(seq.busy_o.value))
        await FallingEdge(self.dut.clk_i)
        tally = await chip.settle_faults()
        missed = tally.missed if tally is not None else 0
        t2 = time.perf_counter()
        if hung:
            seen = Observation(None, hung=True)
        else:
            seen = await self._read_back(j)
        if stuck:
            await chip.clear_faults()
        if chip.bus_timeouts != stalls:
            # The bus stopped answering: the software's access never ends until a reset.
            seen = Observation(None, "the chip's bus stopped answering; it was reset", True)
        t3 = time.perf_counter()
        for part, seconds in zip(self.spent, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            self.spent[part] += seconds
        self.cycles += int(get_sim_time("ns") - c0) // CLOCK_NS
        return seen, missed

    async def _read_back(self, j: int) -> Observation:
        chip, place = self.chip, self.jobs[j].place
        m, _, ncols = self.workload.jobs[j].dims
        status, _ = await chip.bus_read(int(Reg.STATUS))
        n, dw = self.build.n, 8 * self.build.n
        words = np.zeros((place.c_words, n), dtype=np.uint8)
        error = ""
        codes = self._codewords(range(place.c_addr, place.c_addr + place.c_words))
        for i, code in enumerate(codes):
            word = place.c_addr + i
            data = code & ((1 << dw) - 1)
            if self.code is not None and self._check(data) != code >> dw:
                data, resp = await self._bus_word(word)
                if resp != Resp.OKAY and not error:
                    error = f"result word {i} uncorrectable on read-back (ECC)"
            words[i] = np.frombuffer(data.to_bytes(n, "little"), dtype=np.uint8)
        counters = {}
        for name, reg in COUNTERS.items():
            counters[name], _ = await chip.bus_read(int(reg))
        if status & Status.ERROR:
            code = status >> ERR_CODE_SHIFT & 0xF
            return Observation(None, f"the job ended in error, ERR_CODE {code}", False, counters)
        if not status & Status.DONE:
            return Observation(None, ENDED_WITHOUT_DONE, False, counters)
        if error:
            return Observation(None, error, False, counters)
        result = unpack_c(words, m, ncols, self.workload.jobs[j].out_int32)
        return Observation(result, "", False, counters)

    def _check(self, data: int) -> int:
        """The SECDED check bits of a data word (the generator's code)."""
        check = 0
        for p, mask in enumerate(self.masks):
            check |= ((data & mask).bit_count() & 1) << p
        return check

    def _codewords(self, words: range) -> list[int]:
        """The codewords of scratchpad words as the RTL's cells hold them (each physical
        row read once)."""
        il, bank_words = self.build.interleave, self.build.bank_words
        bits = range(self.layout.codeword_bits)
        rows: dict[tuple[int, int], int] = {}
        out = []
        for word in words:
            bank, row = divmod(word, bank_words)
            row, slot = divmod(row, il)
            value = rows.get((bank, row))
            if value is None:
                value = rows[(bank, row)] = handles.read_int(self.memory[bank][row])
            if il == 1:
                out.append(value)
            else:
                out.append(sum((value >> (b * il + slot) & 1) << b for b in bits))
        return out

    async def _bus_word(self, word: int) -> tuple[int, Resp]:
        """A scratchpad word over the bus, part by part (the first part's response)."""
        parts = self.build.bus_parts
        value, first = 0, Resp.OKAY
        for p in range(parts):
            part, resp = await self.chip.bus_read(SPM_BASE + 4 * (parts * word + p))
            value |= part << (32 * p)
            first = resp if p == 0 else first
        return value & ((1 << (8 * self.build.n)) - 1), first

    def faults(self, inj: Injection) -> list[SiteFault]:
        """The chip faults of an injection, as the model backend flips its sites."""
        when = JobPoint(inj.tile, Phase(inj.phase), inj.cycle)
        if inj.kind == "stuck_at":
            act = Act.STUCK_1 if inj.value else Act.STUCK_0
            return [SiteFault(act, inj.entry, inj.bit)]
        if inj.kind == "mbu":
            entry = self.chip.sitemap.entry(inj.entry)
            row, cell = entry.locate(inj.bit)
            origin = Cell(int(inj.entry.split("u_bank")[1][0]), row, cell)
            lay = self.layout
            cells = [Cell(origin.bank, origin.row + dr, origin.cell + dc)
                     for dr, dc in shape(inj.size, inj.orientation).offsets]  # fmt: skip
            # A cluster reaching past the array's edge flips the cells that exist.
            return [cell_fault(Act.FLIP, c, lay, when) for c in cells
                    if 0 <= c.row < lay.rows and 0 <= c.cell < lay.row_cells]  # fmt: skip
        act = Act.TRANSIENT if inj.kind == "set" else Act.FLIP
        return [SiteFault(act, inj.entry, inj.bit, when)]

    async def run(self, inj: Injection) -> Verdict:
        """One injection: its outcome class and why."""
        seen, missed = await self._run(inj.job, self.faults(inj))
        if missed:
            why = f"the job never reached the point of {missed} flip(s)"
            return Verdict(Outcome.NOT_INJECTED, why)
        golden = self.workload.golden
        if seen.hung or seen.result is None:
            return classify(seen, golden)
        counters = seen.counters or {}
        moved = {k: (counters[k] - self.jobs[inj.job].counters[k]) & 0xFFFFFFFF
                 for k in MITIGATION_COUNTERS}  # fmt: skip
        result = self.workload.finish(inj.job, seen.result)
        return classify(Observation(result, "", False, moved), golden,
                        counter_site=inj.site_class is SiteClass.COUNTER,
                        classes=self.workload.classes)  # fmt: skip


@cocotb.test()
async def injections(dut) -> None:
    """Serve injections from the worker until it closes the socket."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    build = Build(**json.loads(os.environ[BUILD_ENV]))
    spec = TypeAdapter(WorkloadSpec).validate_json(os.environ[WORKLOAD_ENV])
    workload = make_workload(spec, build)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.environ[SOCKET_ENV])
    stream = sock.makefile("rw", encoding="utf-8")
    bench = InjectionBench(dut, build, workload)
    try:
        await bench.start()
    except Exception as exc:  # noqa: BLE001  (the worker reports it)
        stream.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        stream.flush()
        return
    stream.write(json.dumps({"ready": True}) + "\n")
    stream.flush()
    for line in stream:  # the worker's next injection; blocking here stops the clock too
        asked = json.loads(line)
        if asked == "spent":  # where the time of the runs so far went
            reply: dict = {"spent": bench.spent, "cycles": bench.cycles}
        else:
            verdict = await bench.run(Injection.from_json(asked))
            reply = {"outcome": verdict.outcome.value, "detail": verdict.detail,
                     "changed": verdict.changed}  # fmt: skip
        stream.write(json.dumps(reply) + "\n")
        stream.flush()
    sock.close()
