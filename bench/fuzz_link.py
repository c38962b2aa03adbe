"""`make fuzz`: a million hostile frames over a real pty to ``python -m firmware_sim``.

The target runs in mode NOMINAL with one provisioned key, so that hazardous TCs must be
authentic. Frames of every category below are drawn from one seed, written in batches
as fast as the pty takes them, while a reader thread decodes every TM the target sends.
``bench.fuzz_model`` predicts, frame by frame, what the target must count and answer;
afterwards the target's housekeeping counters (ICD 15.3), its acceptance reports and its
``LINK_PACKET_REJECTED`` events are compared with the prediction, its memory use is
checked, and its parameters and a memory region the hazardous TCs aim at are read over a
``host.link.Link`` to show that nothing hazardous ran. Figures and the outcome of each
check go to ``bench/results/fuzz.json``; the exit status is 1 if a check failed.

    python -m bench.fuzz_link [--frames N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import struct
import sys
import tempfile
import threading
import time
import tty
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path

from bench.fuzz_model import Expected, TargetModel, Unpredictable, crc16
from host.link import Link
from host.progress import Progress
from host.sim import SIM_KEY, SIM_KEY_ID, SimulatedTarget
from host.target import Target
from protocol.auth import sign_tc
from protocol.codes import EventId, FailureCode, FaultKind, FunctionId, MemoryId, Mode
from protocol.framing import NEED_DATA, Frame, FrameDecoder, encode_frame
from protocol.packets import make_tc
from protocol.payloads import (
    PARAM_SPECS,
    FaultRecord,
    FaultSiteClass,
    HkStructure,
    ParamId,
    fault_records,
    function,
    hk_structures,
    memory_check,
    memory_dump,
    memory_load,
    parameter_ids,
    parameter_values,
)

RESULTS = Path(__file__).resolve().parent / "results" / "fuzz.json"
DEFAULT_FRAMES = 1_000_000
FUZZ_SOURCE = 0x0A0A
"""Source id of every fuzz TC (none of them can then equal a TC of the link's)."""
READOUT_SOURCE = 0x0F0F
"""Source id of the one-shot housekeeping requests that read the counters."""
AUTH_SPENT = 1_000_000
"""Anti-replay number spent, before the fuzzing, by the one authentic hazardous TC."""
REGION = (MemoryId.FIRMWARE_RAM, 0x4000, 256)
"""Memory that every TC[6,2] and fault record of the run aims at."""
WRITE_BYTES = 64 * 1024
"""Frames are written in batches of about this many octets."""
RSS_PERIOD_S = 2.0
RSS_GROWTH_LIMIT_KB = 50 * 1024
SETTLE_S = 8.0
"""After the last frame: the event rate limit (5 s) and a health check (1 s), with margin."""
FORBIDDEN_EVENTS = (
    EventId.PARAMETER_CHANGED,
    EventId.FAULT_INJECTED,
    EventId.FAULTS_CLEARED,
    EventId.MODE_CHANGED,
    EventId.BOOT,
    EventId.WATCHDOG_RESET,
)
"""Events that would mean a hazardous TC ran, or the target restarted, during the run."""
HK_COUNTERS = (
    ("tc_received", 19),
    ("tc_accepted", 23),
    ("tc_refused", 27),
    ("tc_duplicates", 31),
    ("auth_failures", 35),
    ("frames_rejected", 39),
)
"""Fields of HK structure SYSTEM and their offsets in its source data (ICD 15.3)."""

CATEGORIES: dict[str, int] = {
    "random_with_delimiters": 10,
    "random_without_delimiters": 7,
    "mutated_bit_flips": 9,
    "mutated_encoded_flips": 5,
    "mutated_truncated": 6,
    "mutated_extended": 6,
    "wrong_length": 8,
    "wrong_apid": 5,
    "wrong_header": 7,
    "crc_over_garbage": 12,
    "valid": 6,
    "replay": 6,
    "hazardous_no_trailer": 3,
    "hazardous_bad_tag": 3,
    "hazardous_stale": 3,
    "hazardous_unknown_key": 3,
    "hazardous_null_key": 2,
}
"""Frame categories and their weights."""


# --- the frames ---------------------------------------------------------------------------


def with_crc(body: bytes | bytearray) -> bytes:
    return bytes(body) + struct.pack("!H", crc16(body))


def recrc(packet: bytes | bytearray) -> bytes:
    """``packet`` with its CRC made good again."""
    return with_crc(packet[:-2])


class Frames:
    """Draws the frames of each category; ``model`` predicts and counts each one."""

    def __init__(self, rng: random.Random, model: TargetModel) -> None:
        self.rng = rng
        self.model = model
        self.seq = rng.randrange(16384)
        self.replayable: deque[tuple[bytes, bool]] = deque(maxlen=256)
        self.pool = [self._valid_packet() for _ in range(512)]
        self.pool += [
            self._signed(SIM_KEY_ID, rng.randint(AUTH_SPENT + 1, 2**32 - 1), SIM_KEY)
            for _ in range(64)
        ]
        self.makers: dict[str, Callable[[], tuple[bytes, bool]]] = {
            name: getattr(self, name) for name in CATEGORIES
        }

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) % 16384
        return self.seq

    def draw(self, category: str) -> bytes:
        """Wire octets of one frame of ``category``, counted by the model."""
        for _ in range(1000):
            wire, valid = self.makers[category]()
            try:
                self.model.feed(wire, valid)
            except Unpredictable:
                continue
            if category in ("valid",) or category.startswith("hazardous"):
                self.replayable.append((wire, valid))
            return wire
        raise RuntimeError(f"no predictable frame of {category} in 1000 draws")

    # --- builders -----------------------------------------------------------------------

    def _ack(self) -> int:
        return self.rng.randrange(16)

    def _valid_packet(self) -> bytes:
        """A TC of a safe type with valid data, from the project's builders."""
        rng = self.rng
        memory, base, size = REGION
        kind = rng.randrange(6)
        if kind == 0:
            service, subtype, data = 17, 1, b""
        elif kind == 1:
            ids = rng.sample(sorted(PARAM_SPECS), rng.randint(1, 4))
            service, subtype, data = 20, 1, parameter_ids(ids)
        elif kind == 2:
            address = rng.randrange(0, 65536 - 64)
            service, subtype, data = 6, 5, memory_dump(MemoryId.FIRMWARE_RAM, address, 64)
        elif kind == 3:
            length = rng.randint(1, size)
            service, subtype, data = 6, 9, memory_check(memory, base, length)
        elif kind == 4:
            sids = [rng.choice(list(HkStructure)) for _ in range(rng.randint(1, 3))]
            service, subtype, data = 3, 27, hk_structures(sids)
        else:
            service, subtype, data = 148, 3, b""  # fails to start outside TEST
        return make_tc(
            service, subtype, data, self.next_seq(), ack_flags=self._ack(), source_id=FUZZ_SOURCE
        )

    def _hazardous_request(self) -> tuple[int, int, bytes]:
        """(service, subtype, request data) of a hazardous TC that would change something."""
        rng = self.rng
        memory, base, size = REGION
        kind = rng.randrange(6)
        if kind == 0:
            pid = rng.choice(sorted(PARAM_SPECS))
            spec = PARAM_SPECS[pid]
            return 20, 3, parameter_values([(pid, rng.randint(spec.lo, spec.hi))])
        if kind == 1:
            length = rng.randint(1, size)
            return 6, 2, memory_load(memory, base, bytes([0xA5]) * length)
        if kind == 2:
            record = FaultRecord(FaultKind.SBU, FaultSiteClass.FW_RAM, 1, (base, 3))
            return 148, 1, fault_records([record])
        if kind == 3:
            return 148, 2, b""
        if kind == 4:
            return 8, 1, function(FunctionId.SET_MODE, bytes([Mode.TEST]))
        return 8, 1, function(rng.choice([FunctionId.RESET, FunctionId.RESET_ACCEL]))

    def _signed(self, key_id: int, auth_seq: int, key: bytes | None) -> bytes:
        service, subtype, data = self._hazardous_request()
        return sign_tc(
            service, subtype, data, self.next_seq(), key_id=key_id, auth_seq=auth_seq, key=key,
            ack_flags=self._ack(), source_id=FUZZ_SOURCE,
        )  # fmt: skip

    def _random_packet(self) -> bytes:
        return self.rng.choice(self.pool)

    # --- categories ---------------------------------------------------------------------

    def random_with_delimiters(self) -> tuple[bytes, bool]:
        rng = self.rng
        data = bytearray(rng.randbytes(rng.randint(1, 300)))
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = 0
        return bytes(data) + b"\x00", False

    def random_without_delimiters(self) -> tuple[bytes, bool]:
        rng = self.rng
        n = rng.randint(2058, 5000) if rng.random() < 0.1 else rng.randint(1, 400)
        data = rng.randbytes(n).replace(b"\x00", bytes([rng.randint(1, 255)]))
        return data + b"\x00", False

    def mutated_bit_flips(self) -> tuple[bytes, bool]:
        rng = self.rng
        packet = bytearray(self._random_packet())
        for _ in range(rng.randint(1, 4)):
            packet[rng.randrange(len(packet))] ^= 1 << rng.randrange(8)
        return encode_frame(packet), False

    def mutated_encoded_flips(self) -> tuple[bytes, bool]:
        rng = self.rng
        frame = bytearray(encode_frame(self._random_packet()))
        for _ in range(rng.randint(1, 3)):
            frame[rng.randrange(len(frame) - 1)] ^= 1 << rng.randrange(8)
        return bytes(frame), False

    def mutated_truncated(self) -> tuple[bytes, bool]:
        packet = self._random_packet()
        return encode_frame(packet[: self.rng.randrange(len(packet))]), False

    def mutated_extended(self) -> tuple[bytes, bool]:
        rng = self.rng
        packet = self._random_packet()
        extra = rng.randbytes(rng.randint(1, 40))
        if rng.random() < 0.5:  # with the length field and CRC made to fit the longer packet
            grown = bytearray(packet[:-2] + extra)
            struct.pack_into("!H", grown, 4, len(grown) + 2 - 7)
            return encode_frame(with_crc(grown)), False
        return encode_frame(packet + extra), False

    def wrong_length(self) -> tuple[bytes, bool]:
        rng = self.rng
        kind = rng.randrange(3)
        if kind == 0:  # length field disagrees, CRC good
            packet = bytearray(self._random_packet())
            right = len(packet) - 7
            struct.pack_into(
                "!H",
                packet,
                4,
                rng.choice(
                    [
                        r
                        for r in (rng.randrange(65536), right + 1, right - 1, 0, 0xFFFF)
                        if r != right and r >= 0
                    ]
                ),
            )
            return encode_frame(recrc(packet)), False
        if kind == 1:  # shorter than any packet, CRC good where there is room for one
            n = rng.randint(0, 12)
            body = rng.randbytes(max(n - 2, 0))
            return encode_frame(with_crc(body) if n >= 2 else body[:n]), False
        # longer than the largest packet, length field and CRC consistent
        n = rng.randint(2049, 2060)
        body = bytearray(rng.randbytes(n - 2))
        for i in range(0, len(body), rng.choice([50, 200, 300])):
            body[i] = 0
        body[0:4] = self._random_packet()[0:4]
        struct.pack_into("!H", body, 4, n - 7)
        return encode_frame(with_crc(body)), False

    def wrong_apid(self) -> tuple[bytes, bool]:
        rng = self.rng
        packet = bytearray(self._random_packet())
        apid = rng.choice([a for a in (rng.randrange(0x800), 0x7FF, 0, 0xC9) if a != 0xC8])
        packet[0] = (packet[0] & 0xF8) | apid >> 8
        packet[1] = apid & 0xFF
        return encode_frame(recrc(packet)), False

    def wrong_header(self) -> tuple[bytes, bool]:
        rng = self.rng
        packet = bytearray(self._random_packet())
        kind = rng.randrange(5)
        if kind == 0:
            packet[0] = (packet[0] & 0x1F) | rng.randint(1, 7) << 5  # version
        elif kind == 1:
            packet[0] &= ~0x10  # packet type TM
        elif kind == 2:
            packet[0] &= ~0x08  # no secondary header
        elif kind == 3:
            packet[2] = (packet[2] & 0x3F) | rng.randint(0, 2) << 6  # sequence flags
        else:
            packet[6] = (packet[6] & 0x0F) | rng.choice([0, 1, 3, 15]) << 4  # PUS version
        return encode_frame(recrc(packet)), False

    def crc_over_garbage(self) -> tuple[bytes, bool]:
        rng = self.rng
        kind = rng.randrange(4)
        n = rng.randint(8, 200)
        body = bytearray(rng.randbytes(n - 2))
        if kind >= 1:
            struct.pack_into("!H", body, 4, n - 7)
        if kind >= 2:  # a TC header: version 0, TC, secondary header, unsegmented, PUS-C
            apid = 0xC8 if kind == 3 else rng.randrange(0x800)
            body[0] = 0x18 | apid >> 8
            body[1] = apid & 0xFF
            body[2] |= 0xC0
            if len(body) > 6:
                body[6] = 0x20 | body[6] & 0x0F
            if kind == 3 and len(body) > 8 and rng.random() < 0.5:
                body[7] = rng.choice([1, 3, 5, 6, 8, 17, 20, 148])  # a known service
        return encode_frame(with_crc(body)), False

    def valid(self) -> tuple[bytes, bool]:
        return encode_frame(self._valid_packet()), True

    def replay(self) -> tuple[bytes, bool]:
        if not self.replayable:
            return self.valid()
        # Mostly recent TCs (still in the duplicate window), some older ones.
        index = -1 - min(int(self.rng.expovariate(1 / 40)), len(self.replayable) - 1)
        return self.replayable[index]

    def hazardous_no_trailer(self) -> tuple[bytes, bool]:
        service, subtype, data = self._hazardous_request()
        return encode_frame(make_tc(
            service, subtype, data, self.next_seq(), ack_flags=self._ack(), source_id=FUZZ_SOURCE,
        )), False  # fmt: skip

    def hazardous_bad_tag(self) -> tuple[bytes, bool]:
        rng = self.rng
        packet = bytearray(
            self._signed(SIM_KEY_ID, rng.randint(AUTH_SPENT + 1, 2**32 - 1), SIM_KEY)
        )
        packet[len(packet) - 2 - 16 + rng.randrange(16)] ^= 1 << rng.randrange(8)
        return encode_frame(recrc(packet)), False

    def hazardous_stale(self) -> tuple[bytes, bool]:
        return encode_frame(
            self._signed(SIM_KEY_ID, self.rng.randint(0, AUTH_SPENT), SIM_KEY)
        ), False

    def hazardous_unknown_key(self) -> tuple[bytes, bool]:
        rng = self.rng
        key_id = rng.choice([k for k in (rng.randint(2, 0xFFFF), 0xFFFF, 2) if k != SIM_KEY_ID])
        key = rng.randbytes(32)
        return encode_frame(self._signed(key_id, rng.randint(1, 2**32 - 1), key)), False

    def hazardous_null_key(self) -> tuple[bytes, bool]:
        return encode_frame(self._signed(0, self.rng.randint(0, 2**32 - 1), None)), False


