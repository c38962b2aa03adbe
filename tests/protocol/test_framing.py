"""COBS framing and the sans-I/O frame decoder (docs/ICD.md "Framing")."""

from __future__ import annotations

import pytest
from cobs import cobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacepackets.ccsds.spacepacket import PacketType

from protocol.codes import RejectReason
from protocol.crc import crc16_ccitt_false
from protocol.framing import (
    NEED_DATA,
    Frame,
    FrameDecoder,
    FrameRejected,
    encode_frame,
)
from protocol.link import APID_FSW, MAX_FRAME_LEN, MAX_PACKET_LEN, cobs_max_encoded_len
from protocol.packets import MAX_TC_APP_DATA, PacketValidator, make_tc, make_tm
from protocol.timecode import CdsTime

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TC_CHECK = PacketValidator(PacketType.TC)


def recrc(packet: bytes) -> bytes:
    """The packet with its CRC recomputed, so that only the intended defect remains."""
    body = packet[:-2]
    return body + crc16_ccitt_false(body).to_bytes(2, "big")


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def feed(decoder: FrameDecoder, chunks: list[bytes]) -> list[Frame | FrameRejected]:
    """Feed chunk by chunk, draining events after each, as a reader loop does."""
    events: list[Frame | FrameRejected] = []
    for chunk in chunks:
        decoder.receive_data(chunk)
        events.extend(decoder.events())
    return events


def packets_strategy() -> st.SearchStrategy[list[bytes]]:
    tc = st.builds(
        lambda svc, sub, data, seq: make_tc(svc, sub, data, seq),
        st.integers(0, 255),
        st.integers(0, 255),
        st.binary(max_size=300),
        st.integers(0, 16383),
    )
    return st.lists(tc, min_size=1, max_size=6)


@FAST
@given(
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(0, 3000), max_size=20),
    max_len=st.sampled_from([1, 7, 64, MAX_FRAME_LEN]),
    validate=st.booleans(),
)
def test_any_bytes_in_any_chunking_never_raise(
    data: bytes, cuts: list[int], max_len: int, validate: bool
) -> None:
    decoder = FrameDecoder(max_frame_len=max_len, validator=TC_CHECK if validate else None)
    events = feed(decoder, chunked(data, cuts))
    assert decoder.next_event() is NEED_DATA
    assert all(isinstance(e, Frame | FrameRejected) for e in events)
    assert decoder.counters.frames_ok == sum(isinstance(e, Frame) for e in events)
    assert decoder.counters.rejected_total == sum(isinstance(e, FrameRejected) for e in events)
    assert decoder.counters.bytes_received == len(data)
    assert decoder.frame_buffer_len <= max_len
    assert decoder.pending_len == 0


@FAST
@given(payloads=st.lists(st.binary(max_size=700), max_size=8), data=st.data())
def test_encode_decode_round_trip_in_any_chunking(
    payloads: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=30))
    events = feed(FrameDecoder(), chunked(stream, cuts))
    assert events == [Frame(p) for p in payloads]


@FAST
@given(payload=st.binary(max_size=2 * MAX_PACKET_LEN))
def test_encoded_length_never_exceeds_the_bound(payload: bytes) -> None:
    encoded = encode_frame(payload)
    assert encoded.count(0) == 1 and encoded[-1] == 0
    assert len(encoded) - 1 <= cobs_max_encoded_len(len(payload))


def test_largest_packet_without_zeros_fits_the_default_frame_limit() -> None:
    packet = make_tc(0x11, 0x11, b"\x11" * MAX_TC_APP_DATA, 0x1111)
    assert len(packet) == MAX_PACKET_LEN
    decoder = FrameDecoder(validator=TC_CHECK)
    decoder.receive_data(encode_frame(packet))
    assert decoder.events() == [Frame(packet)]


@FAST
@given(
    garbage=st.binary(min_size=1, max_size=500),
    packets=packets_strategy(),
    terminated=st.booleans(),
    cuts=st.lists(st.integers(0, 4000), max_size=10),
)
def test_decoder_recovers_after_garbage(
    garbage: bytes, packets: list[bytes], terminated: bool, cuts: list[int]
) -> None:
    stream = garbage + (b"\x00" if terminated else b"") + b"".join(map(encode_frame, packets))
    terminated = terminated or garbage.endswith(b"\x00")
    events = feed(FrameDecoder(validator=TC_CHECK), chunked(stream, cuts))
    # Unterminated garbage swallows the first frame; everything after it must come through.
    survivors = packets if terminated else packets[1:]
    assert events[len(events) - len(survivors) :] == [Frame(p) for p in survivors]
    if not terminated:
        assert isinstance(events[-len(survivors) - 1], FrameRejected)


