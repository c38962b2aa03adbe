"""Service 8: perform a function, TC[8,1] (ICD sections 12 and 15.6).

RUN_GEMM and RUN_LAYER queue a job (``jobs``); their completion comes when the job ends.
A job too large for the scratchpad is accepted when it can be tiled (``jobs.block_size``).
The others act at once. Arguments are checked whole at acceptance, mode and resources
at start.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from firmware_sim.accel.regs import Reg
from firmware_sim.jobs import Job, JobSpec, KTooLarge, block_size
from protocol.codes import EventId, FailureCode, FunctionId, MemoryId, Mode
from protocol.payloads import (
    LayerFlags,
    OperandSource,
    ParamId,
    Reader,
    ResetCause,
    bad_app_data,
    out_of_range,
    refuse,
)

if TYPE_CHECKING:
    from firmware_sim.driver import AccelDriver
    from firmware_sim.jobs import JobScheduler
    from firmware_sim.ram import FirmwareRam
    from firmware_sim.services.events import EventService
    from firmware_sim.services.parameters import ParameterStore
    from firmware_sim.services.verification import Request

MAX_DIM = 0xFFF
"""DIM_M, DIM_K and DIM_N are 12-bit fields (docs/REGISTERS.md)."""
JOB_FUNCTIONS = (FunctionId.RUN_GEMM, FunctionId.RUN_LAYER)


class FunctionService:
    """TC[8,1]: jobs, abort, mode, resets, scrub, counters.

    Its collaborators: the ``jobs`` queue, the chip's ``driver``, the firmware ``ram``,
    ``params``, ``events``, the clock ``now``, and what the flight software offers:
    ``mode`` and ``set_mode``, ``reboot``, ``reset_accelerator``, ``clear_counters``,
    ``check_counters``, ``idle`` (the chip not BUSY, no job) and ``scrub_passes`` (total).
    """

    def __init__(
        self,
        jobs: JobScheduler,
        driver: AccelDriver,
        ram: FirmwareRam,
        params: ParameterStore,
        events: EventService,
        now: Callable[[], float],
        *,
        mode: Callable[[], Mode],
        set_mode: Callable[[Mode], None],
        reboot: Callable[[ResetCause], None],
        reset_accelerator: Callable[[], None],
        clear_counters: Callable[[], None],
        check_counters: Callable[..., None],
        idle: Callable[[], bool],
        scrub_passes: Callable[[], int],
    ) -> None:
        self.jobs = jobs
        self.driver = driver
        self.ram = ram
        self.params = params
        self.events = events
        self.now = now
        self.mode = mode
        self.set_mode = set_mode
        self.reboot = reboot
        self.reset_accelerator = reset_accelerator
        self.clear_counters = clear_counters
        self.check_counters = check_counters
        self.idle = idle
        self.scrub_passes = scrub_passes

    # --- acceptance ------------------------------------------------------------------

    def accept(self, subtype: int, data: bytes) -> tuple[FunctionId, object]:
        r = Reader(data)
        raw = r.u16("function id")
        if raw not in FunctionId._value2member_map_:
            raise refuse(
                FailureCode.UNKNOWN_FUNCTION, f"function id {raw:#06x} is not defined",
                struct.pack("!H", raw),
            )  # fmt: skip
        fid = FunctionId(raw)
        if fid in JOB_FUNCTIONS:
            return fid, self._job_spec(fid, r)
        if fid == FunctionId.SET_MODE:
            mode = r.u8("mode")
            if mode not in Mode._value2member_map_:
                raise out_of_range(2, f"mode {mode} is not 1 (NOMINAL), 2 (SAFE) or 3 (TEST)")
            r.end()
            return fid, Mode(mode)
        r.end()
        return fid, None

    def _job_spec(self, fid: FunctionId, r: Reader) -> JobSpec:
        info = self.driver.info
        job_id = r.u16("job id")
        raw_source = r.u8("operand source")
        if raw_source not in OperandSource._value2member_map_:
            raise out_of_range(4, f"operand source {raw_source} is not 0, 1 or 2")
        source = OperandSource(raw_source)
        dims = []
        for at, name in ((5, "M"), (7, "K"), (9, "N")):
            value = r.u16(name)
            if not 1 <= value <= MAX_DIM:
                raise out_of_range(at, f"{name} = {value} is outside 1..{MAX_DIM}")
            dims.append(value)
        m, k, n = dims
        a_addr, b_addr, c_addr = r.u32("A address"), r.u32("B address"), r.u32("C address")
        bias_addr, flags, shift = 0, LayerFlags.NONE, 0
        if fid == FunctionId.RUN_LAYER:
            bias_addr = r.u32("bias address")
            raw_flags = r.u8("flags")
            if raw_flags & ~0b111:
                raise out_of_range(27, f"flags {raw_flags:#04x} set bits other than 0..2")
            flags = LayerFlags(raw_flags)
            shift = r.u8("shift")
            if shift > 31:
                raise out_of_range(28, f"shift {shift} is outside 0..31")
        inline = b""
        spec = JobSpec(
            fid, job_id, source, m, k, n, a_addr, b_addr, c_addr, bias_addr, flags, shift
        )
        a_len, b_len, bias_len = spec.operand_bytes()
        if source == OperandSource.INLINE:
            for at, value, name in ((11, a_addr, "A"), (15, b_addr, "B"), (23, bias_addr, "bias")):
                if value:
                    raise out_of_range(at, f"{name} address must be 0 with inline operands")
            need = a_len + b_len + bias_len
            have = len(r.data) - r.pos
            if have < need:
                raise bad_app_data(
                    len(r.data), f"inline operands need {need} octets, {have} follow"
                )
            inline = r.raw(need, "inline operands")
        r.end()
        spec = JobSpec(
            fid, job_id, source, m, k, n, a_addr, b_addr, c_addr, bias_addr, flags, shift, inline
        )
        if source == OperandSource.ACCEL_SCRATCHPAD:
            a_w, b_w, bias_w, c_w = spec.spm_words(info.n)
            ranges = [(11, a_addr, a_w * info.n), (15, b_addr, b_w * info.n),
                      (19, c_addr, c_w * info.n)]  # fmt: skip
            if spec.bias:
                ranges.append((23, bias_addr, bias_w * info.n))
            self._check_ranges(MemoryId.ACCEL_SCRATCHPAD, ranges, info.n)
            return spec
        try:
            block_size(spec, info.n, info.bank_words)
        except KTooLarge as exc:
            raise out_of_range(7, str(exc)) from None
        ranges = [(19, c_addr, spec.c_ram_bytes())]
        if source == OperandSource.FIRMWARE_RAM:
            ranges += [(11, a_addr, a_len), (15, b_addr, b_len)]
            if spec.bias:
                ranges.append((23, bias_addr, bias_len))
        self._check_ranges(MemoryId.FIRMWARE_RAM, ranges, 1)
        return spec

    def _check_ranges(self, memory: MemoryId, ranges: list, align: int) -> None:
        size = self.driver.info.spm_bytes if memory == MemoryId.ACCEL_SCRATCHPAD else self.ram.size
        for at, address, length in ranges:
            if address % align:
                raise out_of_range(
                    at, f"scratchpad address {address} is not a multiple of N={align}"
                )
            if address + length > size:
                raise refuse(
                    FailureCode.ADDRESS_OUT_OF_RANGE,
                    f"{memory.name}: {length} octets at {address} run past its {size} octets",
                    struct.pack("!II", address, length),
                )

    # --- start and execution ---------------------------------------------------------

    def start(self, subtype: int, request: tuple[FunctionId, object]) -> None:
        fid, _ = request
        if fid in JOB_FUNCTIONS:
            mode = self.mode()
            if mode == Mode.SAFE:
                raise refuse(FailureCode.WRONG_MODE, "no jobs in SAFE mode", bytes([mode]))
            if len(self.jobs) >= self.params[ParamId.JOB_QUEUE_LIMIT]:
                raise refuse(FailureCode.BUSY, f"{len(self.jobs)} jobs already queued or running")
        elif fid == FunctionId.SCRUB_NOW and not self.idle():
            raise refuse(FailureCode.BUSY, "a job runs on the accelerator")

    def execute(self, subtype: int, request: tuple[FunctionId, object], req: Request) -> None:
        fid, args = request
        if fid in JOB_FUNCTIONS:
            assert isinstance(args, JobSpec)
            self.jobs.submit(Job(args, req))
            self.jobs.poll()
            return
        if fid == FunctionId.ABORT_JOB:
            self.jobs.abort_all("ABORT_JOB")
        elif fid == FunctionId.SET_MODE:
            assert isinstance(args, Mode)
            self.set_mode(args)
        elif fid == FunctionId.RESET:
            self.jobs.abort_all("RESET")
            self.reboot(ResetCause.COMMAND)
        elif fid == FunctionId.RESET_ACCEL:
            self.jobs.abort_running("RESET_ACCEL")
            self.reset_accelerator()
        elif fid == FunctionId.SCRUB_NOW:
            self._scrub()
        elif fid == FunctionId.CLEAR_COUNTERS:
            self.clear_counters()
        req.complete(self.now())

    def _scrub(self) -> None:
        """A pass over the whole scratchpad: words read with a corrected error are rewritten."""
        driver = self.driver
        corr = driver.read_reg(Reg.ECC_CORR)
        first_bad = None
        for word in range(driver.info.spm_words):
            data, bad = driver.read_words(word, 1)
            if bad:
                first_bad = word if first_bad is None else first_bad
                continue
            now_corr = driver.read_reg(Reg.ECC_CORR)
            if now_corr != corr:
                driver.write_words(word, data)
                corr = now_corr
        self.check_counters(None if first_bad is None else first_bad * driver.info.n)
        self.events.raise_event(EventId.SCRUB_PASS_DONE, self.scrub_passes(), 1)