# --- the target's TM ----------------------------------------------------------------------


class TmReader(threading.Thread):
    """Reads and decodes everything the target sends, so that its output never backs up."""

    def __init__(self, fd: int) -> None:
        super().__init__(name="tm-reader", daemon=True)
        self.fd = fd
        self.stop = threading.Event()
        self.decoder = FrameDecoder()
        self.lock = threading.Lock()
        self.tm_count = 0
        self.bad_tm = 0
        self.tm_lost = 0
        self.last_seq: int | None = None
        self.types: Counter = Counter()
        self.failures: Counter = Counter()  # (report subtype, failure code)
        self.events: Counter = Counter()
        self.link_rejections: list[tuple[int, int, int]] = []  # (reason, since, total)
        self.readouts: list[bytes] = []
        self.last_tm = time.monotonic()

    def run(self) -> None:
        while not self.stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 1 << 16)
            except OSError:
                return
            self.decoder.receive_data(data)
            with self.lock:
                while (event := self.decoder.next_event()) is not NEED_DATA:
                    if isinstance(event, Frame):
                        self._tm(event.payload)
                    else:
                        self.bad_tm += 1
                self.last_tm = time.monotonic()

    def _tm(self, p: bytes) -> None:
        if len(p) < 22 or crc16(p) != 0:
            self.bad_tm += 1
            return
        self.tm_count += 1
        seq = (p[2] & 0x3F) << 8 | p[3]
        if self.last_seq is not None:
            self.tm_lost += (seq - self.last_seq - 1) % 16384
        self.last_seq = seq
        service, subtype = p[7], p[8]
        self.types[(service, subtype)] += 1
        data = p[20:-2]
        if service == 1 and subtype % 2 == 0 and len(data) >= 6:
            self.failures[(subtype, struct.unpack_from("!H", data, 4)[0])] += 1
        elif service == 5 and len(data) >= 2:
            event_id = struct.unpack_from("!H", data)[0]
            self.events[event_id] += 1
            if event_id == EventId.LINK_PACKET_REJECTED and len(data) >= 11:
                self.link_rejections.append(struct.unpack_from("!BII", data, 2))
        elif (service, subtype) == (3, 25) and data[:2] == b"\x00\x01":
            if struct.unpack_from("!H", p, 11)[0] == READOUT_SOURCE:
                self.readouts.append(data)


