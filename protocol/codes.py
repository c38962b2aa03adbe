"""Every code on the link, defined once: services, subtypes, failures, events, modes, ids.

docs/ICD.md is the contract; a value that is not in it does not exist. tests check that
each name here appears in the ICD.
"""

from __future__ import annotations

import enum


class Service(enum.IntEnum):
    """PUS service type (octet in the TC and TM secondary headers)."""

    REQUEST_VERIFICATION = 1
    HOUSEKEEPING = 3
    EVENT_REPORTING = 5
    MEMORY_MANAGEMENT = 6
    FUNCTION_MANAGEMENT = 8
    TEST = 17
    PARAMETER_MANAGEMENT = 20
    # 128..255 are mission-specific in PUS-C.
    FAULT_INJECTION = 148
    REQUEST_OUTCOME = 149
    KEY_MANAGEMENT = 150


class VerificationSubtype(enum.IntEnum):
    """Service 1 reports (all TM)."""

    ACCEPTANCE_SUCCESS = 1
    ACCEPTANCE_FAILURE = 2
    START_SUCCESS = 3
    START_FAILURE = 4
    PROGRESS_SUCCESS = 5
    PROGRESS_FAILURE = 6
    COMPLETION_SUCCESS = 7
    COMPLETION_FAILURE = 8


class HousekeepingSubtype(enum.IntEnum):
    """Service 3 messages."""

    ENABLE_PERIODIC = 5
    DISABLE_PERIODIC = 6
    HK_REPORT = 25
    ONE_SHOT = 27
    MODIFY_INTERVAL = 31


class EventSubtype(enum.IntEnum):
    """Service 5 messages; reports 1..4 carry the event's severity."""

    INFO_REPORT = 1
    LOW_SEVERITY_REPORT = 2
    MEDIUM_SEVERITY_REPORT = 3
    HIGH_SEVERITY_REPORT = 4
    ENABLE_REPORTS = 5
    DISABLE_REPORTS = 6


class MemorySubtype(enum.IntEnum):
    """Service 6 messages."""

    LOAD = 2
    DUMP = 5
    DUMP_REPORT = 6
    CHECK = 9
    CHECK_REPORT = 10


class FunctionSubtype(enum.IntEnum):
    """Service 8 messages."""

    PERFORM = 1


class TestSubtype(enum.IntEnum):
    """Service 17 messages."""

    PING = 1
    PING_REPORT = 2


class ParameterSubtype(enum.IntEnum):
    """Service 20 messages."""

    REPORT_VALUES = 1
    VALUES_REPORT = 2
    SET_VALUES = 3


class FaultInjectionSubtype(enum.IntEnum):
    """Service 148 messages (private; answered only in TEST mode)."""

    INJECT = 1
    CLEAR_ALL = 2
    LIST = 3
    LIST_REPORT = 4


class OutcomeSubtype(enum.IntEnum):
    """Service 149 messages (private): what became of earlier requests, and the sequence
    count from which requests run in order."""

    REPORT_OUTCOMES = 1
    OUTCOME_REPORT = 2
    START_SEQUENCE = 3
    GAP_REPORT = 4


class KeySubtype(enum.IntEnum):
    """Service 150 messages (private): keys derived on board from the master key."""

    DERIVE_KEY = 1


SUBTYPES: dict[Service, type[enum.IntEnum]] = {
    Service.REQUEST_VERIFICATION: VerificationSubtype,
    Service.HOUSEKEEPING: HousekeepingSubtype,
    Service.EVENT_REPORTING: EventSubtype,
    Service.MEMORY_MANAGEMENT: MemorySubtype,
    Service.FUNCTION_MANAGEMENT: FunctionSubtype,
    Service.TEST: TestSubtype,
    Service.PARAMETER_MANAGEMENT: ParameterSubtype,
    Service.FAULT_INJECTION: FaultInjectionSubtype,
    Service.REQUEST_OUTCOME: OutcomeSubtype,
    Service.KEY_MANAGEMENT: KeySubtype,
}
"""The subtype enum of each service."""

