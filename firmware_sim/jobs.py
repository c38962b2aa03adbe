"""Accelerator jobs: the queue, staging of operands, the job watchdog, results with a CRC.

A job is accepted by service 8 (RUN_GEMM / RUN_LAYER), waits in a FIFO queue, runs when
the accelerator is idle, the mode allows it and the power does (in eclipse with a low
battery jobs wait), and ends in one of: completed (result verified and kept with its
CRC), failed (the chip reported an error, or the result read back was uncorrectable),
aborted, or timed out (the chip never said DONE: its sequencer hung). No result that
failed a check is ever written where the host reads results from.

A job that ran with faults scheduled at its points says how many there were and how
many of them were not injected (events FAULT_NOT_INJECTED, JOB_COMPLETED / JOB_FAILED,
housekeeping), so that no run is taken for a masked fault that never happened.
"""

from __future__ import annotations

import enum
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from firmware_sim.accel.packing import pack_a, pack_b, pack_bias, place_operands, unpack_c
from firmware_sim.accel.regs import ErrCode
from firmware_sim.chip import JobInjection
from firmware_sim.driver import Descriptor, DriverError
from firmware_sim.ram import Result, crc32
from protocol.codes import EventId, FailureCode, FunctionId, MemoryId, Mode
from protocol.payloads import JobStatus, LayerFlags, OperandSource, ParamId

if TYPE_CHECKING:
    from firmware_sim.core import FlightSoftware
    from firmware_sim.services.verification import Request


NO_RESULT = 0x0F
"""ERR_CODE quoted when a range is read whose job never finished (timed out)."""
NO_ADDRESS = 0xFFFF_FFFF
"""Address in EDAC_UNCORRECTABLE when the chip does not say which word it was."""
WAIT_CYCLES = 2000
"""Chip cycles one look at the running job waits for its interrupt: on a simulated
chip these cost wall time, and the link is served between looks."""