class RssSampler(threading.Thread):
    """VmRSS of a process every few seconds, in kB."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss", daemon=True)
        self.pid = pid
        self.samples: list[int] = []
        self.stop = threading.Event()

    def sample(self) -> None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                self.samples.append(int(line.split()[1]))

    def run(self) -> None:
        while not self.stop.wait(RSS_PERIOD_S):
            self.sample()


# --- the run ------------------------------------------------------------------------------


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_counters(fd: int, reader: TmReader, model: TargetModel, seq: int) -> dict[str, int]:
    """HK structure SYSTEM by a one-shot TC[3,27] (counted by ``model``)."""
    packet = make_tc(3, 27, hk_structures([HkStructure.SYSTEM]), seq, source_id=READOUT_SOURCE)
    wire = encode_frame(packet)
    model.feed(wire, valid=True)
    with reader.lock:
        before = len(reader.readouts)
    write_all(fd, wire)
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        with reader.lock:
            if len(reader.readouts) > before:
                data = reader.readouts[before]
                return {name: struct.unpack_from("!I", data, off)[0] for name, off in HK_COUNTERS}
        time.sleep(0.05)
    raise RuntimeError("no TM[3,25] SYSTEM answered the one-shot within 15 s")


def state_over_link(port: str) -> dict:
    """Parameters and the targeted memory region, and a ping, through the host's Link."""
    memory, base, size = REGION
    with Link(port, acceptance_timeout_s=5.0) as link:
        target = Target(link)
        rtt = target.ping()
        params = target.get_parameters(sorted(PARAM_SPECS))
        region = target.dump(memory, base, size)
    return {
        "ping_s": rtt,
        "parameters": {ParamId(p).name: v for p, v in params.items()},
        "region": region.hex(),
    }


