"""PUS-C packets, request ids, sequence counts, service 1 reports and the auth trailer."""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spacepackets.ccsds.time import CdsShortTimestamp
from spacepackets.ecss import check_pus_crc
from spacepackets.ecss.pus_1_verification import ManagedParamsVerification, Service1Tm
from spacepackets.ecss.req_id import RequestId as SpRequestId
from spacepackets.ecss.tc import PusTc
from spacepackets.ecss.tm import ManagedParams, PusTm

from protocol import codes
from protocol.auth import (
    ANTI_REPLAY_WINDOW,
    HAZARDOUS,
    NULL_TAG,
    TAG_LEN,
    TRAILER_LEN,
    AuthTrailer,
    ReplayWindow,
    is_hazardous,
    sign_tc,
    split_auth,
    verify_tc,
)
from protocol.codes import (
    AckFlags,
    FailureCode,
    FunctionId,
    RejectReason,
    Service,
    VerificationSubtype,
)
from protocol.crc import CRC_CHECK_VALUE, crc16_ccitt_false
from protocol.errors import PacketError
from protocol.framing import encode_frame
from protocol.link import APID_FSW, SOURCE_ID_HOST
from protocol.packets import (
    MAX_TC_APP_DATA,
    MAX_TM_SOURCE_DATA,
    TC_MIN_LEN,
    make_tc,
    make_tm,
    parse_tc,
    parse_tm,
    request_id_of,
)
from protocol.request_id import RequestId
from protocol.sequence import SeqCounter, seq_diff
from protocol.timecode import UNIX_EPOCH_CCSDS_DAY, CdsTime
from protocol.verification import VerificationReport, make_verification_tm

FAST = settings(max_examples=200, deadline=None)
ICD = Path(__file__).resolve().parents[2] / "docs" / "ICD.md"

u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
seq14 = st.integers(0, 16383)
apids = st.integers(0, 0x7FF)
times = st.builds(CdsTime, days=u16, ms_of_day=st.integers(0, 86_399_999))


def recrc(packet: bytes) -> bytes:
    body = packet[:-2]
    return body + crc16_ccitt_false(body).to_bytes(2, "big")


# --- CRC ---------------------------------------------------------------------------------


def test_crc_is_ccitt_false() -> None:
    assert crc16_ccitt_false(b"123456789") == CRC_CHECK_VALUE == 0x29B1


@FAST
@given(data=st.binary(max_size=200), service=u8, subtype=u8)
def test_crc_agrees_with_spacepackets(data: bytes, service: int, subtype: int) -> None:
    packet = bytes(PusTc(service=service, message_subtype=subtype, app_data=data).pack())
    assert crc16_ccitt_false(packet[:-2]) == int.from_bytes(packet[-2:], "big")
    assert crc16_ccitt_false(packet) == 0


# --- TC: spacepackets on one side, us on the other --------------------------------------


@FAST
@given(
    service=u8,
    subtype=u8,
    app_data=st.binary(max_size=MAX_TC_APP_DATA),
    seq_count=seq14,
    ack=st.integers(0, 15),
    source_id=u16,
)
def test_tc_written_by_spacepackets_alone_parses(
    service: int, subtype: int, app_data: bytes, seq_count: int, ack: int, source_id: int
) -> None:
    sent = PusTc(
        service=service,
        message_subtype=subtype,
        apid=APID_FSW,
        app_data=app_data,
        seq_count=seq_count,
        source_id=source_id,
        ack_flags=ack,
    )
    raw = bytes(sent.pack())
    tc = parse_tc(raw)
    assert (tc.apid, tc.seq_count, tc.service, tc.subtype) == (
        APID_FSW,
        seq_count,
        service,
        subtype,
    )
    assert tc.ack_flags == AckFlags(ack)
    assert tc.source_id == source_id
    assert tc.app_data == app_data
    assert tc.request_id.pack() == SpRequestId.from_pus_tc(sent).pack()
    assert request_id_of(raw) == tc.request_id
    assert tc.request_id.seq_count == seq_count and tc.request_id.apid == APID_FSW


