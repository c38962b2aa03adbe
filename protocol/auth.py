"""Authentication of hazardous telecommands, in the spirit of CCSDS SDLS (docs/ICD.md).

A hazardous TC ends its application data with a 22-octet trailer:
``key_id u16 | anti-replay seq u32 | tag 16 octets``. The tag is HMAC-SHA256, truncated to
16 octets, keyed by the key ``key_id`` names, over every packet octet before the tag
(primary header, secondary header, application data, key id, seq); the CRC follows the tag.
Key id 0 is the null key: tag all zeros, never checked, accepted only in TEST mode.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from protocol.codes import (
    AckFlags,
    FailureCode,
    FaultInjectionSubtype,
    FunctionId,
    FunctionSubtype,
    KeySubtype,
    MemorySubtype,
    ParameterSubtype,
    Service,
)
from protocol.errors import PacketError
from protocol.link import APID_FSW, SOURCE_ID_HOST
from protocol.packets import CRC_LEN, Telecommand, make_tc

KEY_ID_NULL: Final[int] = 0
NO_KEY_ID: Final[int] = 0xFFFF
"""Key id quoted in AUTH_FAILED data when the TC had no trailer to take one from."""
TAG_LEN: Final[int] = 16
TRAILER_LEN: Final[int] = 2 + 4 + TAG_LEN
MIN_KEY_LEN: Final[int] = 16
NULL_TAG: Final[bytes] = bytes(TAG_LEN)
DERIVED_KEY_LABEL: Final[bytes] = b"orbit-hil key"
"""What a derived key's HMAC starts with (ICD 13, key management)."""


def derive_key(master: bytes, key_id: int, generation: int) -> bytes:
    """The key ``key_id`` of ``generation``, derived from the master key (ICD 13):
    HMAC-SHA256(master, "orbit-hil key" | key id u16 | generation u32), 32 octets. Both
    ends compute it; no key travels on the link."""
    return hmac.new(
        master, DERIVED_KEY_LABEL + struct.pack("!HI", key_id, generation), hashlib.sha256
    ).digest()


ANTI_REPLAY_WINDOW: Final[int] = 64
"""Numbers below a key's highest accepted one that may still be accepted once (ICD 13)."""


@dataclass(slots=True)
class ReplayWindow:
    """The anti-replay state of one key (ICD 13, as CCSDS SDLS's window): the highest
    number accepted, and which of the ANTI_REPLAY_WINDOW numbers up to it were (bit i of
    ``seen``: ``last - i``). Number 0 counts as used: a sender starts at 1."""

    last: int = 0
    seen: int = 1

    def fresh(self, seq: int) -> bool:
        """Above the highest, or inside the window and not accepted yet."""
        if seq > self.last:
            return True
        back = self.last - seq
        return back < ANTI_REPLAY_WINDOW and not (self.seen >> back) & 1

    def accept(self, seq: int) -> None:
        if seq > self.last:
            shift = seq - self.last
            self.seen = ((self.seen << shift) | 1) if shift < ANTI_REPLAY_WINDOW else 1
            self.seen &= (1 << ANTI_REPLAY_WINDOW) - 1
            self.last = seq
        else:
            self.seen |= 1 << (self.last - seq)

HAZARDOUS: Final[frozenset[tuple[int, int]]] = frozenset(
    {
        (Service.MEMORY_MANAGEMENT, MemorySubtype.LOAD),
        (Service.PARAMETER_MANAGEMENT, ParameterSubtype.SET_VALUES),
    }
    | {
        (Service.FAULT_INJECTION, FaultInjectionSubtype.INJECT),
        (Service.FAULT_INJECTION, FaultInjectionSubtype.CLEAR_ALL),
    }
    | {(Service.KEY_MANAGEMENT, KeySubtype.DERIVE_KEY)}
)
"""(service, subtype) pairs that are hazardous whatever their application data."""

HAZARDOUS_FUNCTIONS: Final[frozenset[FunctionId]] = frozenset(
    {FunctionId.SET_MODE, FunctionId.RESET, FunctionId.RESET_ACCEL}
)
"""TC[8,1] function ids that are hazardous (mode change and resets)."""


def is_hazardous(service: int, subtype: int, app_data: bytes) -> bool:
    """Whether a TC must carry an auth trailer (for 8,1: by its leading function id u16)."""
    if (service, subtype) in HAZARDOUS:
        return True
    if (service, subtype) == (Service.FUNCTION_MANAGEMENT, FunctionSubtype.PERFORM):
        return len(app_data) >= 2 and struct.unpack_from("!H", app_data)[0] in HAZARDOUS_FUNCTIONS
    return False


@dataclass(frozen=True, slots=True)
class AuthTrailer:
    """The last 22 octets of a hazardous TC's application data."""

    key_id: int
    seq: int
    tag: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.key_id <= 0xFFFF:
            raise ValueError(f"auth key_id must fit in 16 bits, got {self.key_id}")
        if not 0 <= self.seq <= 0xFFFFFFFF:
            raise ValueError(f"auth seq must fit in 32 bits, got {self.seq}")
        if len(self.tag) != TAG_LEN:
            raise ValueError(f"auth tag must be {TAG_LEN} octets, got {len(self.tag)}")

    def pack(self) -> bytes:
        """The 22 trailer octets."""
        return struct.pack("!HI", self.key_id, self.seq) + self.tag

    @classmethod
    def unpack(cls, trailer: bytes) -> AuthTrailer:
        """Parse exactly 22 trailer octets."""
        if len(trailer) != TRAILER_LEN:
            raise ValueError(f"auth trailer is {TRAILER_LEN} octets, got {len(trailer)}")
        key_id, seq = struct.unpack_from("!HI", trailer)
        return cls(key_id=key_id, seq=seq, tag=bytes(trailer[6:]))


