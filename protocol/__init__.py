"""The orbit-hil link: COBS frames of CCSDS space packets carrying PUS-C TCs and TM.

docs/ICD.md is the contract; this package is its executable form, imported by both the
host and the flight software.
"""

from protocol.codes import (
    EVENT_SEVERITY,
    FAILURE_FOR_REJECT,
    SUBTYPES,
    TC_TYPES,
    TM_TYPES,
    AckFlags,
    EventId,
    EventSubtype,
    FailureCode,
    FaultInjectionSubtype,
    FaultKind,
    FunctionId,
    FunctionSubtype,
    HousekeepingSubtype,
    MemoryId,
    MemorySubtype,
    Mode,
    ParameterSubtype,
    RejectReason,
    Service,
    Severity,
    TestSubtype,
    VerificationSubtype,
)
from protocol.errors import PacketError
from protocol.framing import (
    NEED_DATA,
    Frame,
    FrameCounters,
    FrameDecoder,
    FrameRejected,
    NeedData,
    encode_frame,
)
from protocol.link import APID_FSW, MAX_FRAME_LEN, MAX_PACKET_LEN
from protocol.packets import (
    PacketValidator,
    Telecommand,
    Telemetry,
    check_packet,
    make_tc,
    make_tm,
    parse_tc,
    parse_tm,
    request_id_of,
)
from protocol.request_id import RequestId
from protocol.sequence import SeqCounter, seq_diff
from protocol.timecode import CdsTime
from protocol.verification import VerificationReport, make_verification_tm

__all__ = [
    "APID_FSW",
    "EVENT_SEVERITY",
    "FAILURE_FOR_REJECT",
    "MAX_FRAME_LEN",
    "MAX_PACKET_LEN",
    "NEED_DATA",
    "SUBTYPES",
    "TC_TYPES",
    "TM_TYPES",
    "AckFlags",
    "CdsTime",
    "EventId",
    "EventSubtype",
    "FailureCode",
    "FaultInjectionSubtype",
    "FaultKind",
    "Frame",
    "FrameCounters",
    "FrameDecoder",
    "FrameRejected",
    "FunctionId",
    "FunctionSubtype",
    "HousekeepingSubtype",
    "MemoryId",
    "MemorySubtype",
    "Mode",
    "NeedData",
    "PacketError",
    "PacketValidator",
    "ParameterSubtype",
    "RejectReason",
    "RequestId",
    "SeqCounter",
    "Service",
    "Severity",
    "Telecommand",
    "Telemetry",
    "TestSubtype",
    "VerificationReport",
    "VerificationSubtype",
    "check_packet",
    "encode_frame",
    "make_tc",
    "make_tm",
    "make_verification_tm",
    "parse_tc",
    "parse_tm",
    "request_id_of",
    "seq_diff",
]