TC_TYPES: frozenset[tuple[int, int]] = frozenset(
    {
        (Service.HOUSEKEEPING, HousekeepingSubtype.ENABLE_PERIODIC),
        (Service.HOUSEKEEPING, HousekeepingSubtype.DISABLE_PERIODIC),
        (Service.HOUSEKEEPING, HousekeepingSubtype.ONE_SHOT),
        (Service.HOUSEKEEPING, HousekeepingSubtype.MODIFY_INTERVAL),
        (Service.EVENT_REPORTING, EventSubtype.ENABLE_REPORTS),
        (Service.EVENT_REPORTING, EventSubtype.DISABLE_REPORTS),
        (Service.MEMORY_MANAGEMENT, MemorySubtype.LOAD),
        (Service.MEMORY_MANAGEMENT, MemorySubtype.DUMP),
        (Service.MEMORY_MANAGEMENT, MemorySubtype.CHECK),
        (Service.FUNCTION_MANAGEMENT, FunctionSubtype.PERFORM),
        (Service.TEST, TestSubtype.PING),
        (Service.PARAMETER_MANAGEMENT, ParameterSubtype.REPORT_VALUES),
        (Service.PARAMETER_MANAGEMENT, ParameterSubtype.SET_VALUES),
        (Service.FAULT_INJECTION, FaultInjectionSubtype.INJECT),
        (Service.FAULT_INJECTION, FaultInjectionSubtype.CLEAR_ALL),
        (Service.FAULT_INJECTION, FaultInjectionSubtype.LIST),
        (Service.REQUEST_OUTCOME, OutcomeSubtype.REPORT_OUTCOMES),
        (Service.REQUEST_OUTCOME, OutcomeSubtype.START_SEQUENCE),
        (Service.KEY_MANAGEMENT, KeySubtype.DERIVE_KEY),
    }
)
"""(service, subtype) pairs the flight software accepts as telecommands."""

TM_TYPES: frozenset[tuple[int, int]] = frozenset(
    {(Service.REQUEST_VERIFICATION, int(s)) for s in VerificationSubtype}
    | {
        (Service.HOUSEKEEPING, HousekeepingSubtype.HK_REPORT),
        (Service.EVENT_REPORTING, EventSubtype.INFO_REPORT),
        (Service.EVENT_REPORTING, EventSubtype.LOW_SEVERITY_REPORT),
        (Service.EVENT_REPORTING, EventSubtype.MEDIUM_SEVERITY_REPORT),
        (Service.EVENT_REPORTING, EventSubtype.HIGH_SEVERITY_REPORT),
        (Service.MEMORY_MANAGEMENT, MemorySubtype.DUMP_REPORT),
        (Service.MEMORY_MANAGEMENT, MemorySubtype.CHECK_REPORT),
        (Service.TEST, TestSubtype.PING_REPORT),
        (Service.PARAMETER_MANAGEMENT, ParameterSubtype.VALUES_REPORT),
        (Service.FAULT_INJECTION, FaultInjectionSubtype.LIST_REPORT),
        (Service.REQUEST_OUTCOME, OutcomeSubtype.OUTCOME_REPORT),
        (Service.REQUEST_OUTCOME, OutcomeSubtype.GAP_REPORT),
    }
)
"""(service, subtype) pairs the flight software sends as telemetry."""

START_SEQUENCE: tuple[int, int] = (Service.REQUEST_OUTCOME, OutcomeSubtype.START_SEQUENCE)
"""The TC that starts in-order execution from its own sequence count (ICD 6.1)."""


class AckFlags(enum.IntFlag):
    """PUS-C TC acknowledgement flags: which *success* reports the sender asks for."""

    NONE = 0
    COMPLETION = 0b0001
    PROGRESS = 0b0010
    START = 0b0100
    ACCEPTANCE = 0b1000
    ALL = 0b1111


