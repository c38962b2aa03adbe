"""Service 20: on-board parameters, read and set (ICD section 15.7).

Types, units and ranges are ``protocol.payloads.PARAM_SPECS`` (both sides use them);
``PARAMETERS`` adds each parameter's default and meaning, and the ICD's parameter table
is checked against it. Values are volatile: every boot starts from the
defaults. A TC[20,3] is checked whole before any value changes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protocol.codes import EventId, FailureCode, ParameterSubtype
from protocol.payloads import (
    PARAM_SPECS,
    ParamId,
    ParamType,
    Reader,
    out_of_range,
    parameter_value,
    parameter_values,
    refuse,
)

if TYPE_CHECKING:
    from firmware_sim.services.events import EventService
    from firmware_sim.services.verification import Request
    from firmware_sim.telemetry import TmSender


@dataclass(frozen=True, slots=True)
class ParamDef:
    """One row of the parameter table."""

    id: ParamId
    type: ParamType
    unit: str
    lo: int
    hi: int
    default: int
    meaning: str


def _p(pid: ParamId, default: int, meaning: str) -> ParamDef:
    """A row: type, unit and range as the protocol defines them, the default and meaning."""
    spec = PARAM_SPECS[pid]
    return ParamDef(pid, spec.type, spec.unit, spec.lo, spec.hi, default, meaning)


PARAMETERS: dict[ParamId, ParamDef] = {
    d.id: d
    for d in (
        _p(ParamId.HK_INTERVAL_SYSTEM, 10_000,
           "period of HK structure SYSTEM (also set by TC[3,31])"),
        _p(ParamId.HK_INTERVAL_ENVIRONMENT, 10_000,
           "period of HK structure ENVIRONMENT (also set by TC[3,31])"),
        _p(ParamId.HK_INTERVAL_ACCELERATOR, 10_000,
           "period of HK structure ACCELERATOR (also set by TC[3,31])"),
        _p(ParamId.SCRUB_PERIOD, 50_000,
           "accelerator SCRUB_PERIOD register: idle cycles between scrub steps, 0 stops it"),
        _p(ParamId.JOB_TIMEOUT, 2_000,
           "job watchdog: a job not DONE after this is a hung accelerator (SEFI)"),
        _p(ParamId.WATCHDOG_TIMEOUT, 5_000,
           "flight software watchdog: reboot if the main loop stops for this long"),
        _p(ParamId.JOB_QUEUE_LIMIT, 8,
           "jobs queued or running at most; more fail to start with BUSY"),
        _p(ParamId.SAFE_MODE_THRESHOLD, 3,
           "anomalies within SAFE_MODE_WINDOW that make the flight software enter SAFE"),
        _p(ParamId.SAFE_MODE_WINDOW, 600,
           "sliding window over which anomalies are counted"),
        _p(ParamId.ECLIPSE_DEFER_SOC, 300,
           "in eclipse, jobs wait while the battery charge is below this"),
        _p(ParamId.POWER_LOW_SOC, 200,
           "event POWER_LOW when the battery charge falls below this"),
        _p(ParamId.LATCHUP_CURRENT_LIMIT, 300,
           "accelerator supply current above this is a latch-up: power cycle"),
        _p(ParamId.TEMP_LOW_LIMIT, -2_000,
           "event THERMAL_LIMIT below this board temperature (must stay below the high limit)"),
        _p(ParamId.TEMP_HIGH_LIMIT, 6_000,
           "event THERMAL_LIMIT above this board or chip temperature"),
        _p(ParamId.EVENT_RATE_LIMIT, 5_000,
           "rate-limited events are reported at most once per this interval"),
    )
}  # fmt: skip
if set(PARAMETERS) != set(PARAM_SPECS):
    raise RuntimeError(f"parameters without a default: {set(PARAM_SPECS) - set(PARAMETERS)}")


class ParameterStore:
    """Current values, by id."""

    def __init__(self) -> None:
        self.values = {pid: d.default for pid, d in PARAMETERS.items()}

    def __getitem__(self, pid: ParamId) -> int:
        return self.values[pid]

    def seconds(self, pid: ParamId) -> float:
        """A value in ms as seconds."""
        return self.values[pid] / 1000.0

    def set(self, pid: ParamId, value: int) -> None:
        d = PARAMETERS[pid]
        if not d.lo <= value <= d.hi:
            raise ValueError(f"{pid.name} = {value} is outside {d.lo}..{d.hi}")
        self.values[pid] = value


def _param_id(r: Reader) -> ParamId:
    raw = r.u16("parameter id")
    try:
        return ParamId(raw)
    except ValueError:
        raise refuse(
            FailureCode.UNKNOWN_PARAMETER,
            f"parameter id {raw:#06x} is not defined",
            struct.pack("!H", raw),
        ) from None


class ParameterService:
    """TC[20,1] report values, TC[20,3] set values; ``changed`` lets the rest of the
    software act on a new value (restart a housekeeping period, reprogram the chip)."""

    def __init__(
        self,
        params: ParameterStore,
        events: EventService,
        tm: TmSender,
        now: Callable[[], float],
        changed: Callable[[ParamId], None],
    ) -> None:
        self.params = params
        self.events = events
        self.tm = tm
        self.now = now
        self.changed = changed

    def accept(self, subtype: int, data: bytes) -> list:
        r = Reader(data)
        n = r.count("parameter count")
        if subtype == ParameterSubtype.REPORT_VALUES:
            ids = [_param_id(r) for _ in range(n)]
            r.end()
            return ids
        sets: list[tuple[ParamId, int]] = []
        where: dict[ParamId, int] = {}
        for _ in range(n):
            pid = _param_id(r)
            d = PARAMETERS[pid]
            at = r.pos
            value = r.value(d.type, f"value of {pid.name}")
            if not d.lo <= value <= d.hi:
                raise out_of_range(at, f"{pid.name} = {value} is outside {d.lo}..{d.hi} {d.unit}")
            sets.append((pid, value))
            where[pid] = at
        r.end()
        after = dict(self.params.values) | dict(sets)
        if after[ParamId.TEMP_LOW_LIMIT] >= after[ParamId.TEMP_HIGH_LIMIT]:
            at = max(where.get(ParamId.TEMP_LOW_LIMIT, 0), where.get(ParamId.TEMP_HIGH_LIMIT, 0))
            raise out_of_range(at, "TEMP_LOW_LIMIT must stay below TEMP_HIGH_LIMIT")
        return sets

    def start(self, subtype: int, request: list) -> None:
        pass

    def execute(self, subtype: int, request: list, req: Request) -> None:
        if subtype == ParameterSubtype.REPORT_VALUES:
            out = parameter_values([(pid, self.params[pid]) for pid in request])
            self.tm.send(20, ParameterSubtype.VALUES_REPORT, out, req.dest_id)
        else:
            for pid, value in request:
                self.params.set(pid, value)
                self.events.raise_event(EventId.PARAMETER_CHANGED, raw=parameter_value(pid, value))
                self.changed(pid)
        req.complete(self.now())
