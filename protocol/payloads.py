"""Codes and field readers of docs/ICD.md section 15 (service payloads).

Both sides build and read payloads with it. A refusal is a ``PacketError`` with
the failure code and failure data of ICD section 10, as ``protocol.auth`` raises them.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from protocol.codes import EventId, FailureCode, FaultKind
from protocol.errors import PacketError
from protocol.request_id import RequestId

MAX_DUMP_LEN: Final[int] = 2016
"""Largest TC[6,5] length: fits TM[6,6] and is a whole number of words for every N."""
MAX_FAULT_RECORDS: Final[int] = 32
"""Fault records in one TC[148,1]."""
MAX_LIST_COUNT: Final[int] = 64
"""Entries in one list field (structure ids, event ids, parameter ids)."""


class HkStructure(enum.IntEnum):
    """Housekeeping structure id (u16, SID) of service 3."""

    SYSTEM = 1
    ENVIRONMENT = 2
    ACCELERATOR = 3


class ParamId(enum.IntEnum):
    """Parameter id (u16) of service 20; the table is in ICD section 15.7."""

    HK_INTERVAL_SYSTEM = 0x0001
    HK_INTERVAL_ENVIRONMENT = 0x0002
    HK_INTERVAL_ACCELERATOR = 0x0003
    SCRUB_PERIOD = 0x0010
    JOB_TIMEOUT = 0x0011
    WATCHDOG_TIMEOUT = 0x0012
    JOB_QUEUE_LIMIT = 0x0013
    SAFE_MODE_THRESHOLD = 0x0020
    SAFE_MODE_WINDOW = 0x0021
    ECLIPSE_DEFER_SOC = 0x0030
    POWER_LOW_SOC = 0x0031
    LATCHUP_CURRENT_LIMIT = 0x0032
    TEMP_LOW_LIMIT = 0x0040
    TEMP_HIGH_LIMIT = 0x0041
    EVENT_RATE_LIMIT = 0x0050


class EventSelector(enum.IntEnum):
    """First octet of TC[5,5]/TC[5,6]: which events; 1..4 select a whole severity."""

    LISTED = 0
    INFO = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    ALL = 0xFF


class OperandSource(enum.IntEnum):
    """Where a job's operands are (u8 in TC[8,1] RUN_GEMM / RUN_LAYER)."""

    INLINE = 0
    ACCEL_SCRATCHPAD = 1
    FIRMWARE_RAM = 2


class LayerFlags(enum.IntFlag):
    """Epilogue flags of RUN_LAYER (u8)."""

    NONE = 0
    BIAS = 0b001
    RELU = 0b010
    OUT_INT32 = 0b100


def layer_flags(bias: bool, relu: bool, out_int32: bool) -> LayerFlags:
    """The RUN_LAYER flags field (ICD 15.6) of a layer."""
    flags = LayerFlags.NONE
    flags |= LayerFlags.BIAS if bias else LayerFlags.NONE
    flags |= LayerFlags.RELU if relu else LayerFlags.NONE
    return flags | (LayerFlags.OUT_INT32 if out_int32 else LayerFlags.NONE)


class FaultSiteClass(enum.IntEnum):
    """What a TC[148,1] fault record hits (u8)."""

    SPM_CELL = 1
    SPM_WORD = 2
    ACC_BIT = 3
    REG_COPY = 4
    FW_RAM = 5
    ACCEL = 6
    FSW = 7
    OUT_BIT = 8
    SITE = 9
    SPM_CLUSTER = 10
    FW_RAM_CLUSTER = 11


class ClusterShape(enum.IntEnum):
    """How the cells of an SPM_CLUSTER or FW_RAM_CLUSTER multi-bit upset lie (u8), from
    its first cell."""

    WORD_LINE = 0
    """Side by side in one physical row."""
    BIT_LINE = 1
    """The same cell of neighbouring rows."""
    BLOCK = 2
    """A near-square block filled row by row (2 x 2 for 4 cells, 3 x 3 for 9)."""


class FaultTiming(enum.IntEnum):
    """When a TC[148,1] fault record acts (u8)."""

    NOW = 0
    NEXT_JOB = 1


class JobPhase(enum.IntEnum):
    """Job state of a NEXT_JOB fault record (u8), as docs/REGISTERS.md names them."""

    BIAS = 1
    STREAM = 2
    WRITE = 3
    FLUSH = 4


class ResetCause(enum.IntEnum):
    """Why the flight software last booted (u8)."""

    POWER_ON = 0
    COMMAND = 1
    WATCHDOG = 2


class JobStatus(enum.IntEnum):
    """Outcome of the last job (u8, housekeeping)."""

    NONE = 0
    COMPLETED = 1
    FAILED = 2
    ABORTED = 3
    TIMEOUT = 4


