"""``Target``: what a test or an engineer does with a target, over a ``host.link.Link``.

Each method builds the TCs of docs/ICD.md section 15 (with ``protocol.payloads``), sends
them through the link and returns what the TM says, decoded. Refusals and silence raise
the link's ``CommandFailed`` / ``CommandTimeout``; a transfer split over several TCs adds a
note naming the chunk. Bulk transfers keep every chunk in flight through the link's
window, and report progress as ``progress(octets_done, octets_total)``.
"""

from __future__ import annotations

import itertools
import random
import struct
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from host.commands import Authenticator, Completion
from host.errors import CommandError, CommandFailed, HostError
from host.failures import FAULT_REFUSALS, MAX_DIM
from host.history import NOW, Received, Start
from host.history import event as event_predicate
from host.link import Link
from host.telemetry import EventReport, Housekeeping
from protocol.auth import derive_key
from protocol.codes import (
    AckFlags,
    EventId,
    EventSubtype,
    FaultInjectionSubtype,
    FunctionId,
    HousekeepingSubtype,
    KeySubtype,
    MemoryId,
    MemorySubtype,
    Mode,
    ParameterSubtype,
    Service,
    TestSubtype,
)
from protocol.crc import crc16_ccitt_false
from protocol.packets import MAX_TC_APP_DATA, Telemetry
from protocol.payloads import (
    JOB_HEADER_LEN,
    LAYER_HEADER_LEN,
    MAX_DUMP_LEN,
    MAX_FAULT_RECORDS,
    CheckReport,
    DumpReport,
    EventSelector,
    FaultRecord,
    HkStructure,
    LayerFlags,
    OperandSource,
    ParamId,
    event_selection,
    fault_records,
    function,
    hk_intervals,
    hk_structures,
    job,
    key_derivation,
    layer_flags,
    memory_check,
    memory_dump,
    memory_load,
    parameter_ids,
    parameter_values,
    read_fault_list,
    read_parameter_values,
)

Progress = Callable[[int, int], None]
"""Called as ``progress(octets_done, octets_total)`` after each chunk."""

LOAD_CHUNK = 2000
"""Octets per TC[6,2]: fits with its header and auth trailer, whole words for N <= 16."""
FIRMWARE_RAM_SIZE = 65536
"""Octets of FIRMWARE_RAM (ICD 15.5)."""
REPORT_RETRIES = 2
"""Times a request is sent again when its TM report was lost (TM is never retransmitted)."""
BOOT_TIMEOUT_S = 15.0


class ReportMissing(HostError):
    """A request completed but the TM it should have produced never arrived."""


class TransferMismatch(HostError):
    """Read-back or check of a transfer disagrees with what was sent."""


def _chunks(address: int, length: int, size: int) -> list[tuple[int, int]]:
    return [(address + pos, min(size, length - pos)) for pos in range(0, length, size)]


def integer_array(name: str, value: object, dtype: type[np.integer]) -> np.ndarray:
    """``value`` (``name``d in errors) as an array of ``dtype``. Floats are taken only when
    every one is a whole number: a fraction is refused, never truncated; so are values
    outside the type, and anything not a number."""
    m = np.asarray(value)
    info = np.iinfo(dtype)
    allowed = f"integers ({info.min}..{info.max})"
    if m.dtype.kind == "f":
        broken = ~np.isfinite(m) | (m != np.round(m))
        if broken.any():
            at = [int(i) for i in np.argwhere(broken)[0]]
            raise ValueError(
                f"{name} holds {m.dtype} values that are not whole numbers ({m[tuple(at)]} at "
                f"{at}); it must hold {allowed}: round and convert it first if that is meant"
            )
    elif m.dtype.kind not in "iub":
        raise ValueError(f"{name} holds {m.dtype} values; it must hold {allowed}")
    if m.size and (m.min() < info.min or m.max() > info.max):
        raise ValueError(
            f"{name} must hold {info.dtype} values ({info.min}..{info.max}), "
            f"got {m.min()}..{m.max()}"
        )
    return m.astype(dtype)


