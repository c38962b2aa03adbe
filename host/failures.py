"""A target's refusals in words: what each failure code means for the TC it answers, with
its failure data decoded (docs/ICD.md section 10 and the payload sections of 15).

``explain`` is pure: the failure code and data of a report, and the TC it is about (its
service and application data), give one sentence. Data it cannot read (a newer
peer's, or lost with a DUPLICATE answer) leaves the meaning of the code alone.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from host.parameters import physical, physical_range
from protocol.codes import FailureCode, FaultKind, FunctionId, MemoryId, Mode, Service
from protocol.errors import PacketError
from protocol.payloads import (
    FAULT_SITES,
    FAULT_WIDTHS,
    MAX_DUMP_LEN,
    MAX_FAULT_RECORDS,
    MAX_LIST_COUNT,
    ONE_BIT_SITES,
    PARAM_SPECS,
    POINT_OFFSETS,
    SITE_FIELD_RANGES,
    SITE_FIELDS,
    FaultRecord,
    FaultTiming,
    FieldSpec,
    OperandSource,
    ParamId,
    Reader,
)

F = FailureCode

MEANINGS: dict[int, str] = {
    F.ILLEGAL_APID: "the packet's APID is not the flight software's",
    F.BAD_LENGTH: "the packet arrived incomplete, or its length field disagrees with it",
    F.BAD_CRC: "the packet was damaged on the way (its CRC does not match)",
    F.BAD_HEADER: "the packet's header is not as the ICD gives it (section 7)",
    F.UNKNOWN_SERVICE: "the target has no such service",
    F.UNKNOWN_SUBTYPE: "the service has no such telecommand",
    F.BAD_APP_DATA: "the application data is malformed",
    F.DUPLICATE: "a retransmission of a TC already accepted; not executed again",
    F.AUTH_FAILED: "the signature of a hazardous TC failed (no trailer, unknown key, wrong tag)",
    F.AUTH_REPLAY: (
        "the anti-replay number was used already, or is too far below the highest one the "
        "key used"
    ),
    F.AUTH_REQUIRED: "a hazardous TC with the null key, which only TEST mode accepts",
    F.KEY_NOT_ALLOWED: (
        "the master key signs key management and nothing else, and nothing else signs it"
    ),
    F.WRONG_MODE: "not allowed in the current mode",
    F.NOT_IN_TEST_MODE: "fault injection runs in TEST mode only",
    F.BUSY: "the accelerator or the memory is in use; send it again later",
    F.UNKNOWN_PARAMETER: "no such parameter",
    F.UNKNOWN_FUNCTION: "no such function",
    F.UNKNOWN_MEMORY: "no such memory",
    F.ADDRESS_OUT_OF_RANGE: "the range runs past the end of the memory",
    F.VALUE_OUT_OF_RANGE: "a value is outside its allowed range",
    F.UNKNOWN_HK_STRUCTURE: "no such housekeeping structure",
    F.UNKNOWN_EVENT: "no such event",
    F.FAULT_SITE_ABSENT: "this build of the chip has no such site",
    F.FAULT_NOT_PREDICTABLE: (
        "the target cannot apply that site at that timing as this build would behave"
    ),
    F.FAULT_POINT_UNREACHABLE: "no job of this build has that point",
    F.JOB_FAILED: "the accelerator ended the job with an error",
    F.JOB_ABORTED: "the job was stopped by ABORT_JOB, a reset, a latch-up or SAFE mode",
    F.TIMEOUT: (
        "the accelerator never finished within JOB_TIMEOUT (a hung chip, counted as a SEFI); "
        "it was soft-reset"
    ),
    F.INTERRUPTED: "the target rebooted while the request was running",
    F.INTERNAL_ERROR: "the flight software failed: a bug on the target",
}
"""What each failure code of ICD section 10 means, whatever the TC."""

FAULT_REFUSALS: dict[int, str] = {
    code: MEANINGS[code]
    for code in (F.FAULT_SITE_ABSENT, F.FAULT_NOT_PREDICTABLE, F.FAULT_POINT_UNREACHABLE)
}
"""Failure codes of a fault record that cannot be applied, and what each means."""

JOB_ERRORS: dict[int, str] = {
    1: "an uncorrectable memory error (ECC): a double-bit error in A, B or the bias, or in C "
    "as read back",
    2: "the job descriptor broke a rule of the chip (DESCRIPTOR)",
    15: "the job never finished (it timed out)",
}
"""The accelerator's ERR_CODE (docs/REGISTERS.md) as JOB_FAILED carries it, and 15, the
code of a result range whose job timed out (ICD 15.5)."""

MAX_DIM = 4095
"""Largest M, K and N of a job (ICD 15.6)."""


def _spec(text: str) -> tuple[FieldSpec, ...]:
    """``"M H; K H"`` -> field specs with the names as the ICD writes them."""
    return tuple(FieldSpec(*item.rsplit(" ", 1)) for item in text.split("; "))


JOB_FIELDS = _spec(
    "function id H; job id H; operand source B; M H; K H; N H; A address I; B address I; "
    "C address I; bias address I; flags B; shift B"
)
"""TC[8,1] RUN_GEMM / RUN_LAYER application data (ICD 15.6); RUN_GEMM ends after C
address."""


def in_units(unit: str) -> str:
    """`` ms`` after a number; `` (in 0.01 degC)`` for a scaled unit; nothing for none."""
    if unit == "-":
        return ""
    return f" (in {unit})" if unit[:1].isdigit() else f" {unit}"


def _offsets(fields: tuple[FieldSpec, ...]) -> dict[int, FieldSpec]:
    out, at = {}, 0
    for spec in fields:
        out[at] = spec
        at += struct.calcsize("!" + spec.fmt)
    return out


def _value(data: bytes, at: int, fmt: str) -> int | None:
    try:
        return struct.unpack_from("!" + fmt, data, at)[0]
    except struct.error:
        return None


def _mode(value: int) -> str:
    try:
        return Mode(value).name
    except ValueError:
        return f"mode {value}"


def _memory(value: int) -> str:
    try:
        return MemoryId(value).name
    except ValueError:
        return f"memory {value}"


# --- VALUE_OUT_OF_RANGE: the field at the offset, by TC ------------------------------------


def _job_field(app: bytes, at: int) -> str | None:
    spec = _offsets(JOB_FIELDS).get(at)
    if spec is None:
        return None
    value = _value(app, at, spec.fmt)
    source = _value(app, 4, "B")
    if value is None:
        return None
    if spec.name == "operand source":
        names = ", ".join(f"{s.name} ({s.value})" for s in OperandSource)
        return f"operand source {value} is not one of {names}"
    if spec.name in ("M", "K", "N"):
        if spec.name == "K" and 1 <= value <= MAX_DIM:
            return (
                f"the job does not fit in the scratchpad even in blocks: K = {value:,} is too "
                "large (K is never split: A and B need K words in each bank besides C and "
                "the bias, ICD 15.6)"
            )
        return f"{spec.name} = {value:,} is outside 1..{MAX_DIM:,}"
    if spec.name.endswith("address"):
        if source == OperandSource.INLINE:
            return f"the {spec.name} is {value}: it must be 0 with inline operands"
        return f"the {spec.name} {value} is not a whole scratchpad word (a multiple of N)"
    if spec.name == "flags":
        return f"flags {value:#04x} set bits other than BIAS, RELU and OUT_INT32 (0..2)"
    if spec.name == "shift":
        return f"shift = {value} is outside 0..31"
    return None


def _function_field(app: bytes, at: int) -> str | None:
    fid = _value(app, 0, "H")
    if fid in (FunctionId.RUN_GEMM, FunctionId.RUN_LAYER):
        return _job_field(app, at)
    if fid == FunctionId.SET_MODE and at == 2:
        value = _value(app, 2, "B")
        return f"mode {value} is not one of " + ", ".join(f"{m.name} ({m.value})" for m in Mode)
    return None


def _memory_field(app: bytes, at: int) -> str | None:
    memory = _memory(app[0]) if app else "the memory"
    if at == 1:
        return f"address {_value(app, 1, 'I')} of {memory} is not a whole word (a multiple of N)"
    if at == 5:
        length = _value(app, 5, "H")
        return (
            f"length {length} of {memory} is 0, longer than one dump ({MAX_DUMP_LEN} octets), "
            "or not a whole number of words"
        )
    return None


def _parameter_field(app: bytes, at: int) -> str | None:
    if at == 0:
        return f"{_value(app, 0, 'B')} parameters in one TC: 1..{MAX_LIST_COUNT}"
    r = Reader(app)
    try:
        for _ in range(r.u8("count")):
            pid = ParamId(r.u16("parameter id"))
            spec = PARAM_SPECS[pid]
            here = r.pos
            value = r.value(spec.type, pid.name)
            if here != at:
                continue
            if spec.lo <= value <= spec.hi:
                return (
                    f"{pid.name} = {physical(pid, value)}: TEMP_LOW_LIMIT must stay below "
                    "TEMP_HIGH_LIMIT, and would not"
                )
            return f"{pid.name} = {physical(pid, value)} is outside {physical_range(pid)}"
    except (PacketError, ValueError, KeyError):
        return None
    return None


def _records(app: bytes) -> list[tuple[int, FaultRecord]]:
    """The fault records of a TC[148,1] with the offset each starts at (as far as they
    read)."""
    r = Reader(app)
    out = []
    try:
        for _ in range(r.u8("count")):
            start = r.pos
            out.append((start, FaultRecord.read(r)))
    except PacketError:
        pass
    return out


def _record_name(index: int, rec: FaultRecord) -> str:
    kind = FaultKind(rec.kind).name if rec.kind in FaultKind._value2member_map_ else rec.kind
    return f"record {index} ({kind} at {rec.site_class.name})"


def _record_field(rec: FaultRecord, rel: int) -> tuple[str, int | str] | None:
    """The site or point field at ``rel`` octets into ``rec``: its name and value."""
    if rec.timing == FaultTiming.NEXT_JOB:
        for name, off in POINT_OFFSETS.items():
            if off == rel:
                return name, rec.point[list(POINT_OFFSETS).index(name)]
    for spec, value in zip(SITE_FIELDS[rec.site_class], rec.site, strict=True):
        if rec.field_offset(spec.name) == rel:
            return spec.name, value
    return None


def _fault_field(app: bytes, at: int) -> str | None:
    if at == 0:
        return f"{_value(app, 0, 'B')} fault records in one TC: 1..{MAX_FAULT_RECORDS}"
    found = [(i, start, rec) for i, (start, rec) in enumerate(_records(app)) if start <= at]
    if not found:
        return None
    index, start, rec = found[-1]
    name, rel = _record_name(index, rec), at - start
    kind = FaultKind(rec.kind) if rec.kind in FaultKind._value2member_map_ else None
    if rel == 0:
        return f"{name}: fault kind {rec.kind} is not defined"
    if rel == 1 and kind is not None:
        hits = ", ".join(sorted(s.name for s in FAULT_SITES[kind]))
        return f"{name}: a {kind.name} cannot hit {rec.site_class.name}; it hits {hits}"
    if rel == 2 and kind is not None:
        lo, hi = FAULT_WIDTHS[kind]
        if rec.site_class in ONE_BIT_SITES:
            hi = min(hi, 1)
        return f"{name}: width {rec.width} is outside {lo}..{hi}"
    if rel == 3:
        return f"{name}: it cannot wait for a job (no --next-job for this kind and site)"
    field = _record_field(rec, rel)
    if field is None:
        return None
    what, value = field
    if what == "phase":
        return f"{name}: job phase {value} is not 1..4 (bias, stream, write, flush)"
    if what == "name":
        return f"{name}: the site name must be 1..255 printable ASCII characters"
    lo, hi = SITE_FIELD_RANGES.get(rec.site_class, {}).get(what, (None, None))
    allowed = f" is outside {lo}..{hi}" if lo is not None else " is out of range"
    return f"{name}: {what} = {value}{allowed}"


FIELD_READERS: dict[int, Callable[[bytes, int], str | None]] = {
    Service.FUNCTION_MANAGEMENT: _function_field,
    Service.MEMORY_MANAGEMENT: _memory_field,
    Service.PARAMETER_MANAGEMENT: _parameter_field,
    Service.FAULT_INJECTION: _fault_field,
}
"""For each service whose TCs carry ranged values: the field at an offset, in words."""


# --- one sentence per code -----------------------------------------------------------------


def _fault_refusal(code: int, data: bytes, app: bytes) -> str | None:
    if len(data) != 3:
        return None
    at, index = struct.unpack("!HB", data)
    records = _records(app)
    if index >= len(records):
        return f"record {index} cannot be injected: {MEANINGS[code]} (field at octet {at})"
    start, rec = records[index]
    field = _record_field(rec, at - start)
    value = f": {field[0]} = {field[1]}" if field is not None else ""
    return (
        f"{_record_name(index, rec)} cannot be injected: {MEANINGS[code]}{value} "
        f"(field at octet {at})"
    )


def _job_failed(service: int, data: bytes) -> str | None:
    if len(data) != 1:
        return None
    err = JOB_ERRORS.get(data[0], f"ERR_CODE {data[0]}")
    if service == Service.MEMORY_MANAGEMENT:
        return (
            f"the range holds a failed job's result, which is never delivered (ICD 15.5): "
            f"{err}, or it no longer matches its CRC"
            if data[0] == 1
            else f"the range holds a failed job's result, which is never delivered: {err}"
        )
    return f"the job failed: {err}; C was not delivered"


def _wrong_mode(data: bytes) -> str | None:
    if len(data) != 1:
        return None
    if data[0] == Mode.SAFE:
        return (
            "the target is in SAFE mode, where it runs no jobs (it enters SAFE on its own "
            "after repeated anomalies, ICD 15.9); an authenticated SET_MODE to NOMINAL or "
            "TEST leaves it"
        )
    return f"not allowed in {_mode(data[0])} mode"


def _decoded(code: int, data: bytes, service: int, app: bytes) -> str | None:
    u16 = _value(data, 0, "H")
    if code == F.VALUE_OUT_OF_RANGE and len(data) == 2:
        reader = FIELD_READERS.get(service)
        field = reader(app, u16) if reader is not None else None
        return field or f"the value at octet {u16} of the application data is out of range"
    if code == F.ADDRESS_OUT_OF_RANGE and len(data) == 8:
        address, length = struct.unpack("!II", data)
        where = _memory(app[0]) if service == Service.MEMORY_MANAGEMENT and app else "memory"
        return f"{length:,} octets at address {address:,} run past the end of {where}"
    if code in FAULT_REFUSALS:
        return _fault_refusal(code, data, app)
    if code == F.JOB_FAILED:
        return _job_failed(service, data)
    if code == F.WRONG_MODE:
        return _wrong_mode(data)
    if code == F.NOT_IN_TEST_MODE and len(data) == 1:
        return f"fault injection runs in TEST mode only; the target is in {_mode(data[0])}"
    if code == F.BAD_APP_DATA and len(data) == 2:
        return f"the application data is malformed at octet {u16}"
    if code == F.AUTH_FAILED and len(data) == 2:
        key = "no auth trailer" if u16 == 0xFFFF else f"key id {u16}"
        return f"{MEANINGS[code]}: {key}"
    if code == F.AUTH_REPLAY and len(data) == 6:
        key, last = struct.unpack("!HI", data)
        return (
            f"key {key}'s highest accepted number is {last}; this TC's was used already or "
            "is too far below it"
        )
    if code == F.BAD_CRC and len(data) == 4:
        computed, received = struct.unpack("!HH", data)
        return f"{MEANINGS[code]}: computed {computed:#06x}, received {received:#06x}"
    if code == F.BAD_LENGTH and len(data) == 4:
        got, field = struct.unpack("!HH", data)
        return f"{MEANINGS[code]}: {got} octets received, length field {field}"
    if code == F.UNKNOWN_SERVICE and len(data) == 1:
        return f"the target has no service {data[0]}"
    if code == F.UNKNOWN_SUBTYPE and len(data) == 2:
        return f"service {data[0]} has no telecommand subtype {data[1]}"
    if code == F.UNKNOWN_PARAMETER and u16 is not None:
        return f"no parameter {u16:#06x}"
    if code == F.UNKNOWN_FUNCTION and u16 is not None:
        return f"no function {u16:#06x}"
    if code == F.UNKNOWN_MEMORY and len(data) == 1:
        return f"no memory {data[0]}"
    if code == F.UNKNOWN_HK_STRUCTURE and u16 is not None:
        return f"no housekeeping structure {u16}"
    if code == F.UNKNOWN_EVENT and u16 is not None:
        return f"no event {u16:#06x}"
    return None


def explain(code: int, data: bytes = b"", service: int = 0, app_data: bytes = b"") -> str:
    """What a failure report says, in words, for the TC (of ``service``, with
    ``app_data``) it answers; an unknown code or unreadable data gives the code's meaning
    alone."""
    words = _decoded(code, data, service, app_data)
    if words is not None:
        return words
    return MEANINGS.get(code, "a failure code this host does not know (from a newer target?)")
