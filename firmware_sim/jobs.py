"""Accelerator jobs: the queue, staging of operands, the job watchdog, results with a CRC.

A job is accepted by service 8 (RUN_GEMM / RUN_LAYER), waits in a FIFO queue, runs when
the accelerator is idle, the mode allows it and the power does (in eclipse with a low
battery jobs wait), and ends in one of: completed (result verified and kept with its
CRC), failed (the chip reported an error, or the result read back was uncorrectable),
aborted, or timed out (the chip never said DONE: its sequencer hung). No result that
failed a check is ever written where the host reads results from.

A job from firmware RAM or inline whose operands and C do not fit the scratchpad at once
is tiled (``tile``): it runs as a sequence of chip jobs over blocks of C, one block
staged, started and read back per look at the running job, so that the link is served
between blocks. To the host it stays one job; its cycles, MACs and energy are the sums
over its blocks.

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


# --- tiling ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Block:
    """One chip job of a host job: rows ``row .. row + rows - 1`` of A and C, columns
    ``col .. col + cols - 1`` of B, the bias and C."""

    row: int
    rows: int
    col: int
    cols: int


class KTooLarge(ValueError):
    """Not even blocks of min(M, N) rows and min(Ncols, N) columns fit the scratchpad:
    K is too large (K is never split)."""


def _fits(
    array_n: int, bank_words: int, rows: int, k: int, cols: int, bias: bool, out_int32: bool
) -> bool:
    """Whether one chip job of ``rows`` x K x ``cols`` fits the scratchpad as the flight
    software places it (``place_operands``: A in bank 0, B in bank 1, C and the bias
    first-fit after them)."""
    if max(_blocks(rows, array_n), _blocks(cols, array_n)) * k > bank_words:
        return False  # A or B alone overflows its bank: no need to place the rest
    try:
        place_operands(array_n, bank_words, rows, k, cols, bias=bias, out_int32=out_int32)
    except ValueError:
        return False
    return True


def _sizes(total: int, array_n: int, most: int) -> list[int]:
    """Block sizes a dimension may be cut into, largest first: all of it, then every
    multiple of the array size below it; none above ``most``."""
    below = min(total - 1, most) // array_n * array_n
    return ([total] if total <= most else []) + list(range(below, 0, -array_n))


def block_size(spec: JobSpec, array_n: int, bank_words: int) -> tuple[int, int]:
    """Rows and columns of the blocks a job from firmware RAM or inline runs in (ICD
    15.6, "Tiling"); the last row and column blocks may be smaller.

    Columns first: all of them if blocks of min(M, N) rows with every column fit, else
    the largest multiple of N that does. Then rows: all of them, else the largest
    multiple of N that fits with those columns. A size fits when every block it cuts the
    job into fits. ``KTooLarge`` when not even min(M, N) rows and min(Ncols, N) columns
    fit.
    """
    m, ncols = spec.m, spec.n

    def fit(rows: int, cols: int) -> bool:
        return all(
            _fits(array_n, bank_words, r, spec.k, c, spec.bias, spec.out_int32)
            for r in {rows, m % rows or rows}
            for c in {cols, ncols % cols or cols}
        )

    first_rows = min(m, array_n)
    if not fit(first_rows, min(ncols, array_n)):
        raise KTooLarge(
            f"K = {spec.k} does not fit the scratchpad even in blocks of {first_rows} rows "
            f"and {min(ncols, array_n)} columns (N = {array_n}, {bank_words} words a bank)"
        )
    most = array_n * (bank_words // spec.k)  # A's or B's words alone fill a bank above
    cols = next(c for c in _sizes(ncols, array_n, most) if fit(first_rows, c))
    rows = next(r for r in _sizes(m, array_n, most) if fit(r, cols))
    return rows, cols


def tile(spec: JobSpec, array_n: int, bank_words: int) -> tuple[Block, ...]:
    """The chip jobs ``spec`` runs as, in order: row block by row block, and within one
    column block by column block. A job from the scratchpad is one block, as asked."""
    if spec.source == OperandSource.ACCEL_SCRATCHPAD:
        return (Block(0, spec.m, 0, spec.n),)
    rows, cols = block_size(spec, array_n, bank_words)
    return tuple(
        Block(r, min(rows, spec.m - r), c, min(cols, spec.n - c))
        for r in range(0, spec.m, rows)
        for c in range(0, spec.n, cols)
    )


# --- the queue -------------------------------------------------------------------------


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"


@dataclass(slots=True)
class Job:
    spec: JobSpec
    request: Request
    state: JobState = JobState.QUEUED
    deadline: float = 0.0
    """JOB_TIMEOUT after the START of the block that runs."""
    blocks: tuple[Block, ...] = ()
    index: int = 0
    """The block that runs (or ran last)."""
    descriptor: Descriptor | None = None
    """That block's descriptor."""
    staged_words: int = 0
    """Scratchpad words staged for that block."""
    operands: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
    """A, B and the bias as read when the job started (firmware RAM and inline jobs)."""
    c: np.ndarray | None = None
    """C as its blocks come back (firmware RAM: the whole of it; scratchpad: its words)."""
    cycles: int = 0
    macs: int = 0
    energy_j: float = 0.0
    """Sums over the blocks that ended."""
    injection: JobInjection | None = None
    """What became of the faults that waited for its blocks' STARTs (None: none started,
    or already reported)."""


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
    energy_j: float = 0.0


