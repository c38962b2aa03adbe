"""The accelerator as the flight software sees it: one narrow interface for every chip.

``Chip`` is what the driver and the fault-injection service need of an SCC: a bus (one
AXI4-Lite read or write at a time), a wait for its interrupt, its clock running while the
software does other work, a power cycle, and a test bench's hands that place a fault in
a storage element named by the build's site map (``testbed.sitemap``), now or at a cycle
of the next job. The numpy model (``ModelChip`` here) and the RTL in a simulator
(``firmware_sim.rtl``) implement it, and a board's firmware would too; nothing above it
knows which chip it has. What the chip does (a job, a hang, a refused access) is the
chip's own behaviour, in its model or its RTL: an implementation only connects them.

A fault is a ``SiteFault``: an action (flip, transient, stuck at 0 or 1) on one bit of one
site-map entry, at a time (now, a point of the next job, or a raw cycle of it). A chip
first ``check``s faults (refusing what it cannot apply as the chip would behave, with a
``Refusal``), then ``place``s them. No fault that waited for a job is dropped in silence:
``settle`` says, once the job has ended, how many were placed and why the rest were not.
"""

from __future__ import annotations

import copy
import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from firmware_sim.accel import Accelerator, JobPoint, NotModelled, Phase, ScheduledFault
from firmware_sim.accel.faults import FaultSite, SpmCell
from firmware_sim.accel.layout import Cell, Layout
from firmware_sim.accel.regs import FIELD_MASKS, SPM_BASE, Ctrl, Reg, Resp
from firmware_sim.accel.secded import code_for
from firmware_sim.accel.sitemap_sites import model_site, rtl_only_reason, transient_sites
from protocol.codes import FaultKind, NotInjectedReason
from testbed.sitemap import Entry, SiteMap, SiteMapError
from testbed.sitemap_builds import Build

ACCEL_CLOCK_HZ = 100e6
"""Clock of the modelled chip: how many idle cycles a second of wall time is."""

CONFIG_REGS = tuple(r for r in Reg if Reg.IRQ_EN <= r <= Reg.SCRUB_PERIOD)
"""The configuration registers (TMR, refused while BUSY): IRQ_EN to SCRUB_PERIOD."""


class Act(enum.Enum):
    """What a fault does to its bit."""

    FLIP = "flip"
    """An upset (SBU, or one cell of an MBU): the bit inverts and keeps the wrong value
    until it is next written."""
    TRANSIENT = "transient"
    """A SET: a glitch on the net the flop samples, latched at the edge that ends the
    cycle by every flop that samples that net (all copies of a TMR register)."""
    STUCK_0 = "stuck_at_0"
    STUCK_1 = "stuck_at_1"
    """The bit holds 0 (or 1) in every cycle, whatever the logic drives, until the
    faults are cleared (a scratchpad cell: also through a power cycle)."""

    @property
    def stuck(self) -> bool:
        return self in (Act.STUCK_0, Act.STUCK_1)

    @property
    def level(self) -> int:
        """The level a stuck bit holds."""
        return int(self is Act.STUCK_1)


When = JobPoint | int | None
"""When a fault acts: None now (between jobs), a point of the next job, or a raw cycle
of it (an int; CHECK is cycle 0)."""


@dataclass(frozen=True, slots=True)
class SiteFault:
    """One bit of one site-map entry, and what happens to it when."""

    act: Act
    entry: str
    bit: int
    when: When = None
    kind: FaultKind = FaultKind.SBU
    """The fault kind that asked for it (how a listing names it)."""


class Refusal(enum.Enum):
    """Why a chip cannot apply a fault (the service's failure codes follow these)."""

    ABSENT = "the build has no such site"
    NOT_PREDICTABLE = "the chip cannot apply it as the chip would behave"
    UNREACHABLE = "no job of the build has that point"


class FaultRefused(Exception):
    """A fault a chip refuses; ``index`` is its place in the faults checked, ``field``
    what of it is refused ("site", "bit" or "point")."""

    def __init__(self, refusal: Refusal, message: str, index: int = 0, field: str = "site") -> None:
        super().__init__(message)
        self.refusal = refusal
        self.index = index
        self.field = field


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


