"""Service 148 (private): fault injection, in TEST mode only (ICD section 15.8).

A TC[148,1] carries fault records (``protocol.payloads.FaultRecord``): a fault kind, a
site class, a width, a timing (now, or at a point of the next job) and the site. Site
class ``SITE`` names any entry of the build's site map (``testbed.sitemap``), turned into
the model's site by ``firmware_sim.accel.sitemap_sites``; a ``SET`` on a TMR register is
the transient all copies latch (``SetBit``), on a plain flop a flip in that cycle.
Transient faults act once; stuck-at cells, a hung sequencer (SEFI), a hang armed for the
next job and a latch-up persist until something clears them: they are the "active
faults" TC[148,3] lists and TC[148,2] clears.

A record that cannot be applied as the chip would behave is refused at acceptance with
a code that says why; one that waits for a job point is settled by that job's START
(``ModelBackend.take_injection``), and the job reports the faults it did not get.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from firmware_sim.accel import AccBit, JobPoint, NotModelled, OutBit, Phase, RegCopy, SpmCell
from firmware_sim.accel.faults import FaultSite, FlopBit, SeqCopy, SetBit
from firmware_sim.accel.regs import FIELD_MASKS, Reg
from firmware_sim.accel.sitemap_sites import (
    entry_bit,
    model_site,
    rtl_only_reason,
    transient_site,
)
from firmware_sim.backend import CONFIG_REGS
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
from testbed.sitemap import SiteMap, SiteMapError

if TYPE_CHECKING:
    from firmware_sim.core import FlightSoftware
    from firmware_sim.services.verification import Request

K, S = FaultKind, FaultSiteClass
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


class FaultInjectionService:
    """TC[148,1] inject, TC[148,2] clear all, TC[148,3] list."""

    def __init__(self, fsw: FlightSoftware) -> None:
        self.fsw = fsw
        self._sitemap: SiteMap | None = None

    @property
    def sitemap(self) -> SiteMap:
        """The site map of the chip's build (``SITE`` records name its entries)."""
        b = self.fsw.backend.build
        if self._sitemap is None or self._sitemap.build.options() != _options(b):
            self._sitemap = SiteMap.for_build(**_options(b))
        return self._sitemap

    def accept(self, subtype: int, data: bytes) -> list[tuple[FaultRecord, Callable[[], None]]]:
        r = Reader(data)
        if subtype != FaultInjectionSubtype.INJECT:
            r.end()
            return []
        out: list = []
        waiting: dict[JobPoint, list] = {}  # earlier records of this TC, by job point
        for index in range(r.count("record count", 1, MAX_FAULT_RECORDS)):
            at = r.pos
            record = FaultRecord.parse(r)
            out.append((record, self._plan(record, at, index, waiting)))
        r.end()
        return out

    def _plan(
        self, rec: FaultRecord, at: int, index: int, waiting: dict[JobPoint, list]
    ) -> Callable[[], None]:
        """What record ``index`` (at octet ``at``) does, checked against this build now;
        run it at execution. ``waiting`` holds the flips of earlier records by point."""
        fsw, backend = self.fsw, self.fsw.backend
        kind = FaultKind(rec.kind)
        sites_at = at + rec.site_offset()
        if rec.site_class == S.FW_RAM:
            address, bit = rec.site
            last = address + (bit + rec.width - 1) // 8
            if bit > 7 or last >= fsw.ram.size:
                raise refuse(
                    FailureCode.ADDRESS_OUT_OF_RANGE,
                    f"firmware RAM octet {address} bit {bit} width {rec.width}",
                    struct.pack("!II", address, last - address + 1),
                )
            bits = [(address + (bit + i) // 8, (bit + i) % 8) for i in range(rec.width)]
            stuck = kind in (K.STUCK_AT_0, K.STUCK_AT_1)
            value = int(kind == K.STUCK_AT_1)

            def hit_ram() -> None:
                for a, b in bits:
                    if stuck:
                        fsw.ram.stick(a, b, value)
                    else:
                        fsw.ram.flip(a, b)

            return hit_ram
        if rec.site_class == S.FW_RAM_CLUSTER:
            return self._ram_cluster(rec, at, index)
        if rec.site_class == S.ACCEL:
            if kind == K.SEL:
                return lambda: setattr(fsw.env, "latchup", True)
            later = rec.timing == FaultTiming.NEXT_JOB
            return lambda: backend.hang(at_next_start=later)
        if rec.site_class == S.FSW:
            return fsw.hang
        if rec.site_class == S.SITE:
            sites = self._named_site(rec, at, index)
        else:
            with _refusing(sites_at, index, rec):
                sites = self._sites(rec)
                for site in sites:
                    backend.check_site(site)
        if kind in (K.STUCK_AT_0, K.STUCK_AT_1):
            value = int(kind == K.STUCK_AT_1)
            if all(isinstance(site, SpmCell) for site in sites):
                return lambda: backend.stick(sites, value)
            with _refusing(sites_at, index, rec):
                backend.check_stick_registers(sites, value)
            return lambda: backend.stick_registers(sites, value)
        if rec.timing == FaultTiming.NOW:
            try:
                backend.check_now(sites)
            except NotModelled as exc:
                raise _refused(
                    FailureCode.FAULT_NOT_PREDICTABLE, sites_at, index, rec, exc
                ) from None
            return lambda: backend.flip(sites)
        tile, phase, cycle = rec.point
        when = JobPoint(tile, Phase[JobPhase(phase).name], cycle)
        longest = longest_phase(when.phase, backend.build.n)
        if cycle >= longest:
            raise _refused(
                FailureCode.FAULT_POINT_UNREACHABLE, at + POINT_OFFSETS["cycle"], index, rec,
                f"{when.phase.name} cycle {cycle}: no job of this build has more than {longest}",
            )  # fmt: skip
        earlier = waiting.setdefault(when, [])
        try:
            backend.check_scheduled(when, earlier + sites)
        except NotModelled as exc:
            raise _refused(FailureCode.FAULT_NOT_PREDICTABLE, sites_at, index, rec, exc) from None
        earlier += sites
        return lambda: backend.schedule(when, sites)

    def _ram_cluster(self, rec: FaultRecord, at: int, index: int) -> Callable[[], None]:
        """The bits of a ``FW_RAM_CLUSTER`` record: ``width`` cells of its shape from the
        first bit named, where the RAM's organisation puts them (``RamLayout``)."""
        ram = self.fsw.ram
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

    def _named_site(self, rec: FaultRecord, at: int, index: int) -> list[FaultSite]:
        """The model's site of a ``SITE`` record, checked against this build's map."""
        name, bit = str(rec.site[0]), int(rec.site[1])
        name_at, bit_at = at + rec.field_offset("name"), at + rec.field_offset("bit")
        absent = FailureCode.FAULT_SITE_ABSENT
        try:
            sitemap, build = self.sitemap, self.fsw.backend.build
        except SiteMapError as exc:
            raise _refused(absent, name_at, index, rec, exc) from None
        if name not in sitemap:
            hidden = {e.name for e in sitemap.unobservable}
            why = (
                f"{name} is unobservable in build {sitemap.build.name}: no output depends "
                "on it, so it holds no fault site"
                if name in hidden
                else f"build {sitemap.build.name} has no storage element {name} (list them "
                "with hil inject --sites)"
            )
            raise _refused(absent, name_at, index, rec, why)
        entry = sitemap.entry(name)
        if not 0 <= bit < entry.bits:
            what = "row * width + bit" if entry.kind == "memory" else "bit"
            raise _refused(absent, bit_at, index, rec,
                           f"{name}: {what} {bit} outside 0..{entry.bits - 1}")  # fmt: skip
        reason = rtl_only_reason(entry, sitemap.build)
        if reason is not None:
            raise _refused(FailureCode.FAULT_NOT_PREDICTABLE, name_at, index, rec,
                           f"{name}: {reason}")  # fmt: skip
        if FaultKind(rec.kind) == K.SET:
            site = transient_site(entry, bit, build.tmr)
            if site is None:
                raise _refused(absent, name_at, index, rec,
                               f"{name} is a memory: a transient is latched by flops")  # fmt: skip
        else:
            site = model_site(entry, bit)
        if site is None:
            raise _refused(absent, name_at, index, rec, f"{name}: the model has no such site")
        with _refusing(name_at, index, rec):
            self.fsw.backend.check_site(site)
        return [site]

    def _sites(self, rec: FaultRecord) -> list:
        backend, f = self.fsw.backend, rec.site
        if rec.site_class == S.SPM_CELL:
            start = SpmCell(*f)
            backend.check_site(start)
            return backend.layout.adjacent(start, rec.width)
        if rec.site_class == S.SPM_CLUSTER:
            bank, row, cell, raw_shape = f
            if raw_shape not in ClusterShape._value2member_map_:
                raise ValueError(f"cluster shape {raw_shape} is not 0..{len(ClusterShape) - 1}")
            start = SpmCell(bank, row, cell)
            backend.check_site(start)
            orientation = Orientation[ClusterShape(raw_shape).name]
            return backend.layout.cluster(start, cluster_shape(rec.width, orientation).offsets)
        if rec.site_class == S.SPM_WORD:
            word, bit = f
            return backend.word_cells(word, bit, rec.width)
        if rec.site_class == S.ACC_BIT:
            return [AccBit(*f)]
        if rec.site_class == S.OUT_BIT:
            return [OutBit(*f)]
        offset, copy, bit = f
        if offset not in {int(r) for r in CONFIG_REGS}:
            raise ValueError(
                f"register offset {offset:#04x} is not a configuration register "
                f"({', '.join(f'{int(r):#04x} {r.name}' for r in CONFIG_REGS)})"
            )
        copy_site = RegCopy(Reg(offset).name, copy, bit)
        if FaultKind(rec.kind) == K.SET and backend.build.tmr:
            # A transient on the next value all three copies load (FAULTS.md, SET); the
            # copy named must still exist.
            backend.check_site(copy_site)
            return [SetBit(f"u_regs.u_{Reg(offset).name.lower()}.q_q", bit)]
        return [copy_site]

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
                if rec.site_class == S.FSW:
                    hang = True
                else:
                    act()
                fsw.events.raise_event(
                    EventId.FAULT_INJECTED, rec.kind, rec.site_class, rec.width, rec.timing
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
            out = fault_list(len(active), active[:MAX_LISTED])
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
            out.append(FaultRecord(kind, S.SPM_WORD, 1, (word, bit), now))
        for (address, bit), value in sorted(fsw.ram.stuck.items()):
            kind = K.STUCK_AT_1 if value else K.STUCK_AT_0
            out.append(FaultRecord(kind, S.FW_RAM, 1, (address, bit), now))
        for site, value in backend.stuck_registers.items():
            out.append(self._record(K.STUCK_AT_1 if value else K.STUCK_AT_0, site, now))
        if backend.hung:
            out.append(FaultRecord(K.SEFI, S.ACCEL, 0, (), now))
        if backend.hang_at_start:
            out.append(FaultRecord(K.SEFI, S.ACCEL, 0, (), nxt))
        if fsw.env.latchup:
            out.append(FaultRecord(K.SEL, S.ACCEL, 0, (), now))
        for when, site in backend.job_faults:
            point = (when.tile, JobPhase[when.phase.name], when.cycle)
            kind = K.SET if isinstance(site, SetBit) else K.SBU
            out.append(self._record(kind, site, nxt, point))
        return out

    def _record(
        self,
        kind: FaultKind,
        site: FaultSite,
        timing: FaultTiming,
        point: tuple[int, int, int] = (0, 0, 0),
    ) -> FaultRecord:
        """A model site as the record that names it: by its own site class where it has
        one, else by its site-map entry (``SITE``)."""
        if isinstance(site, SpmCell):
            return FaultRecord(kind, S.SPM_CELL, 1, (site.bank, site.row, site.cell), timing, point)
        if isinstance(site, AccBit | OutBit):
            pe = S.ACC_BIT if isinstance(site, AccBit) else S.OUT_BIT
            return FaultRecord(kind, pe, 1, (site.i, site.j, site.bit), timing, point)
        if isinstance(site, RegCopy):
            fields = (int(Reg[site.name]), site.copy, site.bit)
            return FaultRecord(kind, S.REG_COPY, 1, fields, timing, point)
        if isinstance(site, SetBit):
            return FaultRecord(kind, S.SITE, 1, (f"{site.path}[0]", site.bit), timing, point)
        if isinstance(site, SeqCopy | FlopBit):
            entry, bit = entry_bit(site, self.sitemap)
            return FaultRecord(kind, S.SITE, 1, (entry.name, bit), timing, point)
        raise TypeError(f"no fault record for {site!r}")

def _options(build: object) -> dict[str, object]:
    """The site-map options of a backend build."""
    names = ("n", "bank_words", "interleave", "ecc", "scrub", "tmr")
    return {k: getattr(build, k) for k in names}


@contextmanager
def _refusing(offset: int, index: int, rec: FaultRecord) -> Iterator[None]:
    """A check of the model whose refusals become the service's: ValueError (no such site
    or value in this build) FAULT_SITE_ABSENT, NotModelled FAULT_NOT_PREDICTABLE, for
    the field at ``offset`` of record ``index``."""
    try:
        yield
    except NotModelled as exc:
        raise _refused(FailureCode.FAULT_NOT_PREDICTABLE, offset, index, rec, exc) from None
    except ValueError as exc:
        raise _refused(FailureCode.FAULT_SITE_ABSENT, offset, index, rec, exc) from None


def _refused(
    code: FailureCode, offset: int, index: int, rec: FaultRecord, why: object
) -> PacketError:
    """A refusal of record ``index`` with the failure data of ICD section 10."""
    what = f"fault record {index} ({FaultKind(rec.kind).name} at {rec.site_class.name}): {why}"
    return refuse(code, what, fault_refusal(offset, index))