@FAST
@given(service=u8, subtype=u8, app_data=st.binary(max_size=300), seq_count=seq14, apid=apids)
def test_make_tc_parses_with_spacepackets_alone(
    service: int, subtype: int, app_data: bytes, seq_count: int, apid: int
) -> None:
    raw = make_tc(service, subtype, app_data, seq_count, apid=apid, ack_flags=AckFlags.ACCEPTANCE)
    tc = PusTc.unpack(raw)
    assert (tc.apid, tc.seq_count, tc.service, tc.message_subtype) == (
        apid,
        seq_count,
        service,
        subtype,
    )
    assert tc.app_data == app_data and tc.pus_tc_sec_header.ack_flags == 0b1000


def test_ping_tc_matches_the_icd_example() -> None:
    raw = make_tc(Service.TEST, codes.TestSubtype.PING, b"", 0, apid=APID_FSW)
    assert raw.hex(" ") == "18 c8 c0 00 00 06 2f 11 01 00 01 b5 1c"
    assert raw.hex(" ") in ICD.read_text()
    assert encode_frame(raw).hex(" ") in ICD.read_text()


def test_ping_answers_match_the_icd_examples_in_the_order_of_section_9() -> None:
    """ICD 4.6 and 15.1: the four TM answering the ping, counted 0..3 in stage order."""
    tc = make_tc(Service.TEST, codes.TestSubtype.PING, b"", 0, apid=APID_FSW)
    rid = RequestId.unpack(tc)
    time = CdsTime(0x5A00, 0)
    V = VerificationSubtype
    expected = [
        make_verification_tm(VerificationReport(V.ACCEPTANCE_SUCCESS, rid), 0, time=time,
                             dest_id=SOURCE_ID_HOST),
        make_verification_tm(VerificationReport(V.START_SUCCESS, rid), 1, time=time,
                             dest_id=SOURCE_ID_HOST),
        make_tm(Service.TEST, codes.TestSubtype.PING_REPORT, b"", 2, time=time,
                dest_id=SOURCE_ID_HOST),
        make_verification_tm(VerificationReport(V.COMPLETION_SUCCESS, rid), 3, time=time,
                             dest_id=SOURCE_ID_HOST),
    ]
    text = ICD.read_text()
    shown = re.findall(r"^\| `TM\[(\d+),(\d+)\]`, count (\d) \| `([0-9a-f ]+)` \|$", text, re.M)
    assert [(int(s), int(t), int(n), octets) for s, t, n, octets in shown] == [
        (1, 1, 0, expected[0].hex(" ")),
        (1, 3, 1, expected[1].hex(" ")),
        (17, 2, 2, expected[2].hex(" ")),
        (1, 7, 3, expected[3].hex(" ")),
    ]
    assert f"`{expected[0].hex(' ')}`." in text  # the example of 15.1


# --- TM: us on one side, spacepackets on the other --------------------------------------


@FAST
@given(
    service=u8,
    subtype=u8,
    source_data=st.binary(max_size=MAX_TM_SOURCE_DATA),
    seq_count=seq14,
    time=times,
    msg_counter=u16,
    dest_id=u16,
)
def test_tm_made_by_make_tm_parses_with_spacepackets_alone(
    service: int,
    subtype: int,
    source_data: bytes,
    seq_count: int,
    time: CdsTime,
    msg_counter: int,
    dest_id: int,
) -> None:
    raw = make_tm(
        service,
        subtype,
        source_data,
        seq_count,
        time=time,
        msg_counter=msg_counter,
        dest_id=dest_id,
    )
    assert check_pus_crc(raw)
    tm = PusTm.unpack(raw, timestamp_len=CdsShortTimestamp.TIMESTAMP_SIZE)
    assert (tm.apid, tm.seq_count, tm.service, tm.message_subtype) == (
        APID_FSW,
        seq_count,
        service,
        subtype,
    )
    assert tm.source_data == source_data
    assert tm.pus_tm_sec_header.message_counter == msg_counter
    assert tm.pus_tm_sec_header.dest_id == dest_id
    stamp = CdsShortTimestamp.unpack(tm.timestamp)
    assert (stamp.ccsds_days, stamp.ms_of_day) == (time.days, time.ms_of_day)
    ours = parse_tm(raw)
    assert (ours.source_data, ours.time, ours.msg_counter) == (source_data, time, msg_counter)


