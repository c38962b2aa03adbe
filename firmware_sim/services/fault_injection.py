"""Service 148 (private): fault injection, in TEST mode only (ICD section 15.8).

A TC[148,1] carries fault records: a fault kind (``FaultKind``), a site class
(``FaultSiteClass``), a width, a timing (now, or at a point of the next job) and the
site. Transient faults act once; stuck-at cells, a hung sequencer (SEFI), a hang armed
for the next job and a latch-up persist until something clears them: they are the
"active faults" TC[148,3] lists and TC[148,2] clears.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from firmware_sim.accel import AccBit, JobPoint, NotModelled, OutBit, Phase, RegCopy, SpmCell
from firmware_sim.accel.regs import FIELD_MASKS, Reg
from firmware_sim.backend import CONFIG_REGS
from protocol.codes import EventId, FailureCode, FaultInjectionSubtype, FaultKind, Mode, Service
from protocol.errors import PacketError
from protocol.payloads import (
    MAX_FAULT_RECORDS,
    FaultSiteClass,
    FaultTiming,
    JobPhase,
    Reader,
    out_of_range,
    refuse,
)

if TYPE_CHECKING:
    from firmware_sim.core import FlightSoftware
    from firmware_sim.services.verification import Request

K, S = FaultKind, FaultSiteClass
SPM_SITES = {S.SPM_CELL, S.SPM_WORD}
ALLOWED_SITES: dict[FaultKind, set[FaultSiteClass]] = {
    K.SBU: SPM_SITES | {S.ACC_BIT, S.OUT_BIT, S.REG_COPY, S.FW_RAM},
    K.MBU: SPM_SITES | {S.FW_RAM},
    K.SET: {S.ACC_BIT, S.OUT_BIT, S.REG_COPY},
    K.STUCK_AT_0: SPM_SITES | {S.FW_RAM},
    K.STUCK_AT_1: SPM_SITES | {S.FW_RAM},
    K.SEFI: {S.ACCEL, S.FSW},
    K.SEL: {S.ACCEL},
}
"""Which sites each kind of fault can hit."""
WIDTHS: dict[FaultKind, tuple[int, int]] = {
    K.SBU: (1, 1),
    K.MBU: (2, 8),
    K.SET: (1, 1),
    K.STUCK_AT_0: (1, 8),
    K.STUCK_AT_1: (1, 8),
    K.SEFI: (0, 0),
    K.SEL: (0, 0),
}
"""Allowed width (adjacent cells or bits hit) of each kind."""
NEXT_JOB_KINDS = {K.SBU, K.MBU, K.SET, K.SEFI}
NEXT_JOB_SITES = SPM_SITES | {S.ACC_BIT, S.OUT_BIT, S.REG_COPY, S.ACCEL}
SITE_FIELDS = {
    S.SPM_CELL: "!BHH",
    S.SPM_WORD: "!HB",
    S.ACC_BIT: "!BBB",
    S.REG_COPY: "!BBB",
    S.FW_RAM: "!IB",
    S.ACCEL: "!",
    S.FSW: "!",
    S.OUT_BIT: "!BBB",
}
"""Site fields after the record header, by site class."""
MAX_LISTED = 128


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


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One fault of a TC[148,1] or TM[148,4] (wire layout: ICD section 15.8)."""

    kind: FaultKind
    site: FaultSiteClass
    width: int
    timing: FaultTiming
    fields: tuple[int, ...]
    point: tuple[int, int, int] = (0, 0, 0)
    """tile, JobPhase, cycle; meaningful with timing NEXT_JOB."""

    def pack(self) -> bytes:
        out = struct.pack("!BBBB", self.kind, self.site, self.width, self.timing)
        if self.timing == FaultTiming.NEXT_JOB:
            out += struct.pack("!HBH", *self.point)
        return out + struct.pack(SITE_FIELDS[self.site], *self.fields)


def _enum(r: Reader, kind: type, what: str):
    at = r.pos
    raw = r.u8(what)
    try:
        return kind(raw)
    except ValueError:
        raise out_of_range(at, f"{what} {raw} is not defined") from None