class Chip(Protocol):
    """An SCC behind the driver (docs/REGISTERS.md): its bus, its clock and a test
    bench's hands on its storage."""

    name: str
    build: Build

    def write(self, addr: int, value: int) -> Resp:
        """One AXI4-Lite write: 20-bit byte address, 32-bit data."""
        ...

    def read(self, addr: int) -> tuple[int, Resp]:
        """One AXI4-Lite read."""
        ...

    def write_block(self, writes: Sequence[tuple[int, int]]) -> list[Resp]:
        """AXI4-Lite writes of (address, value) in order, as one call (a simulator is
        entered once for all of them), stopping after the first not answered OKAY; the
        responses of those made."""
        ...

    def read_block(self, addrs: Sequence[int]) -> list[tuple[int, Resp]]:
        """AXI4-Lite reads in order, as one call."""
        ...

    def wait_for_interrupt(self, cycles: int) -> bool:
        """Let the clock run until ``irq_o`` is high, at most ``cycles`` cycles; whether
        it is."""
        ...

    def advance(self, seconds: float) -> None:
        """Let the clock run while the software does other work (the scrubber works)."""
        ...

    def power_cycle(self) -> None:
        """Switch the chip off and on: registers and memory lost, damage kept."""
        ...

    @property
    def sitemap(self) -> SiteMap:
        """Every storage element of the build, by name."""
        ...

    def check(self, faults: Sequence[SiteFault], waiting: Sequence[SiteFault] = ()) -> None:
        """Raise ``FaultRefused`` for the first fault the chip cannot apply, together with
        those already ``waiting`` for the same job; nothing is applied."""
        ...

    def place(self, faults: Sequence[SiteFault]) -> None:
        """Apply checked faults: now, or armed for the next job's START."""
        ...

    def active(self) -> list[SiteFault]:
        """The faults still acting or waiting: stuck bits, then those armed for a job."""
        ...

    def clear(self) -> int:
        """Remove every active fault; how many there were."""
        ...

    def settle(self) -> JobInjection | None:
        """What became of the faults of the last job to end (None: no job since the
        last call); the caller reports it with the job."""
        ...


# --- what every chip of a build shares -------------------------------------------------


def longest_phase(phase: Phase, n: int) -> int:
    """Most cycles ``phase`` has in any job on an N x N array (docs/REGISTERS.md "Job
    schedule and cycle count", K <= 4095, w <= 4, V <= N): BIAS 5, STREAM
    P = max(K + 1, (w + 1)*N + 1) <= max(4096, 5N + 1), WRITE w*V <= 4N words, FLUSH
    N + 1 + w*V_last <= 5N + 1."""
    return {
        Phase.BIAS: 5,
        Phase.STREAM: max(FIELD_MASKS["DIM_K"] + 1, 5 * n + 1),
        Phase.WRITE: 4 * n,
        Phase.FLUSH: 5 * n + 1,
    }[phase]


def check_reachable(fault: SiteFault, n: int, index: int = 0) -> None:
    """``FaultRefused`` (UNREACHABLE) for a job point no job of the build has."""
    when = fault.when
    if isinstance(when, JobPoint):
        longest = longest_phase(when.phase, n)
        if when.cycle >= longest:
            raise FaultRefused(
                Refusal.UNREACHABLE,
                f"{when.phase.name} cycle {when.cycle}: no job of this build has more "
                f"than {longest}",
                index,
                "point",
            )
    elif isinstance(when, int) and when < 0:
        raise FaultRefused(Refusal.UNREACHABLE, f"job cycle {when} is before CHECK", index)