class RejectReason(enum.Enum):
    """Why a frame or packet was dropped on receipt (link-level, before any service sees it)."""

    BAD_COBS = "bad_cobs"
    TOO_LONG = "too_long"
    TOO_SHORT = "too_short"
    BAD_LENGTH = "bad_length"
    BAD_CRC = "bad_crc"
    BAD_HEADER = "bad_header"
    UNKNOWN_APID = "unknown_apid"


class FailureCode(enum.IntEnum):
    """Failure code (u16) in service 1 failure reports."""

    # Acceptance: the packet itself (link level).
    ILLEGAL_APID = 0x0001
    BAD_LENGTH = 0x0002
    BAD_CRC = 0x0003
    BAD_HEADER = 0x0004
    # Acceptance: the request.
    UNKNOWN_SERVICE = 0x0010
    UNKNOWN_SUBTYPE = 0x0011
    BAD_APP_DATA = 0x0012
    DUPLICATE = 0x0013
    AUTH_FAILED = 0x0020
    AUTH_REPLAY = 0x0021
    AUTH_REQUIRED = 0x0022
    KEY_NOT_ALLOWED = 0x0023
    # Start / execution.
    WRONG_MODE = 0x0100
    NOT_IN_TEST_MODE = 0x0101
    BUSY = 0x0102
    UNKNOWN_PARAMETER = 0x0103
    UNKNOWN_FUNCTION = 0x0104
    UNKNOWN_MEMORY = 0x0105
    ADDRESS_OUT_OF_RANGE = 0x0106
    VALUE_OUT_OF_RANGE = 0x0107
    UNKNOWN_HK_STRUCTURE = 0x0108
    UNKNOWN_EVENT = 0x0109
    FAULT_SITE_ABSENT = 0x0110
    FAULT_NOT_PREDICTABLE = 0x0111
    FAULT_POINT_UNREACHABLE = 0x0112
    JOB_FAILED = 0x0200
    JOB_ABORTED = 0x0201
    TIMEOUT = 0x0202
    INTERRUPTED = 0x0203
    INTERNAL_ERROR = 0x0FFF


FAILURE_FOR_REJECT: dict[RejectReason, FailureCode] = {
    RejectReason.TOO_SHORT: FailureCode.BAD_LENGTH,
    RejectReason.BAD_LENGTH: FailureCode.BAD_LENGTH,
    RejectReason.BAD_CRC: FailureCode.BAD_CRC,
    RejectReason.BAD_HEADER: FailureCode.BAD_HEADER,
    RejectReason.UNKNOWN_APID: FailureCode.ILLEGAL_APID,
}
"""Failure code a TM[1,2] carries for a packet rejected at receipt (frame-level reasons
BAD_COBS and TOO_LONG have no packet to answer and are only counted)."""


class Severity(enum.IntEnum):
    """Event severity; equal to the service 5 report subtype that carries it."""

    INFO = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4


class EventId(enum.IntEnum):
    """Event identifier (u16) in service 5 reports."""

    BOOT = 0x0001
    MODE_CHANGED = 0x0002
    SAFE_MODE_ENTERED = 0x0003
    WATCHDOG_RESET = 0x0004
    LINK_PACKET_REJECTED = 0x0010
    AUTH_FAILURE = 0x0011
    KEY_CHANGED = 0x0012
    TM_OVERFLOW = 0x0013
    SEQUENCE_GAP = 0x0014
    JOB_STARTED = 0x0020
    JOB_COMPLETED = 0x0021
    JOB_FAILED = 0x0022
    EDAC_CORRECTED = 0x0030
    EDAC_UNCORRECTABLE = 0x0031
    SCRUB_PASS_DONE = 0x0032
    TMR_MISMATCH = 0x0033
    SEFI_DETECTED = 0x0040
    LATCHUP_DETECTED = 0x0041
    POWER_LOW = 0x0050
    THERMAL_LIMIT = 0x0051
    ECLIPSE_ENTRY = 0x0052
    ECLIPSE_EXIT = 0x0053
    FAULT_INJECTED = 0x0060
    FAULTS_CLEARED = 0x0061
    FAULT_NOT_INJECTED = 0x0062
    PARAMETER_CHANGED = 0x0070


