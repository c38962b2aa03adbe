"""Service 148 (private): fault injection, in TEST mode only (ICD section 15.8).

A TC[148,1] carries fault records (``protocol.payloads.FaultRecord``): a fault kind, a
site class, a width, a timing (now, or at a point of the next job) and the site. Each
record becomes faults in the chip's terms (``firmware_sim.chip.SiteFault``: one bit of a
site-map entry, flipped, transient or stuck, now or at the job point): scratchpad cells
and words through the build's physical layout, a PE's or a register copy's bit by its
entry, ``SITE`` by name, a SEFI as the sequencer upset that stands for it
(``chip.sefi_faults``). The chip checks them at acceptance and places them at execution;
one that waits for a job point is settled by that job (``Chip.settle``), and the job
reports the faults it did not get. Firmware RAM, the software's own hang (SEFI at
``FSW``) and latch-up (SEL, in the power model) are the flight computer's, not the chip's.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from firmware_sim.accel import JobPoint, Phase
from firmware_sim.accel.layout import Cell
from firmware_sim.accel.regs import Reg
from firmware_sim.chip import (
    CONFIG_REGS,
    Act,
    Chip,
    FaultRefused,
    Refusal,
    SiteFault,
    When,
    cell_fault,
    sefi_faults,
    spm_layout,
)
from protocol.codes import EventId, FailureCode, FaultInjectionSubtype, FaultKind, Mode, Service
from protocol.errors import PacketError
from protocol.payloads import (
    MAX_FAULT_RECORDS,
    POINT_OFFSETS,
    ClusterShape,
    FaultRecord,
    FaultSiteClass,
    FaultTiming,
    JobPhase,
    Reader,
    fault_list,
    fault_refusal,
    refuse,
)
from testbed.clusters import Orientation
from testbed.clusters import shape as cluster_shape
from testbed.sitemap import SiteMapError

if TYPE_CHECKING:
    from firmware_sim.environment import Environment
    from firmware_sim.ram import FirmwareRam
    from firmware_sim.services.events import EventService
    from firmware_sim.services.verification import Request
    from firmware_sim.telemetry import TmSender

K, S = FaultKind, FaultSiteClass
MAX_LISTED = 128
_STUCK = {K.STUCK_AT_0: Act.STUCK_0, K.STUCK_AT_1: Act.STUCK_1}
_REFUSALS = {
    Refusal.ABSENT: FailureCode.FAULT_SITE_ABSENT,
    Refusal.NOT_PREDICTABLE: FailureCode.FAULT_NOT_PREDICTABLE,
    Refusal.UNREACHABLE: FailureCode.FAULT_POINT_UNREACHABLE,
}
_PE = "u_array.g_row[{i}].g_col[{j}].u_pe.{name}"


class FaultInjectionService:
    """TC[148,1] inject, TC[148,2] clear all, TC[148,3] list.

    Its collaborators: the ``chip`` (the test bench's hands on it), the firmware ``ram``,
    the ``power`` model (latch-up), ``events``, ``tm``, the clock ``now``, the current
    ``mode``, ``hang`` (the flight software stops: a SEFI of its own) and ``recover``
    (after TC[148,2], end a job or a hang the cleared faults left behind).
    """

    def __init__(
        self,
        chip: Chip,
        ram: FirmwareRam,
        power: Environment,
        events: EventService,
        tm: TmSender,
        now: Callable[[], float],
        mode: Callable[[], Mode],
        hang: Callable[[], None],
        recover: Callable[[], None],
    ) -> None:
        self.chip = chip
        self.ram = ram
        self.power = power
        self.events = events
        self.tm = tm
        self.now = now
        self.mode = mode
        self.hang = hang
        self.recover = recover

    def accept(self, subtype: int, data: bytes) -> list[tuple[FaultRecord, Callable[[], None]]]:
        r = Reader(data)
        if subtype != FaultInjectionSubtype.INJECT:
            r.end()
            return []
        out: list = []
        waiting: list[SiteFault] = []  # faults of earlier records of this TC
        for index in range(r.count("record count", 1, MAX_FAULT_RECORDS)):
            at = r.pos
            record = FaultRecord.parse(r)
            out.append((record, self._plan(record, at, index, waiting)))
        r.end()
        return out

    def _plan(
        self, rec: FaultRecord, at: int, index: int, waiting: list[SiteFault]
    ) -> Callable[[], None]:
        """What record ``index`` (at octet ``at``) does, checked against the chip now;
        run it at execution. ``waiting`` holds the faults of earlier records."""
        kind = FaultKind(rec.kind)
        if rec.site_class == S.FW_RAM:
            return self._ram_plan(rec, kind)
        if rec.site_class == S.FW_RAM_CLUSTER:
            return self._ram_cluster(rec, at, index)
        if rec.site_class == S.ACCEL and kind == K.SEL:
            return lambda: setattr(self.power, "latchup", True)
        if rec.site_class == S.FSW:
            return self.hang
        sites_at = at + rec.site_offset()
        if rec.site_class == S.SITE:
            sites_at = at + rec.field_offset("name")
        try:
            faults = self._faults(rec, kind)
            self.chip.check(faults, waiting)
        except FaultRefused as exc:
            offset = sites_at
            if exc.refusal is Refusal.UNREACHABLE:
                offset = at + POINT_OFFSETS["cycle"]
            elif rec.site_class == S.SITE and exc.field == "bit":
                offset = at + rec.field_offset("bit")
            raise _refused(_REFUSALS[exc.refusal], offset, index, rec, exc) from None
        except (ValueError, SiteMapError) as exc:
            raise _refused(FailureCode.FAULT_SITE_ABSENT, sites_at, index, rec, exc) from None
        waiting += faults
        return lambda: self.chip.place(faults)

    def _ram_cluster(self, rec: FaultRecord, at: int, index: int) -> Callable[[], None]:
        """The bits of a ``FW_RAM_CLUSTER`` record: ``width`` cells of its shape from the
        first bit named, where the RAM's organisation puts them (``RamLayout``)."""
        ram = self.ram
        address, bit, raw_shape = (int(f) for f in rec.site)
        if address >= ram.size:
            raise refuse(FailureCode.ADDRESS_OUT_OF_RANGE, f"firmware RAM octet {address}",
                         struct.pack("!II", address, 1))  # fmt: skip
        cluster = cluster_shape(rec.width, Orientation[ClusterShape(raw_shape).name])
        try:
            bits = ram.layout.cluster(address, bit, cluster.offsets)
        except ValueError as exc:
            at_address = at + rec.field_offset("address")
            raise _refused(FailureCode.FAULT_SITE_ABSENT, at_address, index, rec, exc) from None

        def hit_cluster() -> None:
            for a, b in bits:
                ram.flip(a, b)

        return hit_cluster

    def _ram_plan(self, rec: FaultRecord, kind: FaultKind) -> Callable[[], None]:
        address, bit = rec.site
        last = address + (bit + rec.width - 1) // 8
        if bit > 7 or last >= self.ram.size:
            raise refuse(
                FailureCode.ADDRESS_OUT_OF_RANGE,
                f"firmware RAM octet {address} bit {bit} width {rec.width}",
                struct.pack("!II", address, last - address + 1),
            )
        bits = [(address + (bit + i) // 8, (bit + i) % 8) for i in range(rec.width)]
        act = _STUCK.get(kind)
        ram = self.ram

        def hit_ram() -> None:
            for a, b in bits:
                if act is not None:
                    ram.stick(a, b, act.level)
                else:
                    ram.flip(a, b)

        return hit_ram

    def _faults(self, rec: FaultRecord, kind: FaultKind) -> list[SiteFault]:
        """The chip faults of a record; ValueError if its site fields name no site."""
        later = rec.timing == FaultTiming.NEXT_JOB
        if kind == K.SEFI:  # at the START of the next job: its point fields are ignored
            return sefi_faults(0 if later else None)
        when: When = None
        if later:
            tile, phase, cycle = rec.point
            when = JobPoint(tile, Phase[JobPhase(phase).name], cycle)
        act = _STUCK.get(kind) or (Act.TRANSIENT if kind == K.SET else Act.FLIP)
        return [SiteFault(act, entry, bit, when, kind) for entry, bit in self._bits(rec, kind)]

    def _bits(self, rec: FaultRecord, kind: FaultKind) -> list[tuple[str, int]]:
        """The (site-map entry, bit) a record's site fields name."""
        f, n = rec.site, self.chip.build.n
        if rec.site_class == S.SITE:
            return [(str(f[0]), int(f[1]))]
        if rec.site_class in (S.SPM_CELL, S.SPM_CLUSTER, S.SPM_WORD):
            lay = spm_layout(self.chip.build)
            cells = [cell_fault(Act.FLIP, c, lay) for c in self._cells(rec)]
            return [(f.entry, f.bit) for f in cells]
        if rec.site_class in (S.ACC_BIT, S.OUT_BIT):
            i, j, bit = f
            if not (0 <= i < n and 0 <= j < n and 0 <= bit < 32):
                raise ValueError(f"PE ({i}, {j}) bit {bit}: PEs are 0..{n - 1} square, bits 0..31")
            name = "acc_q" if rec.site_class == S.ACC_BIT else "out_q"
            return [(_PE.format(i=i, j=j, name=name), bit)]
        offset, copy, bit = f
        if offset not in {int(r) for r in CONFIG_REGS}:
            raise ValueError(
                f"register offset {offset:#04x} is not a configuration register "
                f"({', '.join(f'{int(r):#04x} {r.name}' for r in CONFIG_REGS)})"
            )
        copies = 3 if self.chip.build.tmr else 1
        if not 0 <= copy < copies:
            raise ValueError(f"{Reg(offset).name} copy {copy}: copies 0..{copies - 1}")
        # A transient on a TMR register is on the next value its copies share: the copy
        # named still has to exist (FAULTS.md, SET).
        return [(f"u_regs.u_{Reg(offset).name.lower()}.q_q[{copy}]", bit)]

    def _cells(self, rec: FaultRecord) -> list[Cell]:
        lay, f = spm_layout(self.chip.build), rec.site
        if rec.site_class == S.SPM_WORD:
            word, bit = f
            words = 2 * lay.bank_words
            if not 0 <= word < words or not 0 <= bit < lay.codeword_bits:
                raise ValueError(
                    f"word {word} bit {bit}: words 0..{words - 1}, bits 0..{lay.codeword_bits - 1}"
                )
            return lay.adjacent(lay.cell_of(word, bit), rec.width)
        start = Cell(*f[:3])
        if not (0 <= start.bank < 2 and 0 <= start.row < lay.rows
                and 0 <= start.cell < lay.row_cells):  # fmt: skip
            raise ValueError(
                f"{start}: cells are bank 0..1, row 0..{lay.rows - 1}, cell 0..{lay.row_cells - 1}"
                + ("" if self.chip.build.ecc else " (ECC off: no check-bit cells)")
            )
        if rec.site_class == S.SPM_CELL:
            return lay.adjacent(start, rec.width)
        raw_shape = f[3]
        if raw_shape not in ClusterShape._value2member_map_:
            raise ValueError(f"cluster shape {raw_shape} is not 0..{len(ClusterShape) - 1}")
        orientation = Orientation[ClusterShape(raw_shape).name]
        return lay.cluster(start, cluster_shape(rec.width, orientation).offsets)

    def start(self, subtype: int, request: list) -> None:
        mode = self.mode()
        if mode != Mode.TEST:
            raise refuse(
                FailureCode.NOT_IN_TEST_MODE, f"service 148 in mode {mode.name}", bytes([mode])
            )

    def execute(self, subtype: int, request: list, req: Request) -> None:
        if subtype == FaultInjectionSubtype.INJECT:
            hang = False
            for rec, act in request:
                if rec.site_class == S.FSW:
                    hang = True
                else:
                    act()
                self.events.raise_event(
                    EventId.FAULT_INJECTED, rec.kind, rec.site_class, rec.width, rec.timing
                )
            req.complete(self.now())
            if hang:
                self.hang()
            return
        if subtype == FaultInjectionSubtype.CLEAR_ALL:
            cleared = self.chip.clear() + len(self.ram.stuck) + int(self.power.latchup)
            self.ram.stuck.clear()
            self.power.latchup = False
            self.recover()
            self.events.raise_event(EventId.FAULTS_CLEARED, min(cleared, 0xFFFF))
        else:
            active = self.active()
            out = fault_list(len(active), active[:MAX_LISTED])
            self.tm.send(
                Service.FAULT_INJECTION, FaultInjectionSubtype.LIST_REPORT, out, req.dest_id
            )
        req.complete(self.now())

    def active(self) -> list[FaultRecord]:
        """The persistent faults now, as records."""
        now = FaultTiming.NOW
        out = [self._record(f) for f in self.chip.active() if f.kind != K.SEFI]
        if any(f.kind == K.SEFI for f in self.chip.active()):
            out.append(FaultRecord(K.SEFI, S.ACCEL, 0, (), FaultTiming.NEXT_JOB))
        for (address, bit), value in sorted(self.ram.stuck.items()):
            kind = K.STUCK_AT_1 if value else K.STUCK_AT_0
            out.append(FaultRecord(kind, S.FW_RAM, 1, (address, bit), now))
        if self.power.latchup:
            out.append(FaultRecord(K.SEL, S.ACCEL, 0, (), now))
        return out

    def _record(self, fault: SiteFault) -> FaultRecord:
        """A chip fault as the record that names it: by its own site class where it has
        one, else by its site-map entry (``SITE``)."""
        timing, point = FaultTiming.NOW, (0, 0, 0)
        if isinstance(fault.when, JobPoint):
            w = fault.when
            timing, point = FaultTiming.NEXT_JOB, (w.tile, JobPhase[w.phase.name], w.cycle)
        kind = fault.kind
        name, bit = fault.entry, fault.bit
        entry = self.chip.sitemap.entry(name)
        if entry.kind == "memory":
            row, cell = entry.locate(bit)
            bank = int(name.split("u_bank")[1][0])
            if fault.act.stuck:
                word, wbit = spm_layout(self.chip.build).word_bit_of(Cell(bank, row, cell))
                return FaultRecord(kind, S.SPM_WORD, 1, (word, wbit), timing, point)
            return FaultRecord(kind, S.SPM_CELL, 1, (bank, row, cell), timing, point)
        for cls, suffix in ((S.ACC_BIT, ".acc_q"), (S.OUT_BIT, ".out_q")):
            if name.startswith("u_array.g_row") and name.endswith(suffix):
                i, j = (int(x.split("]")[0]) for x in name.split("[")[1:3])
                return FaultRecord(kind, cls, 1, (i, j, bit), timing, point)
        for reg in CONFIG_REGS:
            prefix = f"u_regs.u_{reg.name.lower()}.q_q["
            if name.startswith(prefix) and kind != K.SET:
                copy = int(name[len(prefix)])
                return FaultRecord(kind, S.REG_COPY, 1, (int(reg), copy, bit), timing, point)
        return FaultRecord(kind, S.SITE, 1, (name, bit), timing, point)


def _refused(
    code: FailureCode, offset: int, index: int, rec: FaultRecord, why: object
) -> PacketError:
    """A refusal of record ``index`` with the failure data of ICD section 10."""
    what = f"fault record {index} ({FaultKind(rec.kind).name} at {rec.site_class.name}): {why}"
    return refuse(code, what, fault_refusal(offset, index))
