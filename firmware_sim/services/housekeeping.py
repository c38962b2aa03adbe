"""Service 3: housekeeping structures, periodic and one-shot reports (ICD section 15.3).

``HK_STRUCTURES`` is the one definition of every report field (name, type, unit,
meaning, where the value comes from); the ICD's HK table is checked against it.
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
from protocol.payloads import HkStructure, ParamId, Reader, out_of_range, refuse

if TYPE_CHECKING:
    from firmware_sim.core import FlightSoftware
    from firmware_sim.services.verification import Request


@dataclass(frozen=True, slots=True)
class HkField:
    name: str
    fmt: str
    unit: str
    meaning: str
    get: Callable[[FlightSoftware], float]


def _sat(value: float, fmt: str) -> int:
    """A reading as the integer type ``fmt``, saturated rather than wrapped."""
    bits = 8 * struct.calcsize("!" + fmt)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if fmt.islower() else (0, (1 << bits) - 1)
    return max(lo, min(hi, round(value)))


F = HkField
HK_STRUCTURES: dict[HkStructure, tuple[HkField, ...]] = {
    HkStructure.SYSTEM: (
        F("uptime", "I", "s", "time since boot", lambda f: f.uptime),
        F("mode", "B", "Mode", "current mode (section 12)", lambda f: f.mode),
        F("boot_count", "I", "-", "boots since the non-volatile store was made",
          lambda f: f.nv.boot_count),
        F("reset_cause", "B", "ResetCause", "why the last boot happened",
          lambda f: f.reset_cause),
        F("watchdog_resets", "I", "-", "reboots by the flight software watchdog (non-volatile)",
          lambda f: f.nv.watchdog_resets),
        F("safe_mode_entries", "H", "-", "autonomous entries into SAFE since boot",
          lambda f: f.safe_entries),
        F("anomalies", "B", "-", "anomalies in the SAFE_MODE_WINDOW now",
          lambda f: f.anomalies.count(f.now, f.params[ParamId.SAFE_MODE_WINDOW])),
        F("tc_received", "I", "-", "TCs that passed the receipt checks",
          lambda f: f.dispatcher.stats.tc_received),
        F("tc_accepted", "I", "-", "TCs accepted", lambda f: f.dispatcher.stats.tc_accepted),
        F("tc_refused", "I", "-", "well-formed TCs that failed acceptance (duplicates included)",
          lambda f: f.dispatcher.stats.tc_refused),
        F("tc_duplicates", "I", "-", "TCs refused as DUPLICATE",
          lambda f: f.dispatcher.stats.duplicates),
        F("auth_failures", "I", "-", "hazardous TCs that failed authentication",
          lambda f: f.dispatcher.stats.auth_failures),
        F("frames_rejected", "I", "-", "frames and packets dropped on receipt (section 7)",
          lambda f: f.dispatcher.stats.rejected_total),
        F("tm_sent", "I", "-", "TM packets sent since boot", lambda f: f.tm.sent),
        F("events_raised", "I", "-", "events raised since boot, sent or not",
          lambda f: f.events.raised),
        F("jobs_pending", "B", "-", "jobs queued or running", lambda f: len(f.jobs)),
        F("jobs_deferred", "B", "bool", "1 while queued jobs wait for power (eclipse)",
          lambda f: f.jobs.deferring),
        F("jobs_completed", "I", "-", "jobs completed", lambda f: f.jobs.completed),
        F("jobs_failed", "I", "-", "jobs failed or timed out", lambda f: f.jobs.failed),
        F("jobs_aborted", "I", "-", "jobs aborted", lambda f: f.jobs.aborted),
    ),
    HkStructure.ENVIRONMENT: (
        F("env_time", "I", "s", "simulated time since power-on (scaled by --time-scale)",
          lambda f: f.env.t),
        F("orbit", "I", "-", "orbits since power-on", lambda f: f.env.sensors().orbit),
        F("orbit_phase", "H", "1e-4 orbit", "0 at eclipse exit",
          lambda f: 1e4 * f.env.sensors().phase),
        F("eclipse", "B", "bool", "1 in eclipse", lambda f: f.env.eclipse),
        F("solar_power", "H", "mW", "solar array input", lambda f: 1e3 * f.env.sensors().solar_w),
        F("load_power", "H", "mW", "total electrical load",
          lambda f: 1e3 * f.env.sensors().load_w),
        F("battery_soc", "H", "0.1 %", "battery state of charge", lambda f: 1e3 * f.env.soc),
        F("battery_voltage", "H", "mV", "battery voltage",
          lambda f: 1e3 * f.env.sensors().battery_v),
        F("board_temp", "h", "0.01 degC", "board (radiator node) temperature",
          lambda f: 100 * f.env.sensors().board_c),
        F("chip_temp", "h", "0.01 degC", "accelerator junction temperature",
          lambda f: 100 * f.env.sensors().chip_c),
        F("accel_power", "H", "mW", "accelerator static power (leakage, latch-up)",
          lambda f: 1e3 * f.env.sensors().accel_w),
        F("accel_current", "H", "mA", "accelerator supply current",
          lambda f: f.env.sensors().accel_ma),
        F("accel_energy", "I", "mJ", "dynamic energy of all jobs since power-on",
          lambda f: 1e3 * f.env.accel_energy_j),
    ),
    HkStructure.ACCELERATOR: (
        F("array_n", "B", "-", "systolic array size N (PARAMS)", lambda f: f.driver.info.n),
        F("spm_words", "H", "words", "scratchpad words (SPM_WORDS); a word is N octets",
          lambda f: f.driver.info.spm_words),
        F("accel_state", "B", "AccelState", "idle, running a job, or hung",
          lambda f: f.accelerator_state()),
        F("ecc_corrected", "I", "words", "ECC_CORR since boot or CLEAR_COUNTERS",
          lambda f: f.edac.corr.total),
        F("ecc_uncorrectable", "I", "words", "ECC_UNCORR since boot or CLEAR_COUNTERS",
          lambda f: f.edac.uncorr.total),
        F("tmr_mismatches", "I", "cycles", "TMR_MISMATCH since boot or CLEAR_COUNTERS",
          lambda f: f.edac.tmr.total),
        F("scrub_passes", "I", "-", "SCRUB_PASSES since boot or CLEAR_COUNTERS",
          lambda f: f.edac.passes.total),
        F("scrub_period", "H", "cycles", "SCRUB_PERIOD parameter",
          lambda f: f.params[ParamId.SCRUB_PERIOD]),
        F("accel_resets", "I", "-", "hung accelerator recovered by reset (SEFI)",
          lambda f: f.accel_resets),
        F("latchups", "H", "-", "latch-ups recovered by power cycle", lambda f: f.latchups),
        F("ram_errors", "I", "-", "firmware RAM results that failed their CRC",
          lambda f: f.ram_errors),
        F("results_held", "B", "-", "job result ranges the firmware keeps a CRC of",
          lambda f: len(f.results.results)),
        F("last_job_id", "H", "-", "job id of the last job that ended",
          lambda f: f.jobs.last.job_id),
        F("last_job_status", "B", "JobStatus", "how it ended", lambda f: f.jobs.last.status),
        F("last_job_err_code", "B", "-", "its ERR_CODE (docs/REGISTERS.md)",
          lambda f: f.jobs.last.err_code),
        F("last_job_cycles", "I", "cycles", "its CYCLES", lambda f: f.jobs.last.cycles),
        F("last_job_macs", "I", "-", "its MACS", lambda f: f.jobs.last.macs),
        F("last_job_crc", "I", "-", "CRC-32 of its result as kept", lambda f: f.jobs.last.crc),
    ),
}  # fmt: skip

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
        values = [_sat(f.get(fsw), f.fmt) for f in HK_STRUCTURES[sid]]
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