def _merged(a: JobInjection | None, b: JobInjection | None) -> JobInjection | None:
    if a is None or b is None:
        return b if a is None else a
    return JobInjection(a.scheduled + b.scheduled, a.not_injected + b.not_injected)


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
            self.last = self._last(job, JobStatus.FAILED)
            try:
                self.fsw.reset_accelerator()
            except Exception:
                self.fsw.log(f"accelerator reset failed:\n{traceback.format_exc()}")
            if not job.request.finished:
                job.request.fail(FailureCode.INTERNAL_ERROR, b"", self.fsw.now)

    def _last(self, job: Job, status: JobStatus, err: int = 0, crc: int = 0) -> LastJob:
        """The job's end for housekeeping; its faults are reported first (``_settle``)."""
        faults, missed = self._settle(job)
        return LastJob(
            job.spec.job_id, status, err, job.cycles, job.macs, crc, faults, missed, job.energy_j
        )

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
        self.last = self._last(job, JobStatus.ABORTED)
        self.fsw.log(f"job {job.spec.job_id} aborted: {why}")
        job.request.fail(FailureCode.JOB_ABORTED, b"", self.fsw.now)

    # --- one job ---------------------------------------------------------------------

    def _launch(self, job: Job) -> None:
        fsw, spec = self.fsw, job.spec
        self.running = job
        job.state = JobState.RUNNING
        info = fsw.driver.info
        job.blocks = tile(spec, info.n, info.bank_words)
        if spec.source != OperandSource.ACCEL_SCRATCHPAD:
            job.operands = self._operands(spec)
            job.c = np.zeros((spec.m, spec.n), dtype=np.int32 if spec.out_int32 else np.int8)
        if not self._start_block(job):
            return
        fsw.events.raise_event(
            EventId.JOB_STARTED, spec.job_id, spec.function, spec.m, spec.k, spec.n
        )
        job.request.progress(fsw.now)
        self._check(job)

    def _operands(self, spec: JobSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """A, B and the bias, read once from the TC or firmware RAM."""
        a_len, b_len, bias_len = spec.operand_bytes()
        if spec.source == OperandSource.INLINE:
            blob = spec.inline
            a_raw, b_raw = blob[:a_len], blob[a_len : a_len + b_len]
            bias_raw = blob[a_len + b_len :]
        else:
            ram = self.fsw.ram
            a_raw = ram.read(spec.a_addr, a_len)
            b_raw = ram.read(spec.b_addr, b_len)
            bias_raw = ram.read(spec.bias_addr, bias_len)
        a = np.frombuffer(a_raw, dtype=np.int8).reshape(spec.m, spec.k)
        b = np.frombuffer(b_raw, dtype=np.int8).reshape(spec.k, spec.n)
        bias = np.frombuffer(bias_raw, dtype=">i4").astype(np.int64) if spec.bias else None
        return a, b, bias

    def _start_block(self, job: Job) -> bool:
        """Stage the job's next block and START it; False if the chip refused (the job
        then timed out: a chip that was idle a moment ago refusing the staging is a hang)."""
        fsw = self.fsw
        job.descriptor, job.staged_words = None, 0
        try:
            job.descriptor = self._stage(job, job.blocks[job.index])
            fsw.driver.start(job.descriptor)
        except DriverError as exc:
            fsw.log(f"job {job.spec.job_id}: staging refused: {exc}")
            self._timeout(job)
            return False
        job.deadline = fsw.now + fsw.params.seconds(ParamId.JOB_TIMEOUT)
        return True

    def _stage(self, job: Job, block: Block) -> Descriptor:
        """Put a block's operands into the scratchpad (unless already there); its descriptor."""
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
        assert job.operands is not None
        a, b, bias = job.operands
        rows = slice(block.row, block.row + block.rows)
        cols = slice(block.col, block.col + block.cols)
        place = place_operands(
            n, info.bank_words, block.rows, spec.k, block.cols,
            bias=spec.bias, out_int32=spec.out_int32,
        )  # fmt: skip
        words = [(place.a_addr, pack_a(a[rows], n)), (place.b_addr, pack_b(b[:, cols], n))]
        if bias is not None:
            words.append((place.bias_addr, pack_bias(bias[cols], n)))
        for addr, data in words:
            fsw.results.forget(MemoryId.ACCEL_SCRATCHPAD, addr * n, len(data) * n)
            fsw.driver.write_words(addr, data)
            job.staged_words += len(data)
        return Descriptor(
            block.rows, spec.k, block.cols, a_addr=place.a_addr, b_addr=place.b_addr,
            c_addr=place.c_addr, bias_addr=place.bias_addr, bias=spec.bias, relu=spec.relu,
            out_int32=spec.out_int32, shift=spec.shift,
        )  # fmt: skip

    def _check(self, job: Job) -> None:
        """Wait a while for the running block's interrupt, then look at STATUS: a block
        still BUSY at its deadline (JOB_TIMEOUT) is a hung accelerator. A block that
        ended well is taken in and the next one started; after the last, the job ends."""
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
        self._take_injection(job)
        fsw.driver.acknowledge()
        self._book(job, *fsw.driver.job_stats())
        if status.error or not status.done:
            # Idle without DONE: an upset sent the sequencer back to IDLE mid-job; what
            # the scratchpad holds is no result.
            self._fail(job, FailureCode.JOB_FAILED, status.err_code)
            return
        if not self._take_block(job):
            return
        job.index += 1
        if job.index < len(job.blocks):
            self._start_block(job)  # looked at in the next poll: the link is served
            return
        self.running = None
        job.request.progress(fsw.now)
        self._deliver(job)

    def _book(self, job: Job, cycles: int, macs: int) -> None:
        """Add a block's CYCLES, MACS and energy (the energy model's) to the job's."""
        d = job.descriptor
        assert d is not None
        accesses = gemm_spm_accesses(
            self.fsw.driver.info.n, d.m, d.k, d.ncols, d.bias, d.out_int32, job.staged_words
        )
        joules = self.fsw.env.config.energy.job_energy_j(cycles, macs, accesses)
        self.fsw.env.add_energy(joules)
        job.cycles += cycles
        job.macs += macs
        job.energy_j += joules

    def _take_block(self, job: Job) -> bool:
        """Read the block's C back through ECC into the job's C (in firmware RAM, at its
        rows and columns of the row-major C); False if a word was uncorrectable (the job
        then failed)."""
        fsw, spec, d = self.fsw, job.spec, job.descriptor
        assert d is not None
        n = fsw.driver.info.n
        c_words = gemm_spm_words(n, d.m, d.k, d.ncols, d.bias, d.out_int32)[3]
        words, bad = fsw.driver.read_matrix_words(d.c_addr, c_words)
        if bad:
            fsw.check_counters(now_address=bad[0] * n)
            self._fail(job, FailureCode.JOB_FAILED, ErrCode.ECC)
            return False
        if spec.c_memory == MemoryId.ACCEL_SCRATCHPAD:
            job.c = words
            return True
        block = job.blocks[job.index]
        c = unpack_c(words, block.rows, block.cols, spec.out_int32)
        assert job.c is not None
        job.c[block.row : block.row + block.rows, block.col : block.col + block.cols] = c
        if job.index == 0:
            # From now on the range holds part of this result and nothing older: no
            # delivery from it until the job completes.
            fsw.results.add(
                Result(spec.job_id, MemoryId.FIRMWARE_RAM, spec.c_addr, spec.c_ram_bytes(), 0,
                       NO_RESULT)
            )  # fmt: skip
        w = 4 if spec.out_int32 else 1
        raw = c.astype(">i4" if spec.out_int32 else np.int8).tobytes()
        if block.cols == spec.n:  # whole rows: one stretch of the row-major C
            fsw.ram.write(spec.c_addr + block.row * spec.n * w, raw)
        else:
            span = block.cols * w
            for i in range(block.rows):
                address = spec.c_addr + ((block.row + i) * spec.n + block.col) * w
                fsw.ram.write(address, raw[i * span : (i + 1) * span])
        return True

    def _deliver(self, job: Job) -> None:
        """Keep C with its CRC where the host reads it from (in firmware RAM once it reads
        back as computed)."""
        fsw, spec, d = self.fsw, job.spec, job.descriptor
        assert d is not None and job.c is not None
        if spec.c_memory == MemoryId.ACCEL_SCRATCHPAD:
            data = job.c.tobytes()
            address = d.c_addr * fsw.driver.info.n
        else:
            data = job.c.astype(">i4" if spec.out_int32 else np.int8).tobytes()
            address = spec.c_addr
        crc = crc32(data)
        if (
            spec.c_memory == MemoryId.FIRMWARE_RAM
            and crc32(fsw.ram.read(address, len(data))) != crc
        ):
            # A write did not stick, or a block already written was upset: detected
            # before delivery.
            fsw.ram_error(address)
            self._fail(job, FailureCode.JOB_FAILED, ErrCode.ECC)
            return
        fsw.results.add(Result(spec.job_id, spec.c_memory, address, len(data), crc))
        self.completed += 1
        self.last = self._last(job, JobStatus.COMPLETED, crc=crc)
        fsw.events.raise_event(
            EventId.JOB_COMPLETED, spec.job_id, _u32(job.cycles), _u32(job.macs), crc,
            self.last.faults, self.last.not_injected,
        )  # fmt: skip
        job.request.complete(fsw.now)

    def _fail(self, job: Job, code: FailureCode, err: int) -> None:
        """End a job with a failure; its result range is marked so nothing stale is read."""
        fsw, spec = self.fsw, job.spec
        self.running = None
        self.failed += 1
        status = JobStatus.TIMEOUT if code == FailureCode.TIMEOUT else JobStatus.FAILED
        self.last = self._last(job, status, err)
        n = fsw.driver.info.n
        if spec.c_memory == MemoryId.ACCEL_SCRATCHPAD:
            length = spec.spm_words(n)[3] * n
        else:
            length = spec.c_ram_bytes()
        mark = err if code == FailureCode.JOB_FAILED else NO_RESULT
        fsw.results.add(Result(spec.job_id, spec.c_memory, spec.c_addr, length, 0, mark))
        if code == FailureCode.JOB_FAILED and err == ErrCode.ECC:
            fsw.check_counters(now_address=NO_ADDRESS)
        fsw.events.raise_event(
            EventId.JOB_FAILED, spec.job_id, code, err, self.last.faults, self.last.not_injected
        )
        data = bytes([err]) if code == FailureCode.JOB_FAILED else b""
        job.request.fail(code, data, fsw.now)
        if code != FailureCode.TIMEOUT:  # a timeout is counted as the SEFI it is
            fsw.anomaly(EventId.JOB_FAILED)

    def _take_injection(self, job: Job) -> None:
        """Ask the chip what became of the faults of the block that started, once it ended
        (a block started since the last ask: the chip answers None otherwise)."""
        if job.state is JobState.RUNNING:
            job.injection = _merged(job.injection, self.fsw.chip.settle())

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


def _u32(value: int) -> int:
    """A sum as a u32 field: saturated."""
    return min(value, 0xFFFF_FFFF)