def site_entry(sitemap: SiteMap, fault: SiteFault, index: int = 0) -> Entry:
    """The entry a fault names, its bit in range; ``FaultRefused`` (ABSENT) otherwise."""
    build = sitemap.build.name
    if fault.entry not in sitemap:
        hidden = {e.name for e in sitemap.unobservable}
        why = (
            f"{fault.entry} is unobservable in build {build}: no output depends on it, "
            "so it holds no fault site"
            if fault.entry in hidden
            else f"build {build} has no storage element {fault.entry} (list them with "
            "hil inject --sites)"
        )
        raise FaultRefused(Refusal.ABSENT, why, index)
    entry = sitemap.entry(fault.entry)
    if not 0 <= fault.bit < entry.bits:
        what = "row * width + bit" if entry.kind == "memory" else "bit"
        raise FaultRefused(
            Refusal.ABSENT, f"{entry.name}: {what} {fault.bit} outside 0..{entry.bits - 1}",
            index, "bit",
        )  # fmt: skip
    if fault.act is Act.TRANSIENT and entry.kind != "flop":
        raise FaultRefused(
            Refusal.ABSENT, f"{entry.name} is a memory: a transient is latched by flops", index
        )
    return entry


def spm_layout(build: Build) -> Layout:
    """The scratchpad's physical cells in a build (docs/REGISTERS.md, "Physical layout")."""
    check_bits = code_for(8 * build.n).check_bits if build.ecc else 0
    return Layout(build.bank_words, 8 * build.n + check_bits, build.interleave)


def cell_fault(act: Act, cell: Cell, layout: Layout, when: When = None,
               kind: FaultKind = FaultKind.SBU) -> SiteFault:  # fmt: skip
    """A fault of one scratchpad cell: its bank's memory entry, bit row * row cells + cell."""
    bit = cell.row * layout.row_cells + cell.cell
    return SiteFault(act, f"u_spm.u_bank{cell.bank}.mem_q", bit, when, kind)


def sefi_faults(when: When) -> list[SiteFault]:
    """The upset that stands for a SEFI: a transient in the sequencer's control logic,
    on the next values that every copy of its state, row-block and column-block
    registers loads, which sends it past its last tile. It stays BUSY far beyond any
    job's length (docs/FAULTS.md, SEFI): only SOFT_RESET or a power cycle ends it.

    Now (between jobs) the state leaves IDLE for STREAM; at a job's START (cycle 0, the
    CHECK cycle) the tile counters jump by 2048 blocks."""
    at = 0 if when is None else when
    faults = [
        SiteFault(Act.TRANSIENT, "u_seq.u_rb.q_q[0]", 11, at, FaultKind.SEFI),
        SiteFault(Act.TRANSIENT, "u_seq.u_cb.q_q[0]", 11, at, FaultKind.SEFI),
    ]
    if when is None:
        faults = [SiteFault(f.act, f.entry, f.bit, None, f.kind) for f in faults]
        faults += [SiteFault(Act.TRANSIENT, "u_seq.u_state.q_q[0]", b, None, FaultKind.SEFI)
                   for b in (0, 1)]  # fmt: skip
    return faults


# --- the numpy model as the chip -------------------------------------------------------