class AccelState(enum.IntEnum):
    """The accelerator as the flight software sees it (u8, housekeeping)."""

    IDLE = 0
    RUNNING = 1
    HUNG = 2


class ParamType(enum.Enum):
    """Wire type of a parameter value: its struct format."""

    U8 = "B"
    U16 = "H"
    U32 = "I"
    I16 = "h"

    @property
    def size(self) -> int:
        return struct.calcsize("!" + self.value)

    @property
    def bounds(self) -> tuple[int, int]:
        bits = 8 * self.size
        if self is ParamType.I16:
            return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return 0, (1 << bits) - 1


REJECT_REASON_CODES: Final[dict[str, int]] = {
    "bad_cobs": 1,
    "too_long": 2,
    "too_short": 3,
    "bad_length": 4,
    "bad_crc": 5,
    "bad_header": 6,
    "unknown_apid": 7,
}
"""u8 code of each ``RejectReason`` (by value) in event LINK_PACKET_REJECTED."""


def bad_app_data(offset: int, what: str) -> PacketError:
    """BAD_APP_DATA naming the first bad octet of the application data."""
    return PacketError(
        f"application data octet {offset}: {what}",
        code=FailureCode.BAD_APP_DATA,
        data=struct.pack("!H", min(offset, 0xFFFF)),
    )


def out_of_range(offset: int, what: str) -> PacketError:
    """VALUE_OUT_OF_RANGE naming the field's offset in the application data."""
    return PacketError(
        f"application data octet {offset}: {what}",
        code=FailureCode.VALUE_OUT_OF_RANGE,
        data=struct.pack("!H", min(offset, 0xFFFF)),
    )


def refuse(code: FailureCode, what: str, data: bytes = b"") -> PacketError:
    """Any other refusal with its ICD failure data."""
    return PacketError(what, code=code, data=data)


class Reader:
    """A cursor over application data; every short read is BAD_APP_DATA at its offset."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, fmt: str, what: str) -> int:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise bad_app_data(
                len(self.data), f"{what} needs {size} octets at {self.pos}, the data ends"
            )
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def u8(self, what: str) -> int:
        return self._take("!B", what)

    def u16(self, what: str) -> int:
        return self._take("!H", what)

    def u32(self, what: str) -> int:
        return self._take("!I", what)

    def value(self, kind: ParamType, what: str) -> int:
        return self._take("!" + kind.value, what)

    def raw(self, count: int, what: str) -> bytes:
        if self.pos + count > len(self.data):
            raise bad_app_data(
                len(self.data), f"{what} needs {count} octets at {self.pos}, the data ends"
            )
        out = self.data[self.pos : self.pos + count]
        self.pos += count
        return out

    def count(self, what: str, lo: int = 1, hi: int = MAX_LIST_COUNT) -> int:
        """A u8 list count in ``lo .. hi`` (VALUE_OUT_OF_RANGE otherwise)."""
        at = self.pos
        n = self.u8(what)
        if not lo <= n <= hi:
            raise out_of_range(at, f"{what} {n} outside {lo}..{hi}")
        return n

    def end(self) -> None:
        """The data must end here."""
        if self.pos != len(self.data):
            raise bad_app_data(
                self.pos, f"{len(self.data) - self.pos} octets past the end of the request"
            )


# --- Layouts of section 15 for reading telemetry ------------------------------------------
# The flight software keeps its own tables (with where each value comes from);
# tests/host/test_target.py checks these against them (and test_fw_icd.py those against the ICD).


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a report: name, struct format character ("" = the rest), ICD unit."""

    name: str
    fmt: str
    unit: str = "-"


def int_range(fmt: str) -> tuple[int, int]:
    """Smallest and largest value of the integer struct format ``fmt`` (lower case: signed)."""
    bits = 8 * struct.calcsize("!" + fmt)
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if fmt.islower() else (0, (1 << bits) - 1)


def saturate(value: float, fmt: str) -> int:
    """``value`` as the integer type ``fmt``, rounded and saturated rather than wrapped."""
    lo, hi = int_range(fmt)
    return max(lo, min(hi, round(value)))


def _fields(spec: str) -> tuple[FieldSpec, ...]:
    """``"uptime I s; mode B Mode"`` -> field specs (the unit may contain spaces)."""
    out = []
    for item in spec.split(";"):
        name, fmt, *unit = item.split()
        out.append(FieldSpec(name, "" if fmt == "*" else fmt, " ".join(unit) or "-"))
    return tuple(out)


