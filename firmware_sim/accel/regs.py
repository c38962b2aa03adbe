"""SCC register map: offsets, fields, reset values and access rules (docs/REGISTERS.md)."""

from __future__ import annotations

from enum import IntEnum, IntFlag

#: Bus addresses are 20 bits wide; data is 32 bits.
ADDR_BITS = 20
MASK32 = 0xFFFF_FFFF
#: WSTRB of a whole-word write, the only write the bus accepts (others answer SLVERR).
FULL_STROBE = 0xF

#: Byte address of the scratchpad window; registers live below ``REG_SPACE``.
SPM_BASE = 0x80000
REG_SPACE = 0x100

#: Value of the ID register: chip id and version 1.0.
CHIP_ID = 0x5CC1_0100


class Resp(IntEnum):
    """AXI4-Lite response."""

    OKAY = 0
    SLVERR = 2


class Reg(IntEnum):
    """Register byte offsets."""

    ID = 0x000
    PARAMS = 0x004
    SPM_WORDS = 0x008
    CTRL = 0x00C
    STATUS = 0x010
    IRQ_EN = 0x014
    DIM_M = 0x018
    DIM_K = 0x01C
    DIM_N = 0x020
    A_ADDR = 0x024
    B_ADDR = 0x028
    BIAS_ADDR = 0x02C
    C_ADDR = 0x030
    EPILOGUE = 0x034
    SCRUB_PERIOD = 0x038
    CYCLES = 0x040
    MACS = 0x044
    ECC_CORR = 0x048
    ECC_UNCORR = 0x04C
    TMR_MISMATCH = 0x050
    SCRUB_PTR = 0x054
    SCRUB_PASSES = 0x058


class Ctrl(IntFlag):
    """CTRL bits (write-only, act in the cycle the write is accepted)."""

    START = 1 << 0
    SOFT_RESET = 1 << 1
    CLEAR_COUNTERS = 1 << 2


class Status(IntFlag):
    """STATUS single-bit fields; ERR_CODE sits at ``[7:4]``."""

    BUSY = 1 << 0
    DONE = 1 << 1
    ERROR = 1 << 2


ERR_CODE_SHIFT = 4


class ErrCode(IntEnum):
    """STATUS.ERR_CODE values."""

    NONE = 0
    ECC = 1
    DESCRIPTOR = 2


class Epilogue(IntFlag):
    """EPILOGUE single-bit fields; SHIFT sits at ``[12:8]``."""

    BIAS_EN = 1 << 0
    RELU = 1 << 1
    OUT_INT32 = 1 << 2


SHIFT_LSB = 8
SHIFT_MASK = 0x1F

#: Configuration registers (TMR protected), in register-map order: the register bit held by
#: each storage bit of a copy. EPILOGUE stores {SHIFT[4:0], OUT_INT32, RELU, BIAS_EN}, so
#: its storage bit 3 is SHIFT bit 0 (register bit 8). Fault sites count storage bits.
CONFIG_STORAGE: dict[str, tuple[int, ...]] = {
    "IRQ_EN": (0,),
    "DIM_M": tuple(range(12)),
    "DIM_K": tuple(range(12)),
    "DIM_N": tuple(range(12)),
    "A_ADDR": tuple(range(16)),
    "B_ADDR": tuple(range(16)),
    "BIAS_ADDR": tuple(range(16)),
    "C_ADDR": tuple(range(16)),
    "EPILOGUE": (0, 1, 2, 8, 9, 10, 11, 12),
    "SCRUB_PERIOD": tuple(range(16)),
}

#: TMR registers of the sequencer (scc_seq.v) and their widths; ``status`` is
#: {ERR_CODE[3:0], ERROR, DONE}.
SEQ_WIDTHS: dict[str, int] = {"state": 3, "rb": 12, "cb": 12, "t": 13, "ecc": 1, "status": 6}


def to_storage(name: str, value: int) -> int:
    """A configuration register's value as its TMR copies store it."""
    return sum(((value >> bit) & 1) << s for s, bit in enumerate(CONFIG_STORAGE[name]))


def from_storage(name: str, stored: int) -> int:
    """A configuration register's value from what its TMR copies store."""
    return sum(((stored >> s) & 1) << bit for s, bit in enumerate(CONFIG_STORAGE[name]))


#: Bits of each configuration register that a write stores and a read returns.
FIELD_MASKS: dict[str, int] = {
    "IRQ_EN": 0x1,
    "DIM_M": 0xFFF,
    "DIM_K": 0xFFF,
    "DIM_N": 0xFFF,
    "A_ADDR": 0xFFFF,
    "B_ADDR": 0xFFFF,
    "BIAS_ADDR": 0xFFFF,
    "C_ADDR": 0xFFFF,
    "EPILOGUE": 0x1F07,
    "SCRUB_PERIOD": 0xFFFF,
}

#: Configuration registers whose value steers a running job.
JOB_REGISTERS = frozenset(
    ("DIM_M", "DIM_K", "DIM_N", "A_ADDR", "B_ADDR", "BIAS_ADDR", "C_ADDR", "EPILOGUE")
)

#: Registers a bus write is refused on.
READ_ONLY = frozenset(
    (
        Reg.ID,
        Reg.PARAMS,
        Reg.SPM_WORDS,
        Reg.CYCLES,
        Reg.MACS,
        Reg.ECC_CORR,
        Reg.ECC_UNCORR,
        Reg.TMR_MISMATCH,
        Reg.SCRUB_PTR,
        Reg.SCRUB_PASSES,
    )
)


def params_value(n: int, ecc: bool, scrub: bool, tmr: bool, interleave: int) -> int:
    """The PARAMS register of a build."""
    return (
        n | int(ecc) << 8 | int(scrub) << 9 | int(tmr) << 10 | (interleave.bit_length() - 1) << 12
    )