def split_auth(app_data: bytes) -> tuple[bytes, AuthTrailer]:
    """Split a hazardous TC's application data into (request data, trailer)."""
    if len(app_data) < TRAILER_LEN:
        raise PacketError(
            f"application data of {len(app_data)} octets cannot hold the "
            f"{TRAILER_LEN}-octet auth trailer a hazardous TC ends with",
            code=FailureCode.AUTH_FAILED,
            data=struct.pack("!H", NO_KEY_ID),
        )
    return app_data[:-TRAILER_LEN], AuthTrailer.unpack(app_data[-TRAILER_LEN:])


def compute_tag(key: bytes, mac_input: bytes) -> bytes:
    """HMAC-SHA256 of ``mac_input`` under ``key``, truncated to 16 octets."""
    if len(key) < MIN_KEY_LEN:
        raise ValueError(f"auth key must be at least {MIN_KEY_LEN} octets, got {len(key)}")
    return hmac.new(key, mac_input, hashlib.sha256).digest()[:TAG_LEN]


def mac_input(packet: bytes) -> bytes:
    """The octets a TC's tag covers: all of the packet before the tag."""
    return packet[: len(packet) - TAG_LEN - CRC_LEN]


def sign_tc(
    service: int,
    subtype: int,
    app_data: bytes,
    seq_count: int,
    *,
    key_id: int,
    auth_seq: int,
    key: bytes | None,
    apid: int = APID_FSW,
    ack_flags: AckFlags | int = AckFlags.ALL,
    source_id: int = SOURCE_ID_HOST,
) -> bytes:
    """Bytes of a TC whose application data is ``app_data`` + an auth trailer.

    ``key`` is None only with ``key_id`` 0 (null key, zero tag).
    """
    if (key_id == KEY_ID_NULL) != (key is None):
        raise ValueError(f"key_id {key_id} needs {'no key' if key_id == 0 else 'a key'}")

    def build(tag: bytes) -> bytes:
        trailer = AuthTrailer(key_id=key_id, seq=auth_seq, tag=tag)
        return make_tc(
            service,
            subtype,
            bytes(app_data) + trailer.pack(),
            seq_count,
            apid=apid,
            ack_flags=ack_flags,
            source_id=source_id,
        )

    unsigned = build(NULL_TAG)
    if key is None:
        return unsigned
    return build(compute_tag(key, mac_input(unsigned)))


def verify_tc(
    tc: Telecommand,
    keys: Mapping[int, bytes],
    *,
    allow_null_key: bool,
    replay: Mapping[int, ReplayWindow] | None = None,
) -> tuple[bytes, AuthTrailer]:
    """Check a hazardous TC's trailer; return (request data, trailer) or raise PacketError.

    ``allow_null_key`` is True only in TEST mode. ``replay`` maps key id to its anti-replay
    window (missing: nothing accepted yet); the caller records ``trailer.seq`` in it once
    the TC is accepted. Check order: trailer present, null-key policy, key known, tag,
    freshness.
    """
    try:
        data, trailer = split_auth(tc.app_data)
    except PacketError as exc:
        exc.request_id = tc.request_id
        raise
    where = f"TC[{tc.service},{tc.subtype}] {tc.request_id}"
    if trailer.key_id == KEY_ID_NULL:
        if not allow_null_key:
            raise PacketError(
                f"{where}: key id 0 (no authentication) is accepted only in TEST mode",
                code=FailureCode.AUTH_REQUIRED,
                request_id=tc.request_id,
            )
        return data, trailer
    key = keys.get(trailer.key_id)
    if key is None:
        raise PacketError(
            f"{where}: unknown key id {trailer.key_id}, known: {sorted(keys)}",
            code=FailureCode.AUTH_FAILED,
            request_id=tc.request_id,
            data=struct.pack("!H", trailer.key_id),
        )
    expected = compute_tag(key, mac_input(tc.raw))
    if not hmac.compare_digest(expected, trailer.tag):
        raise PacketError(
            f"{where}: HMAC tag does not match key id {trailer.key_id}",
            code=FailureCode.AUTH_FAILED,
            request_id=tc.request_id,
            data=struct.pack("!H", trailer.key_id),
        )
    window = (replay or {}).get(trailer.key_id) or ReplayWindow()
    if not window.fresh(trailer.seq):
        last = window.last
        raise PacketError(
            f"{where}: anti-replay seq {trailer.seq} for key id {trailer.key_id} is neither "
            f"above the highest accepted, {last}, nor one of the {ANTI_REPLAY_WINDOW} up to it "
            "not accepted yet",
            code=FailureCode.AUTH_REPLAY,
            request_id=tc.request_id,
            data=struct.pack("!HI", trailer.key_id, last),
        )
    return data, trailer
