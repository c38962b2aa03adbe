"""Service 3: housekeeping structures, periodic and one-shot reports (ICD section 15.3).

The layout of every report (field order, type, unit) is ``protocol.payloads.HK_FIELDS``,
which the host reads them with; here each field gets its meaning and where its value
comes from (``HK_STRUCTURES``), and the ICD's HK table is checked against both.
Each structure's period is the parameter HK_INTERVAL_<structure> (TC[3,31] and
TC[20,3] set the same value). All three are enabled at boot.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from firmware_sim.services.parameters import PARAMETERS
from protocol.codes import FailureCode, HousekeepingSubtype, Service
from protocol.payloads import (
    HK_FIELDS,
    HkStructure,
    ParamId,
    Reader,
    out_of_range,
    refuse,
    saturate,
)

if TYPE_CHECKING:
    from firmware_sim.core import FlightSoftware
    from firmware_sim.services.verification import Request


Getter = Callable[["FlightSoftware"], float]


@dataclass(frozen=True, slots=True)
class HkField:
    """One field of a report: its wire layout (from the protocol) and its source."""

    name: str
    fmt: str
    unit: str
    meaning: str
    get: Getter


@dataclass(frozen=True, slots=True)
class _Source:
    name: str
    meaning: str
    get: Getter


def _landed(fsw: FlightSoftware, where: str) -> int:
    """Upsets of the flown environment landed in ``where`` since boot (0 if none is flown)."""
    return 0 if fsw.radiation is None else fsw.radiation.since_boot(where)


F = _Source
_SOURCES: dict[HkStructure, tuple[_Source, ...]] = {
    HkStructure.SYSTEM: (
        F("uptime", "time since boot", lambda f: f.uptime),
        F("mode", "current mode (section 12)", lambda f: f.mode),
        F("boot_count", "boots since the non-volatile store was made",
          lambda f: f.nv.boot_count),
        F("reset_cause", "why the last boot happened",
          lambda f: f.reset_cause),
        F("watchdog_resets", "reboots by the flight software watchdog (non-volatile)",
          lambda f: f.nv.watchdog_resets),
        F("safe_mode_entries", "autonomous entries into SAFE since boot",
          lambda f: f.safe_entries),
        F("anomalies", "anomalies in the SAFE_MODE_WINDOW now",
          lambda f: f.anomalies.count(f.now, f.params[ParamId.SAFE_MODE_WINDOW])),
        F("tc_received", "TCs that passed the receipt checks",
          lambda f: f.dispatcher.stats.tc_received),
        F("tc_accepted", "TCs accepted", lambda f: f.dispatcher.stats.tc_accepted),
        F("tc_refused", "well-formed TCs that failed acceptance (duplicates included)",
          lambda f: f.dispatcher.stats.tc_refused),
        F("tc_duplicates", "TCs refused as DUPLICATE",
          lambda f: f.dispatcher.stats.duplicates),
        F("auth_failures", "hazardous TCs that failed authentication",
          lambda f: f.dispatcher.stats.auth_failures),
        F("frames_rejected", "frames and packets dropped on receipt (section 7)",
          lambda f: f.dispatcher.stats.rejected_total),
        F("tm_sent", "TM packets sent since boot", lambda f: f.tm.sent),
        F("events_raised",
          "event reports made since boot, sent or disabled (one per rate-limited report)",
          lambda f: f.events.raised),
        F("jobs_pending", "jobs queued or running", lambda f: len(f.jobs)),
        F("jobs_deferred", "1 while queued jobs wait for power (eclipse)",
          lambda f: f.jobs.deferring),
        F("jobs_completed", "jobs completed", lambda f: f.jobs.completed),
        F("jobs_failed", "jobs failed or timed out", lambda f: f.jobs.failed),
        F("jobs_aborted", "jobs aborted", lambda f: f.jobs.aborted),
    ),
    HkStructure.ENVIRONMENT: (
        F("env_time", "simulated time since power-on (scaled by --time-scale)",
          lambda f: f.env.t),
        F("orbit", "orbits since power-on", lambda f: f.env.sensors().orbit),
        F("orbit_phase", "0 at eclipse exit",
          lambda f: 1e4 * f.env.sensors().phase),
        F("eclipse", "1 in eclipse", lambda f: f.env.eclipse),
        F("solar_power", "solar array input", lambda f: 1e3 * f.env.sensors().solar_w),
        F("load_power", "total electrical load",
          lambda f: 1e3 * f.env.sensors().load_w),
        F("battery_soc", "battery state of charge", lambda f: 1e3 * f.env.soc),
        F("battery_voltage", "battery voltage",
          lambda f: 1e3 * f.env.sensors().battery_v),
        F("board_temp", "board (radiator node) temperature",
          lambda f: 100 * f.env.sensors().board_c),
        F("chip_temp", "accelerator junction temperature",
          lambda f: 100 * f.env.sensors().chip_c),
        F("accel_power", "accelerator static power (leakage, latch-up)",
          lambda f: 1e3 * f.env.sensors().accel_w),
        F("accel_current", "accelerator supply current",
          lambda f: f.env.sensors().accel_ma),
        F("accel_energy", "dynamic energy of all jobs since power-on",
          lambda f: 1e3 * f.env.accel_energy_j),
        F("accel_static_energy",
          "leakage and latch-up energy since power-on "
          "(a latch-up adds its extra power while it lasts)",
          lambda f: 1e3 * f.env.accel_static_energy_j),
        F("in_saa", "1 inside a pass through the South Atlantic Anomaly of the flown "
          "environment; 0 outside, or with no environment flown",
          lambda f: f.radiation is not None and f.radiation.in_saa),
        F("upsets_spm", "upsets of the flown environment landed in scratchpad cells since "
          "boot (a multi-bit upset counts once); 0 with no environment flown",
          lambda f: _landed(f, "spm")),
        F("upsets_flipflop", "upsets landed in the accelerator's flip-flops since boot",
          lambda f: _landed(f, "flipflop")),
        F("upsets_fw_ram", "upsets landed in the firmware RAM since boot",
          lambda f: _landed(f, "fw_ram")),
        F("upsets_not_landed", "upsets that arrived but could not be applied to the model "
          "since boot (not counted above; the reason is in the firmware log)",
          lambda f: 0 if f.radiation is None else f.radiation.not_landed_since_boot()),
    ),
    HkStructure.ACCELERATOR: (
        F("array_n", "systolic array size N (PARAMS)", lambda f: f.driver.info.n),
        F("spm_words", "scratchpad words (SPM_WORDS); a word is N octets",
          lambda f: f.driver.info.spm_words),
        F("accel_state", "idle, running a job, or hung",
          lambda f: f.accelerator_state()),
        F("ecc_corrected", "ECC_CORR since boot or CLEAR_COUNTERS",
          lambda f: f.edac.corr.total),
        F("ecc_uncorrectable", "ECC_UNCORR since boot or CLEAR_COUNTERS",
          lambda f: f.edac.uncorr.total),
        F("tmr_mismatches", "TMR_MISMATCH since boot or CLEAR_COUNTERS",
          lambda f: f.edac.tmr.total),
        F("scrub_passes", "SCRUB_PASSES since boot or CLEAR_COUNTERS",
          lambda f: f.edac.passes.total),
        F("scrub_period", "SCRUB_PERIOD parameter",
          lambda f: f.params[ParamId.SCRUB_PERIOD]),
        F("accel_resets", "hung accelerator recovered by reset (SEFI)",
          lambda f: f.accel_resets),
        F("latchups", "latch-ups recovered by power cycle", lambda f: f.latchups),
        F("ram_errors", "firmware RAM results that failed their CRC",
          lambda f: f.ram_errors),
        F("results_held", "job result ranges the firmware keeps a CRC of",
          lambda f: len(f.results.results)),
        F("last_job_id", "job id of the last job that ended",
          lambda f: f.jobs.last.job_id),
        F("last_job_status", "how it ended", lambda f: f.jobs.last.status),
        F("last_job_err_code", "its ERR_CODE (docs/REGISTERS.md)",
          lambda f: f.jobs.last.err_code),
        F("last_job_cycles", "its CYCLES, summed over its chip jobs (15.6)",
          lambda f: f.jobs.last.cycles),
        F("last_job_macs", "its MACS, summed likewise", lambda f: f.jobs.last.macs),
        F("last_job_crc", "CRC-32 of its result as kept", lambda f: f.jobs.last.crc),
        F("faults_not_injected", "faults scheduled at a job point that the job never "
          "reached or could not place, since boot (15.8)", lambda f: f.jobs.faults_not_injected),
        F("last_job_faults", "faults scheduled at points of the last job",
          lambda f: f.jobs.last.faults),
        F("last_job_not_injected", "of them, not injected (15.8)",
          lambda f: f.jobs.last.not_injected),
        F("last_job_energy", "dynamic energy of its chip jobs, as the energy model estimates "
          "it (15.9)", lambda f: 1e9 * f.jobs.last.energy_j),
    ),
}  # fmt: skip


def _structure(sid: HkStructure) -> tuple[HkField, ...]:
    """The protocol's layout of ``sid`` with the source of each field, checked by name."""
    sources = {s.name: s for s in _SOURCES[sid]}
    names = [spec.name for spec in HK_FIELDS[sid]]
    if list(sources) != names:
        raise RuntimeError(f"HK {sid.name}: sources {list(sources)} != fields {names}")
    return tuple(
        HkField(spec.name, spec.fmt, spec.unit, sources[spec.name].meaning, sources[spec.name].get)
        for spec in HK_FIELDS[sid]
    )