def read_target_log(path: Path) -> tuple[Counter, int]:
    """Rejections per reason the flight software logged (one ``link: REASON: ...`` line
    each), and its lines about internal errors or failed steps."""
    reasons: Counter = Counter()
    errors = 0
    with path.open(errors="replace") as f:
        for line in f:
            _, found, rest = line.partition(" INFO link: ")
            if found:
                reasons[rest.split(":", 1)[0]] += 1
            elif "INTERNAL ERROR" in line or "step failed" in line:
                errors += 1
    return reasons, errors


def check(checks: dict, name: str, ok: bool, detail: object) -> None:
    checks[name] = {"pass": bool(ok), "detail": detail}
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", file=sys.stderr, flush=True)


def expected_counters(exp: Expected) -> dict[str, int]:
    return {
        "tc_received": exp.tc_received,
        "tc_accepted": exp.tc_accepted,
        "tc_refused": exp.tc_refused,
        "tc_duplicates": exp.tc_duplicates,
        "auth_failures": exp.auth_failures,
        "frames_rejected": exp.frames_rejected,
    }


def run(frames: int, seed: int) -> dict:
    rng = random.Random(seed)
    names = list(CATEGORIES)
    weights = [CATEGORIES[n] for n in names]
    checks: dict = {}
    logdir = tempfile.TemporaryDirectory(prefix="fuzz-link-")
    target_log = Path(logdir.name) / "target.log"
    with SimulatedTarget(mode="nominal", keys={SIM_KEY_ID: SIM_KEY}, log=target_log) as sim:
        assert sim.proc is not None
        rss = RssSampler(sim.proc.pid)
        rss.sample()
        rss.start()
        before = state_over_link(sim.port)

        fd = os.open(sim.port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        reader = TmReader(fd)
        reader.start()
        try:
            write_all(fd, b"\x00")
            model = TargetModel({SIM_KEY_ID: SIM_KEY})
            readout_seq = rng.randrange(16384)
            baseline = read_counters(fd, reader, model, readout_seq)
            model.expected = Expected()
            with reader.lock:  # the baseline readout's own reports are not the run's
                reader.types.clear()
                reader.failures.clear()
            gen = Frames(rng, model)

            # The one authentic hazardous TC: it spends AUTH_SPENT and fails to start
            # (TC[148,2] runs only in TEST), so that stale numbers below it exist.
            setup = encode_frame(sign_tc(
                148, 2, b"", gen.next_seq(), key_id=SIM_KEY_ID, auth_seq=AUTH_SPENT, key=SIM_KEY,
                source_id=FUZZ_SOURCE,
            ))  # fmt: skip
            model.feed(setup, valid=True)
            gen.replayable.append((setup, True))
            write_all(fd, setup)

            per_category: Counter = Counter()
            octets = 0
            start = time.monotonic()
            with Progress("fuzz frames", "frames") as progress:
                sent = 0
                while sent < frames:
                    batch = bytearray()
                    while len(batch) < WRITE_BYTES and sent < frames:
                        category = rng.choices(names, weights)[0]
                        batch += gen.draw(category)
                        per_category[category] += 1
                        sent += 1
                    write_all(fd, bytes(batch))
                    octets += len(batch)
                    progress(sent, frames)
                    with reader.lock:
                        lost, bad = reader.tm_lost, reader.bad_tm
                    progress.note(f"TM {reader.tm_count:,}, lost {lost}, bad {bad}")
            elapsed = time.monotonic() - start

            # Let the target finish, and its held-back events come out.
            settle_end = time.monotonic() + SETTLE_S
            while True:
                with reader.lock:
                    quiet = time.monotonic() - reader.last_tm
                if time.monotonic() >= settle_end and quiet > 1.0:
                    break
                time.sleep(0.2)
            drained = time.monotonic() - start
            final = read_counters(fd, reader, model, (readout_seq + 1) % 16384)
            time.sleep(0.5)
        finally:
            reader.stop.set()
            reader.join(timeout=5)
            os.close(fd)
        after = state_over_link(sim.port)
        rss.stop.set()
        rss.join(timeout=5)
        rss.sample()
        alive = sim.running

    exp = model.expected
    got = {k: final[k] - baseline[k] for k in final}
    want = expected_counters(exp)
    for name in want:
        check(checks, f"counter {name}", got[name] == want[name],
              {"target": got[name], "expected": want[name]})  # fmt: skip
    check(checks, "counters add up", got["tc_accepted"] + got["tc_refused"] == got["tc_received"],
          "tc_accepted + tc_refused == tc_received")  # fmt: skip

    acc_fail = Counter({code: n for (sub, code), n in reader.failures.items() if sub == 2})
    want_fail = Counter({int(c): n for c, n in exp.acceptance_failures.items()})
    check(checks, "TM[1,2] per failure code", acc_fail == want_fail,
          {"target": _named(acc_fail), "expected": _named(want_fail)})  # fmt: skip
    check(checks, "TM[1,1] acceptance reports", reader.types[(1, 1)] == exp.acceptance_successes,
          {"target": reader.types[(1, 1)], "expected": exp.acceptance_successes})  # fmt: skip
    all_failures = Counter({c: n for (_, c), n in reader.failures.items()})
    internal = all_failures[FailureCode.INTERNAL_ERROR]
    check(checks, "no INTERNAL_ERROR", internal == 0, _named(all_failures))
    since = sum(s for _, s, _ in reader.link_rejections)
    last_total = reader.link_rejections[-1][2] if reader.link_rejections else 0
    check(checks, "LINK_PACKET_REJECTED events carry every rejection",
          baseline["frames_rejected"] == 0 and since == exp.frames_rejected
          and last_total == final["frames_rejected"],
          {"sum_since": since, "last_total": last_total, "expected": exp.frames_rejected,
           "events": len(reader.link_rejections)})  # fmt: skip
    auth_events = reader.events[EventId.AUTH_FAILURE]
    check(checks, "AUTH_FAILURE events", auth_events == exp.auth_failures,
          {"target": auth_events, "expected": exp.auth_failures})  # fmt: skip
    forbidden = {EventId(e).name: reader.events[e] for e in FORBIDDEN_EVENTS}
    check(checks, "nothing hazardous ran (events)", not any(forbidden.values()), forbidden)
    check(checks, "parameters unchanged", after["parameters"] == before["parameters"],
          after["parameters"])  # fmt: skip
    check(checks, "memory region unchanged", after["region"] == before["region"],
          {"memory": REGION[0].name, "address": REGION[1], "length": REGION[2]})  # fmt: skip
    check(checks, "TM intact", reader.bad_tm == 0 and reader.tm_lost == 0,
          {"tm": reader.tm_count, "bad": reader.bad_tm, "lost": reader.tm_lost})  # fmt: skip
    check(checks, "target answers a ping", alive and after["ping_s"] > 0,
          {"round_trip_s": after["ping_s"], "process_running": alive})  # fmt: skip
    samples = rss.samples
    growth = max(samples) - samples[0]
    check(checks, "memory bounded", growth <= RSS_GROWTH_LIMIT_KB,
          {"first_kb": samples[0], "max_kb": max(samples), "last_kb": samples[-1],
           "growth_kb": growth, "limit_kb": RSS_GROWTH_LIMIT_KB})  # fmt: skip

    logged, internal_errors = read_target_log(target_log)
    logdir.cleanup()
    want_reasons = {r.value: n for r, n in exp.rejected.items() if n}
    logged_reasons = dict(sorted(logged.items()))
    check(checks, "rejections per reason (target's log)", logged == want_reasons,
          {"target": logged_reasons, "expected": dict(sorted(want_reasons.items()))})  # fmt: skip
    check(checks, "no internal error in the target's log", internal_errors == 0, internal_errors)

    reasons = Counter()
    for reason, s, _ in reader.link_rejections:
        reasons[reason] += s
    return {
        "command": f"python -m bench.fuzz_link --frames {frames} --seed {seed}",
        "frames": frames,
        "seed": seed,
        "octets": octets,
        "elapsed_s": round(elapsed, 2),
        "elapsed_with_settle_s": round(drained, 2),
        "frames_per_s": round(frames / elapsed, 1),
        "frames_per_category": dict(sorted(per_category.items())),
        "expected": {
            **want,
            "frames_seen_by_target": exp.frames_rejected + exp.tc_received + exp.empty_frames,
            "empty_frames": exp.empty_frames,
            "rejected_per_reason": {
                r.name: n for r, n in sorted(exp.rejected.items(), key=lambda kv: kv[0].name)
            },
            "acceptance_failures": _named(want_fail),
            "acceptance_successes": exp.acceptance_successes,
        },  # fmt: skip
        "target": {
            "counters": got,
            "rejected_per_reason_logged": logged_reasons,
            "acceptance_failures": _named(acc_fail),
            "reports_per_failure_code": {
                f"TM[1,{sub}] {_name(code)}": n
                for (sub, code), n in sorted(reader.failures.items())
            },
            "link_rejected_events": len(reader.link_rejections),
            "link_rejected_since_by_last_reason": {str(k): v for k, v in sorted(reasons.items())},
            "tm_received": reader.tm_count,
            "tm_types": {f"TM[{s},{t}]": n for (s, t), n in sorted(reader.types.items())},
        },
        "rss_kb": {
            "first": samples[0],
            "max": max(samples),
            "last": samples[-1],
            "samples": len(samples),
        },  # fmt: skip
        "checks": checks,
        "pass": all(c["pass"] for c in checks.values()),
    }


def _name(code: int) -> str:
    return FailureCode(code).name if code in FailureCode._value2member_map_ else hex(code)


def _named(counts: Counter) -> dict[str, int]:
    return {_name(c): n for c, n in sorted(counts.items())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.fuzz_link", description=__doc__.split("\n")[0]
    )
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames to send")
    p.add_argument("--seed", type=int, default=1, help="seed of the frames drawn")
    p.add_argument("--out", type=Path, default=RESULTS, help="where to write the figures")
    args = p.parse_args(argv)
    result = run(args.frames, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"fuzz: {result['frames']:,} frames in {result['elapsed_s']} s "
        f"({result['frames_per_s']:,.0f}/s); RSS {result['rss_kb']['first']} -> "
        f"{result['rss_kb']['max']} max -> {result['rss_kb']['last']} kB; "
        f"{'all checks pass' if result['pass'] else 'CHECKS FAILED'}; {args.out}",
        file=sys.stderr,
    )
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