def _int8_matrix(name: str, value: object) -> np.ndarray:
    m = integer_array(name, value, np.int8)
    if m.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {m.shape}")
    for what, size in zip(("rows", "columns"), m.shape, strict=True):
        if not 1 <= size <= MAX_DIM:
            raise ValueError(f"{name} has {size} {what}: a job's M, K and N are 1..{MAX_DIM}")
    return m


def check_memory_range(
    memory: MemoryId | int, address: int, length: int, size: int, word: int = 1
) -> None:
    """ValueError unless ``length`` octets from ``address`` lie in a memory of ``size``
    octets, in whole words of ``word`` octets (the scratchpad's N, ICD 15.5): what a load
    or a dump checks before its first chunk, so that none is sent in vain."""
    name = _memory_name(memory)
    if not 0 <= address < size:
        raise ValueError(
            f"address {address:,} is outside {name}: 0..{size - 1:,} ({size:,} octets)"
        )
    if not 1 <= length <= size - address:
        raise ValueError(
            f"{length:,} octets at {address:,} do not fit {name} ({size:,} octets): the "
            f"length must be 1..{size - address:,} from there"
        )
    for what, value in (("address", address), ("length", length)):
        if value % word:
            raise ValueError(
                f"{what} {value:,} is not a whole number of {word}-octet words: {name} is "
                f"read and written by word (N = {word})"
            )


def k_limit(array_n: int, bank_words: int, m: int, n: int, bias: bool, out_int32: bool) -> int:
    """The largest K of an M x K x N job from FIRMWARE_RAM or inline operands on a chip of
    array size ``array_n`` and ``bank_words`` words a bank: its blocks of min(M, N) rows
    need K words of A in bank 0 and of B in bank 1, and room for C (and the bias) beside
    one of them; K is never split (ICD 15.6, "Tiling")."""
    return bank_words - max((4 if out_int32 else 1) * min(m, array_n), 4 if bias else 0)


@dataclass(frozen=True, slots=True)
class JobLayout:
    """A job as ``Target.run_gemm`` / ``run_layer`` send it: its operands and where they
    and C go in FIRMWARE_RAM (octet addresses; inline operands travel in the TC)."""

    m: int
    k: int
    n: int
    operands: bytes
    inline: bool
    a_addr: int
    b_addr: int
    bias_addr: int
    c_addr: int
    c_len: int


def job_layout(
    fid: FunctionId,
    a: object,
    b: object,
    bias: object | None = None,
    *,
    out_int32: bool,
    ram_base: int = 0,
    inline: bool | None = None,
) -> JobLayout:
    """Check a job's operands on the host and place them (nothing is sent); ValueError
    names what is wrong: not int8 matrices (int32 for the bias), shapes that do not
    match, dimensions outside 1..4095, or more than FIRMWARE_RAM holds."""
    am, bm = _int8_matrix("A", a), _int8_matrix("B", b)
    (m, k), (k2, n) = am.shape, bm.shape
    if k != k2:
        raise ValueError(f"A is {m} x {k} and B is {k2} x {n}: K differs")
    bias_bytes = b""
    if bias is not None:
        bv = integer_array("the bias", bias, np.int32).reshape(-1)
        if bv.shape != (n,):
            raise ValueError(f"the bias must hold N = {n} values, got {bv.size}")
        bias_bytes = bv.astype(">i4").tobytes()
    c_len = m * n * (4 if out_int32 else 1)
    operands = am.tobytes() + bm.tobytes() + bias_bytes
    header = JOB_HEADER_LEN if fid == FunctionId.RUN_GEMM else LAYER_HEADER_LEN
    fits = header + len(operands) <= MAX_TC_APP_DATA
    if inline is None:
        inline = fits
    elif inline and not fits:
        raise ValueError(f"{len(operands)} octets of operands do not fit one TC inline")
    a_addr = b_addr = bias_addr = 0
    if inline:
        c_addr = ram_base
    else:
        a_addr = ram_base
        b_addr = a_addr + am.size
        bias_addr = b_addr + bm.size
        c_addr = bias_addr + len(bias_bytes)
        c_addr += -c_addr % 4
    if c_addr + c_len > FIRMWARE_RAM_SIZE:
        raise ValueError(
            f"operands and result need {c_addr + c_len - ram_base:,} octets of FIRMWARE_RAM "
            f"from {ram_base}; it has {FIRMWARE_RAM_SIZE:,}"
        )
    return JobLayout(m, k, n, operands, inline, a_addr, b_addr, bias_addr, c_addr, c_len)


