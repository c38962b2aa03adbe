"""The accelerator driver: the chip programmed through its registers and scratchpad window.

Only bus reads and writes (docs/REGISTERS.md) and a wait for the interrupt, so the same
driver runs the numpy model, the RTL in a simulator over AXI4-Lite and a board's chip
(``firmware_sim.chip.Chip``). Nothing here assumes a job ends before START returns: the
caller waits for the interrupt and reads ``status``, with its own deadline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_sim.accel.regs import (
    CHIP_ID,
    ERR_CODE_SHIFT,
    MASK32,
    SHIFT_LSB,
    SPM_BASE,
    Ctrl,
    Epilogue,
    ErrCode,
    Reg,
    Resp,
    Status,
)
from firmware_sim.chip import Chip


class DriverError(Exception):
    """The chip refused an access the driver needed (SLVERR), or is not the SCC."""


@dataclass(frozen=True, slots=True)
class ChipInfo:
    """What the ID, PARAMS and SPM_WORDS registers say about the build."""

    n: int
    ecc: bool
    scrub: bool
    tmr: bool
    interleave: int
    spm_words: int

    @property
    def bank_words(self) -> int:
        return self.spm_words // 2

    @property
    def parts(self) -> int:
        """32-bit bus words per scratchpad word."""
        return -(-8 * self.n // 32)

    @property
    def spm_bytes(self) -> int:
        return self.spm_words * self.n


@dataclass(frozen=True, slots=True)
class JobStatus:
    """The STATUS register."""

    busy: bool
    done: bool
    error: bool
    err_code: int

    @classmethod
    def from_reg(cls, value: int) -> JobStatus:
        return cls(
            busy=bool(value & Status.BUSY),
            done=bool(value & Status.DONE),
            error=bool(value & Status.ERROR),
            err_code=(value >> ERR_CODE_SHIFT) & 0xF,
        )


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A job for the configuration registers: dimensions, word addresses, epilogue."""

    m: int
    k: int
    ncols: int
    a_addr: int
    b_addr: int
    c_addr: int
    bias_addr: int = 0
    bias: bool = False
    relu: bool = False
    out_int32: bool = False
    shift: int = 0

    @property
    def epilogue(self) -> int:
        return int(
            Epilogue.BIAS_EN * self.bias
            | Epilogue.RELU * self.relu
            | Epilogue.OUT_INT32 * self.out_int32
        ) | (self.shift << SHIFT_LSB)


@dataclass(frozen=True, slots=True)
class Counters:
    """The chip's EDAC and scrubber counters (32-bit, wrapping, reset by SOFT_RESET)."""

    ecc_corr: int
    ecc_uncorr: int
    tmr_mismatch: int
    scrub_ptr: int
    scrub_passes: int