class ModelChip:
    """The bit-exact model (``firmware_sim.accel.Accelerator``) as the chip.

    The model runs a job whole at START, faults and all: by the time the software waits
    for the interrupt, the job has ended, or hung (the model leaves a job still BUSY at
    its hang bound BUSY for good, as it is then, until SOFT_RESET). Besides the model,
    only what no chip register holds lives here: the clock's rate, faults armed for the
    next job, and scratchpad cells held stuck, which are damage to the memory rather
    than state of the chip and outlive a power cycle (they are asserted again after
    every access, job and idle stretch that could write them).
    """

    name = "model"

    def __init__(
        self,
        build: Build | None = None,
        clock_hz: float = ACCEL_CLOCK_HZ,
        sitemap: SiteMap | None = None,
    ) -> None:
        """``sitemap`` names the sites faults may name where the build has no kept map
        (by default, the build's own)."""
        self.build = build or Build()
        self.clock_hz = clock_hz
        self.chip = Accelerator(**self.build.options())
        self.stuck_cells: dict[tuple[int, int], SiteFault] = {}
        self.stuck_registers: dict[FaultSite, SiteFault] = {}
        #: Faults armed for points of the next job, each with its sites (a transient on a
        #: net that several registers load has one per register bit).
        self.job_faults: list[tuple[SiteFault, list[FaultSite]]] = []
        self._settled: JobInjection | None = None
        self._sitemap = sitemap
        self.power_cycles = 0

    @property
    def sitemap(self) -> SiteMap:
        if self._sitemap is None:
            self._sitemap = SiteMap.for_build(**self.build.options())
        return self._sitemap

    # --- the bus ---------------------------------------------------------------------

    def write(self, addr: int, value: int) -> Resp:
        if addr == Reg.CTRL and value & Ctrl.START and not value & Ctrl.SOFT_RESET:
            resp = self.chip.bus_write(addr, value & ~Ctrl.START)  # CLEAR_COUNTERS first
            if not self.chip.hung:  # START while BUSY is ignored
                self._start()
            return resp
        resp = self.chip.bus_write(addr, value)
        if addr >= SPM_BASE and self.stuck_cells:
            self._reassert_stuck()
        return resp

    def read(self, addr: int) -> tuple[int, Resp]:
        return self.chip.bus_read(addr)

    def write_block(self, writes: Sequence[tuple[int, int]]) -> list[Resp]:
        out = []
        for addr, value in writes:
            out.append(self.write(addr, value))
            if out[-1] != Resp.OKAY:
                break
        return out

    def read_block(self, addrs: Sequence[int]) -> list[tuple[int, Resp]]:
        return [self.chip.bus_read(addr) for addr in addrs]

    def wait_for_interrupt(self, cycles: int) -> bool:
        return self.chip.irq

    def _start(self) -> None:
        armed, self.job_faults = self.job_faults, []
        tally = JobInjection(len(armed))
        fit: list[ScheduledFault] = []
        placed: list[SiteFault] = []
        for fault, sites in armed:
            if isinstance(fault.when, JobPoint):
                try:
                    self.chip.job_cycle(fault.when)  # ValueError: no such point in this job
                except ValueError:
                    tally.not_injected[NotInjectedReason.NO_SUCH_POINT] += 1
                    continue
            placed.append(fault)
            fit += [ScheduledFault(fault.when, site) for site in sites]
        try:
            self.chip.run(fit)
        except NotModelled:
            # Each fault was checked against the model at acceptance (``check``); should
            # it still refuse them together, the job runs clean and says so.
            tally.not_injected[NotInjectedReason.NOT_PREDICTABLE] += len(placed)
            self.chip.run()
        report = self.chip.last_job
        if report is not None and report.not_injected:
            # Their cycle lies past the job's end (an ECC abort, a control upset that
            # ended or hung the job earlier): never placed. Whether a site is reached
            # depends on its point alone, which all sites of one fault share.
            missed = {f.when for f in report.not_injected}
            tally.not_injected[NotInjectedReason.JOB_ENDED_BEFORE] += sum(
                f.when in missed for f in placed
            )
        self._settled = tally
        if self.stuck_cells:
            self._reassert_stuck()

    def settle(self) -> JobInjection | None:
        out, self._settled = self._settled, None
        return out

    # --- what the hardware does without the firmware -----------------------------------

    def advance(self, seconds: float) -> None:
        if self.chip.hung or seconds <= 0:
            return
        self.chip.idle(int(seconds * self.clock_hz))
        if self.stuck_cells:
            self._reassert_stuck()

    def power_cycle(self) -> None:
        """Registers and memory are lost; stuck cells (damage) stay, and faults armed
        for a job belong to the test bench, not to the chip: they wait on."""
        self.chip = Accelerator(**self.build.options())
        self.stuck_registers.clear()  # register bits are state: power clears them
        self.power_cycles += 1
        if self.stuck_cells:
            self._reassert_stuck()

    # --- faults ----------------------------------------------------------------------

    def _sites_of(self, fault: SiteFault, index: int) -> list[FaultSite]:
        """The model's sites of a fault (a transient reaches every register bit that
        loads the same net), the entry and bit checked against the map."""
        entry = site_entry(self.sitemap, fault, index)
        reason = rtl_only_reason(entry, self.build)
        if reason is not None:
            raise FaultRefused(Refusal.NOT_PREDICTABLE, f"{entry.name}: {reason}", index)
        if fault.act is Act.TRANSIENT:
            sites = transient_sites(self.sitemap, entry, fault.bit, self.build.tmr)
        else:
            site = model_site(entry, fault.bit)
            sites = [] if site is None else [site]
        if not sites:
            raise FaultRefused(Refusal.ABSENT, f"{entry.name}: the model has no such site", index)
        return sites

    def _sites(self, faults: Sequence[SiteFault]) -> list[list[FaultSite]]:
        return [self._sites_of(f, i) for i, f in enumerate(faults)]

    def check(self, faults: Sequence[SiteFault], waiting: Sequence[SiteFault] = ()) -> None:
        sites = self._sites(faults)
        for i, (fault, group) in enumerate(zip(faults, sites, strict=True)):
            check_reachable(fault, self.build.n, i)
            with _refusing(i):
                for site in group:
                    self.chip.check_site(site)
        stuck = [(i, f, s) for i, (f, g) in enumerate(zip(faults, sites, strict=True))
                 for s in g if f.act.stuck and not isinstance(s, SpmCell)]  # fmt: skip
        if stuck:
            trial = copy.deepcopy(self.chip)
            for i, fault, site in stuck:
                with _refusing(i):
                    trial.stick(site, fault.act.level)
        moving = [(f, s) for f, g in zip(faults, sites, strict=True) if not f.act.stuck
                  for s in g]  # fmt: skip
        now = [s for f, s in moving if f.when is None]
        if now:
            with _refusing(0):
                self.chip.check_scheduled(None, now)
        points = {f.when for f, _ in moving if f.when is not None}
        if not points:
            return
        # Flips at one point act together: with those armed already and those of
        # earlier records of the same request.
        pending = [(f, s) for f, g in zip(waiting, self._sites(waiting), strict=True)
                   if not f.act.stuck for s in g]  # fmt: skip
        together: dict[When, list[FaultSite]] = {}
        armed = [(f, s) for f, g in self.job_faults for s in g]
        for f, s in armed + pending + moving:
            if f.when in points:
                together.setdefault(f.when, []).append(s)
        for when, at in together.items():
            with _refusing(0):
                self.chip.check_scheduled(when, at)

    def place(self, faults: Sequence[SiteFault]) -> None:
        groups = list(zip(faults, self._sites(faults), strict=True))
        now = [s for f, g in groups if f.when is None and not f.act.stuck for s in g]
        if now:
            self.chip.flip_many(now)
        for fault, sites in groups:
            if fault.act.stuck:
                (site,) = sites  # a held bit is one register bit or one cell
                if isinstance(site, SpmCell):
                    self.stuck_cells[self.chip.layout.word_bit_of(site)] = fault
                else:
                    self.chip.stick(site, fault.act.level)
                    self.stuck_registers[site] = fault
            elif fault.when is not None:
                self.job_faults.append((fault, sites))
        if self.stuck_cells:
            self._reassert_stuck()

    def active(self) -> list[SiteFault]:
        out = [self.stuck_cells[k] for k in sorted(self.stuck_cells)]
        out += list(self.stuck_registers.values())
        return out + [f for f, _ in self.job_faults]

    def clear(self) -> int:
        count = len(self.stuck_cells) + len(self.job_faults)
        count += self.chip.unstick_all()
        self.stuck_cells.clear()
        self.stuck_registers.clear()
        self.job_faults.clear()
        return count

    def _reassert_stuck(self) -> None:
        dw = 8 * self.build.n
        chip = self.chip
        for (word, bit), fault in self.stuck_cells.items():
            value = fault.act.level
            data, check = chip.peek(word)
            if bit < dw:
                data = data & ~(1 << bit) | value << bit
            else:
                check = check & ~(1 << (bit - dw)) | value << (bit - dw)
            if (data, check) == chip.peek(word):
                continue
            if self.build.ecc:
                chip.poke(word, data, check)
            else:
                chip.poke(word, data)


class _refusing:
    """The model's refusals as the chip's: ValueError (no such site or value in this
    build) ABSENT, NotModelled NOT_PREDICTABLE, for fault ``index``."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, NotModelled):
            raise FaultRefused(Refusal.NOT_PREDICTABLE, str(exc), self.index) from None
        if isinstance(exc, ValueError | SiteMapError):
            raise FaultRefused(Refusal.ABSENT, str(exc), self.index) from None
        return False
