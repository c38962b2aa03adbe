"""Service 1 (request verification) report payloads: docs/ICD.md "Service payloads"."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from protocol.codes import FailureCode, Service, VerificationSubtype
from protocol.errors import PacketError
from protocol.link import APID_FSW
from protocol.packets import make_tm
from protocol.request_id import REQUEST_ID_LEN, RequestId
from protocol.timecode import CdsTime

STEP_ID_LEN: Final[int] = 2
FAILURE_CODE_LEN: Final[int] = 2

_PROGRESS = (VerificationSubtype.PROGRESS_SUCCESS, VerificationSubtype.PROGRESS_FAILURE)


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """One TM[1,x]: which stage of which request, and for failures, why.

    ``step`` is present exactly in progress reports (1,5 and 1,6); ``failure_code`` exactly
    in failure reports (even subtypes). An unknown code from a newer peer stays an int.
    """

    subtype: VerificationSubtype
    request_id: RequestId
    step: int | None = None
    failure_code: FailureCode | int | None = None
    failure_data: bytes = b""

    def __post_init__(self) -> None:
        name = f"TM[1,{int(self.subtype)}] {self.subtype.name}"
        if (self.step is not None) != (self.subtype in _PROGRESS):
            need = "needs" if self.subtype in _PROGRESS else "takes no"
            raise ValueError(f"{name} {need} a step id, got step={self.step!r}")
        if self.step is not None and not 0 <= self.step <= 0xFFFF:
            raise ValueError(f"{name}: step id must fit in 16 bits, got {self.step}")
        if (self.failure_code is not None) != (not self.success):
            need = "takes no" if self.success else "needs a"
            raise ValueError(f"{name} {need} failure code, got {self.failure_code!r}")
        if self.failure_code is not None and not 0 <= self.failure_code <= 0xFFFF:
            raise ValueError(f"{name}: failure code must fit in 16 bits, got {self.failure_code}")
        if self.success and self.failure_data:
            raise ValueError(f"{name} carries no failure data, got {len(self.failure_data)} octets")

    @property
    def success(self) -> bool:
        return self.subtype % 2 == 1

    def pack(self) -> bytes:
        """TM source data: request id, [step id u16], [failure code u16, failure data]."""
        out = bytearray(self.request_id.pack())
        if self.step is not None:
            out += struct.pack("!H", self.step)
        if self.failure_code is not None:
            out += struct.pack("!H", self.failure_code) + self.failure_data
        return bytes(out)

    @classmethod
    def unpack(cls, subtype: int, source_data: bytes) -> VerificationReport:
        """Parse TM[1,subtype] source data; raises PacketError (BAD_APP_DATA)."""
        try:
            kind = VerificationSubtype(subtype)
        except ValueError:
            raise PacketError(
                f"TM[1,{subtype}]: no such service 1 subtype, expected 1..8",
                code=FailureCode.UNKNOWN_SUBTYPE,
            ) from None
        need = REQUEST_ID_LEN
        need += STEP_ID_LEN if kind in _PROGRESS else 0
        need += FAILURE_CODE_LEN if subtype % 2 == 0 else 0
        exact = subtype % 2 == 1
        n = len(source_data)
        if n < need or (exact and n != need):
            expected = f"exactly {need}" if exact else f"at least {need}"
            raise PacketError(
                f"TM[1,{subtype}] {kind.name}: source data of {n} octets, expected {expected}",
                code=FailureCode.BAD_APP_DATA,
            )
        request_id = RequestId.unpack(source_data)
        pos = REQUEST_ID_LEN
        step = None
        if kind in _PROGRESS:
            (step,) = struct.unpack_from("!H", source_data, pos)
            pos += STEP_ID_LEN
        code: FailureCode | int | None = None
        data = b""
        if not exact:
            (raw_code,) = struct.unpack_from("!H", source_data, pos)
            code = FailureCode(raw_code) if raw_code in FailureCode._value2member_map_ else raw_code
            data = bytes(source_data[pos + FAILURE_CODE_LEN :])
        return cls(kind, request_id, step=step, failure_code=code, failure_data=data)


def make_verification_tm(
    report: VerificationReport,
    seq_count: int,
    *,
    time: CdsTime,
    apid: int = APID_FSW,
    msg_counter: int = 0,
    dest_id: int = 0,
) -> bytes:
    """Bytes of the TM[1,x] packet carrying ``report``."""
    return make_tm(
        Service.REQUEST_VERIFICATION,
        report.subtype,
        report.pack(),
        seq_count,
        time=time,
        apid=apid,
        msg_counter=msg_counter,
        dest_id=dest_id,
    )