HK_FIELDS: Final[dict[HkStructure, tuple[FieldSpec, ...]]] = {
    HkStructure.SYSTEM: _fields(
        "uptime I s; mode B Mode; boot_count I; reset_cause B ResetCause; watchdog_resets I;"
        "safe_mode_entries H; anomalies B; tc_received I; tc_accepted I; tc_refused I;"
        "tc_duplicates I; auth_failures I; frames_rejected I; tm_sent I; events_raised I;"
        "jobs_pending B; jobs_deferred B bool; jobs_completed I; jobs_failed I; jobs_aborted I"
    ),
    HkStructure.ENVIRONMENT: _fields(
        "env_time I s; orbit I; orbit_phase H 1e-4 orbit; eclipse B bool; solar_power H mW;"
        "load_power H mW; battery_soc H 0.1 %; battery_voltage H mV; board_temp h 0.01 degC;"
        "chip_temp h 0.01 degC; accel_power H mW; accel_current H mA; accel_energy I mJ;"
        "accel_static_energy I mJ; in_saa B bool; upsets_spm I; upsets_flipflop I;"
        "upsets_fw_ram I; upsets_not_landed I"
    ),
    HkStructure.ACCELERATOR: _fields(
        "array_n B; spm_words H words; accel_state B AccelState; ecc_corrected I words;"
        "ecc_uncorrectable I words; tmr_mismatches I cycles; scrub_passes I;"
        "scrub_period H cycles; accel_resets I; latchups H; ram_errors I; results_held B;"
        "last_job_id H; last_job_status B JobStatus; last_job_err_code B;"
        "last_job_cycles I cycles; last_job_macs I; last_job_crc I; faults_not_injected I;"
        "last_job_faults H; last_job_not_injected H; last_job_energy I nJ"
    ),
}
"""Fields of each TM[3,25] after the SID, in order (ICD 15.3)."""


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """Wire type, unit and allowed range of a parameter (ICD 15.7)."""

    type: ParamType
    unit: str
    lo: int
    hi: int


PARAM_SPECS: Final[dict[ParamId, ParamSpec]] = {
    ParamId.HK_INTERVAL_SYSTEM: ParamSpec(ParamType.U32, "ms", 100, 3_600_000),
    ParamId.HK_INTERVAL_ENVIRONMENT: ParamSpec(ParamType.U32, "ms", 100, 3_600_000),
    ParamId.HK_INTERVAL_ACCELERATOR: ParamSpec(ParamType.U32, "ms", 100, 3_600_000),
    ParamId.SCRUB_PERIOD: ParamSpec(ParamType.U16, "cycles", 0, 0xFFFF),
    ParamId.JOB_TIMEOUT: ParamSpec(ParamType.U32, "ms", 10, 600_000),
    ParamId.WATCHDOG_TIMEOUT: ParamSpec(ParamType.U32, "ms", 500, 60_000),
    ParamId.JOB_QUEUE_LIMIT: ParamSpec(ParamType.U8, "jobs", 1, 16),
    ParamId.SAFE_MODE_THRESHOLD: ParamSpec(ParamType.U8, "anomalies", 1, 255),
    ParamId.SAFE_MODE_WINDOW: ParamSpec(ParamType.U16, "s", 1, 65_535),
    ParamId.ECLIPSE_DEFER_SOC: ParamSpec(ParamType.U16, "0.1 %", 0, 1000),
    ParamId.POWER_LOW_SOC: ParamSpec(ParamType.U16, "0.1 %", 0, 1000),
    ParamId.LATCHUP_CURRENT_LIMIT: ParamSpec(ParamType.U16, "mA", 10, 10_000),
    ParamId.TEMP_LOW_LIMIT: ParamSpec(ParamType.I16, "0.01 degC", -10_000, 15_000),
    ParamId.TEMP_HIGH_LIMIT: ParamSpec(ParamType.I16, "0.01 degC", -10_000, 15_000),
    ParamId.EVENT_RATE_LIMIT: ParamSpec(ParamType.U32, "ms", 0, 3_600_000),
}
"""Type, unit and range of every parameter."""

