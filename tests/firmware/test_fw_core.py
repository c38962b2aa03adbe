"""The sans-I/O core: receipt checks, service 1 stages, duplicates, sequence counts, auth."""

from __future__ import annotations

import struct

from fw_harness import KEY, KEY_ID, PING, Harness, hk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.auth import sign_tc
from protocol.codes import TC_TYPES, AckFlags, EventId, FailureCode, Mode, Service
from protocol.framing import encode_frame
from protocol.link import DUPLICATE_WINDOW, MAX_FRAME_LEN
from protocol.packets import make_tc
from protocol.payloads import HkStructure, ParamId
from protocol.request_id import RequestId


def test_boot_sends_a_delimiter_then_event_boot_with_tm_count_zero() -> None:
    fsw = Harness(mode=Mode.NOMINAL)
    (boot,) = fsw.boot
    assert (boot.service, boot.subtype, boot.seq_count) == (5, 1, 0)
    assert struct.unpack("!HIBB", boot.source_data) == (EventId.BOOT, 1, 0, Mode.NOMINAL)


def test_ping_reports_every_stage_in_order_around_the_ping_report(fsw: Harness) -> None:
    reply = fsw.tc(*PING)
    kinds = [(t.service, t.subtype) for t in reply.tms]
    assert kinds == [(1, 1), (1, 3), (17, 2), (1, 7)]
    assert all(t.dest_id == 1 for t in reply.tms)
    seqs = [t.seq_count for t in reply.tms]
    assert seqs == list(range(seqs[0], seqs[0] + 4))
    again = fsw.tc(*PING)
    assert again.of(17, 2)[0].msg_counter == reply.of(17, 2)[0].msg_counter + 1


def test_success_reports_follow_the_flags_failures_are_always_sent(fsw: Harness) -> None:
    quiet = fsw.tc(*PING, flags=AckFlags.NONE)
    assert [(t.service, t.subtype) for t in quiet.tms] == [(17, 2)]
    only_done = fsw.tc(*PING, flags=AckFlags.COMPLETION)
    assert only_done.stages == [7]
    bad = fsw.tc(17, 1, b"\x00", flags=AckFlags.NONE)
    assert bad.failure == (2, FailureCode.BAD_APP_DATA, b"\x00\x00")


def test_unknown_service_and_subtype_fail_acceptance_naming_them(fsw: Harness) -> None:
    assert fsw.tc(99, 1).failure == (2, FailureCode.UNKNOWN_SERVICE, bytes([99]))
    assert fsw.tc(17, 2).failure == (2, FailureCode.UNKNOWN_SUBTYPE, bytes([17, 2]))
    assert fsw.tc(3, 25).failure == (2, FailureCode.UNKNOWN_SUBTYPE, bytes([3, 25]))


def test_bad_frames_are_counted_and_dropped_and_the_link_goes_on(fsw: Harness) -> None:
    silent = fsw.send_bytes(b"\x05\x01\x02\x00")  # COBS code points past the frame end
    silent.tms += fsw.send_bytes(b"\x01" * (MAX_FRAME_LEN + 10) + b"\x00").tms
    assert not silent.reports
    good = fsw.packet(*PING)
    corrupt = bytearray(good)
    corrupt[-1] ^= 0xFF
    reply = fsw.send_bytes(encode_frame(bytes(corrupt)))
    ((sub, code, data),) = [(r.subtype, r.failure_code, r.failure_data) for r in reply.reports]
    assert (sub, code) == (2, FailureCode.BAD_CRC)
    assert reply.reports[0].request_id == RequestId.unpack(good)
    assert struct.unpack("!HH", data)[1] == struct.unpack("!H", bytes(corrupt[-2:]))[0]
    short = fsw.send_bytes(encode_frame(good[:5]))
    assert short.reports[0].failure_code == FailureCode.BAD_LENGTH
    wrong_apid = make_tc(17, 1, b"", 5, apid=0x123)
    assert fsw.send_bytes(encode_frame(wrong_apid)).reports[0].failure_data == b"\x01\x23"
    assert fsw.tc(*PING).ok
    system = hk(fsw, HkStructure.SYSTEM)
    assert system["frames_rejected"] == 5
    events = fsw.run_for(10).events(EventId.LINK_PACKET_REJECTED)
    events += silent.events(EventId.LINK_PACKET_REJECTED)
    assert sum(struct.unpack("!BII", e)[1] for e in events) >= 1


