"""CRC-16/CCITT-FALSE, the PUS packet error control field.

spacepackets only answers "is this CRC good?" (``check_pus_crc``); a rejection must say
which value was computed and which was received, so the value comes from here. Python's
``binascii.crc_hqx`` is this CRC (poly 0x1021, not reflected, no final xor) given init 0xFFFF.
"""

from __future__ import annotations

import binascii
from typing import Final

CRC_INIT: Final[int] = 0xFFFF
CRC_CHECK_VALUE: Final[int] = 0x29B1
"""CRC of the ASCII bytes ``123456789`` (the catalogue check value)."""


def crc16_ccitt_false(data: bytes | bytearray | memoryview, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data``, continuing from ``crc``."""
    return binascii.crc_hqx(data, crc)