class Target:
    """A target behind ``link`` (opened by the caller; ``Target`` never closes it)."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self._job_ids = itertools.count(random.randrange(1, 0x8000))
        self._scratchpad: tuple[int, int] | None = None

    # --- plumbing ---------------------------------------------------------------------------

    def send(
        self,
        service: int,
        subtype: int,
        app_data: bytes = b"",
        *,
        ack: AckFlags = AckFlags.ALL,
        timeout: float | None = None,
    ) -> Completion:
        """Send one TC and wait for it (hazardous ones are signed by the link, which also
        sends one refused with AUTH_REPLAY once more, above the target's last number)."""
        return self.link.send(service, subtype, app_data, ack=ack, timeout=timeout)

    def _submit_all(self, commands: Sequence[tuple[int, int, bytes]]) -> list[Future[Completion]]:
        return [self.link.submit(s, t, d) for s, t, d in commands]

    @staticmethod
    def _report(completion: Completion, service: int, subtype: int) -> list[Telemetry]:
        return [t for t in completion.reports if (t.service, t.subtype) == (service, subtype)]

    def _request_report(
        self, service: int, subtype: int, app_data: bytes, report: tuple[int, int], need: int = 1
    ) -> tuple[Completion, list[Telemetry]]:
        """Send a request that answers with ``need`` TM ``report``; ask again if one was lost
        (TM is never retransmitted, ICD 6)."""
        for _ in range(REPORT_RETRIES + 1):
            completion = self.send(service, subtype, app_data)
            found = self._report(completion, *report)
            if len(found) >= need:
                return completion, found
        raise ReportMissing(
            f"{completion.command} on {self.link.port} completed {REPORT_RETRIES + 1} times but no "
            f"TM[{report[0]},{report[1]}] arrived with it (lost TM: {self.link.stats.tm_lost})"
        )

    # --- service 17 ---------------------------------------------------------------------------

    def ping(self) -> float:
        """TC[17,1]; the round trip in seconds (first transmission to completion)."""
        completion, _ = self._request_report(
            Service.TEST, TestSubtype.PING, b"", (Service.TEST, TestSubtype.PING_REPORT)
        )
        return completion.elapsed

    # --- service 3 ----------------------------------------------------------------------------

    def housekeeping(self, structure: HkStructure | int = HkStructure.SYSTEM) -> Housekeeping:
        """A one-shot TM[3,25] of ``structure``, decoded with its units (ICD 15.3)."""
        return self.housekeeping_many([structure])[HkStructure(structure)]

    def housekeeping_many(
        self, structures: Iterable[HkStructure | int] = tuple(HkStructure)
    ) -> dict[HkStructure, Housekeeping]:
        """One-shot reports of several structures with one TC[3,27]."""
        sids = [HkStructure(s) for s in structures]
        _, tms = self._request_report(
            Service.HOUSEKEEPING, HousekeepingSubtype.ONE_SHOT, hk_structures(sids),
            (Service.HOUSEKEEPING, HousekeepingSubtype.HK_REPORT), len(sids),
        )  # fmt: skip
        out = {}
        for tm in tms:
            report = Housekeeping.from_source_data(tm.source_data, tm.time)
            out[report.structure] = report
        missing = [s.name for s in sids if s not in out]
        if missing:
            raise ReportMissing(f"one-shot housekeeping on {self.link.port}: no {missing}")
        return out

    def set_periodic(self, structures: Iterable[HkStructure | int], enabled: bool) -> None:
        """TC[3,5] / TC[3,6]: switch periodic reports of ``structures`` on or off."""
        sub = HousekeepingSubtype.DISABLE_PERIODIC
        if enabled:
            sub = HousekeepingSubtype.ENABLE_PERIODIC
        self.send(Service.HOUSEKEEPING, sub, hk_structures(list(structures)))

    def set_interval(self, structure: HkStructure | int, ms: int) -> None:
        """TC[3,31]: the collection interval of ``structure`` in ms."""
        self.send(
            Service.HOUSEKEEPING, HousekeepingSubtype.MODIFY_INTERVAL,
            hk_intervals([(structure, ms)]),
        )  # fmt: skip

    # --- service 5 ----------------------------------------------------------------------------

    def await_event(
        self,
        event_id: EventId | int | None = None,
        *,
        timeout: float = 5.0,
        start: Start = None,
        where: Callable[[EventReport], bool] | None = None,
    ) -> EventReport | None:
        """The first event report (of ``event_id``, matching ``where``) from ``start``, or
        None at the deadline."""
        found = self.events(event_id, count=1, timeout=timeout, start=start, where=where)
        return found[0] if found else None

    def events(
        self,
        event_id: EventId | int | None = None,
        *,
        count: int | None = None,
        timeout: float = 5.0,
        start: Start = None,
        where: Callable[[EventReport], bool] | None = None,
    ) -> list[EventReport]:
        """Event reports from ``start`` (None: all the link still holds; ``NOW``: from now):
        the first ``count`` (fewer if the deadline passes), or with no count all that came
        by the deadline."""
        predicate = _event_match(event_id, where)
        mark = self.link.history.mark() if start == NOW else start
        if count is not None:
            found = self.link.await_tm_count(predicate, count, timeout, start=mark)
            if found is not None:
                return [EventReport.from_received(r) for r in found]
        else:
            # Collect for the whole window: wait on the history for a TM that never matches.
            self.link.await_tm(lambda r: False, timeout, start=NOW)
        items = [r for r in self.link.history.items(mark) if predicate(r)]
        return [EventReport.from_received(r) for r in items[:count]]

    def set_events(
        self, enabled: bool, selector: EventSelector = EventSelector.ALL, ids: Sequence[int] = ()
    ) -> None:
        """TC[5,5] / TC[5,6]: enable or disable event reports (a severity, all, or listed)."""
        sub = EventSubtype.ENABLE_REPORTS if enabled else EventSubtype.DISABLE_REPORTS
        self.send(Service.EVENT_REPORTING, sub, event_selection(selector, ids))

    # --- service 6 ----------------------------------------------------------------------------

    def array_n(self) -> int:
        """The systolic array size N (HK ACCELERATOR), read once."""
        return self.scratchpad()[0]

    def scratchpad(self) -> tuple[int, int]:
        """The array size N and the scratchpad's words (N octets each; two banks), from HK
        ACCELERATOR, read once."""
        if self._scratchpad is None:
            hk = self.housekeeping(HkStructure.ACCELERATOR)
            self._scratchpad = int(hk["array_n"]), int(hk["spm_words"])
        return self._scratchpad

    def memory_size(self, memory: MemoryId | int) -> int:
        """Octets of ``memory`` (the scratchpad's read from the target once)."""
        if memory == MemoryId.ACCEL_SCRATCHPAD:
            n, words = self.scratchpad()
            return n * words
        return FIRMWARE_RAM_SIZE

    def check_range(self, memory: MemoryId | int, address: int, length: int) -> None:
        """``check_memory_range`` with the target's sizes (the scratchpad's read once)."""
        word = self.array_n() if memory == MemoryId.ACCEL_SCRATCHPAD else 1
        check_memory_range(memory, address, length, self.memory_size(memory), word)

    def check_fits(self, m: int, k: int, n: int, *, bias: bool, out_int32: bool) -> None:
        """ValueError, with the words each part needs, unless an M x K x N job from
        FIRMWARE_RAM fits the target's scratchpad at least in blocks (ICD 15.6)."""
        array_n, words = self.scratchpad()
        bank = words // 2
        most = k_limit(array_n, bank, m, n, bias, out_int32)
        if k <= most:
            return
        rows = min(m, array_n)
        c_words = (4 if out_int32 else 1) * rows
        raise ValueError(
            f"the job does not fit in the scratchpad: a block of {rows} rows needs K = {k:,} "
            f"words of A in bank 0 and of B in bank 1, and {c_words} of C"
            f"{' and 4 of the bias' if bias else ''} beside them; a bank has {bank:,} words. "
            f"K is never split: it can be at most {max(most, 0):,} for this job"
        )

    def load(
        self,
        memory: MemoryId | int,
        address: int,
        data: bytes,
        *,
        progress: Progress | None = None,
        verify: bool = False,
    ) -> None:
        """TC[6,2] in chunks, all in flight through the window; ``verify`` checks the range
        afterwards (TC[6,9]) against the CRC of ``data``."""
        data = bytes(data)
        if not data:
            raise ValueError("load: no data")
        chunks = _chunks(address, len(data), LOAD_CHUNK)
        commands = [
            (Service.MEMORY_MANAGEMENT, MemorySubtype.LOAD,
             memory_load(memory, a, data[a - address : a - address + n]))
            for a, n in chunks
        ]  # fmt: skip
        self._transfer(memory, chunks, self._submit_all(commands), progress, "load")
        if verify:
            self.verify(memory, address, data)

    def dump(
        self, memory: MemoryId | int, address: int, length: int, *, progress: Progress | None = None
    ) -> bytes:
        """TC[6,5] in chunks of at most 2016 octets, all in flight; the data read."""
        if length < 1:
            raise ValueError(f"dump: length must be positive, got {length}")
        chunks = _chunks(address, length, MAX_DUMP_LEN)
        commands = [
            (Service.MEMORY_MANAGEMENT, MemorySubtype.DUMP, memory_dump(memory, a, n))
            for a, n in chunks
        ]
        completions = self._transfer(memory, chunks, self._submit_all(commands), progress, "dump")
        out = bytearray()
        for (a, n), completion in zip(chunks, completions, strict=True):
            out += self._dumped(memory, a, n, completion).data
        return bytes(out)

    def dump_report(self, memory: MemoryId | int, address: int, length: int) -> DumpReport:
        """One TC[6,5] (length up to 2016): the whole TM[6,6], uncorrectable count included."""
        _, (tm, *_) = self._request_report(
            Service.MEMORY_MANAGEMENT, MemorySubtype.DUMP, memory_dump(memory, address, length),
            (Service.MEMORY_MANAGEMENT, MemorySubtype.DUMP_REPORT),
        )  # fmt: skip
        return DumpReport.unpack(tm.source_data)

    def _dumped(self, memory: int, address: int, length: int, completion: Completion) -> DumpReport:
        for tm in self._report(completion, Service.MEMORY_MANAGEMENT, MemorySubtype.DUMP_REPORT):
            report = DumpReport.unpack(tm.source_data)
            if (report.memory, report.address, report.length) == (memory, address, length):
                return report
        return self.dump_report(memory, address, length)  # its TM[6,6] was lost: ask again

    def _transfer(
        self,
        memory: int,
        chunks: list[tuple[int, int]],
        futures: list[Future[Completion]],
        progress: Progress | None,
        what: str,
    ) -> list[Completion]:
        total = sum(n for _, n in chunks)
        done = 0
        results: list[Completion] = []
        first_error: CommandError | None = None
        for i, ((a, n), future) in enumerate(zip(chunks, futures, strict=True)):
            try:
                results.append(future.result())
            except CommandError as exc:
                if first_error is None:
                    name = _memory_name(memory)
                    exc.add_note(
                        f"{what} chunk {i + 1} of {len(chunks)}: {n} octets at {a} of {name}"
                    )
                    first_error = exc
                continue
            done += n
            if progress is not None:
                progress(done, total)
        if first_error is not None:
            raise first_error
        return results

    def check(self, memory: MemoryId | int, address: int, length: int) -> CheckReport:
        """TC[6,9]: CRC-16 of the range as the target reads it (one TC: its length is u32)."""
        _, (tm, *_) = self._request_report(
            Service.MEMORY_MANAGEMENT, MemorySubtype.CHECK, memory_check(memory, address, length),
            (Service.MEMORY_MANAGEMENT, MemorySubtype.CHECK_REPORT),
        )  # fmt: skip
        return CheckReport.unpack(tm.source_data)

    def verify(self, memory: MemoryId | int, address: int, data: bytes) -> CheckReport:
        """Check that the target holds ``data`` at ``address``; raises TransferMismatch."""
        report = self.check(memory, address, len(data))
        expected = crc16_ccitt_false(data)
        if report.checksum != expected or report.uncorrectable:
            raise TransferMismatch(
                f"{_memory_name(memory)} {len(data)} octets at {address} on {self.link.port}: "
                f"target checksum {report.checksum:#06x}, expected {expected:#06x}, "
                f"{report.uncorrectable} uncorrectable words"
            )
        return report

    # --- service 8 ----------------------------------------------------------------------------

    def perform(
        self, function_id: FunctionId, args: bytes = b"", *, timeout: float | None = None
    ) -> Completion:
        """TC[8,1] of any function (signed by the link when hazardous)."""
        return self.send(
            Service.FUNCTION_MANAGEMENT, 1, function(function_id, args), timeout=timeout
        )

    def next_job_id(self) -> int:
        return next(self._job_ids) & 0xFFFF

    def run_gemm(
        self,
        a: object,
        b: object,
        *,
        job_id: int | None = None,
        ram_base: int = 0,
        inline: bool | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """C = A . B on the accelerator (int32, M x N), read back with dumps (ICD 15.6).

        Operands travel inline when they fit one TC (or ``inline`` says so), else they are
        loaded into FIRMWARE_RAM from ``ram_base`` (A, B, then C).
        """
        return self._run(FunctionId.RUN_GEMM, a, b, None, LayerFlags.OUT_INT32, 0, job_id,
                         ram_base, inline, progress)  # fmt: skip

    def run_layer(
        self,
        a: object,
        b: object,
        bias: object | None = None,
        *,
        relu: bool = False,
        shift: int = 0,
        out_int32: bool = False,
        job_id: int | None = None,
        ram_base: int = 0,
        inline: bool | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """One NN layer: requantize(ReLU(A . B + bias) >> shift), int8 (int32 with
        ``out_int32``), M x N, as the chip computes it."""
        flags = layer_flags(bias is not None, relu, out_int32)
        return self._run(FunctionId.RUN_LAYER, a, b, bias, flags, shift, job_id, ram_base,
                         inline, progress)  # fmt: skip

    def run_layer_in_ram(
        self,
        m: int,
        k: int,
        n: int,
        *,
        a: int,
        b: int,
        c: int,
        bias: int | None = None,
        relu: bool = False,
        shift: int = 0,
        out_int32: bool = False,
        job_id: int | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """One NN layer on operands already in FIRMWARE_RAM at octet addresses ``a``, ``b``
        (and ``bias``), its C written at ``c`` (ICD 15.6); nothing is loaded or read back,
        so that layers chain through the target's memory."""
        for name, value in (("M", m), ("K", k), ("N", n)):
            if not 1 <= value <= MAX_DIM:
                raise ValueError(f"{name} must be 1..{MAX_DIM}, got {value}")
        if not 0 <= shift <= 31:
            raise ValueError(f"shift must be 0..31, got {shift}")
        flags = layer_flags(bias is not None, relu, out_int32)
        job_id = self.next_job_id() if job_id is None else job_id
        return self.send(
            Service.FUNCTION_MANAGEMENT, 1,
            job(FunctionId.RUN_LAYER, job_id, OperandSource.FIRMWARE_RAM, m, k, n, a=a, b=b,
                c=c, bias=bias or 0, flags=flags, shift=shift),
            timeout=timeout,
        )  # fmt: skip

    def _run(
        self,
        fid: FunctionId,
        a: object,
        b: object,
        bias: object | None,
        flags: LayerFlags,
        shift: int,
        job_id: int | None,
        ram_base: int,
        inline: bool | None,
        progress: Progress | None,
    ) -> np.ndarray:
        out_int32 = bool(flags & LayerFlags.OUT_INT32)
        plan = job_layout(fid, a, b, bias, out_int32=out_int32, ram_base=ram_base,
                          inline=inline)  # fmt: skip
        self.check_fits(plan.m, plan.k, plan.n, bias=bias is not None, out_int32=out_int32)
        job_id = self.next_job_id() if job_id is None else job_id
        source = OperandSource.INLINE if plan.inline else OperandSource.FIRMWARE_RAM
        if not plan.inline:
            self.load(MemoryId.FIRMWARE_RAM, plan.a_addr, plan.operands, progress=progress)
        self.send(
            Service.FUNCTION_MANAGEMENT, 1,
            job(fid, job_id, source, plan.m, plan.k, plan.n, a=plan.a_addr, b=plan.b_addr,
                c=plan.c_addr, bias=plan.bias_addr, flags=flags, shift=shift,
                inline=plan.operands if plan.inline else b""),
        )  # fmt: skip
        raw = self.dump(MemoryId.FIRMWARE_RAM, plan.c_addr, plan.c_len)
        dtype = ">i4" if out_int32 else "i1"
        return np.frombuffer(raw, dtype=dtype).reshape(plan.m, plan.n).astype(
            dtype.replace(">", "<")
        )

    def abort_job(self) -> None:
        """ABORT_JOB: the running job and every queued one end with JOB_ABORTED."""
        self.perform(FunctionId.ABORT_JOB)

    def reset_accelerator(self) -> None:
        """RESET_ACCEL (hazardous): soft-reset the chip."""
        self.perform(FunctionId.RESET_ACCEL)

    def scrub_now(self) -> None:
        """SCRUB_NOW: one scrub pass over the whole scratchpad."""
        self.perform(FunctionId.SCRUB_NOW)

    def clear_counters(self) -> None:
        """CLEAR_COUNTERS: EDAC, TMR, scrub, link and RAM error counters to 0."""
        self.perform(FunctionId.CLEAR_COUNTERS)

    def mode(self, new: Mode | int | None = None) -> Mode:
        """Change mode with SET_MODE (hazardous) when ``new`` is given; the mode now."""
        if new is not None:
            self.perform(FunctionId.SET_MODE, struct.pack("!B", Mode(new)))
            return Mode(new)
        return Mode(self.housekeeping(HkStructure.SYSTEM)["mode"])

    def reset(self, *, timeout: float = BOOT_TIMEOUT_S) -> EventReport:
        """RESET (hazardous): the target reboots; its BOOT event."""
        mark = self.link.history.mark()
        self.perform(FunctionId.RESET)
        boot = self.await_event(EventId.BOOT, timeout=timeout, start=mark)
        if boot is None:
            raise ReportMissing(f"{self.link.port}: no BOOT event within {timeout} s of RESET")
        self._scratchpad = None
        return boot

    # --- service 20 ---------------------------------------------------------------------------

    def get_parameters(self, ids: Iterable[ParamId | int]) -> dict[ParamId, int]:
        """TC[20,1]: the values of ``ids``."""
        _, (tm, *_) = self._request_report(
            Service.PARAMETER_MANAGEMENT, ParameterSubtype.REPORT_VALUES,
            parameter_ids([ParamId(p) for p in ids]),
            (Service.PARAMETER_MANAGEMENT, ParameterSubtype.VALUES_REPORT),
        )  # fmt: skip
        return read_parameter_values(tm.source_data)

    def get_parameter(self, pid: ParamId | int) -> int:
        """TC[20,1] of one parameter: its value."""
        return self.get_parameters([pid])[ParamId(pid)]

    def set_parameters(self, values: dict[ParamId, int] | Iterable[tuple[ParamId, int]]) -> None:
        """TC[20,3] (hazardous): set every value at once, or none."""
        pairs = list(values.items()) if isinstance(values, dict) else list(values)
        self.send(
            Service.PARAMETER_MANAGEMENT, ParameterSubtype.SET_VALUES,
            parameter_values([(ParamId(p), v) for p, v in pairs]),
        )  # fmt: skip

    def set_parameter(self, pid: ParamId | int, value: int) -> None:
        """TC[20,3] of one parameter."""
        self.set_parameters([(ParamId(pid), value)])

    # --- service 150 --------------------------------------------------------------------------

    def derive_key(self, key_id: int, generation: int, master: Authenticator) -> bytes:
        """TC[150,1] signed by the ``master`` key: key ``key_id`` becomes ``generation`` of
        those derived from it, on the target and here; the new key (ICD 13)."""
        if master.key is None:
            raise ValueError("key management needs the master key, not the null key")
        self.link.send(Service.KEY_MANAGEMENT, KeySubtype.DERIVE_KEY,
                       key_derivation(key_id, generation), auth=master)  # fmt: skip
        return derive_key(master.key, key_id, generation)

    # --- service 148 --------------------------------------------------------------------------

    def inject(self, records: Iterable[FaultRecord]) -> list[Completion]:
        """TC[148,1] (hazardous, TEST mode only): inject ``records``, 32 per TC.

        A multi-bit upset by shape is one record: ``FaultRecord(FaultKind.MBU,
        FaultSiteClass.SPM_CLUSTER, 3, (bank, row, cell, ClusterShape.BIT_LINE))`` in the
        scratchpad, ``FaultSiteClass.FW_RAM_CLUSTER`` with ``(address, bit, shape)`` in the
        firmware RAM (ICD 15.8).

        A record the target cannot apply is refused (``CommandFailed`` with a code of
        ``FAULT_REFUSALS`` whose words name the record, its field and why). A NEXT_JOB
        record is only armed: the job it waits for reports whether it was injected
        (``JobFaults``)."""
        recs = list(records)
        if not recs:
            raise ValueError("inject: no fault records")
        done = []
        for i in range(0, len(recs), MAX_FAULT_RECORDS):
            try:
                done.append(self.send(Service.FAULT_INJECTION, FaultInjectionSubtype.INJECT,
                                      fault_records(recs[i : i + MAX_FAULT_RECORDS])))  # fmt: skip
            except CommandFailed as exc:
                raise _fault_refused(exc, recs, i) from None
        return done

    def job_faults(self) -> JobFaults:
        """How many faults waited for the last job that ended, and how many of them were
        not injected (HK ACCELERATOR, read now)."""
        hk = self.housekeeping(HkStructure.ACCELERATOR)
        return JobFaults(
            int(hk["last_job_id"]), int(hk["last_job_faults"]), int(hk["last_job_not_injected"])
        )

    def clear_faults(self) -> None:
        """TC[148,2] (hazardous): remove every active fault."""
        self.send(Service.FAULT_INJECTION, FaultInjectionSubtype.CLEAR_ALL)

    def list_faults(self) -> tuple[int, list[FaultRecord]]:
        """TC[148,3]: (number of active faults, the records listed)."""
        _, (tm, *_) = self._request_report(
            Service.FAULT_INJECTION, FaultInjectionSubtype.LIST, b"",
            (Service.FAULT_INJECTION, FaultInjectionSubtype.LIST_REPORT),
        )  # fmt: skip
        return read_fault_list(tm.source_data)



@dataclass(frozen=True, slots=True)
class JobFaults:
    """Faults that waited for points of a job: ``not_injected`` of ``scheduled`` never
    happened, so a run with ``not_injected`` > 0 is no sample of its fault."""

    job_id: int
    scheduled: int
    not_injected: int


def _fault_refused(exc: CommandFailed, records: list[FaultRecord], first: int) -> CommandFailed:
    """``exc`` with a note saying which of ``records`` its TC held, when it was not the
    first TC: the refusal numbers records from 0 in its own TC."""
    if exc.code in FAULT_REFUSALS and first:
        last = min(first + MAX_FAULT_RECORDS, len(records)) - 1
        exc.add_note(f"that TC held records {first}..{last} of the {len(records)} given")
    return exc


def _memory_name(memory: int) -> str:
    try:
        return MemoryId(memory).name
    except ValueError:
        return f"memory {memory}"


def _event_match(
    event_id: EventId | int | None, where: Callable[[EventReport], bool] | None
) -> Callable[[Received], bool]:
    base = event_predicate(event_id) if event_id is not None else None

    def match(item: Received) -> bool:
        if item.service != Service.EVENT_REPORTING or not 1 <= item.subtype <= 4:
            return False
        if base is not None and not base(item):
            return False
        return where is None or where(EventReport.from_received(item))

    match.__name__ = f"event {getattr(event_id, 'name', event_id or 'any')}"
    return match