EVENT_SEVERITY: dict[EventId, Severity] = {
    EventId.BOOT: Severity.INFO,
    EventId.MODE_CHANGED: Severity.INFO,
    EventId.SAFE_MODE_ENTERED: Severity.HIGH,
    EventId.WATCHDOG_RESET: Severity.HIGH,
    EventId.LINK_PACKET_REJECTED: Severity.LOW,
    EventId.AUTH_FAILURE: Severity.MEDIUM,
    EventId.KEY_CHANGED: Severity.INFO,
    EventId.TM_OVERFLOW: Severity.LOW,
    EventId.SEQUENCE_GAP: Severity.LOW,
    EventId.JOB_STARTED: Severity.INFO,
    EventId.JOB_COMPLETED: Severity.INFO,
    EventId.JOB_FAILED: Severity.MEDIUM,
    EventId.EDAC_CORRECTED: Severity.LOW,
    EventId.EDAC_UNCORRECTABLE: Severity.MEDIUM,
    EventId.SCRUB_PASS_DONE: Severity.INFO,
    EventId.TMR_MISMATCH: Severity.LOW,
    EventId.SEFI_DETECTED: Severity.HIGH,
    EventId.LATCHUP_DETECTED: Severity.HIGH,
    EventId.POWER_LOW: Severity.MEDIUM,
    EventId.THERMAL_LIMIT: Severity.MEDIUM,
    EventId.ECLIPSE_ENTRY: Severity.INFO,
    EventId.ECLIPSE_EXIT: Severity.INFO,
    EventId.FAULT_INJECTED: Severity.INFO,
    EventId.FAULTS_CLEARED: Severity.INFO,
    EventId.FAULT_NOT_INJECTED: Severity.LOW,
    EventId.PARAMETER_CHANGED: Severity.INFO,
}
"""The severity (and so the service 5 subtype) each event is always reported with."""


class Mode(enum.IntEnum):
    """Flight software mode."""

    NOMINAL = 1
    SAFE = 2
    TEST = 3


class FunctionId(enum.IntEnum):
    """Function identifier (u16, first field of TC[8,1] application data)."""

    RUN_GEMM = 0x0001
    RUN_LAYER = 0x0002
    ABORT_JOB = 0x0003
    SET_MODE = 0x0010
    RESET = 0x0011
    RESET_ACCEL = 0x0012
    SCRUB_NOW = 0x0020
    CLEAR_COUNTERS = 0x0021


class MemoryId(enum.IntEnum):
    """Memory identifier (u8) in service 6 requests."""

    ACCEL_SCRATCHPAD = 1
    FIRMWARE_RAM = 2


class FaultKind(enum.IntEnum):
    """Kind of fault service 148 injects (ICD 12 and 15.8; the fault model: docs/FAULTS.md)."""

    SBU = 1
    MBU = 2
    SET = 3
    STUCK_AT_0 = 4
    STUCK_AT_1 = 5
    SEFI = 6
    SEL = 7


class NotInjectedReason(enum.IntEnum):
    """Why a fault waiting for a job point was not injected (u8, event FAULT_NOT_INJECTED).

    Only faults whose point the job never reached, or that could not be placed, are not
    injected; a fault placed at a point the job passed is injected, whatever its effect.
    """

    NO_SUCH_POINT = 1
    JOB_ENDED_BEFORE = 2
    NOT_PREDICTABLE = 3