EVENT_FIELDS: Final[dict[EventId, tuple[FieldSpec, ...]]] = {
    EventId.BOOT: _fields("boot_count I; reset_cause B ResetCause; mode B Mode"),
    EventId.MODE_CHANGED: _fields("from_mode B Mode; to_mode B Mode; autonomous B bool"),
    EventId.SAFE_MODE_ENTERED: _fields("anomalies B; window_s H s; last_event H EventId"),
    EventId.WATCHDOG_RESET: _fields("watchdog_resets I"),
    EventId.LINK_PACKET_REJECTED: _fields("reason B; since I; total I"),
    EventId.AUTH_FAILURE: _fields("request_id I; failure_code H FailureCode; key_id H"),
    EventId.KEY_CHANGED: _fields("key_id H; generation I"),
    EventId.TM_OVERFLOW: _fields("since I; total I"),
    EventId.SEQUENCE_GAP: _fields("first H; missing H; held B"),
    EventId.JOB_STARTED: _fields("job_id H; function H FunctionId; m H; k H; n H"),
    EventId.JOB_COMPLETED: _fields(
        "job_id H; cycles I cycles; macs I; result_crc I; faults H; not_injected H"
    ),
    EventId.JOB_FAILED: _fields(
        "job_id H; failure_code H FailureCode; err_code B; faults H; not_injected H"
    ),
    EventId.EDAC_CORRECTED: _fields("memory B MemoryId; since I; total I"),
    EventId.EDAC_UNCORRECTABLE: _fields("memory B MemoryId; address I; total I"),
    EventId.SCRUB_PASS_DONE: _fields("passes I; commanded B bool"),
    EventId.TMR_MISMATCH: _fields("since I; total I"),
    EventId.SEFI_DETECTED: _fields("job_id H; accel_resets I"),
    EventId.LATCHUP_DETECTED: _fields("current_ma H mA; latchups H"),
    EventId.POWER_LOW: _fields("soc H 0.1 %; threshold H 0.1 %"),
    EventId.THERMAL_LIMIT: _fields(
        "board_temp h 0.01 degC; chip_temp h 0.01 degC; low h 0.01 degC; high h 0.01 degC"
    ),
    EventId.ECLIPSE_ENTRY: _fields("orbit I; soc H 0.1 %"),
    EventId.ECLIPSE_EXIT: _fields("orbit I; soc H 0.1 %"),
    EventId.FAULT_INJECTED: _fields(
        "kind B FaultKind; site B FaultSiteClass; width B; timing B FaultTiming"
    ),
    EventId.FAULTS_CLEARED: _fields("cleared H"),
    EventId.FAULT_NOT_INJECTED: _fields(
        "job_id H; reason B NotInjectedReason; count H; scheduled H"
    ),
    EventId.PARAMETER_CHANGED: _fields("parameter H ParamId; value *"),
}
"""Auxiliary data of each event after its id (ICD 15.4); PARAMETER_CHANGED's value has the
parameter's type."""

SITE_FIELDS: Final[dict[FaultSiteClass, tuple[FieldSpec, ...]]] = {
    FaultSiteClass.SPM_CELL: _fields("bank B; row H; cell H"),
    FaultSiteClass.SPM_WORD: _fields("word H; bit B"),
    FaultSiteClass.SPM_CLUSTER: _fields("bank B; row H; cell H; shape B"),
    FaultSiteClass.ACC_BIT: _fields("i B; j B; bit B"),
    FaultSiteClass.REG_COPY: _fields("register B; copy B; bit B"),
    FaultSiteClass.FW_RAM: _fields("address I; bit B"),
    FaultSiteClass.FW_RAM_CLUSTER: _fields("address I; bit B; shape B"),
    FaultSiteClass.ACCEL: (),
    FaultSiteClass.FSW: (),
    FaultSiteClass.OUT_BIT: _fields("i B; j B; bit B"),
    FaultSiteClass.SITE: _fields("name p; bit H"),
}
"""Site fields of a fault record, by site class (ICD 15.8); format ``p`` is a name: length
u8 (1..255), then that many ASCII octets."""
MAX_SITE_NAME: Final[int] = 255
"""Longest site name of a ``SITE`` record, in octets."""


# --- Builders of TC application data (ICD section 15) ---------------------------------------


def _u8_count(items: Sequence[object], what: str, hi: int = MAX_LIST_COUNT) -> bytes:
    if not 1 <= len(items) <= hi:
        raise ValueError(f"{what}: 1..{hi} entries in one TC, got {len(items)}")
    return struct.pack("!B", len(items))


def hk_structures(sids: Sequence[int]) -> bytes:
    """TC[3,5], [3,6] and [3,27]: count u8, count x SID u16."""
    return _u8_count(sids, "housekeeping structures") + b"".join(
        struct.pack("!H", s) for s in sids
    )


def hk_intervals(intervals: Sequence[tuple[int, int]]) -> bytes:
    """TC[3,31]: count u8, count x (SID u16, interval u32 ms)."""
    return _u8_count(intervals, "housekeeping intervals") + b"".join(
        struct.pack("!HI", sid, ms) for sid, ms in intervals
    )


def event_selection(selector: EventSelector, event_ids: Sequence[int] = ()) -> bytes:
    """TC[5,5] and [5,6]: selector u8, then for LISTED: count u8, count x event id u16."""
    if selector != EventSelector.LISTED:
        if event_ids:
            raise ValueError(f"event ids are listed only with selector LISTED, not {selector!r}")
        return struct.pack("!B", selector)
    return (
        struct.pack("!B", selector)
        + _u8_count(event_ids, "event ids")
        + b"".join(struct.pack("!H", e) for e in event_ids)
    )


