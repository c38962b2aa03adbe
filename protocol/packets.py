"""PUS-C telecommands and telemetry in CCSDS space packets, built and parsed with spacepackets.

``make_tc``/``make_tm`` return packet bytes (CRC included); ``parse_tc``/``parse_tm`` check a
received packet against docs/ICD.md ("Packet checks") and return a frozen dataclass, or
raise ``PacketError`` naming what was wrong. ``check_packet`` is the receipt check alone,
and ``PacketValidator`` plugs it into a ``FrameDecoder``.
"""

from __future__ import annotations

import struct
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

from spacepackets.ccsds.spacepacket import CCSDS_HEADER_LEN, PacketType, SequenceFlags
from spacepackets.ecss.defs import PusVersion
from spacepackets.ecss.tc import PusTc
from spacepackets.ecss.tm import PusTm

from protocol.codes import AckFlags, RejectReason
from protocol.crc import crc16_ccitt_false
from protocol.errors import PacketError
from protocol.link import APID_FSW, DEFAULT_APIDS, MAX_PACKET_LEN, SOURCE_ID_HOST
from protocol.request_id import REQUEST_ID_LEN, RequestId
from protocol.sequence import MAX_SEQ_COUNT
from protocol.timecode import CDS_SHORT_PFIELD, TIMESTAMP_LEN, CdsTime

__all__ = [
    "CRC_LEN",
    "MAX_TC_APP_DATA",
    "MAX_TM_SOURCE_DATA",
    "PacketError",
    "PacketValidator",
    "Telecommand",
    "Telemetry",
    "TC_MIN_LEN",
    "TM_MIN_LEN",
    "check_packet",
    "make_tc",
    "make_tm",
    "parse_tc",
    "parse_tm",
    "request_id_of",
]

CRC_LEN: Final[int] = 2
TC_SEC_HEADER_LEN: Final[int] = 5
TM_SEC_HEADER_LEN: Final[int] = 7 + TIMESTAMP_LEN
TC_MIN_LEN: Final[int] = CCSDS_HEADER_LEN + TC_SEC_HEADER_LEN + CRC_LEN
TM_MIN_LEN: Final[int] = CCSDS_HEADER_LEN + TM_SEC_HEADER_LEN + CRC_LEN
MAX_TC_APP_DATA: Final[int] = MAX_PACKET_LEN - TC_MIN_LEN
MAX_TM_SOURCE_DATA: Final[int] = MAX_PACKET_LEN - TM_MIN_LEN

_KIND = {PacketType.TC: "TC", PacketType.TM: "TM"}


@dataclass(frozen=True, slots=True)
class Telecommand:
    """A received PUS-C TC. ``service``/``subtype`` stay ints: unknown ones must reach the
    dispatcher so it can answer UNKNOWN_SERVICE / UNKNOWN_SUBTYPE."""

    apid: int
    seq_count: int
    service: int
    subtype: int
    ack_flags: AckFlags
    source_id: int
    app_data: bytes
    raw: bytes = field(repr=False)

    @property
    def request_id(self) -> RequestId:
        """The id that service 1 reports about this TC carry."""
        return RequestId.unpack(self.raw)


@dataclass(frozen=True, slots=True)
class Telemetry:
    """A received PUS-C TM packet."""

    apid: int
    seq_count: int
    service: int
    subtype: int
    msg_counter: int
    dest_id: int
    time: CdsTime
    time_ref_status: int
    source_data: bytes
    raw: bytes = field(repr=False)