@FAST
@given(packets=packets_strategy(), data=st.data(), resync=st.booleans())
def test_decoder_recovers_after_a_cut_frame(
    packets: list[bytes], data: st.DataObject, resync: bool
) -> None:
    first = encode_frame(packets[0])
    cut_at = data.draw(st.integers(1, len(first) - 2), label="cut_at")
    rest = packets[1:]
    stream = first[:cut_at] + (b"\x00" if resync else b"") + b"".join(map(encode_frame, rest))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10), label="cuts")
    events = feed(FrameDecoder(validator=TC_CHECK), chunked(stream, cuts))
    if resync:
        # The sender's 0x00 ends the cut frame: it alone is lost.
        assert len(events) == len(rest) + 1
        assert isinstance(events[0], FrameRejected)
        assert events[1:] == [Frame(p) for p in rest]
    elif rest:
        assert isinstance(events[0], FrameRejected)
        assert events[1:] == [Frame(p) for p in rest[1:]]
    else:
        assert events == []


def reasons(stream: bytes, decoder: FrameDecoder | None = None) -> list[RejectReason | None]:
    decoder = decoder or FrameDecoder(validator=TC_CHECK)
    decoder.receive_data(stream)
    return [e.reason if isinstance(e, FrameRejected) else None for e in decoder.events()]


GOOD_TC = make_tc(17, 1, b"", 42)


def with_header_byte(packet: bytes, index: int, value: int) -> bytes:
    changed = bytearray(packet)
    changed[index] = value
    return recrc(bytes(changed))


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        pytest.param(b"\x05ab\x00", RejectReason.BAD_COBS, id="cobs-code-past-end"),
        pytest.param(b"\x03a\x00", RejectReason.BAD_COBS, id="cobs-short-block"),
        pytest.param(encode_frame(b"\x18\xc8\xc0"), RejectReason.TOO_SHORT, id="three-octets"),
        pytest.param(
            encode_frame(GOOD_TC[:-1] + bytes([GOOD_TC[-1] ^ 1])), RejectReason.BAD_CRC, id="crc"
        ),
        pytest.param(
            encode_frame(with_header_byte(GOOD_TC, 0, GOOD_TC[0] | 0x20)),
            RejectReason.BAD_HEADER,
            id="version-1",
        ),
        pytest.param(
            encode_frame(make_tm(17, 2, b"", 1, time=CdsTime(0, 0))),
            RejectReason.BAD_HEADER,
            id="tm-where-tc-expected",
        ),
        pytest.param(
            encode_frame(with_header_byte(GOOD_TC, 0, GOOD_TC[0] & ~0x08)),
            RejectReason.BAD_HEADER,
            id="no-secondary-header-flag",
        ),
        pytest.param(
            encode_frame(with_header_byte(GOOD_TC, 2, GOOD_TC[2] & 0x3F)),
            RejectReason.BAD_HEADER,
            id="segmented",
        ),
        pytest.param(
            encode_frame(with_header_byte(GOOD_TC, 6, 0x1F)),
            RejectReason.BAD_HEADER,
            id="pus-version-1",
        ),
        pytest.param(
            encode_frame(with_header_byte(GOOD_TC, 5, GOOD_TC[5] + 1)),
            RejectReason.BAD_LENGTH,
            id="length-field-one-too-many",
        ),
        pytest.param(
            encode_frame(recrc(GOOD_TC[:-2] + b"\x00" + GOOD_TC[-2:])),
            RejectReason.BAD_LENGTH,
            id="extra-octet",
        ),
        pytest.param(
            encode_frame(make_tc(17, 1, b"", 42, apid=APID_FSW + 1)),
            RejectReason.UNKNOWN_APID,
            id="other-apid",
        ),
        pytest.param(
            b"\x01" * (MAX_FRAME_LEN + 1) + b"\x00", RejectReason.TOO_LONG, id="one-past-limit"
        ),
    ],
)
def test_each_kind_of_bad_frame_is_rejected_with_its_reason(
    stream: bytes, reason: RejectReason
) -> None:
    decoder = FrameDecoder(validator=TC_CHECK)
    assert reasons(stream + encode_frame(GOOD_TC), decoder) == [reason, None]
    assert decoder.counters.rejected[reason] == 1
    assert decoder.counters.frames_ok == 1