def outcome_query(request_ids: Sequence[RequestId]) -> bytes:
    """TC[149,1]: count u8, count x request id (4 octets, as in service 1 reports)."""
    return _u8_count(request_ids, "request ids") + b"".join(r.pack() for r in request_ids)


def key_derivation(key_id: int, generation: int) -> bytes:
    """TC[150,1] (before its auth trailer): key id u16, generation u32."""
    return struct.pack("!HI", key_id, generation)


def memory_load(memory: int, address: int, data: bytes) -> bytes:
    """TC[6,2] (before its auth trailer): memory u8, address u32, length u16, data."""
    return struct.pack("!BIH", memory, address, len(data)) + bytes(data)


def memory_dump(memory: int, address: int, length: int) -> bytes:
    """TC[6,5]: memory u8, address u32, length u16 (1..MAX_DUMP_LEN)."""
    return struct.pack("!BIH", memory, address, length)


def memory_check(memory: int, address: int, length: int) -> bytes:
    """TC[6,9]: memory u8, address u32, length u32."""
    return struct.pack("!BII", memory, address, length)


def function(function_id: int, args: bytes = b"") -> bytes:
    """TC[8,1] (before any auth trailer): function id u16, then its arguments."""
    return struct.pack("!H", function_id) + bytes(args)


JOB_HEADER_LEN: Final[int] = 23
"""Octets of a RUN_GEMM TC[8,1] before its inline operands; RUN_LAYER has 6 more."""
LAYER_HEADER_LEN: Final[int] = JOB_HEADER_LEN + 6


def job(
    function_id: int,
    job_id: int,
    source: OperandSource,
    m: int,
    k: int,
    n: int,
    *,
    a: int = 0,
    b: int = 0,
    c: int = 0,
    bias: int = 0,
    flags: LayerFlags | int = LayerFlags.NONE,
    shift: int = 0,
    inline: bytes = b"",
) -> bytes:
    """TC[8,1] RUN_GEMM / RUN_LAYER application data (ICD 15.6); the layer fields only for
    RUN_LAYER (function id 2)."""
    out = struct.pack("!HHBHHHIII", function_id, job_id, source, m, k, n, a, b, c)
    if function_id == 2:
        out += struct.pack("!IBB", bias, flags, shift)
    return out + bytes(inline)


def parameter_ids(ids: Sequence[int]) -> bytes:
    """TC[20,1]: count u8, count x parameter id u16."""
    return _u8_count(ids, "parameter ids") + b"".join(struct.pack("!H", p) for p in ids)


def parameter_value(pid: ParamId, value: int) -> bytes:
    """One (id u16, value in the parameter's type), as TC[20,3], TM[20,2] and the event
    PARAMETER_CHANGED carry it."""
    kind = PARAM_SPECS[ParamId(pid)].type
    lo, hi = kind.bounds
    if not lo <= value <= hi:
        raise ValueError(f"{ParamId(pid).name} is a {kind.name}: {value} does not fit")
    return struct.pack("!H" + kind.value, pid, value)


def parameter_values(values: Sequence[tuple[ParamId, int]]) -> bytes:
    """TC[20,3] (before its auth trailer) and TM[20,2]: count u8, count x (id u16, value
    in its type)."""
    return _u8_count(values, "parameter values") + b"".join(
        parameter_value(pid, value) for pid, value in values
    )


