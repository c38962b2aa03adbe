"""Test harness of the flight software: the sans-I/O core on a simulated clock, the real
process on a pseudo-terminal with a small client written from the ICD, and the TC
builders the tests share. TCs are built from docs/ICD.md with struct, not with firmware
code; housekeeping is decoded with the firmware's field table, which test_fw_icd.py checks
against the ICD."""

from __future__ import annotations

import os
import select
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import serial
from hil_process import end_process

from firmware_sim.chip import ModelChip
from firmware_sim.core import FlightSoftware, FswConfig
from firmware_sim.environment import EnvironmentConfig
from firmware_sim.services.housekeeping import HK_STRUCTURES, structure_format
from protocol.auth import is_hazardous, sign_tc
from protocol.codes import AckFlags, EventId, FunctionId, MemoryId, Mode, Service
from protocol.framing import NEED_DATA, Frame, FrameDecoder, encode_frame
from protocol.packets import Telemetry, make_tc, parse_tm
from protocol.payloads import HkStructure
from protocol.request_id import RequestId
from protocol.verification import VerificationReport
from testbed.sitemap_builds import Build

REPO = Path(__file__).resolve().parents[2]
KEY_ID = 7
KEY = bytes(range(32))


@dataclass
class Reply:
    """The TM that one exchange produced, and the verification of its request."""

    request_id: RequestId | None
    tms: list[Telemetry]

    @property
    def reports(self) -> list[VerificationReport]:
        out = []
        for tm in self.tms:
            if tm.service == Service.REQUEST_VERIFICATION:
                rep = VerificationReport.unpack(tm.subtype, tm.source_data)
                if self.request_id is None or rep.request_id == self.request_id:
                    out.append(rep)
        return out

    @property
    def stages(self) -> list[int]:
        return [int(r.subtype) for r in self.reports]

    @property
    def failure(self) -> tuple[int, int, bytes] | None:
        """(subtype, code, data) of the failure report, if any."""
        for r in self.reports:
            if not r.success:
                return int(r.subtype), int(r.failure_code), r.failure_data
        return None

    @property
    def ok(self) -> bool:
        return self.failure is None and 7 in self.stages

    def of(self, service: int, subtype: int) -> list[Telemetry]:
        return [t for t in self.tms if (t.service, t.subtype) == (service, subtype)]

    def events(self, event_id: EventId) -> list[bytes]:
        """Auxiliary data of each report of ``event_id``."""
        return [
            t.source_data[2:]
            for t in self.tms
            if t.service == Service.EVENT_REPORTING
            and struct.unpack_from("!H", t.source_data)[0] == event_id
        ]


class Harness:
    """The core on a simulated clock, with a client that builds TCs like the host does."""

    def __init__(
        self,
        mode: Mode = Mode.TEST,
        build: Build | None = None,
        env: EnvironmentConfig | None = None,
        time_scale: float = 1.0,
    ) -> None:
        self.chip = ModelChip(build)
        self.config = FswConfig(
            mode=mode,
            keys={KEY_ID: KEY},
            time_scale=time_scale,
            env=env or EnvironmentConfig(),
        )
        self.now = 0.0
        self.fsw = FlightSoftware(self.chip, self.config, now=self.now)
        self.decoder = FrameDecoder()
        self.seq = 100
        self.auth_seq = 0
        self.actions: list = []
        self.boot = self._collect(self.fsw.step(self.now))
        HARNESSES.append(self)

    def _collect(self, out) -> list[Telemetry]:
        self.actions += list(out.actions)
        self.decoder.receive_data(out.data)
        tms = []
        while (ev := self.decoder.next_event()) is not NEED_DATA:
            assert isinstance(ev, Frame), f"the firmware sent a bad frame: {ev}"
            tms.append(parse_tm(ev.payload))
        return tms

    def run_for(self, seconds: float) -> Reply:
        """Let time pass, stepping when the core asks to be stepped."""
        end = self.now + seconds
        tms = []
        while self.now < end:
            self.now = min(end, max(self.fsw.next_deadline(), self.now + 1e-3))
            tms += self._collect(self.fsw.step(self.now))
        return Reply(None, tms)

    def send_bytes(self, data: bytes, dt: float = 0.001) -> Reply:
        self.now += dt
        self.fsw.receive_data(data)
        return Reply(None, self._collect(self.fsw.step(self.now)))

    def packet(
        self,
        service: int,
        subtype: int,
        data: bytes = b"",
        *,
        flags: AckFlags = AckFlags.ALL,
        key_id: int | None = None,
        auth_seq: int | None = None,
        seq: int | None = None,
    ) -> bytes:
        """A TC as the host builds it; hazardous ones signed (key 0 unless told)."""
        if seq is None:
            self.seq = (self.seq + 1) % 16384
            seq = self.seq
        if is_hazardous(service, subtype, data) or key_id is not None:
            kid = 0 if key_id is None else key_id
            if auth_seq is None:
                self.auth_seq += 1
                auth_seq = self.auth_seq
            return sign_tc(
                service, subtype, data, seq, key_id=kid, auth_seq=auth_seq,
                key=None if kid == 0 else KEY, ack_flags=flags,
            )  # fmt: skip
        return make_tc(service, subtype, data, seq, ack_flags=flags)

    def tc(self, service: int, subtype: int, data: bytes = b"", **kw) -> Reply:
        raw = self.packet(service, subtype, data, **kw)
        reply = self.send_bytes(encode_frame(raw))
        return Reply(RequestId.unpack(raw), reply.tms)

    def raw_tc(self, raw: bytes) -> Reply:
        reply = self.send_bytes(encode_frame(raw))
        return Reply(RequestId.unpack(raw), reply.tms)