@FAST
@given(service=u8, subtype=u8, source_data=st.binary(max_size=300), seq_count=seq14, time=times)
def test_tm_written_by_spacepackets_alone_parses(
    service: int, subtype: int, source_data: bytes, seq_count: int, time: CdsTime
) -> None:
    sent = PusTm(
        service=service,
        message_subtype=subtype,
        timestamp=CdsShortTimestamp(ccsds_days=time.days, ms_of_day=time.ms_of_day).pack(),
        source_data=source_data,
        apid=APID_FSW,
        seq_count=seq_count,
    )
    tm = parse_tm(bytes(sent.pack()))
    assert (tm.service, tm.subtype, tm.seq_count, tm.time) == (service, subtype, seq_count, time)
    assert tm.source_data == source_data


def test_time_code_is_cds_short_from_the_ccsds_epoch() -> None:
    assert CdsTime.from_unix(0) == CdsTime(UNIX_EPOCH_CCSDS_DAY, 0)
    assert CdsTime.from_unix(86_400.25) == CdsTime(UNIX_EPOCH_CCSDS_DAY + 1, 250)
    assert CdsTime(0x0102, 0x03040506).pack() == bytes.fromhex("40 01 02 03 04 05 06")
    assert CdsTime.from_unix(1_700_000_000.5).to_unix() == 1_700_000_000.5


# --- receipt checks: every defect with its code -----------------------------------------

PING = make_tc(17, 1, b"\x01\x02\x03", 77)


def expect_error(raw: bytes, code: FailureCode, reason: RejectReason | None) -> PacketError:
    with pytest.raises(PacketError) as info:
        parse_tc(raw)
    assert info.value.code is code, info.value.message
    assert info.value.reason is reason
    return info.value