K, S = FaultKind, FaultSiteClass
_SPM = frozenset({S.SPM_CELL, S.SPM_WORD})
FAULT_SITES: Final[dict[FaultKind, frozenset[FaultSiteClass]]] = {
    K.SBU: _SPM | {S.ACC_BIT, S.OUT_BIT, S.REG_COPY, S.FW_RAM, S.SITE},
    K.MBU: _SPM | {S.FW_RAM, S.SPM_CLUSTER, S.FW_RAM_CLUSTER},
    K.SET: frozenset({S.ACC_BIT, S.OUT_BIT, S.REG_COPY, S.SITE}),
    K.STUCK_AT_0: _SPM | {S.FW_RAM, S.ACC_BIT, S.OUT_BIT, S.REG_COPY, S.SITE},
    K.STUCK_AT_1: _SPM | {S.FW_RAM, S.ACC_BIT, S.OUT_BIT, S.REG_COPY, S.SITE},
    K.SEFI: frozenset({S.ACCEL, S.FSW}),
    K.SEL: frozenset({S.ACCEL}),
}
"""Which site classes each kind of fault can hit (ICD 15.8)."""
FAULT_WIDTHS: Final[dict[FaultKind, tuple[int, int]]] = {
    K.SBU: (1, 1),
    K.MBU: (2, 8),
    K.SET: (1, 1),
    K.STUCK_AT_0: (1, 8),
    K.STUCK_AT_1: (1, 8),
    K.SEFI: (0, 0),
    K.SEL: (0, 0),
}
"""Allowed width (adjacent cells or consecutive bits hit) of each kind (ICD 15.8)."""
ONE_BIT_SITES: Final[frozenset[FaultSiteClass]] = frozenset(
    {S.ACC_BIT, S.OUT_BIT, S.REG_COPY, S.SITE}
)
"""Site classes that name one bit: any fault of them has width 1 at most (ICD 15.8)."""
SITE_FIELD_RANGES: Final[dict[FaultSiteClass, dict[str, tuple[int, int]]]] = {
    S.SPM_CLUSTER: {"shape": (min(ClusterShape), max(ClusterShape))},
    S.FW_RAM_CLUSTER: {"bit": (0, 7), "shape": (min(ClusterShape), max(ClusterShape))},
}
"""Site fields whose range the ICD fixes, whatever the build (15.8): outside it a record
is VALUE_OUT_OF_RANGE at that field."""
NEXT_JOB_KINDS: Final[frozenset[FaultKind]] = frozenset({K.SBU, K.MBU, K.SET, K.SEFI})
NEXT_JOB_SITES: Final[frozenset[FaultSiteClass]] = _SPM | {
    S.SPM_CLUSTER, S.ACC_BIT, S.OUT_BIT, S.REG_COPY, S.ACCEL, S.SITE
}
"""Kinds and site classes that may wait for a point of the next job (timing NEXT_JOB)."""
POINT_OFFSETS: Final[dict[str, int]] = {"tile": 4, "phase": 6, "cycle": 7}
"""Offset of each job point field from the start of its fault record."""


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One fault of TC[148,1] / TM[148,4] (ICD 15.8); ``point`` is (tile, JobPhase, cycle),
    sent with timing NEXT_JOB only; ``site`` holds the site fields in the ICD's order (a
    ``SITE`` record's name as a str)."""

    kind: int
    site_class: FaultSiteClass
    width: int
    site: tuple[int | str, ...] = ()
    timing: FaultTiming = FaultTiming.NOW
    point: tuple[int, int, int] = (0, 0, 0)

    def pack(self) -> bytes:
        out = struct.pack("!BBBB", self.kind, self.site_class, self.width, self.timing)
        if self.timing == FaultTiming.NEXT_JOB:
            out += struct.pack("!HBH", *self.point)
        for spec, value in zip(SITE_FIELDS[FaultSiteClass(self.site_class)], self.site,
                               strict=True):  # fmt: skip
            if spec.fmt == "p":
                name = str(value).encode("ascii")
                if not 1 <= len(name) <= MAX_SITE_NAME:
                    raise ValueError(f"site name of {len(name)} octets: 1..{MAX_SITE_NAME}")
                out += bytes([len(name)]) + name
            else:
                out += struct.pack("!" + spec.fmt, value)
        return out

    @classmethod
    def read(cls, r: Reader) -> FaultRecord:
        """One record from a TM[148,4]; a kind from a newer peer stays a number."""
        return cls._read(r, strict=False)

    @classmethod
    def parse(cls, r: Reader) -> FaultRecord:
        """One record of a TC[148,1], checked against the rules of ICD 15.8 (kind, site
        class, width, timing, phase); a refusal names the offending field's offset."""
        return cls._read(r, strict=True)

    @classmethod
    def _read(cls, r: Reader, strict: bool) -> FaultRecord:
        start = r.pos
        raw_kind, raw_site, width, raw_timing = (
            r.u8(w) for w in ("fault kind", "site class", "width", "timing")
        )
        if strict and raw_kind not in FaultKind._value2member_map_:
            raise out_of_range(start, f"fault kind {raw_kind} is not defined")
        if raw_site not in FaultSiteClass._value2member_map_:
            raise out_of_range(start + 1, f"site class {raw_site} is not defined")
        if raw_timing not in FaultTiming._value2member_map_:
            raise out_of_range(start + 3, f"timing {raw_timing} is not defined")
        site_class, timing = FaultSiteClass(raw_site), FaultTiming(raw_timing)
        if strict:
            kind = FaultKind(raw_kind)
            if site_class not in FAULT_SITES[kind]:
                raise out_of_range(
                    start + 1, f"a {kind.name} cannot hit site class {site_class.name}"
                )
            lo, hi = FAULT_WIDTHS[kind]
            if not lo <= width <= hi:
                raise out_of_range(start + 2, f"{kind.name} width {width} is outside {lo}..{hi}")
            if site_class in ONE_BIT_SITES and width > 1:
                raise out_of_range(
                    start + 2, f"{kind.name} width {width} at {site_class.name}: one bit, width 1"
                )
            if timing == FaultTiming.NEXT_JOB and (
                kind not in NEXT_JOB_KINDS or site_class not in NEXT_JOB_SITES
            ):
                raise out_of_range(
                    start + 3, f"a {kind.name} at {site_class.name} cannot wait for a job"
                )
        point = (0, 0, 0)
        if timing == FaultTiming.NEXT_JOB:
            point = (r.u16("tile"), r.u8("phase"), r.u16("cycle"))
            # A SEFI hangs the sequencer at START: its point fields are ignored.
            sefi = raw_kind == FaultKind.SEFI
            if strict and not sefi and point[1] not in JobPhase._value2member_map_:
                at = start + POINT_OFFSETS["phase"]
                raise out_of_range(at, f"job phase {point[1]} is not 1..4")
        site = tuple(_site_field(r, f) for f in SITE_FIELDS[site_class])
        rec = cls(raw_kind, site_class, width, site, timing, point)
        if strict:
            names = [f.name for f in SITE_FIELDS[site_class]]
            for name, (lo, hi) in SITE_FIELD_RANGES.get(site_class, {}).items():
                value = int(site[names.index(name)])
                if not lo <= value <= hi:
                    what = f"{site_class.name} {name} {value} is outside {lo}..{hi}"
                    raise out_of_range(start + rec.field_offset(name), what)
        return rec

    def site_offset(self) -> int:
        """Offset of the site fields from the start of this record."""
        return 4 + 5 * (self.timing == FaultTiming.NEXT_JOB)

    def field_offset(self, name: str) -> int:
        """Offset of site field ``name`` from the start of this record."""
        at = self.site_offset()
        for spec, value in zip(SITE_FIELDS[self.site_class], self.site, strict=True):
            if spec.name == name:
                return at
            at += 1 + len(str(value)) if spec.fmt == "p" else struct.calcsize("!" + spec.fmt)
        raise KeyError(f"{self.site_class.name} has no site field {name!r}")


