"""Housekeeping and event reports decoded with the layouts of docs/ICD.md section 15.

``Housekeeping`` is a dict of field name to value (enumerated fields as their enum member,
so ``hk["mode"] == Mode.TEST``) that also knows each field's unit and can scale it
(``quantity("battery_soc")`` -> ``(52.3, "%")``). ``EventReport`` is one TM[5,x] with its
auxiliary data by name.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from host.history import Received
from protocol.codes import (
    EventId,
    FailureCode,
    FaultKind,
    FunctionId,
    MemoryId,
    Mode,
    NotInjectedReason,
    Service,
    Severity,
)
from protocol.payloads import (
    EVENT_FIELDS,
    HK_FIELDS,
    PARAM_SPECS,
    AccelState,
    FaultSiteClass,
    FaultTiming,
    FieldSpec,
    HkStructure,
    JobStatus,
    ParamId,
    Reader,
    ResetCause,
    read_fields,
)
from protocol.timecode import CdsTime

ENUM_UNITS: dict[str, type[enum.IntEnum]] = {
    e.__name__: e
    for e in (
        Mode, ResetCause, AccelState, JobStatus, EventId, FailureCode, FunctionId, MemoryId,
        FaultKind, FaultSiteClass, FaultTiming, ParamId, NotInjectedReason,
    )
}  # fmt: skip
"""Units of the ICD tables that name an enumeration."""


def _typed(spec: FieldSpec, raw: int | bytes) -> int | bytes:
    kind = ENUM_UNITS.get(spec.unit)
    if kind is None or not isinstance(raw, int):
        return raw
    try:
        return kind(raw)
    except ValueError:
        return raw  # a newer peer's code: shown as a number


def scale(value: int, unit: str) -> tuple[float | int, str]:
    """``(523, "0.1 %")`` -> ``(52.3, "%")``: a unit that starts with a number scales."""
    head, _, rest = unit.partition(" ")
    try:
        factor = float(head)
    except ValueError:
        return value, unit
    return value * factor, rest


def _show(value: object, unit: str) -> str:
    if isinstance(value, enum.Enum):
        return value.name
    if unit == "bool":
        return "yes" if value else "no"
    if isinstance(value, bytes):
        return value.hex(" ") or "(none)"
    number, base = scale(int(value), unit)
    text = f"{number:.4g}" if isinstance(number, float) else str(number)
    return f"{text} {base}" if base not in ("-", "") else text


class Housekeeping(dict):
    """One TM[3,25]: field name -> value, with ``structure``, ``units`` and ``time``."""

    def __init__(
        self,
        structure: HkStructure,
        values: dict[str, int],
        units: dict[str, str],
        time: CdsTime | None = None,
    ) -> None:
        super().__init__(values)
        self.structure = structure
        self.units = units
        self.time = time

    @classmethod
    def from_source_data(cls, source_data: bytes, time: CdsTime | None = None) -> Housekeeping:
        """Decode TM[3,25] source data (SID u16, then the structure's fields)."""
        r = Reader(source_data)
        sid = HkStructure(r.u16("structure id"))
        fields = HK_FIELDS[sid]
        raw = read_fields(r, fields)
        r.end()
        values = {f.name: _typed(f, raw[f.name]) for f in fields}
        return cls(sid, values, {f.name: f.unit for f in fields}, time)

    def quantity(self, name: str) -> tuple[float | int, str]:
        """The value in the unit's base (``0.01 degC`` -> degC), and that base unit."""
        return scale(int(self[name]), self.units[name])

    def show(self, name: str) -> str:
        """``52.3 %``, ``TEST``, ``yes``: the value as a person reads it."""
        return _show(self[name], self.units[name])

    def lines(self) -> list[str]:
        """One ``name  value`` line per field."""
        width = max(len(n) for n in self)
        return [f"{name:<{width}}  {self.show(name)}" for name in self]


@dataclass(frozen=True, slots=True)
class EventReport:
    """One TM[5,severity]: the event, its auxiliary data by name, when and where it came."""

    event_id: EventId | int
    severity: Severity | int
    args: dict[str, int | bytes] = field(default_factory=dict)
    time: CdsTime | None = None
    received: Received | None = None

    @classmethod
    def from_received(cls, item: Received) -> EventReport:
        """Decode a received TM[5,x]; unknown events keep their raw data as ``data``."""
        tm = item.tm
        if tm.service != Service.EVENT_REPORTING:
            raise ValueError(f"TM[{tm.service},{tm.subtype}] is not an event report")
        r = Reader(tm.source_data)
        raw_id = r.u16("event id")
        try:
            eid: EventId | int = EventId(raw_id)
        except ValueError:
            eid = raw_id
        try:
            severity: Severity | int = Severity(tm.subtype)
        except ValueError:
            severity = tm.subtype
        specs = EVENT_FIELDS.get(eid) if isinstance(eid, EventId) else None
        if specs is None:
            args: dict[str, int | bytes] = {"data": r.raw(len(tm.source_data) - 2, "data")}
        else:
            raw = read_fields(r, specs)
            args = {f.name: _typed(f, raw[f.name]) for f in specs}
            if eid == EventId.PARAMETER_CHANGED:
                args = _parameter_value(args)
        return cls(eid, severity, args, tm.time, item)

    @property
    def name(self) -> str:
        return self.event_id.name if isinstance(self.event_id, EventId) else f"{self.event_id:#06x}"

    def __str__(self) -> str:
        specs = EVENT_FIELDS.get(self.event_id, ()) if isinstance(self.event_id, EventId) else ()
        units = {f.name: f.unit for f in specs}
        args = " ".join(f"{k}={_show(v, units.get(k, '-'))}" for k, v in self.args.items())
        sev = self.severity.name if isinstance(self.severity, Severity) else str(self.severity)
        return f"{sev:<6} {self.name} {args}".rstrip()


def _parameter_value(args: dict[str, int | bytes]) -> dict[str, int | bytes]:
    pid, value = args.get("parameter"), args.get("value")
    if isinstance(pid, ParamId) and isinstance(value, bytes):
        kind = PARAM_SPECS[pid].type
        if len(value) == kind.size:
            return {**args, "value": struct.unpack("!" + kind.value, value)[0]}
    return args