# --- the real process on a pty ----------------------------------------------------------


@dataclass
class PtyClient:
    """A minimal host: frames over pyserial, TM awaited with deadlines."""

    port: serial.Serial
    decoder: FrameDecoder = field(default_factory=FrameDecoder)
    seq: int = 1000
    auth_seq: int = 0
    history: list[Telemetry] = field(default_factory=list)

    def send(self, packet: bytes) -> RequestId:
        self.port.write(encode_frame(packet))
        self.port.flush()
        return RequestId.unpack(packet)

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) % 16384
        return self.seq

    def tc(
        self, service: int, subtype: int, data: bytes = b"", *, key_id: int = 0, **kw
    ) -> RequestId:
        """Send a TC (hazardous ones signed, with the null key unless told); its id."""
        if is_hazardous(service, subtype, data):
            self.auth_seq += 1
            raw = sign_tc(
                service, subtype, data, self.next_seq(), key_id=key_id, auth_seq=self.auth_seq,
                key=KEY if key_id else None, **kw,
            )  # fmt: skip
        else:
            raw = make_tc(service, subtype, data, self.next_seq(), **kw)
        return self.send(raw)

    def poll(self, timeout: float) -> list[Telemetry]:
        data = self.port.read(max(1, self.port.in_waiting)) if timeout > 0 else b""
        if self.port.in_waiting:
            data += self.port.read(self.port.in_waiting)
        self.decoder.receive_data(data)
        out = []
        while (ev := self.decoder.next_event()) is not NEED_DATA:
            if isinstance(ev, Frame):
                out.append(parse_tm(ev.payload))
        self.history += out
        return out

    def await_tm(
        self, predicate: Callable[[Telemetry], bool], timeout: float = 5.0
    ) -> Telemetry | None:
        """The first TM received (this test) matching, taken out of the history, or None
        at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            for i, tm in enumerate(self.history):
                if predicate(tm):
                    return self.history.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.port.timeout = min(left, 0.2)
            self.poll(left)

    def await_report(
        self, rid: RequestId, subtypes: set[int], timeout: float = 5.0
    ) -> VerificationReport | None:
        def match(tm: Telemetry) -> bool:
            return (
                tm.service == Service.REQUEST_VERIFICATION
                and tm.subtype in subtypes
                and RequestId.unpack(tm.source_data) == rid
            )

        tm = self.await_tm(match, timeout)
        return None if tm is None else VerificationReport.unpack(tm.subtype, tm.source_data)

    def await_completion(self, rid: RequestId, timeout: float = 5.0) -> VerificationReport | None:
        """The report that ends the request: completion, or any failure."""
        return self.await_report(rid, {2, 4, 6, 7, 8}, timeout)


class FirmwareProcess:
    """``python -m firmware_sim`` in its own process, on the pty it prints."""

    def __init__(self, *args: str, timeout: float = 15.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firmware_sim", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.path = self._read_path(timeout)
        self.port = serial.Serial(self.path, 115200, timeout=0.2)
        self.client = PtyClient(self.port)

    def _read_path(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.close()
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"firmware_sim printed no PTY line in {timeout} s: {err}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1)
                if not chunk:
                    continue
                line += chunk
        text = line.decode().strip()
        assert text.startswith("PTY "), f"first line should be 'PTY <path>', got {text!r}"
        return text.split(" ", 1)[1]

    def close(self) -> int | None:
        port = getattr(self, "port", None)
        if port is not None and port.is_open:
            port.close()
        return end_process(self.proc)


HARNESSES: list[Harness] = []
"""Every Harness made during the current test (conftest checks them for bugs)."""


# --- shared TC builders and readers -----------------------------------------------------

PING = (Service.TEST, 1)


def hk(fsw: Harness, sid: HkStructure) -> dict[str, int]:
    """A one-shot HK report of ``sid`` as a dict of field values."""
    reply = fsw.tc(3, 27, struct.pack("!BH", 1, sid))
    (tm,) = reply.of(3, 25)
    values = struct.unpack(structure_format(sid), tm.source_data)
    assert values[0] == sid
    return dict(zip([f.name for f in HK_STRUCTURES[sid]], values[1:], strict=True))


RAM, SPM = MemoryId.FIRMWARE_RAM, MemoryId.ACCEL_SCRATCHPAD


def load(fsw: Harness, memory: int, address: int, data: bytes):
    return fsw.tc(6, 2, struct.pack("!BIH", memory, address, len(data)) + data)


def dump(fsw: Harness, memory: int, address: int, length: int):
    return fsw.tc(6, 5, struct.pack("!BIH", memory, address, length))


def dumped(reply) -> tuple[tuple[int, int, int, int], bytes]:
    (tm,) = reply.of(6, 6)
    return struct.unpack_from("!BIHH", tm.source_data), tm.source_data[9:]


GEMM, LAYER = FunctionId.RUN_GEMM, FunctionId.RUN_LAYER
INLINE, FROM_SPM, FROM_RAM = 0, 1, 2
N = 4
BANK1 = 1024 * N  # octet address of scratchpad bank 1


def gemm_tc(job_id, source, m, k, n, a=0, b=0, c=0) -> bytes:
    return struct.pack("!HHBHHHIII", GEMM, job_id, source, m, k, n, a, b, c)


def layer_tc(job_id, source, m, k, n, a=0, b=0, c=0, bias=0, flags=0, shift=0) -> bytes:
    return struct.pack("!HHBHHHIIIIBB", LAYER, job_id, source, m, k, n, a, b, c, bias, flags, shift)


def load_big(fsw: Harness, memory: int, address: int, data: bytes) -> None:
    for pos in range(0, len(data), 1024):
        assert load(fsw, memory, address + pos, data[pos : pos + 1024]).ok


def dump_big(fsw: Harness, memory: int, address: int, length: int) -> bytes:
    out = b""
    for pos in range(0, length, 2000):
        reply = dump(fsw, memory, address + pos, min(2000, length - pos))
        assert reply.ok, reply.failure
        out += dumped(reply)[1]
    return out


def operands(seed: int, m: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.integers(-128, 128, (m, k), dtype=np.int8),
        rng.integers(-128, 128, (k, n), dtype=np.int8),
    )


def small_job(fsw: Harness, job_id: int = 1, c: int = 0):
    a, b = operands(job_id, 4, 4, 4)
    return fsw.tc(8, 1, gemm_tc(job_id, INLINE, 4, 4, 4, c=c) + a.tobytes() + b.tobytes())


def is_tm(service: int, subtype: int):
    return lambda tm: (tm.service, tm.subtype) == (service, subtype)


def is_event(event_id: EventId):
    return lambda tm: tm.service == 5 and struct.unpack_from("!H", tm.source_data)[0] == event_id


def completes(client: PtyClient, rid: RequestId, timeout: float = 5.0) -> None:
    report = client.await_completion(rid, timeout)
    assert report is not None, f"no completion of {rid} within {timeout} s"
    assert report.subtype == 7, f"{rid} failed: {report}"
