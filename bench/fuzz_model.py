"""What a conforming target does with each frame it receives, written from docs/ICD.md.

The link fuzzer (``bench.fuzz_link``) and the in-process fuzzers (``bench.fuzz_inprocess``,
``tests/fuzz``) predict the target's counters and answers with this model and compare. It
is a second implementation of the receipt checks (ICD 3 and 7), of the request memory
and its duplicates (ICD 6) and of the authentication policy with its anti-replay window
and key roles (ICD 13), kept apart from ``protocol/`` and
``firmware_sim/`` so that a mistake there is not repeated here: COBS, the header checks
and the policy are coded again from the document. Only tables (codes, TC types) and the
HMAC come from ``protocol``.

A TC that passes the receipt checks is predicted only as far as the dispatcher's own
checks go (duplicate, service, subtype, authentication). A well-formed TC of a known,
non-hazardous type is predicted as accepted only when its sender vouches that its
application data is valid (``valid=True``); otherwise ``Unpredictable`` is raised, and
a generator draws another input.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import struct
from collections import Counter, OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from protocol.codes import TC_TYPES, FailureCode, RejectReason, Service

MAX_FRAME_LEN = 2057
MAX_PACKET_LEN = 2048
PRIMARY_LEN = 6
TC_MIN_LEN = 13
APID_FSW = 0x0C8
DUPLICATE_WINDOW = 1024
ANTI_REPLAY_WINDOW = 64
OUTCOME_SERVICE = 149
KEY_MANAGEMENT = (150, 1)
TRAILER_LEN = 22
TAG_LEN = 16
ACK_ACCEPTANCE = 0b1000

SERVICE_IDS = frozenset(int(s) for s in Service)

# ICD 13: the hazardous TCs; TC[8,1] by its leading function id.
HAZARDOUS_TYPES = frozenset({(6, 2), (20, 3), (148, 1), (148, 2), KEY_MANAGEMENT})
HAZARDOUS_FUNCTIONS = frozenset({0x0010, 0x0011, 0x0012})

# ICD 10: the failure code a packet rejected at receipt is answered with.
REJECT_CODE = {
    RejectReason.TOO_SHORT: FailureCode.BAD_LENGTH,
    RejectReason.BAD_LENGTH: FailureCode.BAD_LENGTH,
    RejectReason.BAD_CRC: FailureCode.BAD_CRC,
    RejectReason.BAD_HEADER: FailureCode.BAD_HEADER,
    RejectReason.UNKNOWN_APID: FailureCode.ILLEGAL_APID,
}


class Unpredictable(Exception):
    """The model cannot say what the target does with this input."""


def crc16_bitwise(data: bytes | bytearray, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE, bit by bit as ICD 4.5 states it (poly 0x1021, init 0xFFFF)."""
    for octet in data:
        crc ^= octet << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def crc16(data: bytes | bytearray) -> int:
    """CRC-16/CCITT-FALSE: the standard library's CRC-CCITT from init 0xFFFF (the same
    CRC as ``crc16_bitwise``, at C speed)."""
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_decode(encoded: bytes) -> bytes | None:
    """The packet a COBS frame (delimiter excluded, no 0x00 in it) carries, or None when a
    code octet points past the end of the frame."""
    out = bytearray()
    i, n = 0, len(encoded)
    while i < n:
        code = encoded[i]
        if code == 0:
            return None
        end = i + code
        if end > n:
            return None
        out += encoded[i + 1 : end]
        if code != 0xFF and end < n:
            out.append(0)
        i = end
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A frame or packet dropped on receipt (ICD 7); ``code`` is the TM[1,2] failure code
    it is answered with, None when it is not answered, and ``data`` its failure data
    (ICD 10)."""

    reason: RejectReason
    code: FailureCode | None
    data: bytes = b""


def receipt(segment: bytes) -> Rejected | bytes:
    """ICD 3 and 7 in order for the octets between two delimiters (not empty): the
    rejection, or the packet that passed every check."""
    if len(segment) > MAX_FRAME_LEN:
        return Rejected(RejectReason.TOO_LONG, None)
    packet = cobs_decode(segment)
    if packet is None:
        return Rejected(RejectReason.BAD_COBS, None)
    n = len(packet)
    length_field = struct.unpack_from("!H", packet, 4)[0] if n >= PRIMARY_LEN else 0xFFFF
    lengths = struct.pack("!HH", min(n, 0xFFFF), length_field)

    def rejected(reason: RejectReason, data: bytes = b"") -> Rejected:
        # A packet shorter than a request id is not answered (ICD 7).
        if n < 4:
            return Rejected(reason, None)
        return Rejected(reason, REJECT_CODE[reason], data)

    if n < PRIMARY_LEN + 2:
        return rejected(RejectReason.TOO_SHORT, lengths)
    computed, received = crc16(packet[:-2]), struct.unpack_from("!H", packet, n - 2)[0]
    if computed != received:
        return rejected(RejectReason.BAD_CRC, struct.pack("!HH", computed, received))
    if length_field + 7 != n or n > MAX_PACKET_LEN:
        return rejected(RejectReason.BAD_LENGTH, lengths)
    if packet[0] >> 5 != 0 or not packet[0] & 0x10 or not packet[0] & 0x08:
        return rejected(RejectReason.BAD_HEADER)
    if packet[2] >> 6 != 0b11:
        return rejected(RejectReason.BAD_HEADER)
    if n < TC_MIN_LEN:
        return rejected(RejectReason.BAD_LENGTH, lengths)
    if packet[6] >> 4 != 2:
        return rejected(RejectReason.BAD_HEADER)
    apid = (packet[0] & 0x07) << 8 | packet[1]
    if apid != APID_FSW:
        return rejected(RejectReason.UNKNOWN_APID, struct.pack("!H", apid))
    return packet


def segments(wire: bytes) -> Iterator[bytes]:
    """The non-empty frames of ``wire``, which ends with a delimiter."""
    for seg in wire.split(b"\x00")[:-1]:
        if seg:
            yield seg


def is_hazardous(packet: bytes) -> bool:
    service, subtype = packet[7], packet[8]
    if (service, subtype) in HAZARDOUS_TYPES:
        return True
    return (
        (service, subtype) == (8, 1)
        and len(packet) >= 13 + 2
        and struct.unpack_from("!H", packet, 11)[0] in HAZARDOUS_FUNCTIONS
    )


@dataclass(frozen=True, slots=True)
class Accepted:
    """A TC the target accepts (and then tries to start)."""

    acceptance_report: bool


@dataclass(frozen=True, slots=True)
class Refused:
    """A TC refused at acceptance with ``code`` (one TM[1,2]) and failure ``data`` (None
    when the model does not say)."""

    code: FailureCode
    data: bytes | None = None
    auth: bool = False


Outcome = Rejected | Accepted | Refused


@dataclass
class Expected:
    """The counters of ICD 15.3 and the answers a run of frames should produce."""

    rejected: Counter = field(default_factory=Counter)
    empty_frames: int = 0
    tc_received: int = 0
    tc_accepted: int = 0
    tc_refused: int = 0
    tc_duplicates: int = 0
    auth_failures: int = 0
    acceptance_failures: Counter = field(default_factory=Counter)
    acceptance_successes: int = 0

    @property
    def frames_rejected(self) -> int:
        return sum(self.rejected.values())


class TargetModel:
    """The state of a target that the counters depend on: its request memory (ICD 6:
    request id -> CRC and whether it was accepted) and the numbers each key has spent
    (ICD 13), in mode NOMINAL or SAFE unless ``test_mode``. No master key is provisioned:
    key management is refused whoever signs it."""

    def __init__(
        self,
        keys: Mapping[int, bytes],
        *,
        test_mode: bool = False,
        last_seq: Mapping[int, int] | None = None,
    ) -> None:
        self.keys = dict(keys)
        self.test_mode = test_mode
        self.last_seq: dict[int, int] = dict(last_seq or {})
        """Per key, the highest number spent."""
        self.spent: dict[int, set[int]] = {k: {v} for k, v in self.last_seq.items()}
        """Per key, the numbers spent within the window below the highest."""
        self.window: OrderedDict[bytes, tuple[bytes, bool]] = OrderedDict()
        self.expected = Expected()

    # --- prediction without change --------------------------------------------------

    def check_tc(self, packet: bytes, valid: bool) -> Outcome:
        """What acceptance does with ``packet`` (which passed the receipt checks) now."""
        remembered = self.window.get(packet[:4])
        if remembered is not None and remembered == (packet[-2:], True):
            return Refused(FailureCode.DUPLICATE)
        service, subtype = packet[7], packet[8]
        if service not in SERVICE_IDS:
            return Refused(FailureCode.UNKNOWN_SERVICE, bytes([service]))
        if (service, subtype) not in TC_TYPES:
            return Refused(FailureCode.UNKNOWN_SUBTYPE, bytes([service, subtype]))
        ack = bool(packet[6] & ACK_ACCEPTANCE)
        if is_hazardous(packet):
            refused = self._auth(packet)
            if refused is not None:
                return refused
            if not valid:
                raise Unpredictable("an authentic hazardous TC whose data is not vouched for")
            return Accepted(ack)
        if not valid:
            raise Unpredictable(f"TC[{service},{subtype}] with data the model cannot judge")
        return Accepted(ack)

    def _auth(self, packet: bytes) -> Refused | None:
        """ICD 13's policy: the refusal of a hazardous TC, or None if it is authentic."""
        app_len = len(packet) - 13
        if app_len < TRAILER_LEN:
            return Refused(FailureCode.AUTH_FAILED, struct.pack("!H", 0xFFFF), auth=True)
        start = len(packet) - 2 - TRAILER_LEN
        key_id, seq = struct.unpack_from("!HI", packet, start)
        if key_id == 0:
            if not self.test_mode:
                return Refused(FailureCode.AUTH_REQUIRED, b"", auth=True)
            return self._role(packet, 0)
        key = self.keys.get(key_id)
        failed = Refused(FailureCode.AUTH_FAILED, struct.pack("!H", key_id), auth=True)
        if key is None:
            return failed
        tag = hmac.new(key, packet[: start + 6], hashlib.sha256).digest()[:TAG_LEN]
        if tag != packet[start + 6 : start + 6 + TAG_LEN]:
            return failed
        last = self.last_seq.get(key_id, 0)
        fresh = seq > last or (
            last - seq < ANTI_REPLAY_WINDOW and seq != 0 and seq not in self.spent.get(key_id, ())
        )
        if not fresh:
            return Refused(FailureCode.AUTH_REPLAY, struct.pack("!HI", key_id, last), auth=True)
        return self._role(packet, key_id)

    @staticmethod
    def _role(packet: bytes, key_id: int) -> Refused | None:
        """Without a master key, key management is refused whoever signs it."""
        if (packet[7], packet[8]) == KEY_MANAGEMENT:
            return Refused(FailureCode.KEY_NOT_ALLOWED, struct.pack("!H", key_id), auth=True)
        return None

    def predict(self, wire: bytes, valid: bool = False) -> list[Outcome]:
        """Outcomes of every frame of ``wire`` without changing the state; raises
        Unpredictable if any of them cannot be predicted."""
        saved = (OrderedDict(self.window), dict(self.last_seq), self._spent_copy(),
                 self.expected)  # fmt: skip
        self.expected = Expected()
        try:
            return self.feed(wire, valid)
        finally:
            self.window, self.last_seq, self.spent, self.expected = saved

    def _spent_copy(self) -> dict[int, set[int]]:
        return {k: set(v) for k, v in self.spent.items()}

    # --- the target receives ----------------------------------------------------------

    def feed(self, wire: bytes, valid: bool = False) -> list[Outcome]:
        """The target receives ``wire`` (ending with a delimiter): count and return what
        each of its frames does. ``valid``: well-formed TCs in it carry valid data. Raises
        Unpredictable, and changes nothing, if the model cannot say what one of them does."""
        receipts = [receipt(seg) for seg in segments(wire)]
        tcs = sum(not isinstance(r, Rejected) for r in receipts)
        saved = (
            (OrderedDict(self.window), dict(self.last_seq), self._spent_copy()) if tcs > 1 else None
        )
        outcomes: list[Outcome] = []
        for got in receipts:
            if isinstance(got, Rejected):
                outcomes.append(got)
                continue
            try:
                outcome = self.check_tc(got, valid)
            except Unpredictable:
                if saved is not None:
                    self.window, self.last_seq, self.spent = saved
                raise
            if isinstance(outcome, Accepted):
                self._accepted(got)
            elif outcome.code != FailureCode.DUPLICATE:
                self._remember(got, accepted=False)
            outcomes.append(outcome)
        exp = self.expected
        exp.empty_frames += wire.count(b"\x00") - len(receipts)
        for outcome in outcomes:
            if isinstance(outcome, Rejected):
                exp.rejected[outcome.reason] += 1
                if outcome.code is not None:
                    exp.acceptance_failures[outcome.code] += 1
                continue
            exp.tc_received += 1
            if isinstance(outcome, Refused):
                exp.tc_refused += 1
                exp.acceptance_failures[outcome.code] += 1
                exp.tc_duplicates += outcome.code == FailureCode.DUPLICATE
                exp.auth_failures += outcome.auth
            else:
                exp.tc_accepted += 1
                exp.acceptance_successes += outcome.acceptance_report
        return outcomes

    def spend(self, packet: bytes) -> None:
        """An authentic hazardous TC spends its anti-replay number (null key: nothing)."""
        start = len(packet) - 2 - TRAILER_LEN
        key_id, seq = struct.unpack_from("!HI", packet, start)
        if key_id == 0:
            return
        last = max(self.last_seq.get(key_id, 0), seq)
        self.last_seq[key_id] = last
        spent = self.spent.setdefault(key_id, set())
        spent.add(seq)
        spent.difference_update({n for n in spent if last - n >= ANTI_REPLAY_WINDOW})

    def _accepted(self, packet: bytes) -> None:
        if is_hazardous(packet):
            self.spend(packet)
        self._remember(packet, accepted=True)

    def _remember(self, packet: bytes, *, accepted: bool) -> None:
        """ICD 6: every TC past the receipt checks but outcome queries and duplicates."""
        if packet[7] == OUTCOME_SERVICE:
            return
        self.window.pop(packet[:4], None)
        self.window[packet[:4]] = (packet[-2:], accepted)
        while len(self.window) > DUPLICATE_WINDOW:
            self.window.popitem(last=False)
