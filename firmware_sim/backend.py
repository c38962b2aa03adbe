"""The accelerator behind the driver: a bus to drive it and the hooks a test bench owns.

``Bus`` is what the driver needs (one AXI4-Lite read or write at a time). ``ModelBackend``
puts the bit-exact model behind it and adds what the hardware does on its own and the
firmware cannot: the clock running the scrubber while idle, faults that persist
(a hung sequencer, stuck-at cells), faults scheduled at a point of the next job, and a
power cycle. An RTL backend would give the same interface over cocotb.

No scheduled fault is dropped in silence: each START settles every fault that waited
for it as injected or as not injected with a reason (``JobInjection``), and the job
layer reports that with the job.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from firmware_sim.accel import Accelerator, JobPoint, NotModelled, ScheduledFault
from firmware_sim.accel.faults import FaultSite, SpmCell
from firmware_sim.accel.layout import Layout
from firmware_sim.accel.regs import SPM_BASE, Ctrl, Reg, Resp, Status
from protocol.codes import NotInjectedReason
from testbed.sitemap_builds import Build

ACCEL_CLOCK_HZ = 100e6
"""Clock of the modelled chip: how many idle cycles a second of wall time is."""

CONFIG_REGS = tuple(r for r in Reg if Reg.IRQ_EN <= r <= Reg.SCRUB_PERIOD)
"""The configuration registers (TMR, refused while BUSY): IRQ_EN to SCRUB_PERIOD."""
_CONFIG_OFFSETS = frozenset(int(r) for r in CONFIG_REGS)


class Bus(Protocol):
    """One AXI4-Lite port: 20-bit byte addresses, 32-bit data (docs/REGISTERS.md)."""

    def write(self, addr: int, value: int) -> Resp: ...

    def read(self, addr: int) -> tuple[int, Resp]: ...


@dataclass(slots=True)
class JobInjection:
    """What became of the faults that waited for one START: how many there were, and how
    many of them were not injected, by reason. The rest were placed at their point."""

    scheduled: int = 0
    not_injected: Counter[NotInjectedReason] = field(default_factory=Counter)

    @property
    def missed(self) -> int:
        """Faults of this job that were not injected."""
        return sum(self.not_injected.values())


class ModelBackend:
    """The numpy model as the chip: a ``Bus``, plus the test bench's side of the chip."""

    name = "model"

    def __init__(self, build: Build | None = None, clock_hz: float = ACCEL_CLOCK_HZ) -> None:
        self.build = build or Build()
        self.clock_hz = clock_hz
        self.chip = self._new_chip()
        self.hung = False
        self.hang_at_start = False
        self.stuck: dict[tuple[int, int], int] = {}
        self.job_faults: list[ScheduledFault] = []
        self.injection: JobInjection | None = None
        self.power_cycles = 0

    def _new_chip(self) -> Accelerator:
        b = self.build
        return Accelerator(b.n, b.bank_words, b.interleave, b.ecc, b.scrub, b.tmr)

    # --- the bus ---------------------------------------------------------------------

    def write(self, addr: int, value: int) -> Resp:
        """One bus write; while hung only SOFT_RESET and STATUS writes get through."""
        if self.hung:
            if addr == Reg.CTRL and value & Ctrl.SOFT_RESET:
                self.hung = False
                return self.chip.bus_write(addr, value)
            if addr == Reg.CTRL:
                return Resp.OKAY  # START while BUSY is ignored
            if addr >= SPM_BASE or addr in _CONFIG_OFFSETS:
                return Resp.SLVERR  # refused while BUSY
            return self.chip.bus_write(addr, value)
        if addr == Reg.CTRL and value & Ctrl.START and not value & Ctrl.SOFT_RESET:
            if value & Ctrl.CLEAR_COUNTERS:
                self.chip.clear_counters()
            self._start()
            return Resp.OKAY
        resp = self.chip.bus_write(addr, value)
        if addr >= SPM_BASE and self.stuck:
            self._reassert_stuck()
        return resp

    def read(self, addr: int) -> tuple[int, Resp]:
        """One bus read; while hung STATUS says BUSY and the scratchpad is refused."""
        if self.hung:
            if addr == Reg.STATUS:
                return self.chip.status | Status.BUSY, Resp.OKAY
            if addr >= SPM_BASE:
                return 0, Resp.SLVERR
        return self.chip.bus_read(addr)

    def _start(self) -> None:
        faults, self.job_faults = self.job_faults, []
        tally = JobInjection(len(faults))
        self.injection = tally
        if self.hang_at_start:
            # The sequencer hangs at START: no point of this job is ever reached.
            self.hang_at_start = False
            self.hung = True
            if faults:
                tally.not_injected[NotInjectedReason.JOB_ENDED_BEFORE] += len(faults)
            return
        fit = []
        for f in faults:
            try:
                self.chip.job_cycle(f.when)  # ValueError: no such point in this job
            except ValueError:
                tally.not_injected[NotInjectedReason.NO_SUCH_POINT] += 1
            else:
                fit.append(f)
        try:
            self.chip.run(fit)
        except NotModelled:
            # Accepted flips are checked against the model (check_scheduled); should the
            # model still refuse them together, the job runs clean and says so.
            tally.not_injected[NotInjectedReason.NOT_PREDICTABLE] += len(fit)
            self.chip.run()
        report = self.chip.last_job
        if report is not None and report.not_injected:
            # Their cycle lies past the job's end (an ECC abort, a control upset that
            # ended or hung the job earlier): never placed.
            tally.not_injected[NotInjectedReason.JOB_ENDED_BEFORE] += len(report.not_injected)
        # A job the model leaves BUSY is a hang, as a SEFI is: only SOFT_RESET ends it.
        self.hung = self.chip.hung
        if self.stuck:
            self._reassert_stuck()

    def take_injection(self) -> JobInjection | None:
        """What became of the faults of the last START (None if none since the last
        call); the caller reports it with the job."""
        out, self.injection = self.injection, None
        return out

    # --- what the hardware does without the firmware -----------------------------------

    def advance(self, seconds: float) -> None:
        """Let the chip's clock run idle for ``seconds`` (the scrubber works meanwhile)."""
        if self.hung or seconds <= 0:
            return
        self.chip.idle(int(seconds * self.clock_hz))
        if self.stuck:
            self._reassert_stuck()

    def power_cycle(self) -> None:
        """Switch the chip off and on: registers and memory are lost, damage stays.

        Faults waiting for a job point belong to the test bench, not to the chip: they
        keep waiting for the next job.
        """
        self.chip = self._new_chip()
        self.hung = self.hang_at_start = False
        self.power_cycles += 1
        if self.stuck:
            self._reassert_stuck()

    # --- fault injection (the test bench's hands on the chip) ---------------------------

    @property
    def layout(self) -> Layout:
        return self.chip.layout

    @property
    def spm_words(self) -> int:
        return self.chip.spm_words

    def word_cells(self, word: int, bit: int, width: int) -> list[SpmCell]:
        """``width`` adjacent physical cells from the one holding codeword bit ``bit``."""
        lay = self.layout
        if not 0 <= word < self.spm_words or not 0 <= bit < lay.codeword_bits:
            raise ValueError(
                f"word {word} bit {bit}: words 0..{self.spm_words - 1}, "
                f"bits 0..{lay.codeword_bits - 1}"
            )
        return lay.adjacent(lay.cell_of(word, bit), width)

    def check_site(self, site: FaultSite) -> None:
        """Raise ValueError (or NotModelled) if the model cannot flip ``site`` in this build."""
        # The model's own check: one definition of the sites while the model grows.
        self.chip.check_site(site)

    def flip(self, sites: Iterable[FaultSite]) -> None:
        """Flip sites in one clock cycle, now."""
        self.chip.flip_many(list(sites))

    def check_scheduled(self, when: JobPoint, sites: Iterable[FaultSite]) -> None:
        """Raise ValueError if a site is not in this build, NotModelled if the model cannot
        predict these sites flipped together at ``when`` of a job (with the flips already
        waiting for that point). Whether the next job has ``when`` is known only at START.
        """
        waiting = [f.site for f in self.job_faults if f.when == when]
        self.chip.check_scheduled(when, waiting + list(sites))

    def check_now(self, sites: Iterable[FaultSite]) -> None:
        """Raise ValueError if a site is not in this build, NotModelled if the model cannot
        predict these sites flipped together now, between jobs."""
        self.chip.check_scheduled(None, sites)

    def schedule(self, when: JobPoint, sites: Iterable[FaultSite]) -> None:
        """Flip sites at a point of the next job; its START settles them (``take_injection``)."""
        self.job_faults.extend(ScheduledFault(when, s) for s in sites)

    def hang(self, at_next_start: bool = False) -> None:
        """SEFI: the sequencer stops (now, or when the next job starts); only SOFT_RESET
        or a power cycle brings it back."""
        if at_next_start:
            self.hang_at_start = True
        else:
            self.hung = True

    def stick(self, cells: Iterable[SpmCell], value: int) -> None:
        """Stuck-at: the cells keep ``value`` whatever is written, until cleared."""
        for cell in cells:
            self.check_site(cell)
            self.stuck[self.layout.word_bit_of(cell)] = value
        self._reassert_stuck()

    def check_stick_registers(self, sites: Iterable[FaultSite], value: int) -> None:
        """Raise ValueError (a site the build lacks) or NotModelled (a bit the model
        cannot hold) for register bits stuck at ``value``; nothing is applied."""
        trial = copy.deepcopy(self.chip)
        for site in sites:
            trial.stick(site, value)

    def stick_registers(self, sites: Iterable[FaultSite], value: int) -> None:
        """Stuck-at in registers: each bit holds ``value`` every cycle, idle or in a job,
        until cleared or the chip is power-cycled (the model holds them)."""
        for site in sites:
            self.chip.stick(site, value)

    @property
    def stuck_registers(self) -> dict[FaultSite, int]:
        """Register bits held stuck now, with their values."""
        return self.chip.stuck

    def clear_faults(self) -> int:
        """Remove every persistent fault; returns how many there were.

        A sequencer that was hung is left as a soft reset would find it: the caller
        resets the chip.
        """
        count = len(self.stuck) + len(self.job_faults) + int(self.hung) + int(self.hang_at_start)
        count += self.chip.unstick_all()
        self.stuck.clear()
        self.job_faults.clear()
        self.hung = self.hang_at_start = False
        return count

    def _reassert_stuck(self) -> None:
        dw = 8 * self.build.n
        for (word, bit), value in self.stuck.items():
            data, check = self.chip.peek(word)
            if bit < dw:
                data = data & ~(1 << bit) | value << bit
            else:
                check = check & ~(1 << (bit - dw)) | value << (bit - dw)
            if (data, check) == self.chip.peek(word):
                continue
            if self.build.ecc:
                self.chip.poke(word, data, check)
            else:
                self.chip.poke(word, data)