def parse_record(r: Reader) -> tuple[FaultRecord, int]:
    """One record and the offset of its site fields; checks the combination."""
    base = r.pos
    kind = _enum(r, FaultKind, "fault kind")
    site = _enum(r, FaultSiteClass, "site class")
    if site not in ALLOWED_SITES[kind]:
        raise out_of_range(base + 1, f"a {kind.name} cannot hit site class {site.name}")
    width = r.u8("width")
    lo, hi = WIDTHS[kind]
    if not lo <= width <= hi:
        raise out_of_range(base + 2, f"{kind.name} width {width} is outside {lo}..{hi}")
    timing = _enum(r, FaultTiming, "timing")
    point = (0, 0, 0)
    if timing == FaultTiming.NEXT_JOB:
        if kind not in NEXT_JOB_KINDS or site not in NEXT_JOB_SITES:
            raise out_of_range(base + 3, f"a {kind.name} at {site.name} cannot wait for a job")
        tile = r.u16("tile")
        phase = r.u8("phase")
        cycle = r.u16("cycle")
        if kind != K.SEFI and phase not in JobPhase._value2member_map_:
            raise out_of_range(base + 6, f"job phase {phase} is not 1..4")
        point = (tile, phase, cycle)
    at = r.pos
    fmt = SITE_FIELDS[site]
    fields = struct.unpack(fmt, r.raw(struct.calcsize(fmt), f"{site.name} site fields"))
    return FaultRecord(kind, site, width, timing, fields, point), at