def _site_field(r: Reader, spec: FieldSpec) -> int | str:
    """One site field; a name (format ``p``) must be 1..255 printable ASCII octets."""
    if spec.fmt != "p":
        return r.value(ParamType(spec.fmt), spec.name)
    at = r.pos
    raw = r.raw(r.u8(f"{spec.name} length"), spec.name)
    if not raw or not all(0x21 <= c <= 0x7E for c in raw):
        raise out_of_range(at, f"site {spec.name} must be 1..{MAX_SITE_NAME} printable ASCII "
                           f"octets, got {raw!r}")  # fmt: skip
    return raw.decode("ascii")


def fault_refusal(offset: int, record: int) -> bytes:
    """Failure data of FAULT_SITE_ABSENT, FAULT_NOT_PREDICTABLE and FAULT_POINT_UNREACHABLE:
    offset u16 of the field in the application data, record index u8 (from 0)."""
    return struct.pack("!HB", min(offset, 0xFFFF), min(record, 0xFF))


def read_fault_refusal(data: bytes) -> tuple[int, int]:
    """(offset of the field, index of the record) from such a refusal's failure data."""
    r = Reader(data)
    out = r.u16("offset"), r.u8("record")
    r.end()
    return out


def fault_list(active: int, records: Sequence[FaultRecord]) -> bytes:
    """TM[148,4]: active faults u16 (saturated), count u8, count x fault record."""
    return struct.pack("!HB", min(active, 0xFFFF), len(records)) + b"".join(
        r.pack() for r in records
    )


def fault_records(records: Sequence[FaultRecord]) -> bytes:
    """TC[148,1] (before its auth trailer): count u8 (1..32), count x fault record."""
    return _u8_count(records, "fault records", MAX_FAULT_RECORDS) + b"".join(
        r.pack() for r in records
    )


# --- Readers of TM source data ----------------------------------------------------------------


def read_fields(r: Reader, fields: Sequence[FieldSpec]) -> dict[str, int | bytes]:
    """The fields in order; a variable field ("") takes the rest of the data."""
    out: dict[str, int | bytes] = {}
    for f in fields:
        if f.fmt == "":
            out[f.name] = r.raw(len(r.data) - r.pos, f.name)
        else:
            out[f.name] = r._take("!" + f.fmt, f.name)
    return out


_DUMP_HEAD: Final[str] = "!BIHH"
_CHECK: Final[str] = "!BIIHH"


@dataclass(frozen=True, slots=True)
class DumpReport:
    """TM[6,6]: what was read, and how many scratchpad words were uncorrectable."""

    memory: int
    address: int
    length: int
    uncorrectable: int
    data: bytes

    def pack(self) -> bytes:
        """The source data (``uncorrectable`` saturated to its u16)."""
        head = (self.memory, self.address, self.length, min(self.uncorrectable, 0xFFFF))
        return struct.pack(_DUMP_HEAD, *head) + self.data

    @classmethod
    def unpack(cls, source_data: bytes) -> DumpReport:
        r = Reader(source_data)
        names = ("memory", "address", "length", "uncorrectable")
        memory, address, length, uncorrectable = (
            r._take("!" + fmt, what) for fmt, what in zip(_DUMP_HEAD[1:], names, strict=True)
        )
        data = r.raw(length, "data")
        r.end()
        return cls(memory, address, length, uncorrectable, data)


