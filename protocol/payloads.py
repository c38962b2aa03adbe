"""Codes and field readers of docs/ICD.md section 15 (service payloads).

Both sides build and read payloads with it. A refusal is a ``PacketError`` with
the failure code and failure data of ICD section 10, as ``protocol.auth`` raises them.
"""

from __future__ import annotations

import enum
import struct
from typing import Final

from protocol.codes import FailureCode
from protocol.errors import PacketError

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


class FaultSiteClass(enum.IntEnum):
    """What a TC[148,1] fault record hits (u8)."""

    SPM_CELL = 1
    SPM_WORD = 2
    ACC_BIT = 3
    REG_COPY = 4
    FW_RAM = 5
    ACCEL = 6
    FSW = 7


class FaultTiming(enum.IntEnum):
    """When a TC[148,1] fault record acts (u8)."""

    NOW = 0
    NEXT_JOB = 1


class JobPhase(enum.IntEnum):
    """Job state of a NEXT_JOB fault record (u8), as docs/REGISTERS.md names them."""

    BIAS = 1
    STREAM = 2
    WRITE = 3


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