def test_frames_split_anywhere_are_reassembled(fsw: Harness) -> None:
    frame = encode_frame(fsw.packet(*PING)) + encode_frame(fsw.packet(*PING))
    tms = []
    for i in range(len(frame)):
        tms += fsw.send_bytes(frame[i : i + 1]).tms
    assert [(t.service, t.subtype) for t in tms].count((17, 2)) == 2


def test_a_retransmission_is_answered_duplicate_and_not_executed_again(fsw: Harness) -> None:
    raw = fsw.packet(20, 3, struct.pack("!BHI", 1, ParamId.JOB_TIMEOUT, 1234))
    first = fsw.raw_tc(raw)
    assert first.ok and len(first.events(EventId.PARAMETER_CHANGED)) == 1
    second = fsw.raw_tc(raw)
    assert second.failure == (2, FailureCode.DUPLICATE, struct.pack("!BH", 7, 0))
    assert not second.events(EventId.PARAMETER_CHANGED)
    # Same sequence count, different content: a new TC, executed.
    other = fsw.packet(17, 1, seq=RequestId.unpack(raw).seq_count)
    assert fsw.raw_tc(other).ok


def test_a_duplicate_of_a_failed_request_says_how_it_failed(fsw: Harness) -> None:
    raw = fsw.packet(8, 1, struct.pack("!HB", 0x0010, 2))  # SET_MODE SAFE
    assert fsw.raw_tc(raw).ok
    job = fsw.packet(8, 1, struct.pack("!HHBHHHIII", 1, 1, 2, 1, 1, 1, 0, 16, 32))
    assert fsw.raw_tc(job).failure == (4, FailureCode.WRONG_MODE, bytes([Mode.SAFE]))
    assert fsw.raw_tc(job).failure == (
        2,
        FailureCode.DUPLICATE,
        struct.pack("!BH", 4, FailureCode.WRONG_MODE),
    )


def test_the_request_memory_holds_the_last_duplicate_window_requests(fsw: Harness) -> None:
    first = fsw.packet(*PING)
    fsw.raw_tc(first)
    for _ in range(DUPLICATE_WINDOW - 1):
        fsw.tc(*PING)
    assert fsw.raw_tc(first).failure[1] == FailureCode.DUPLICATE  # still remembered
    fsw.tc(*PING)
    assert fsw.raw_tc(first).ok  # forgotten: executed again


def test_tm_sequence_count_wraps_after_16383(fsw: Harness) -> None:
    fsw.fsw.tm.seq._next = 16382
    tms = fsw.tc(*PING).tms
    assert [t.seq_count for t in tms] == [16382, 16383, 0, 1]


def test_hazardous_tc_with_null_key_is_refused_outside_test_mode(nominal: Harness) -> None:
    reply = nominal.tc(20, 3, struct.pack("!BHI", 1, ParamId.JOB_TIMEOUT, 500))
    assert reply.failure == (2, FailureCode.AUTH_REQUIRED, b"")
    (aux,) = reply.events(EventId.AUTH_FAILURE)
    assert struct.unpack("!IHH", aux)[1:] == (FailureCode.AUTH_REQUIRED, 0)


def test_hazardous_tc_signed_with_a_provisioned_key_is_accepted_once(nominal: Harness) -> None:
    data = struct.pack("!BHI", 1, ParamId.JOB_TIMEOUT, 500)
    ok = nominal.tc(20, 3, data, key_id=KEY_ID, auth_seq=5)
    assert ok.ok
    assert nominal.fsw.params[ParamId.JOB_TIMEOUT] == 500
    replay = nominal.tc(20, 3, data, key_id=KEY_ID, auth_seq=5)
    assert replay.failure == (2, FailureCode.AUTH_REPLAY, struct.pack("!HI", KEY_ID, 5))
    assert nominal.tc(20, 3, data, key_id=KEY_ID, auth_seq=6).ok


def test_wrong_tag_missing_trailer_and_unknown_key_fail_authentication(nominal: Harness) -> None:
    data = struct.pack("!BHI", 1, ParamId.JOB_TIMEOUT, 500)
    raw = bytearray(nominal.packet(20, 3, data, key_id=KEY_ID, auth_seq=9))
    raw[-3] ^= 1  # last tag octet
    from protocol.crc import crc16_ccitt_false

    raw[-2:] = struct.pack("!H", crc16_ccitt_false(raw[:-2]))
    assert nominal.raw_tc(bytes(raw)).failure == (
        2,
        FailureCode.AUTH_FAILED,
        struct.pack("!H", KEY_ID),
    )
    bare = make_tc(20, 3, data, 77)
    assert nominal.raw_tc(bare).failure == (2, FailureCode.AUTH_FAILED, b"\xff\xff")
    unknown = sign_tc(20, 3, data, 78, key_id=9, auth_seq=1, key=KEY)
    assert nominal.raw_tc(unknown).failure == (2, FailureCode.AUTH_FAILED, b"\x00\x09")
    assert nominal.fsw.params[ParamId.JOB_TIMEOUT] != 500
    assert hk(nominal, HkStructure.SYSTEM)["auth_failures"] == 3


