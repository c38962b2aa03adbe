"""The PUS-C request id: the first four octets of a telecommand."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from spacepackets.ecss.req_id import RequestId as _SpRequestId

REQUEST_ID_LEN: Final[int] = 4


@dataclass(frozen=True, slots=True)
class RequestId:
    """Packet version + packet id (u16) and packet sequence control (u16) of a TC."""

    packet_id: int
    seq_ctrl: int

    def __post_init__(self) -> None:
        for name in ("packet_id", "seq_ctrl"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFFFF:
                raise ValueError(f"RequestId.{name} must fit in 16 bits, got {value:#x}")

    @property
    def apid(self) -> int:
        return self.packet_id & 0x7FF

    @property
    def seq_count(self) -> int:
        return self.seq_ctrl & 0x3FFF

    def as_u32(self) -> int:
        """The request id as one big-endian 32-bit number."""
        return (self.packet_id << 16) | self.seq_ctrl

    def pack(self) -> bytes:
        """The 4 octets sent in service 1 reports."""
        return struct.pack("!HH", self.packet_id, self.seq_ctrl)

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> RequestId:
        """Read a request id from the first 4 octets of ``data`` (a TC or a report)."""
        if len(data) < REQUEST_ID_LEN:
            raise ValueError(f"request id needs {REQUEST_ID_LEN} octets, got {len(data)}")
        packet_id, seq_ctrl = struct.unpack_from("!HH", data)
        return cls(packet_id=packet_id, seq_ctrl=seq_ctrl)

    def to_spacepackets(self) -> _SpRequestId:
        """The same id as a ``spacepackets`` RequestId."""
        return _SpRequestId.unpack(self.pack())

    def __str__(self) -> str:
        return f"request {self.as_u32():#010x} (APID {self.apid:#05x}, seq {self.seq_count})"