@FAST
@given(bit=st.integers(0, len(PING) * 8 - 1))
def test_any_single_bit_flip_is_caught_as_bad_crc(bit: int) -> None:
    raw = bytearray(PING)
    raw[bit // 8] ^= 0x80 >> (bit % 8)
    error = expect_error(bytes(raw), FailureCode.BAD_CRC, RejectReason.BAD_CRC)
    assert re.search(
        r"CRC mismatch: computed 0x[0-9a-f]{4} .*packet says 0x[0-9a-f]{4}", str(error)
    )


def test_crc_error_names_both_values() -> None:
    raw = PING[:-2] + b"\xab\xcd"
    error = expect_error(raw, FailureCode.BAD_CRC, RejectReason.BAD_CRC)
    computed = crc16_ccitt_false(PING[:-2])
    assert f"computed {computed:#06x}" in str(error) and "packet says 0xabcd" in str(error)
    assert error.request_id == RequestId.unpack(PING)
    assert error.data == struct.pack("!HH", computed, 0xABCD)


@pytest.mark.parametrize("delta", [-3, -1, 1, 2, 100])
def test_length_field_that_disagrees_with_the_packet_is_bad_length(delta: int) -> None:
    raw = bytearray(PING)
    struct.pack_into("!H", raw, 4, struct.unpack_from("!H", raw, 4)[0] + delta)
    error = expect_error(recrc(bytes(raw)), FailureCode.BAD_LENGTH, RejectReason.BAD_LENGTH)
    assert "length field" in str(error) and f"but {len(PING)} octets" in str(error)
    assert error.data == struct.pack("!HH", len(PING), len(PING) - 7 + delta)


def test_extra_or_missing_octets_are_bad_length() -> None:
    body = PING[:-2]
    for wrong in (body + b"\x00", body[:-1]):
        raw = wrong + crc16_ccitt_false(wrong).to_bytes(2, "big")
        expect_error(raw, FailureCode.BAD_LENGTH, RejectReason.BAD_LENGTH)


def test_consistent_packet_too_small_for_a_pus_tc_is_bad_length() -> None:
    short = bytearray(PING[: TC_MIN_LEN - 3])
    struct.pack_into("!H", short, 4, len(short) - 7)
    error = expect_error(recrc(bytes(short)), FailureCode.BAD_LENGTH, RejectReason.BAD_LENGTH)
    assert f"at least {TC_MIN_LEN}" in str(error)


@pytest.mark.parametrize("n", [0, 1, 5, 7])
def test_fragments_shorter_than_a_header_and_crc_are_too_short(n: int) -> None:
    expect_error(PING[:n], FailureCode.BAD_LENGTH, RejectReason.TOO_SHORT)


def test_tm_given_to_parse_tc_is_bad_header() -> None:
    error = expect_error(
        make_tm(17, 2, b"", 0, time=CdsTime(0, 0)), FailureCode.BAD_HEADER, RejectReason.BAD_HEADER
    )
    assert "expected TC" in str(error)


def test_tm_with_another_time_code_is_bad_header() -> None:
    raw = bytearray(make_tm(3, 25, b"hk", 0, time=CdsTime(1, 2)))
    raw[13] = 0x44  # CDS with 24-bit days
    with pytest.raises(PacketError) as info:
        parse_tm(recrc(bytes(raw)))
    assert info.value.reason is RejectReason.BAD_HEADER and "P-field 0x44" in str(info.value)


def test_unknown_apid_is_illegal_apid() -> None:
    raw = make_tc(17, 1, b"", 5, apid=0x123)
    error = expect_error(raw, FailureCode.ILLEGAL_APID, RejectReason.UNKNOWN_APID)
    assert error.request_id is not None and error.request_id.apid == 0x123
    assert error.data == b"\x01\x23"
    assert parse_tc(raw, apids=None).apid == 0x123


@FAST
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_packet_error(data: bytes) -> None:
    for parse in (parse_tc, parse_tm):
        try:
            parse(data, apids=None)
        except PacketError as error:
            assert error.reason is not None and error.message


def test_bad_arguments_are_our_error_not_the_peers() -> None:
    with pytest.raises(ValueError, match="seq_count must be in 0..16383, got 16384"):
        make_tc(17, 1, b"", 16384)
    with pytest.raises(ValueError, match="len\\(app_data\\)"):
        make_tc(6, 2, bytes(MAX_TC_APP_DATA + 1), 0)
    with pytest.raises(ValueError, match="service"):
        make_tm(256, 1, b"", 0, time=CdsTime(0, 0))


# --- sequence counts ---------------------------------------------------------------------


def test_sequence_counter_wraps_after_14_bits() -> None:
    counter = SeqCounter(16382)
    assert [counter.next() for _ in range(4)] == [16382, 16383, 0, 1]
    assert counter.peek == 2
    with pytest.raises(ValueError):
        SeqCounter(16384)


@FAST
@given(a=seq14, d=st.integers(-8192, 8191))
def test_seq_diff_is_the_signed_distance_modulo_2_14(a: int, d: int) -> None:
    assert seq_diff((a + d) % 16384, a) == d


# --- service 1 ---------------------------------------------------------------------------


def verification_reports() -> st.SearchStrategy[VerificationReport]:
    def build(sub: VerificationSubtype, rid: int, step: int, code: int, data: bytes):
        progress = sub in (
            VerificationSubtype.PROGRESS_SUCCESS,
            VerificationSubtype.PROGRESS_FAILURE,
        )
        failed = sub % 2 == 0
        return VerificationReport(
            sub,
            RequestId.unpack(struct.pack("!I", rid)),
            step=step if progress else None,
            failure_code=code if failed else None,
            failure_data=data if failed else b"",
        )

    return st.builds(
        build,
        st.sampled_from(VerificationSubtype),
        st.integers(0, 0xFFFFFFFF),
        u16,
        st.one_of(st.sampled_from(FailureCode), u16),
        st.binary(max_size=40),
    )


@FAST
@given(report=verification_reports(), seq_count=seq14)
def test_verification_report_parses_with_spacepackets_and_back(
    report: VerificationReport, seq_count: int
) -> None:
    raw = make_verification_tm(report, seq_count, time=CdsTime(100, 5))
    theirs = Service1Tm.unpack(
        raw,
        ManagedParams(timestamp_len=7),
        ManagedParamsVerification(bytes_step_id=2, bytes_err_code=2),
    )
    assert theirs.tc_req_id.as_u32() == report.request_id.as_u32()
    if report.step is not None:
        assert theirs.step_id is not None and theirs.step_id.val == report.step
    if report.failure_code is not None:
        assert theirs.failure_notice is not None
        assert theirs.failure_notice.code.val == report.failure_code
        assert theirs.failure_notice.data == report.failure_data
    tm = parse_tm(raw)
    assert VerificationReport.unpack(tm.subtype, tm.source_data) == report


def test_verification_report_about_a_tc_quotes_its_request_id() -> None:
    tc = parse_tc(PING)
    report = VerificationReport(
        VerificationSubtype.ACCEPTANCE_FAILURE,
        tc.request_id,
        failure_code=FailureCode.UNKNOWN_SUBTYPE,
        failure_data=b"\x11\x01",
    )
    assert report.pack() == PING[:4] + b"\x00\x11\x11\x01"
    assert VerificationReport.unpack(2, report.pack()).failure_code is FailureCode.UNKNOWN_SUBTYPE


@pytest.mark.parametrize(
    ("subtype", "data"),
    [(1, b"\x00" * 3), (1, b"\x00" * 5), (2, b"\x00" * 5), (5, b"\x00" * 4), (6, b"\x00" * 7)],
)
def test_malformed_verification_source_data_is_bad_app_data(subtype: int, data: bytes) -> None:
    with pytest.raises(PacketError) as info:
        VerificationReport.unpack(subtype, data)
    assert info.value.code is FailureCode.BAD_APP_DATA
    assert f"TM[1,{subtype}]" in str(info.value)


def test_inconsistent_verification_report_is_refused() -> None:
    rid = RequestId.unpack(PING)
    with pytest.raises(ValueError, match="needs a failure code"):
        VerificationReport(VerificationSubtype.COMPLETION_FAILURE, rid)
    with pytest.raises(ValueError, match="needs a step id"):
        VerificationReport(VerificationSubtype.PROGRESS_SUCCESS, rid)


# --- authentication ----------------------------------------------------------------------

KEY = bytes(range(32))
KEYS = {1: KEY}
LOAD = (Service.MEMORY_MANAGEMENT, codes.MemorySubtype.LOAD)


def signed_load(auth_seq: int = 5, key_id: int = 1, key: bytes | None = KEY) -> bytes:
    return sign_tc(
        *LOAD, b"\x01\x00\x00\x10\x00payload", 9, key_id=key_id, auth_seq=auth_seq, key=key
    )


def test_auth_trailer_layout_and_tag() -> None:
    raw = signed_load()
    tc = parse_tc(raw)
    data, trailer = split_auth(tc.app_data)
    assert data == b"\x01\x00\x00\x10\x00payload"
    assert tc.app_data[-TRAILER_LEN:] == b"\x00\x01" + b"\x00\x00\x00\x05" + trailer.tag
    expected = hmac.new(KEY, raw[: -2 - TAG_LEN], hashlib.sha256).digest()[:16]
    assert trailer == AuthTrailer(key_id=1, seq=5, tag=expected)
    assert AuthTrailer.unpack(trailer.pack()) == trailer
    assert verify_tc(tc, KEYS, allow_null_key=False, replay={1: ReplayWindow(4)}) == (data, trailer)


@FAST
@given(index=st.integers(0, 60), flip=st.integers(1, 255))
def test_any_change_before_the_crc_fails_authentication(index: int, flip: int) -> None:
    raw = bytearray(signed_load())
    # From octet 7 on: primary header and PUS version changes are caught by receipt checks.
    index = 7 + index % (len(raw) - 2 - 7)
    raw[index] ^= flip
    tc = parse_tc(recrc(bytes(raw)))
    with pytest.raises(PacketError) as info:
        verify_tc(tc, KEYS, allow_null_key=False)
    # A key id changed to 0 claims the null key, refused outside TEST mode.
    assert info.value.code in (FailureCode.AUTH_FAILED, FailureCode.AUTH_REQUIRED)


def test_auth_failures_have_their_codes() -> None:
    def code_of(raw: bytes, **kwargs: object) -> FailureCode:
        with pytest.raises(PacketError) as info:
            verify_tc(parse_tc(raw), KEYS, **kwargs)  # type: ignore[arg-type]
        return info.value.code

    assert code_of(signed_load(key=bytes(32)), allow_null_key=True) is FailureCode.AUTH_FAILED
    assert code_of(signed_load(key_id=2), allow_null_key=True) is FailureCode.AUTH_FAILED
    replayed = signed_load(auth_seq=7)
    used = {1: ReplayWindow(7)}
    assert code_of(replayed, allow_null_key=False, replay=used) is FailureCode.AUTH_REPLAY
    too_old = {1: ReplayWindow(7 + ANTI_REPLAY_WINDOW)}
    with pytest.raises(PacketError) as info:
        verify_tc(parse_tc(replayed), KEYS, allow_null_key=False, replay=too_old)
    assert info.value.data == struct.pack("!HI", 1, 7 + ANTI_REPLAY_WINDOW)
    assert info.value.request_id == RequestId.unpack(replayed)
    null = signed_load(key_id=0, key=None)
    assert code_of(null, allow_null_key=False) is FailureCode.AUTH_REQUIRED
    assert verify_tc(parse_tc(null), KEYS, allow_null_key=True)[1].tag == NULL_TAG
    short = make_tc(*LOAD, b"\x00" * (TRAILER_LEN - 1), 1)
    assert code_of(short, allow_null_key=True) is FailureCode.AUTH_FAILED


def test_hazardous_commands() -> None:
    assert is_hazardous(6, 2, b"")
    assert is_hazardous(20, 3, b"")
    assert is_hazardous(148, 1, b"") and is_hazardous(148, 2, b"")
    assert not is_hazardous(148, 3, b"")
    assert is_hazardous(8, 1, struct.pack("!H", FunctionId.SET_MODE))
    assert is_hazardous(8, 1, struct.pack("!H", FunctionId.RESET))
    assert not is_hazardous(8, 1, struct.pack("!H", FunctionId.RUN_GEMM))
    assert not is_hazardous(6, 5, b"") and not is_hazardous(17, 1, b"")
    assert HAZARDOUS <= codes.TC_TYPES


# --- the ICD is the contract -------------------------------------------------------------

CODE_ENUMS: list[type[enum.Enum]] = [
    codes.Service,
    *codes.SUBTYPES.values(),
    codes.RejectReason,
    codes.FailureCode,
    codes.Severity,
    codes.EventId,
    codes.Mode,
    codes.FunctionId,
    codes.MemoryId,
    codes.FaultKind,
]


@pytest.mark.parametrize("enum_type", CODE_ENUMS, ids=lambda e: e.__name__)
def test_every_code_is_in_the_icd(enum_type: type[enum.Enum]) -> None:
    text = ICD.read_text()
    missing = [m.name for m in enum_type if f"`{m.name}`" not in text]
    assert not missing, f"docs/ICD.md does not specify {enum_type.__name__} members {missing}"


def test_every_event_has_a_severity() -> None:
    assert set(codes.EVENT_SEVERITY) == set(codes.EventId)


def test_every_reject_reason_of_a_packet_maps_to_a_failure_code() -> None:
    frame_only = {RejectReason.BAD_COBS, RejectReason.TOO_LONG}
    assert set(codes.FAILURE_FOR_REJECT) == set(RejectReason) - frame_only


def test_the_anti_replay_window_takes_each_number_once() -> None:
    w = ReplayWindow()
    assert not w.fresh(0) and w.fresh(1)
    w.accept(10)
    assert w.fresh(9) and w.fresh(10 - ANTI_REPLAY_WINDOW + 1)  # lost, then retransmitted
    assert not w.fresh(10) and not w.fresh(10 - ANTI_REPLAY_WINDOW)
    w.accept(9)
    assert not w.fresh(9) and w.fresh(8) and w.fresh(11)
    w.accept(10 + ANTI_REPLAY_WINDOW - 1)  # the window slides: 9 leaves it, 10 stays
    assert not w.fresh(9) and not w.fresh(10) and w.fresh(11)
    w.accept(10_000)  # a jump past the whole window forgets it
    assert w.seen == 1 and w.fresh(9_999) and not w.fresh(10_000 - ANTI_REPLAY_WINDOW)