class FaultInjectionService:
    """TC[148,1] inject, TC[148,2] clear all, TC[148,3] list."""

    def __init__(self, fsw: FlightSoftware) -> None:
        self.fsw = fsw

    def accept(self, subtype: int, data: bytes) -> list[tuple[FaultRecord, Callable[[], None]]]:
        r = Reader(data)
        if subtype != FaultInjectionSubtype.INJECT:
            r.end()
            return []
        out: list = []
        for _ in range(r.count("record count", 1, MAX_FAULT_RECORDS)):
            record, at = parse_record(r)
            out.append((record, self._plan(record, at)))
        r.end()
        return out

    def _plan(self, rec: FaultRecord, at: int) -> Callable[[], None]:
        """What the record does, checked against this build now; run it at execution."""
        fsw, backend = self.fsw, self.fsw.backend
        f = rec.fields
        try:
            if rec.site == S.FW_RAM:
                address, bit = f
                last = address + (bit + rec.width - 1) // 8
                if bit > 7 or last >= fsw.ram.size:
                    raise refuse(
                        FailureCode.ADDRESS_OUT_OF_RANGE,
                        f"firmware RAM octet {address} bit {bit} width {rec.width}",
                        struct.pack("!II", address, last - address + 1),
                    )
                bits = [(address + (bit + i) // 8, (bit + i) % 8) for i in range(rec.width)]
                stuck = rec.kind in (K.STUCK_AT_0, K.STUCK_AT_1)
                value = int(rec.kind == K.STUCK_AT_1)

                def hit_ram() -> None:
                    for a, b in bits:
                        if stuck:
                            fsw.ram.stick(a, b, value)
                        else:
                            fsw.ram.flip(a, b)

                return hit_ram
            if rec.site == S.ACCEL:
                if rec.kind == K.SEL:
                    return lambda: setattr(fsw.env, "latchup", True)
                later = rec.timing == FaultTiming.NEXT_JOB
                return lambda: backend.hang(at_next_start=later)
            if rec.site == S.FSW:
                return fsw.hang
            sites = self._sites(rec)
            for s in sites:
                backend.check_site(s)
        except PacketError:
            raise
        except (ValueError, NotModelled) as exc:
            raise out_of_range(at, f"{rec.site.name} site: {exc}") from None
        if rec.kind in (K.STUCK_AT_0, K.STUCK_AT_1):
            value = int(rec.kind == K.STUCK_AT_1)
            return lambda: backend.stick(sites, value)
        if rec.timing == FaultTiming.NEXT_JOB:
            tile, phase, cycle = rec.point
            when = JobPoint(tile, Phase[JobPhase(phase).name], cycle)
            longest = longest_phase(when.phase, backend.build.n)
            if cycle >= longest:
                raise out_of_range(
                    at - 2, f"{when.phase.name} cycle {cycle}: no job has more than {longest}"
                )
            return lambda: backend.schedule(when, sites)
        return lambda: backend.flip(sites)

    def _sites(self, rec: FaultRecord) -> list:
        backend, f = self.fsw.backend, rec.fields
        if rec.site == S.SPM_CELL:
            start = SpmCell(*f)
            backend.check_site(start)
            return backend.layout.adjacent(start, rec.width)
        if rec.site == S.SPM_WORD:
            word, bit = f
            return backend.word_cells(word, bit, rec.width)
        if rec.site == S.ACC_BIT:
            return [AccBit(*f)]
        if rec.site == S.OUT_BIT:
            return [OutBit(*f)]
        offset, copy, bit = f
        if offset not in {int(r) for r in CONFIG_REGS}:
            raise ValueError(
                f"register offset {offset:#04x} is not a configuration register "
                f"({', '.join(f'{int(r):#04x} {r.name}' for r in CONFIG_REGS)})"
            )
        return [RegCopy(Reg(offset).name, copy, bit)]

    def start(self, subtype: int, request: list) -> None:
        mode = self.fsw.mode
        if mode != Mode.TEST:
            raise refuse(
                FailureCode.NOT_IN_TEST_MODE, f"service 148 in mode {mode.name}", bytes([mode])
            )

    def execute(self, subtype: int, request: list, req: Request) -> None:
        fsw = self.fsw
        if subtype == FaultInjectionSubtype.INJECT:
            hang = False
            for rec, act in request:
                if rec.site == S.FSW:
                    hang = True
                else:
                    act()
                fsw.events.raise_event(
                    EventId.FAULT_INJECTED, rec.kind, rec.site, rec.width, rec.timing
                )
            req.complete(fsw.now)
            if hang:
                fsw.hang()
            return
        if subtype == FaultInjectionSubtype.CLEAR_ALL:
            was_hung = fsw.backend.hung
            cleared = fsw.backend.clear_faults() + len(fsw.ram.stuck) + int(fsw.env.latchup)
            if was_hung and fsw.jobs.running is not None:
                fsw.jobs.abort_running("faults cleared")
            elif was_hung:
                fsw.reset_accelerator()
            fsw.ram.stuck.clear()
            fsw.env.latchup = False
            fsw.events.raise_event(EventId.FAULTS_CLEARED, min(cleared, 0xFFFF))
        else:
            active = self.active()
            out = struct.pack("!HB", min(len(active), 0xFFFF), min(len(active), MAX_LISTED))
            out += b"".join(rec.pack() for rec in active[:MAX_LISTED])
            fsw.tm.send(
                Service.FAULT_INJECTION, FaultInjectionSubtype.LIST_REPORT, out, req.dest_id
            )
        req.complete(fsw.now)

    def active(self) -> list[FaultRecord]:
        """The persistent faults now, as records."""
        fsw, backend = self.fsw, self.fsw.backend
        now, nxt = FaultTiming.NOW, FaultTiming.NEXT_JOB
        out = []
        for (word, bit), value in sorted(backend.stuck.items()):
            kind = K.STUCK_AT_1 if value else K.STUCK_AT_0
            out.append(FaultRecord(kind, S.SPM_WORD, 1, now, (word, bit)))
        for (address, bit), value in sorted(fsw.ram.stuck.items()):
            kind = K.STUCK_AT_1 if value else K.STUCK_AT_0
            out.append(FaultRecord(kind, S.FW_RAM, 1, now, (address, bit)))
        if backend.hung:
            out.append(FaultRecord(K.SEFI, S.ACCEL, 0, now, ()))
        if backend.hang_at_start:
            out.append(FaultRecord(K.SEFI, S.ACCEL, 0, nxt, ()))
        if fsw.env.latchup:
            out.append(FaultRecord(K.SEL, S.ACCEL, 0, now, ()))
        for when, site in backend.job_faults:
            point = (when.tile, JobPhase[when.phase.name], when.cycle)
            if isinstance(site, SpmCell):
                rec = FaultRecord(
                    K.SBU, S.SPM_CELL, 1, nxt, (site.bank, site.row, site.cell), point
                )
            elif isinstance(site, AccBit | OutBit):
                pe = S.ACC_BIT if isinstance(site, AccBit) else S.OUT_BIT
                rec = FaultRecord(K.SBU, pe, 1, nxt, (site.i, site.j, site.bit), point)
            else:
                reg = int(Reg[site.name])
                rec = FaultRecord(K.SBU, S.REG_COPY, 1, nxt, (reg, site.copy, site.bit), point)
            out.append(rec)
        return out