HK_STRUCTURES: dict[HkStructure, tuple[HkField, ...]] = {s: _structure(s) for s in HkStructure}
"""Every report field: the protocol's layout and where the value comes from."""

INTERVAL_PARAM = {
    HkStructure.SYSTEM: ParamId.HK_INTERVAL_SYSTEM,
    HkStructure.ENVIRONMENT: ParamId.HK_INTERVAL_ENVIRONMENT,
    HkStructure.ACCELERATOR: ParamId.HK_INTERVAL_ACCELERATOR,
}


def structure_format(sid: HkStructure) -> str:
    """struct format of a TM[3,25] source data: SID u16, then the fields."""
    return "!H" + "".join(f.fmt for f in HK_STRUCTURES[sid])


def _sid(r: Reader) -> HkStructure:
    raw = r.u16("structure id")
    try:
        return HkStructure(raw)
    except ValueError:
        raise refuse(
            FailureCode.UNKNOWN_HK_STRUCTURE, f"housekeeping structure {raw} is not defined",
            struct.pack("!H", raw),
        ) from None  # fmt: skip


class HousekeepingService:
    """Periodic and one-shot HK reports; TC[3,5], [3,6], [3,27], [3,31]."""

    def __init__(self, fsw: FlightSoftware) -> None:
        self.fsw = fsw
        self.enabled = dict.fromkeys(HkStructure, True)
        self.due = {sid: fsw.now + self.interval(sid) for sid in HkStructure}

    def interval(self, sid: HkStructure) -> float:
        return self.fsw.params.seconds(INTERVAL_PARAM[sid])

    def report(self, sid: HkStructure, dest_id: int = 0) -> None:
        """Send one TM[3,25] of ``sid``."""
        fsw = self.fsw
        if sid == HkStructure.ACCELERATOR:
            fsw.check_counters()
        values = [saturate(f.get(fsw), f.fmt) for f in HK_STRUCTURES[sid]]
        data = struct.pack(structure_format(sid), sid, *values)
        fsw.tm.send(Service.HOUSEKEEPING, HousekeepingSubtype.HK_REPORT, data, dest_id)

    def poll(self) -> None:
        now = self.fsw.now
        for sid in HkStructure:
            if self.enabled[sid] and now >= self.due[sid]:
                self.report(sid)
                self.due[sid] = max(self.due[sid] + self.interval(sid), now)

    def next_due(self) -> float:
        due = [self.due[s] for s in HkStructure if self.enabled[s]]
        return min(due, default=self.fsw.now + 3600.0)

    def restart(self, sid: HkStructure) -> None:
        """The period of ``sid`` changed: next report one new period from now."""
        self.due[sid] = self.fsw.now + self.interval(sid)

    # --- the service -----------------------------------------------------------------

    def accept(self, subtype: int, data: bytes) -> list:
        r = Reader(data)
        n = r.count("structure count")
        if subtype == HousekeepingSubtype.MODIFY_INTERVAL:
            out = []
            for _ in range(n):
                sid = _sid(r)
                at = r.pos
                ms = r.u32("collection interval")
                p = PARAMETERS[INTERVAL_PARAM[sid]]
                if not p.lo <= ms <= p.hi:
                    raise out_of_range(at, f"interval {ms} ms is outside {p.lo}..{p.hi} ms")
                out.append((sid, ms))
            r.end()
            return out
        sids = [_sid(r) for _ in range(n)]
        r.end()
        return sids

    def start(self, subtype: int, request: list) -> None:
        pass

    def execute(self, subtype: int, request: list, req: Request) -> None:
        now = self.fsw.now
        if subtype == HousekeepingSubtype.ONE_SHOT:
            for sid in request:
                self.report(sid, req.dest_id)
        elif subtype == HousekeepingSubtype.MODIFY_INTERVAL:
            for sid, ms in request:
                self.fsw.params.set(INTERVAL_PARAM[sid], ms)
                self.restart(sid)
        else:
            on = subtype == HousekeepingSubtype.ENABLE_PERIODIC
            for sid in request:
                if on and not self.enabled[sid]:
                    self.restart(sid)
                self.enabled[sid] = on
        req.complete(now)