class AccelDriver:
    """Registers and scratchpad of one SCC, over its bus."""

    def __init__(self, bus: Chip) -> None:
        self.bus = bus
        self._info: ChipInfo | None = None

    @property
    def info(self) -> ChipInfo:
        if self._info is None:
            self._info = self.probe()
        return self._info

    def probe(self) -> ChipInfo:
        """Read the identity registers; DriverError unless the chip is an SCC 1.x."""
        chip_id = self.read_reg(Reg.ID)
        if chip_id >> 8 != CHIP_ID >> 8:
            raise DriverError(f"ID register reads {chip_id:#010x}, expected {CHIP_ID:#010x}")
        params = self.read_reg(Reg.PARAMS)
        self._info = ChipInfo(
            n=params & 0x1F,
            ecc=bool(params >> 8 & 1),
            scrub=bool(params >> 9 & 1),
            tmr=bool(params >> 10 & 1),
            interleave=1 << (params >> 12 & 0xF),
            spm_words=self.read_reg(Reg.SPM_WORDS),
        )
        return self._info

    # --- registers -------------------------------------------------------------------

    def read_reg(self, reg: Reg) -> int:
        value, resp = self.bus.read(int(reg))
        if resp != Resp.OKAY:
            raise DriverError(f"read of {reg.name} ({int(reg):#05x}) answered {resp.name}")
        return value

    def write_reg(self, reg: Reg, value: int) -> None:
        resp = self.bus.write(int(reg), value & MASK32)
        if resp != Resp.OKAY:
            raise DriverError(
                f"write of {value:#x} to {reg.name} ({int(reg):#05x}) answered {resp.name}"
            )

    def status(self) -> JobStatus:
        return JobStatus.from_reg(self.read_reg(Reg.STATUS))

    def acknowledge(self) -> None:
        """Clear DONE and ERROR (write one to clear)."""
        self.write_reg(Reg.STATUS, Status.DONE | Status.ERROR)

    def soft_reset(self) -> None:
        self.write_reg(Reg.CTRL, Ctrl.SOFT_RESET)

    def clear_counters(self) -> None:
        self.write_reg(Reg.CTRL, Ctrl.CLEAR_COUNTERS)

    def set_scrub_period(self, cycles: int) -> None:
        self.write_reg(Reg.SCRUB_PERIOD, cycles & 0xFFFF)

    def enable_interrupt(self) -> None:
        """irq_o follows DONE (IRQ_EN), so that a job's end can be waited for."""
        self.write_reg(Reg.IRQ_EN, 1)

    def wait_for_interrupt(self, cycles: int) -> bool:
        """Let the chip run until its interrupt, at most ``cycles`` cycles; whether it came."""
        return self.bus.wait_for_interrupt(cycles)

    def counters(self) -> Counters:
        return Counters(
            ecc_corr=self.read_reg(Reg.ECC_CORR),
            ecc_uncorr=self.read_reg(Reg.ECC_UNCORR),
            tmr_mismatch=self.read_reg(Reg.TMR_MISMATCH),
            scrub_ptr=self.read_reg(Reg.SCRUB_PTR),
            scrub_passes=self.read_reg(Reg.SCRUB_PASSES),
        )

    def job_stats(self) -> tuple[int, int]:
        """(CYCLES, MACS) of the last job."""
        return self.read_reg(Reg.CYCLES), self.read_reg(Reg.MACS)

    def start(self, d: Descriptor) -> None:
        """Program the descriptor and write START; the caller polls ``status``."""
        for reg, value in (
            (Reg.DIM_M, d.m),
            (Reg.DIM_K, d.k),
            (Reg.DIM_N, d.ncols),
            (Reg.A_ADDR, d.a_addr),
            (Reg.B_ADDR, d.b_addr),
            (Reg.BIAS_ADDR, d.bias_addr),
            (Reg.C_ADDR, d.c_addr),
            (Reg.EPILOGUE, d.epilogue),
        ):
            self.write_reg(reg, value)
        self.write_reg(Reg.CTRL, Ctrl.START)

    # --- scratchpad window -----------------------------------------------------------

    def _window(self, word: int, part: int = 0) -> int:
        return SPM_BASE + 4 * (self.info.parts * word + part)

    def write_words(self, word: int, data: bytes | np.ndarray) -> None:
        """Write whole words from ``word``: N octets each, octet i = data bits 8i..8i+7."""
        info = self.info
        raw = np.asarray(data, dtype=np.uint8).tobytes() if isinstance(data, np.ndarray) else data
        if len(raw) % info.n:
            raise ValueError(f"{len(raw)} octets are not whole {info.n}-octet words")
        parts = info.parts
        writes = []
        for i in range(len(raw) // info.n):
            value = int.from_bytes(raw[i * info.n : (i + 1) * info.n], "little")
            writes += [(self._window(word + i, p), (value >> (32 * p)) & MASK32)
                       for p in range(parts)]  # fmt: skip
        answered = self.bus.write_block(writes)
        if answered and answered[-1] != Resp.OKAY:
            failed = word + (len(answered) - 1) // parts
            raise DriverError(f"scratchpad write of word {failed} answered SLVERR")

    def read_words(self, word: int, count: int) -> tuple[bytes, list[int]]:
        """Read ``count`` words: (data, words that were uncorrectable and are returned raw).

        Raises DriverError if the window refuses a word for any other reason (BUSY).
        """
        info = self.info
        parts = info.parts
        got = self.bus.read_block([self._window(w, p) for w in range(word, word + count)
                                   for p in range(parts)])  # fmt: skip
        out = bytearray()
        bad: list[int] = []
        for i in range(count):
            value = 0
            for p, (part, _) in enumerate(got[i * parts : (i + 1) * parts]):
                value |= part << (32 * p)
            if got[i * parts][1] != Resp.OKAY:
                # SLVERR on an idle chip inside the scratchpad is an uncorrectable word.
                if self.status().busy:
                    raise DriverError(f"scratchpad read of word {word + i} refused: "
                                      "accelerator BUSY")  # fmt: skip
                bad.append(word + i)
            out += (value & ((1 << (8 * info.n)) - 1)).to_bytes(info.n, "little")
        return bytes(out), bad

    def read_matrix_words(self, word: int, count: int) -> tuple[np.ndarray, list[int]]:
        """``read_words`` as ``uint8[count, n]``."""
        raw, bad = self.read_words(word, count)
        return np.frombuffer(raw, dtype=np.uint8).reshape(count, self.info.n), bad


ERR_NAMES = {int(e): e.name for e in ErrCode}
"""ERR_CODE values by name, for messages."""