def _blocks(size: int, n: int) -> int:
    return -(-size // n)


def gemm_spm_words(
    array_n: int, m: int, k: int, n: int, bias: bool, out_int32: bool
) -> tuple[int, int, int, int]:
    """Scratchpad words of A, B, bias and C of an M x K x N GEMM at array size ``array_n``."""
    mb, nb = _blocks(m, array_n), _blocks(n, array_n)
    return mb * k, nb * k, 4 * nb if bias else 0, m * nb * (4 if out_int32 else 1)


def gemm_spm_accesses(
    array_n: int, m: int, k: int, n: int, bias: bool, out_int32: bool,
    staged_words: int | None = None,
) -> int:
    """Scratchpad word accesses of one GEMM job, as the energy model books them: the
    operand words staged in (``staged_words``, by default A, B and bias once), every
    tile's reads of A and B (and of the bias), and C written and read back."""
    a, b, bias_words, c = gemm_spm_words(array_n, m, k, n, bias, out_int32)
    staged = a + b + bias_words if staged_words is None else staged_words
    tiles = _blocks(m, array_n) * _blocks(n, array_n)
    return staged + tiles * (2 * k + 4 * bias) + 2 * c


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job as TC[8,1] asked for it (ICD section 15.6); addresses are octet offsets."""

    function: FunctionId
    job_id: int
    source: OperandSource
    m: int
    k: int
    n: int
    a_addr: int = 0
    b_addr: int = 0
    c_addr: int = 0
    bias_addr: int = 0
    flags: LayerFlags = LayerFlags.NONE
    shift: int = 0
    inline: bytes = b""

    @property
    def out_int32(self) -> bool:
        return self.function == FunctionId.RUN_GEMM or bool(self.flags & LayerFlags.OUT_INT32)

    @property
    def bias(self) -> bool:
        return self.function == FunctionId.RUN_LAYER and bool(self.flags & LayerFlags.BIAS)

    @property
    def relu(self) -> bool:
        return self.function == FunctionId.RUN_LAYER and bool(self.flags & LayerFlags.RELU)

    @property
    def c_memory(self) -> MemoryId:
        """Where the result goes: the scratchpad for scratchpad jobs, else firmware RAM."""
        if self.source == OperandSource.ACCEL_SCRATCHPAD:
            return MemoryId.ACCEL_SCRATCHPAD
        return MemoryId.FIRMWARE_RAM

    def operand_bytes(self) -> tuple[int, int, int]:
        """Octets of A, B and the bias in firmware RAM or inline (row-major, bias i32)."""
        return self.m * self.k, self.k * self.n, 4 * self.n if self.bias else 0

    def c_ram_bytes(self) -> int:
        """Octets of C in firmware RAM: row-major int8, or big-endian int32."""
        return self.m * self.n * (4 if self.out_int32 else 1)

    def spm_words(self, array_n: int) -> tuple[int, int, int, int]:
        """Scratchpad words of A, B, bias and C at array size ``array_n``."""
        return gemm_spm_words(array_n, self.m, self.k, self.n, self.bias, self.out_int32)


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"


@dataclass(slots=True)
class Job:
    spec: JobSpec
    request: Request
    state: JobState = JobState.QUEUED
    deadline: float = 0.0
    descriptor: Descriptor | None = None
    staged_words: int = 0
    injection: JobInjection | None = None
    """What became of the faults that waited for this job's START (None: it never started)."""


@dataclass(slots=True)
class LastJob:
    """What housekeeping says about the most recent job that ended."""

    job_id: int = 0
    status: JobStatus = JobStatus.NONE
    err_code: int = 0
    cycles: int = 0
    macs: int = 0
    crc: int = 0
    faults: int = 0
    not_injected: int = 0


class JobScheduler:
    """The job queue and the one job the accelerator runs at a time."""

    def __init__(self, fsw: FlightSoftware) -> None:
        self.fsw = fsw
        self.queue: deque[Job] = deque()
        self.running: Job | None = None
        self.completed = 0
        self.failed = 0
        self.aborted = 0
        self.last = LastJob()
        self.deferring = False
        self.faults_not_injected = 0

    def __len__(self) -> int:
        return len(self.queue) + (self.running is not None)

    def submit(self, job: Job) -> None:
        self.queue.append(job)

    def jobs(self) -> list[Job]:
        return ([self.running] if self.running else []) + list(self.queue)

    # --- scheduling ------------------------------------------------------------------

    def deferred(self) -> bool:
        """In eclipse with the battery below ECLIPSE_DEFER_SOC, jobs wait."""
        fsw = self.fsw
        limit = fsw.params[ParamId.ECLIPSE_DEFER_SOC] / 1000.0
        return fsw.env.eclipse and fsw.env.soc < limit

    def poll(self) -> None:
        """Advance the running job; start the next one when everything allows it."""
        fsw = self.fsw
        if self.running is not None:
            self._guarded(self._check, self.running)
        self.deferring = bool(self.queue) and self.deferred()
        while self.running is None and self.queue and not self.deferring:
            if fsw.mode == Mode.SAFE or not fsw.accelerator_idle():
                return
            self._guarded(self._launch, self.queue.popleft())

    def _guarded(self, step: Callable[[Job], None], job: Job) -> None:
        """Run a step of a job; a bug fails that job (INTERNAL_ERROR), not the software."""
        try:
            step(job)
        except Exception:
            self.fsw.log(f"INTERNAL ERROR in job {job.spec.job_id}:\n{traceback.format_exc()}")
            self.running = None
            self.failed += 1
            faults, missed = self._settle(job)
            self.last = LastJob(job.spec.job_id, JobStatus.FAILED, 0, 0, 0, 0, faults, missed)
            try:
                self.fsw.reset_accelerator()
            except Exception:
                self.fsw.log(f"accelerator reset failed:\n{traceback.format_exc()}")
            if not job.request.finished:
                job.request.fail(FailureCode.INTERNAL_ERROR, b"", self.fsw.now)

    def abort_all(self, why: str) -> None:
        """End every job with JOB_ABORTED (ABORT_JOB, RESET_ACCEL of a running job, SAFE)."""
        if self.running is not None:
            self.abort_running(why)
        while self.queue:
            self._end_aborted(self.queue.popleft(), why)

    def abort_running(self, why: str) -> None:
        job = self.running
        if job is None:
            return
        self.running = None
        self.fsw.reset_accelerator()
        self._end_aborted(job, why)

    def _end_aborted(self, job: Job, why: str) -> None:
        self.aborted += 1
        faults, missed = self._settle(job)
        self.last = LastJob(job.spec.job_id, JobStatus.ABORTED, 0, 0, 0, 0, faults, missed)
        self.fsw.log(f"job {job.spec.job_id} aborted: {why}")
        job.request.fail(FailureCode.JOB_ABORTED, b"", self.fsw.now)

    # --- one job ---------------------------------------------------------------------

    def _launch(self, job: Job) -> None:
        fsw, spec = self.fsw, job.spec
        self.running = job
        job.state = JobState.RUNNING
        try:
            job.descriptor = self._stage(job)
            fsw.driver.start(job.descriptor)
        except DriverError as exc:
            # The chip was idle a moment ago: it refusing the staging is a hang.
            fsw.log(f"job {spec.job_id}: staging refused: {exc}")
            self._timeout(job)
            return
        job.deadline = fsw.now + fsw.params.seconds(ParamId.JOB_TIMEOUT)
        fsw.events.raise_event(
            EventId.JOB_STARTED, spec.job_id, spec.function, spec.m, spec.k, spec.n
        )
        job.request.progress(fsw.now)
        self._check(job)

    def _stage(self, job: Job) -> Descriptor:
        """Put the operands into the scratchpad (unless already there); the descriptor."""
        fsw, spec = self.fsw, job.spec
        info = fsw.driver.info
        n = info.n
        if spec.source == OperandSource.ACCEL_SCRATCHPAD:
            return Descriptor(
                spec.m, spec.k, spec.n,
                a_addr=spec.a_addr // n, b_addr=spec.b_addr // n, c_addr=spec.c_addr // n,
                bias_addr=spec.bias_addr // n, bias=spec.bias, relu=spec.relu,
                out_int32=spec.out_int32, shift=spec.shift,
            )  # fmt: skip
        a_len, b_len, bias_len = spec.operand_bytes()
        if spec.source == OperandSource.INLINE:
            blob = spec.inline
            a_raw, b_raw = blob[:a_len], blob[a_len : a_len + b_len]
            bias_raw = blob[a_len + b_len :]
        else:
            a_raw = fsw.ram.read(spec.a_addr, a_len)
            b_raw = fsw.ram.read(spec.b_addr, b_len)
            bias_raw = fsw.ram.read(spec.bias_addr, bias_len)
        a = np.frombuffer(a_raw, dtype=np.int8).reshape(spec.m, spec.k)
        b = np.frombuffer(b_raw, dtype=np.int8).reshape(spec.k, spec.n)
        place = place_operands(
            n, info.bank_words, spec.m, spec.k, spec.n, bias=spec.bias, out_int32=spec.out_int32
        )
        words = [(place.a_addr, pack_a(a, n)), (place.b_addr, pack_b(b, n))]
        if spec.bias:
            bias = np.frombuffer(bias_raw, dtype=">i4").astype(np.int64)
            words.append((place.bias_addr, pack_bias(bias, n)))
        for addr, data in words:
            fsw.results.forget(MemoryId.ACCEL_SCRATCHPAD, addr * n, len(data) * n)
            fsw.driver.write_words(addr, data)
            job.staged_words += len(data)
        return Descriptor(
            spec.m, spec.k, spec.n, a_addr=place.a_addr, b_addr=place.b_addr,
            c_addr=place.c_addr, bias_addr=place.bias_addr, bias=spec.bias, relu=spec.relu,
            out_int32=spec.out_int32, shift=spec.shift,
        )  # fmt: skip

    def _check(self, job: Job) -> None:
        """Wait a while for the job's interrupt, then look at STATUS: a job still BUSY at
        its deadline (JOB_TIMEOUT) is a hung accelerator."""
        fsw = self.fsw
        try:
            fsw.driver.wait_for_interrupt(WAIT_CYCLES)
            status = fsw.driver.status()
        except DriverError as exc:
            fsw.log(f"job {job.spec.job_id}: STATUS unreadable: {exc}")
            self._timeout(job)
            return
        if status.busy:
            if fsw.now >= job.deadline:
                self._timeout(job)
            return
        self.running = None
        self._take_injection(job)
        fsw.driver.acknowledge()
        cycles, macs = fsw.driver.job_stats()
        self._book_energy(job, cycles, macs)
        if status.error or not status.done:
            # Idle without DONE: an upset sent the sequencer back to IDLE mid-job; what
            # the scratchpad holds is no result.
            self._fail(job, FailureCode.JOB_FAILED, status.err_code, cycles, macs)
            return
        job.request.progress(fsw.now)
        self._deliver(job, cycles, macs)

    def _book_energy(self, job: Job, cycles: int, macs: int) -> None:
        d = job.descriptor
        n = self.fsw.driver.info.n
        if d is None:  # no descriptor: no tile read
            accesses = job.staged_words + 2 * job.spec.spm_words(n)[3]
        else:
            accesses = gemm_spm_accesses(
                n, d.m, d.k, d.ncols, bool(d.bias), job.spec.out_int32, job.staged_words
            )
        self.fsw.env.add_energy(self.fsw.env.config.energy.job_energy_j(cycles, macs, accesses))

    def _deliver(self, job: Job, cycles: int, macs: int) -> None:
        """Read C back through ECC, keep it with its CRC where the host reads it from."""
        fsw, spec, d = self.fsw, job.spec, job.descriptor
        assert d is not None
        n = fsw.driver.info.n
        c_words = spec.spm_words(n)[3]
        words, bad = fsw.driver.read_matrix_words(d.c_addr, c_words)
        if bad:
            fsw.check_counters(now_address=bad[0] * n)
            self._fail(job, FailureCode.JOB_FAILED, ErrCode.ECC, cycles, macs)
            return
        if spec.c_memory == MemoryId.ACCEL_SCRATCHPAD:
            data = words.tobytes()
            address = d.c_addr * n
        else:
            c = unpack_c(words, spec.m, spec.n, spec.out_int32)
            data = c.astype(">i4" if spec.out_int32 else np.int8).tobytes()
            address = spec.c_addr
            fsw.ram.write(address, data)
        crc = crc32(data)
        if (
            spec.c_memory == MemoryId.FIRMWARE_RAM
            and crc32(fsw.ram.read(address, len(data))) != crc
        ):
            # The write did not stick (a damaged cell): detected before delivery.
            fsw.ram_error(address)
            self._fail(job, FailureCode.JOB_FAILED, ErrCode.ECC, cycles, macs)
            return
        fsw.results.add(Result(spec.job_id, spec.c_memory, address, len(data), crc))
        self.completed += 1
        faults, missed = self._settle(job)
        self.last = LastJob(
            spec.job_id, JobStatus.COMPLETED, 0, cycles, macs, crc, faults, missed
        )
        fsw.events.raise_event(
            EventId.JOB_COMPLETED, spec.job_id, cycles, macs, crc, faults, missed
        )
        job.request.complete(fsw.now)

    def _fail(self, job: Job, code: FailureCode, err: int, cycles: int = 0, macs: int = 0) -> None:
        """End a job with a failure; its result range is marked so nothing stale is read."""
        fsw, spec = self.fsw, job.spec
        self.running = None
        self.failed += 1
        status = JobStatus.TIMEOUT if code == FailureCode.TIMEOUT else JobStatus.FAILED
        faults, missed = self._settle(job)
        self.last = LastJob(spec.job_id, status, err, cycles, macs, 0, faults, missed)
        n = fsw.driver.info.n
        if spec.c_memory == MemoryId.ACCEL_SCRATCHPAD:
            length = spec.spm_words(n)[3] * n
        else:
            length = spec.c_ram_bytes()
        mark = err if code == FailureCode.JOB_FAILED else NO_RESULT
        fsw.results.add(Result(spec.job_id, spec.c_memory, spec.c_addr, length, 0, mark))
        if code == FailureCode.JOB_FAILED and err == ErrCode.ECC:
            fsw.check_counters(now_address=NO_ADDRESS)
        fsw.events.raise_event(EventId.JOB_FAILED, spec.job_id, code, err, faults, missed)
        data = bytes([err]) if code == FailureCode.JOB_FAILED else b""
        job.request.fail(code, data, fsw.now)
        if code != FailureCode.TIMEOUT:  # a timeout is counted as the SEFI it is
            fsw.anomaly(EventId.JOB_FAILED)

    def _take_injection(self, job: Job) -> None:
        """Ask the chip what became of the faults of a job that started, once it ended."""
        if job.state is JobState.RUNNING and job.injection is None:
            job.injection = self.fsw.chip.settle()

    def _settle(self, job: Job) -> tuple[int, int]:
        """Report the job's faults that were not injected, by reason, before the job's own
        end is reported, once; (faults scheduled for it, of them not injected)."""
        self._take_injection(job)
        tally, job.injection = job.injection, None
        if tally is None:
            return 0, 0
        for reason, count in sorted(tally.not_injected.items()):
            self.fsw.events.raise_event(
                EventId.FAULT_NOT_INJECTED, job.spec.job_id, reason, min(count, 0xFFFF),
                min(tally.scheduled, 0xFFFF),
            )  # fmt: skip
        self.faults_not_injected += tally.missed
        return min(tally.scheduled, 0xFFFF), min(tally.missed, 0xFFFF)

    def _timeout(self, job: Job) -> None:
        """The chip did not finish: a hung sequencer (SEFI). Reset it and fail the job."""
        self.running = None
        self.fsw.sefi_detected(job.spec.job_id)
        self._fail(job, FailureCode.TIMEOUT, 0)