def test_rejection_detail_says_what_was_wrong() -> None:
    decoder = FrameDecoder(validator=TC_CHECK)
    decoder.receive_data(encode_frame(make_tc(17, 1, b"", 0, apid=0x0C9)))
    (event,) = decoder.events()
    assert isinstance(event, FrameRejected)
    assert "APID 0x0c9" in event.detail and "0x0c8" in event.detail


@FAST
@given(packet=st.just(GOOD_TC), bit=st.integers(0, len(GOOD_TC) * 8 - 1))
def test_any_single_bit_flip_is_a_bad_crc(packet: bytes, bit: int) -> None:
    flipped = bytearray(packet)
    flipped[bit // 8] ^= 0x80 >> (bit % 8)
    assert reasons(encode_frame(bytes(flipped))) == [RejectReason.BAD_CRC]


def test_frame_exactly_at_the_limit_is_accepted_by_the_cobs_layer() -> None:
    decoder = FrameDecoder(max_frame_len=10)
    payload = b"\x07" * 9
    assert len(cobs.encode(payload)) == 10
    decoder.receive_data(encode_frame(payload) + b"\x01" * 11 + b"\x00")
    events = decoder.events()
    assert events[0] == Frame(payload)
    assert isinstance(events[1], FrameRejected) and events[1].reason is RejectReason.TOO_LONG


def test_empty_frames_are_ignored_silently() -> None:
    decoder = FrameDecoder(validator=TC_CHECK)
    decoder.receive_data(b"\x00\x00" + encode_frame(GOOD_TC) + b"\x00")
    assert decoder.events() == [Frame(GOOD_TC)]
    assert decoder.counters.empty_frames == 3
    assert decoder.counters.rejected_total == 0


def test_payload_of_zero_bytes_is_a_frame_not_an_empty_frame() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(encode_frame(b""))
    assert decoder.events() == [Frame(b"")]


@FAST
@given(
    length=st.integers(MAX_FRAME_LEN + 1, 6 * MAX_FRAME_LEN),
    sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=50),
)
def test_overlong_frame_never_grows_the_buffer_past_the_bound(
    length: int, sizes: list[int]
) -> None:
    decoder = FrameDecoder(validator=TC_CHECK)
    stream = b"\x5a" * length + b"\x00" + encode_frame(GOOD_TC)
    events: list[Frame | FrameRejected] = []
    pos, i = 0, 0
    while pos < len(stream):
        chunk = stream[pos : pos + sizes[i % len(sizes)]]
        pos += len(chunk)
        i += 1
        decoder.receive_data(chunk)
        events.extend(decoder.events())
        assert decoder.frame_buffer_len <= decoder.max_frame_len
        assert decoder.pending_len == 0
    assert [type(e) for e in events] == [FrameRejected, Frame]
    assert isinstance(events[0], FrameRejected)
    assert events[0].reason is RejectReason.TOO_LONG
    assert events[0].raw_len > MAX_FRAME_LEN
    assert events[1] == Frame(GOOD_TC)


def test_overlong_frame_is_reported_before_its_end_arrives() -> None:
    decoder = FrameDecoder(max_frame_len=16)
    decoder.receive_data(b"\x01" * 17)
    (event,) = decoder.events()
    assert isinstance(event, FrameRejected) and event.reason is RejectReason.TOO_LONG
    assert "at least 17" in event.detail
    decoder.receive_data(b"\x01" * 1000)
    assert decoder.events() == [] and decoder.frame_buffer_len == 0
    decoder.receive_data(b"\x00" + encode_frame(b"ok"))
    assert decoder.events() == [Frame(b"ok")]


def test_receive_data_only_buffers() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(encode_frame(b"abc"))
    assert decoder.counters.bytes_received == 0 and decoder.pending_len == 5
    assert decoder.next_event() == Frame(b"abc")
    assert decoder.next_event() is NEED_DATA


def test_events_are_frozen() -> None:
    frame = Frame(b"x")
    with pytest.raises(AttributeError):
        frame.payload = b"y"  # type: ignore[misc]
    assert not hasattr(frame, "__dict__")