def test_anti_replay_counter_survives_a_reset(nominal: Harness) -> None:
    data = struct.pack("!H", 0x0011)  # RESET
    assert nominal.tc(8, 1, data, key_id=KEY_ID, auth_seq=40).ok
    nominal.run_for(0.1)
    replay = nominal.tc(20, 3, struct.pack("!BHI", 1, ParamId.JOB_TIMEOUT, 500),
                        key_id=KEY_ID, auth_seq=40)  # fmt: skip
    assert replay.failure == (2, FailureCode.AUTH_REPLAY, struct.pack("!HI", KEY_ID, 40))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(noise=st.lists(st.binary(max_size=300), max_size=6))
def test_any_bytes_leave_the_firmware_answering(fsw: Harness, noise: list[bytes]) -> None:
    for chunk in noise:
        fsw.send_bytes(chunk)
    fsw.send_bytes(b"\x00")  # a sender resynchronises with one delimiter
    assert fsw.tc(*PING).ok


TC_KINDS = sorted(TC_TYPES)
PREFIXES = {
    3: [b"\x01\x00\x01", b"\x02\x00\x02\x00\x03", b"\x01\x00\x02\x00\x00\x01\xf4"],
    5: [b"\x00\x01\x00", b"\x02", b"\xff"],
    6: [b"\x01\x00\x00\x00", b"\x02\x00\x00\x01"],
    8: [struct.pack("!H", f) for f in (1, 2, 3, 0x10, 0x12, 0x20, 0x21)]
    + [struct.pack("!HHB", 1, 1, src) for src in (0, 1, 2)],
    20: [b"\x01\x00\x10", b"\x02\x00\x11"],
    148: [bytes([1, kind, site]) for kind in range(1, 8) for site in range(1, 8)],
}


def app_data(kind: tuple[int, int]) -> st.SearchStrategy[bytes]:
    prefixes = PREFIXES.get(kind[0], [b""])
    return st.builds(lambda p, tail: p + tail, st.sampled_from(prefixes), st.binary(max_size=40))


@settings(max_examples=400, deadline=None)
@given(
    requests=st.lists(
        st.sampled_from(TC_KINDS).flatmap(lambda k: st.tuples(st.just(k), app_data(k))),
        min_size=1,
        max_size=4,
    )
)
def test_random_application_data_is_refused_or_done_never_a_crash(requests) -> None:
    """Well-formed TCs of every type with random application data (hazardous ones signed
    with the null key in TEST mode, so the services' parsers see them)."""
    fsw = Harness()
    for (service, subtype), data in requests:
        if (service, subtype) == (Service.FUNCTION_MANAGEMENT, 1) and data[:2] == b"\x00\x11":
            data = b"\x00\x03" + data[2:]  # RESET is tested elsewhere; keep the boot count
        reply = fsw.tc(service, subtype, data)
        assert reply.failure is None or reply.failure[1] != FailureCode.INTERNAL_ERROR, [
            a for a in fsw.actions if "INTERNAL" in str(a)
        ]
        assert reply.stages and (
            reply.failure is not None or 7 in reply.stages or 3 in reply.stages
        )
    if fsw.fsw.hung:
        fsw.run_for(6)
    assert fsw.tc(*PING).ok


def test_anti_replay_number_is_spent_when_the_service_refuses_the_tc(nominal: Harness) -> None:
    """ICD 13: authentication passes, the service refuses (count 0): the number stays spent."""
    refused = nominal.tc(20, 3, b"\x00", key_id=KEY_ID, auth_seq=7)
    assert refused.failure == (2, FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x00")
    data = struct.pack("!BHI", 1, ParamId.JOB_TIMEOUT, 500)
    again = nominal.tc(20, 3, data, key_id=KEY_ID, auth_seq=7)
    assert again.failure == (2, FailureCode.AUTH_REPLAY, struct.pack("!HI", KEY_ID, 7))
    assert nominal.tc(20, 3, data, key_id=KEY_ID, auth_seq=8).ok
