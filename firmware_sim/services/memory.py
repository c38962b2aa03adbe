"""Service 6: load, dump and check memory (ICD section 15.5).

Two memories (``MemoryId``): the accelerator scratchpad, through the driver's bus window
(octet address = word * N + octet in the word; whole words only, refused while the
chip is busy), and the flight software's RAM. A dump that covers a job result checks
it against the CRC kept with it first, and is refused if the job failed or the result
no longer matches: a wrong result is never delivered as one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protocol.codes import FailureCode, MemoryId, MemorySubtype, Service
from protocol.crc import crc16_ccitt_false
from protocol.payloads import (
    MAX_DUMP_LEN,
    CheckReport,
    DumpReport,
    Reader,
    bad_app_data,
    out_of_range,
    refuse,
)

if TYPE_CHECKING:
    from firmware_sim.driver import AccelDriver
    from firmware_sim.ram import FirmwareRam, ResultStore
    from firmware_sim.services.verification import Request
    from firmware_sim.telemetry import TmSender

CHECK_CHUNK_WORDS = 256


@dataclass(frozen=True, slots=True)
class MemRequest:
    memory: MemoryId
    address: int
    length: int
    data: bytes = b""


class MemoryService:
    """TC[6,2] load, TC[6,5] dump, TC[6,9] check.

    Its collaborators: the chip's ``driver``, the firmware ``ram``, the kept ``results``,
    ``tm``, the clock ``now``, ``idle`` (no job owns the scratchpad), ``verify`` (the
    ERR_CODE that refuses a range holding a bad result, else 0) and ``check_counters``
    (fold the chip's EDAC counters, naming the address of an uncorrectable word seen).
    """

    def __init__(
        self,
        driver: AccelDriver,
        ram: FirmwareRam,
        results: ResultStore,
        tm: TmSender,
        now: Callable[[], float],
        idle: Callable[[], bool],
        verify: Callable[[int, int, int], int],
        check_counters: Callable[..., None],
    ) -> None:
        self.driver = driver
        self.ram = ram
        self.results = results
        self.tm = tm
        self.now = now
        self.idle = idle
        self.verify = verify
        self.check_counters = check_counters

    def size(self, memory: MemoryId) -> int:
        if memory == MemoryId.ACCEL_SCRATCHPAD:
            return self.driver.info.spm_bytes
        return self.ram.size

    def accept(self, subtype: int, data: bytes) -> MemRequest:
        r = Reader(data)
        raw = r.u8("memory id")
        if raw not in MemoryId._value2member_map_:
            raise refuse(
                FailureCode.UNKNOWN_MEMORY, f"memory id {raw} is not defined", bytes([raw])
            )
        memory = MemoryId(raw)
        address = r.u32("address")
        if subtype == MemorySubtype.CHECK:
            length = r.u32("length")
        else:
            length = r.u16("length")
        payload = b""
        if subtype == MemorySubtype.LOAD:
            if len(data) - r.pos < length:
                raise bad_app_data(
                    len(data), f"length says {length} octets, {len(data) - r.pos} follow"
                )
            payload = r.raw(length, "data")
        r.end()
        if length == 0:
            raise out_of_range(5, "length 0: nothing to do")
        if subtype == MemorySubtype.DUMP and length > MAX_DUMP_LEN:
            raise out_of_range(5, f"dump length {length} exceeds {MAX_DUMP_LEN} octets")
        size = self.size(memory)
        if address + length > size:
            raise refuse(
                FailureCode.ADDRESS_OUT_OF_RANGE,
                f"{memory.name}: {length} octets at {address} run past its {size} octets",
                struct.pack("!II", address, length),
            )
        if memory == MemoryId.ACCEL_SCRATCHPAD:
            n = self.driver.info.n
            if address % n:
                raise out_of_range(1, f"scratchpad address {address} is not a multiple of N={n}")
            if length % n:
                raise out_of_range(5, f"scratchpad length {length} is not a multiple of N={n}")
        return MemRequest(memory, address, length, payload)

    def start(self, subtype: int, m: MemRequest) -> None:
        if m.memory == MemoryId.ACCEL_SCRATCHPAD and not self.idle():
            raise refuse(FailureCode.BUSY, "the accelerator owns its scratchpad: a job runs")
        if subtype == MemorySubtype.DUMP:
            err = self.verify(m.memory, m.address, m.length)
            if err:
                raise refuse(
                    FailureCode.JOB_FAILED,
                    f"{m.memory.name} {m.address}+{m.length} holds the result of a failed job "
                    "or one that no longer matches its CRC",
                    bytes([err]),
                )

    def execute(self, subtype: int, m: MemRequest, req: Request) -> None:
        if subtype == MemorySubtype.LOAD:
            if m.memory == MemoryId.FIRMWARE_RAM:
                self.ram.write(m.address, m.data)
            else:
                self.driver.write_words(m.address // self.driver.info.n, m.data)
            self.results.forget(m.memory, m.address, m.length)
        elif subtype == MemorySubtype.DUMP:
            data, bad = self._read(m.memory, m.address, m.length)
            out = DumpReport(m.memory, m.address, m.length, bad, data).pack()
            self.tm.send(Service.MEMORY_MANAGEMENT, MemorySubtype.DUMP_REPORT, out, req.dest_id)
        else:
            crc, bad, pos = 0xFFFF, 0, 0
            n = self.driver.info.n
            chunk = CHECK_CHUNK_WORDS * n
            while pos < m.length:
                data, chunk_bad = self._read(m.memory, m.address + pos, min(chunk, m.length - pos))
                crc = crc16_ccitt_false(data, crc)
                bad += chunk_bad
                pos += len(data)
            out = CheckReport(m.memory, m.address, m.length, crc, bad).pack()
            self.tm.send(Service.MEMORY_MANAGEMENT, MemorySubtype.CHECK_REPORT, out, req.dest_id)
        req.complete(self.now())

    def _read(self, memory: MemoryId, address: int, length: int) -> tuple[bytes, int]:
        """(data, uncorrectable words in it)."""
        if memory == MemoryId.FIRMWARE_RAM:
            return self.ram.read(address, length), 0
        n = self.driver.info.n
        data, bad = self.driver.read_words(address // n, length // n)
        if bad:
            self.check_counters(now_address=bad[0] * n)
        return data, len(bad)
