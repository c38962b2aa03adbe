"""TM time stamps: CCSDS Day Segmented short code (CDS short, 7 octets)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from spacepackets.ccsds.time import CdsShortTimestamp

TIMESTAMP_LEN: Final[int] = CdsShortTimestamp.TIMESTAMP_SIZE
CDS_SHORT_PFIELD: Final[int] = 0x40
"""P-field: CDS, epoch 1958-01-01, 16-bit day, 32-bit ms of day, no sub-ms field."""
UNIX_EPOCH_CCSDS_DAY: Final[int] = 4383
"""CCSDS day number of 1970-01-01."""
MS_PER_DAY: Final[int] = 86_400_000


@dataclass(frozen=True, slots=True)
class CdsTime:
    """Days since 1958-01-01 (u16) and milliseconds of that day (u32)."""

    days: int
    ms_of_day: int

    def __post_init__(self) -> None:
        if not 0 <= self.days <= 0xFFFF:
            raise ValueError(f"CDS day must be in 0..65535, got {self.days}")
        if not 0 <= self.ms_of_day <= 0xFFFFFFFF:
            raise ValueError(f"CDS ms of day must fit in 32 bits, got {self.ms_of_day}")

    @classmethod
    def from_unix(cls, seconds: float) -> CdsTime:
        """The CDS time of a Unix time in seconds (floored to the millisecond)."""
        total_ms = math.floor(seconds * 1000)
        days, ms = divmod(total_ms, MS_PER_DAY)
        return cls(days=days + UNIX_EPOCH_CCSDS_DAY, ms_of_day=ms)

    def to_unix(self) -> float:
        """Unix time in seconds."""
        return (self.days - UNIX_EPOCH_CCSDS_DAY) * 86_400 + self.ms_of_day / 1000

    def pack(self) -> bytes:
        """The 7 octets of the TM secondary header's time field."""
        return CdsShortTimestamp(ccsds_days=self.days, ms_of_day=self.ms_of_day).pack()

    @classmethod
    def unpack(cls, data: bytes | bytearray) -> CdsTime:
        """Read a CDS short time field; raises ValueError if it is not one."""
        days, ms = CdsShortTimestamp.unpack_from_raw(data)
        return cls(days=days, ms_of_day=ms)