def _check_range(name: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, got {value}")


def make_tc(
    service: int,
    subtype: int,
    app_data: bytes | bytearray = b"",
    seq_count: int = 0,
    *,
    apid: int = APID_FSW,
    ack_flags: AckFlags | int = AckFlags.ALL,
    source_id: int = SOURCE_ID_HOST,
) -> bytes:
    """Bytes of a PUS-C TC with CRC, built by spacepackets."""
    _check_range("service", service, 0, 255)
    _check_range("subtype", subtype, 0, 255)
    _check_range("seq_count", seq_count, 0, MAX_SEQ_COUNT)
    _check_range("apid", apid, 0, 0x7FF)
    _check_range("ack_flags", int(ack_flags), 0, 0b1111)
    _check_range("source_id", source_id, 0, 0xFFFF)
    _check_range("len(app_data)", len(app_data), 0, MAX_TC_APP_DATA)
    tc = PusTc(
        service=int(service),
        message_subtype=int(subtype),
        apid=apid,
        app_data=bytes(app_data),
        seq_count=seq_count,
        source_id=source_id,
        ack_flags=int(ack_flags),
    )
    return bytes(tc.pack())


def make_tm(
    service: int,
    subtype: int,
    source_data: bytes | bytearray = b"",
    seq_count: int = 0,
    *,
    time: CdsTime,
    apid: int = APID_FSW,
    msg_counter: int = 0,
    dest_id: int = 0,
) -> bytes:
    """Bytes of a PUS-C TM packet with CDS short time stamp and CRC, built by spacepackets."""
    _check_range("service", service, 0, 255)
    _check_range("subtype", subtype, 0, 255)
    _check_range("seq_count", seq_count, 0, MAX_SEQ_COUNT)
    _check_range("apid", apid, 0, 0x7FF)
    _check_range("msg_counter", msg_counter, 0, 0xFFFF)
    _check_range("dest_id", dest_id, 0, 0xFFFF)
    _check_range("len(source_data)", len(source_data), 0, MAX_TM_SOURCE_DATA)
    tm = PusTm(
        service=int(service),
        message_subtype=int(subtype),
        timestamp=time.pack(),
        source_data=bytes(source_data),
        apid=apid,
        seq_count=seq_count,
        message_counter=msg_counter,
        destination_id=dest_id,
    )
    return bytes(tm.pack())


def request_id_of(packet: bytes | bytearray) -> RequestId:
    """Request id of a TC given as bytes (its first four octets)."""
    return RequestId.unpack(packet)


def check_packet(
    data: bytes | bytearray,
    packet_type: PacketType,
    apids: Collection[int] | None = DEFAULT_APIDS,
) -> None:
    """Receipt checks of docs/ICD.md, in its order; raises PacketError on the first failure.

    ``apids=None`` accepts any APID.
    """
    kind = _KIND[packet_type]
    n = len(data)
    # A failure report about a TC quotes its request id, even when the TC is bad.
    is_tc = packet_type is PacketType.TC
    req_id = RequestId.unpack(data) if is_tc and n >= REQUEST_ID_LEN else None
    data_len = struct.unpack_from("!H", data, 4)[0] if n >= CCSDS_HEADER_LEN else 0xFFFF
    length_data = struct.pack("!HH", min(n, 0xFFFF), data_len)

    def fail(reason: RejectReason, message: str, failure_data: bytes = b"") -> PacketError:
        return PacketError(
            f"{kind}: {message}", reason=reason, request_id=req_id, data=failure_data
        )

    if n < CCSDS_HEADER_LEN:
        raise fail(
            RejectReason.TOO_SHORT,
            f"{n} octets, shorter than the {CCSDS_HEADER_LEN}-octet primary header",
            length_data,
        )
    if n < CCSDS_HEADER_LEN + CRC_LEN:
        raise fail(RejectReason.TOO_SHORT, f"{n} octets leave no room for the CRC", length_data)
    computed = crc16_ccitt_false(data[:-CRC_LEN])
    (received,) = struct.unpack_from("!H", data, n - CRC_LEN)
    if computed != received:
        raise fail(
            RejectReason.BAD_CRC,
            f"CRC mismatch: computed {computed:#06x} over octets 0..{n - 3}, "
            f"packet says {received:#06x}",
            struct.pack("!HH", computed, received),
        )
    if data_len + CCSDS_HEADER_LEN + 1 != n:
        raise fail(
            RejectReason.BAD_LENGTH,
            f"length field {data_len} (octets 4-5) means a {data_len + CCSDS_HEADER_LEN + 1}-"
            f"octet packet, but {n} octets were received",
            length_data,
        )
    if n > MAX_PACKET_LEN:
        raise fail(
            RejectReason.BAD_LENGTH,
            f"{n} octets exceed the link maximum of {MAX_PACKET_LEN}",
            length_data,
        )
    version = data[0] >> 5
    if version != 0:
        raise fail(RejectReason.BAD_HEADER, f"packet version {version} (octet 0), expected 0")
    got_type = PacketType((data[0] >> 4) & 1)
    if got_type is not packet_type:
        raise fail(
            RejectReason.BAD_HEADER,
            f"packet type bit says {_KIND[got_type]} (octet 0 bit 3), expected {kind}",
        )
    if not (data[0] >> 3) & 1:
        raise fail(
            RejectReason.BAD_HEADER,
            "secondary header flag is 0 (octet 0 bit 4), expected 1: PUS packets have one",
        )
    seq_flags = data[2] >> 6
    if seq_flags != SequenceFlags.UNSEGMENTED:
        raise fail(
            RejectReason.BAD_HEADER,
            f"sequence flags {seq_flags:#04b} (octet 2), expected 0b11 (unsegmented)",
        )
    min_len = TC_MIN_LEN if packet_type is PacketType.TC else TM_MIN_LEN
    if n < min_len:
        raise fail(
            RejectReason.BAD_LENGTH,
            f"{n} octets, but a PUS-C {kind} with its secondary header and CRC is at least "
            f"{min_len}",
            length_data,
        )
    pus_version = data[CCSDS_HEADER_LEN] >> 4
    if pus_version != PusVersion.PUS_C:
        raise fail(
            RejectReason.BAD_HEADER,
            f"PUS version {pus_version} (octet {CCSDS_HEADER_LEN} bits 0-3), "
            f"expected {int(PusVersion.PUS_C)} (PUS-C)",
        )
    if packet_type is PacketType.TM:
        p_field = data[CCSDS_HEADER_LEN + 7]
        if p_field != CDS_SHORT_PFIELD:
            raise fail(
                RejectReason.BAD_HEADER,
                f"time code P-field {p_field:#04x} (octet {CCSDS_HEADER_LEN + 7}), "
                f"expected {CDS_SHORT_PFIELD:#04x} (CDS short)",
            )
    apid = ((data[0] & 0x07) << 8) | data[1]
    if apids is not None and apid not in apids:
        allowed = ", ".join(f"{a:#05x}" for a in sorted(apids))
        raise fail(
            RejectReason.UNKNOWN_APID,
            f"APID {apid:#05x} is not one of {{{allowed}}}",
            struct.pack("!H", apid),
        )


@dataclass(frozen=True, slots=True)
class PacketValidator:
    """``check_packet`` as a ``FrameDecoder`` validator."""

    packet_type: PacketType
    apids: frozenset[int] | None = DEFAULT_APIDS

    def __call__(self, payload: bytes) -> None:
        check_packet(payload, self.packet_type, self.apids)


def parse_tc(
    data: bytes | bytearray, *, apids: Collection[int] | None = DEFAULT_APIDS
) -> Telecommand:
    """Check and parse a received TC; raises PacketError."""
    check_packet(data, PacketType.TC, apids)
    try:
        tc = PusTc.unpack(data)
    except Exception as exc:  # the checks above should leave spacepackets nothing to refuse
        raise PacketError(
            f"TC: spacepackets refused a packet that passed the receipt checks: {exc!r}",
            reason=RejectReason.BAD_HEADER,
            request_id=RequestId.unpack(data),
        ) from exc
    return Telecommand(
        apid=tc.apid,
        seq_count=tc.seq_count,
        service=tc.service,
        subtype=tc.message_subtype,
        ack_flags=AckFlags(tc.pus_tc_sec_header.ack_flags),
        source_id=tc.source_id,
        app_data=bytes(tc.app_data),
        raw=bytes(data),
    )


def parse_tm(
    data: bytes | bytearray, *, apids: Collection[int] | None = DEFAULT_APIDS
) -> Telemetry:
    """Check and parse a received TM packet; raises PacketError."""
    check_packet(data, PacketType.TM, apids)
    try:
        tm = PusTm.unpack(data, timestamp_len=TIMESTAMP_LEN)
        time = CdsTime.unpack(tm.timestamp)
    except Exception as exc:  # the checks above should leave spacepackets nothing to refuse
        raise PacketError(
            f"TM: spacepackets refused a packet that passed the receipt checks: {exc!r}",
            reason=RejectReason.BAD_HEADER,
        ) from exc
    return Telemetry(
        apid=tm.apid,
        seq_count=tm.seq_count,
        service=tm.service,
        subtype=tm.message_subtype,
        msg_counter=tm.pus_tm_sec_header.message_counter,
        dest_id=tm.pus_tm_sec_header.dest_id,
        time=time,
        time_ref_status=tm.pus_tm_sec_header.spacecraft_time_ref,
        source_data=tm.source_data,
        raw=bytes(data),
    )