@dataclass(frozen=True, slots=True)
class CheckReport:
    """TM[6,10]: the CRC-16/CCITT-FALSE of the range as read, and uncorrectable words."""

    memory: int
    address: int
    length: int
    checksum: int
    uncorrectable: int

    def pack(self) -> bytes:
        """The source data (``uncorrectable`` saturated to its u16)."""
        return struct.pack(_CHECK, self.memory, self.address, self.length, self.checksum,
                           min(self.uncorrectable, 0xFFFF))  # fmt: skip

    @classmethod
    def unpack(cls, source_data: bytes) -> CheckReport:
        r = Reader(source_data)
        names = ("memory", "address", "length", "checksum", "uncorrectable")
        out = cls(*(r._take("!" + fmt, what) for fmt, what in zip(_CHECK[1:], names, strict=True)))
        r.end()
        return out


def read_parameter_values(source_data: bytes) -> dict[ParamId | int, int]:
    """TM[20,2]: parameter id -> value."""
    r = Reader(source_data)
    out: dict[ParamId | int, int] = {}
    for _ in range(r.u8("count")):
        raw = r.u16("parameter id")
        try:
            pid = ParamId(raw)
        except ValueError:
            raise refuse(FailureCode.UNKNOWN_PARAMETER, f"parameter {raw:#06x}") from None
        out[pid] = r.value(PARAM_SPECS[pid].type, pid.name)
    r.end()
    return out


def read_fault_list(source_data: bytes) -> tuple[int, list[FaultRecord]]:
    """TM[148,4]: (active faults, the records listed)."""
    r = Reader(source_data)
    active, count = r.u16("active faults"), r.u8("count")
    records = [FaultRecord.read(r) for _ in range(count)]
    r.end()
    return active, records


@dataclass(frozen=True, slots=True)
class Outcome:
    """One entry of TM[149,2]: how far a request got. ``stage`` is the service 1 subtype of
    the last stage it reached (1 accepted, 2 refused at acceptance, 3 started, 4 failed to
    start, 5 in progress, 6 failed in progress, 7 completed, 8 failed at completion), or
    0 when the target does not remember the request; ``code`` and ``data`` are the
    failure's (0 and empty without one)."""

    request_id: RequestId
    stage: int
    code: int = 0
    data: bytes = b""

    @property
    def known(self) -> bool:
        return self.stage != 0

    @property
    def ended(self) -> bool:
        """Completed or failed: nothing more will happen to it."""
        return self.stage in (2, 4, 6, 7, 8) or self.code != 0

    def pack(self) -> bytes:
        return (
            self.request_id.pack()
            + struct.pack("!BHB", self.stage, self.code, len(self.data))
            + self.data
        )

    @classmethod
    def read(cls, r: Reader) -> Outcome:
        rid = RequestId(r.u16("packet id"), r.u16("packet sequence control"))
        stage, code, length = r.u8("stage"), r.u16("failure code"), r.u8("failure data length")
        return cls(rid, stage, code, r.raw(length, "failure data"))


def read_outcome_query(data: bytes) -> list[RequestId]:
    """TC[149,1] application data: the request ids asked about."""
    r = Reader(data)
    count = r.count("count")
    ids = [RequestId(r.u16("packet id"), r.u16("packet sequence control")) for _ in range(count)]
    r.end()
    return ids


def pack_outcomes(outcomes: Sequence[Outcome]) -> bytes:
    """TM[149,2] source data: count u8, then each ``Outcome``."""
    return struct.pack("!B", len(outcomes)) + b"".join(o.pack() for o in outcomes)


def read_outcomes(source_data: bytes) -> list[Outcome]:
    """TM[149,2]: the outcomes reported, in the order asked."""
    r = Reader(source_data)
    outcomes = [Outcome.read(r) for _ in range(r.u8("count"))]
    r.end()
    return outcomes


@dataclass(frozen=True, slots=True)
class GapReport:
    """TM[149,4] (ICD 6.1): TCs wait for ``missing``; the one with count ``arrived`` has
    just arrived ahead of it (or again), and ``waiting`` TCs wait in all."""

    missing: int
    arrived: int
    waiting: int

    def pack(self) -> bytes:
        return struct.pack("!HHB", self.missing, self.arrived, min(self.waiting, 0xFF))

    @classmethod
    def unpack(cls, source_data: bytes) -> GapReport:
        r = Reader(source_data)
        report = cls(r.u16("missing"), r.u16("arrived"), r.u8("waiting"))
        r.end()
        return report
