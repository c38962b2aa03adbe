"""Conformance, link level (docs/ICD.md sections 3, 4, 6, 7, 9): framing, receipt checks,
duplicates, verification stages and counts, checked from outside on any target."""

from __future__ import annotations

import os
import struct

from host.history import tm
from host.integration_api import IntegrationApi
from host.telemetry import Housekeeping
from protocol.codes import AckFlags, EventId, FailureCode, Service
from protocol.crc import crc16_ccitt_false
from protocol.link import MAX_FRAME_LEN, SOURCE_ID_HOST
from protocol.packets import make_tc
from protocol.payloads import HkStructure, Outcome, ParamId, outcome_query, read_outcomes
from protocol.request_id import RequestId

PING = (Service.TEST, 1)


def system(hil: IntegrationApi) -> Housekeeping:
    return hil.target.housekeeping(HkStructure.SYSTEM)


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("!H", crc16_ccitt_false(body))


def reports_about(hil: IntegrationApi, rid: RequestId) -> list[tuple[int, int]]:
    return [(r.service, r.subtype) for r in hil.link.history.items() if r.request_id == rid]


def failure_of(hil: IntegrationApi, packet: bytes, timeout: float = 3.0) -> tuple[int, bytes]:
    """Send a bad packet raw: the (failure code, failure data) of its TM[1,2]."""
    rid = hil.send_packet(packet)
    report = hil.await_report(rid, {2}, timeout=timeout)
    assert report is not None, f"no TM[1,2] about {rid} within {timeout} s"
    code, = struct.unpack_from("!H", report.source_data, 4)
    assert report.tm.dest_id == 0, "a rejected TC's report goes to destination 0 (ICD 7)"
    return code, report.source_data[6:]


def test_ping_is_reported_in_stage_order_around_its_report(hil: IntegrationApi) -> None:
    done = hil.send_and_assert_command(*PING)
    hil.assert_telemetry(tm(1, 7, where=lambda r: r.request_id == done.request_id))
    assert reports_about(hil, done.request_id) == [(1, 1), (1, 3), (17, 2), (1, 7)]
    (ping_report,) = done.reports
    assert ping_report.dest_id == SOURCE_ID_HOST and ping_report.source_data == b""


def test_success_reports_only_for_the_flags_set(hil: IntegrationApi) -> None:
    silent = hil.send_packet(make_tc(*PING, b"", hil.fresh_seq(), ack_flags=AckFlags.NONE))
    hil.assert_telemetry(tm(17, 2))
    only_completion = hil.send_packet(
        make_tc(*PING, b"", hil.fresh_seq(), ack_flags=AckFlags.COMPLETION)
    )
    assert hil.await_report(only_completion, {7}) is not None
    assert hil.await_report(silent, timeout=0.3) is None
    assert [s for _, s in reports_about(hil, only_completion)] == [7]


def test_failure_reports_are_sent_whatever_the_flags(hil: IntegrationApi) -> None:
    rid = hil.send_packet(make_tc(99, 1, b"", hil.fresh_seq(), ack_flags=AckFlags.NONE))
    report = hil.await_report(rid, {2})
    assert report is not None
    assert struct.unpack_from("!H", report.source_data, 4)[0] == FailureCode.UNKNOWN_SERVICE


def test_bad_crc_is_answered_with_the_octets_received(hil: IntegrationApi) -> None:
    good = make_tc(*PING, b"", hil.fresh_seq())
    bad = good[:-1] + bytes([good[-1] ^ 0xFF])
    code, data = failure_of(hil, bad)
    assert code == FailureCode.BAD_CRC
    assert data == struct.pack("!HH", crc16_ccitt_false(good[:-2]), int.from_bytes(bad[-2:]))


def test_length_field_that_disagrees_is_bad_length(hil: IntegrationApi) -> None:
    good = make_tc(*PING, b"", hil.fresh_seq())
    body = bytearray(good[:-2])
    body[4:6] = struct.pack("!H", 40)
    code, data = failure_of(hil, with_crc(bytes(body)))
    assert (code, data) == (FailureCode.BAD_LENGTH, struct.pack("!HH", len(good), 40))


def test_packet_shorter_than_a_pus_tc_is_bad_length(hil: IntegrationApi) -> None:
    header = make_tc(*PING, b"", hil.fresh_seq())[:4] + struct.pack("!H", 3)
    packet = with_crc(header + b"\x2f\x11")
    code, data = failure_of(hil, packet)
    assert (code, data) == (FailureCode.BAD_LENGTH, struct.pack("!HH", 10, 3))


def test_wrong_pus_version_and_tm_type_are_bad_header(hil: IntegrationApi) -> None:
    good = bytearray(make_tc(*PING, b"", hil.fresh_seq())[:-2])
    pus1 = good.copy()
    pus1[6] = (1 << 4) | (pus1[6] & 0x0F)
    assert failure_of(hil, with_crc(bytes(pus1))) == (FailureCode.BAD_HEADER, b"")
    tm_type = bytearray(make_tc(*PING, b"", hil.fresh_seq())[:-2])
    tm_type[0] &= ~0x10
    assert failure_of(hil, with_crc(bytes(tm_type))) == (FailureCode.BAD_HEADER, b"")


def test_unknown_apid_is_refused_naming_it(hil: IntegrationApi) -> None:
    code, data = failure_of(hil, make_tc(*PING, b"", hil.fresh_seq(), apid=0x0C9))
    assert (code, data) == (FailureCode.ILLEGAL_APID, struct.pack("!H", 0x0C9))


def test_retransmission_is_a_duplicate_and_not_executed_again(hil: IntegrationApi) -> None:
    before = system(hil)
    packet = make_tc(*PING, b"", hil.fresh_seq())
    rid = hil.send_packet(packet)
    assert hil.await_report(rid, {7}) is not None
    hil.send_packet(packet)
    report = hil.await_report(rid, {2})
    assert report is not None
    code, reached, original_code = struct.unpack_from("!HBH", report.source_data, 4)
    assert (code, reached, original_code) == (FailureCode.DUPLICATE, 7, 0)
    hil.assert_telemetry_count(tm(17, 2), 1, timeout=0.3)
    after = system(hil)
    assert after["tc_duplicates"] == before["tc_duplicates"] + 1
    assert after["tc_refused"] >= before["tc_refused"] + 1


def test_garbage_is_dropped_counted_and_the_target_answers_on(hil: IntegrationApi) -> None:
    target = hil.target
    rate_limit = target.get_parameter(ParamId.EVENT_RATE_LIMIT)
    target.set_parameter(ParamId.EVENT_RATE_LIMIT, 0)
    try:
        before = system(hil)["frames_rejected"]
        mark = hil.mark()
        hil.send_raw(b"\x00\x09\x01\x02\x00")  # a COBS code pointing past the frame
        hil.send_raw(bytes([1]) * (MAX_FRAME_LEN + 100) + b"\x00")  # too long
        hil.send_raw(os.urandom(300).replace(b"\x00", b"\x01") + b"\x00")  # noise
        hil.send_and_assert_command(*PING)
        assert system(hil)["frames_rejected"] >= before + 3
        hil.assert_event(EventId.LINK_PACKET_REJECTED, start=mark)
    finally:
        target.set_parameter(ParamId.EVENT_RATE_LIMIT, rate_limit)


def test_empty_frames_are_ignored(hil: IntegrationApi) -> None:
    before = system(hil)["frames_rejected"]
    hil.send_raw(b"\x00" * 16)
    hil.send_and_assert_command(*PING)
    assert system(hil)["frames_rejected"] == before


def test_tm_counts_go_up_by_one_and_message_counters_per_type(hil: IntegrationApi) -> None:
    first = hil.send_and_assert_command(*PING)
    second = hil.send_and_assert_command(*PING)
    items = hil.link.history.items()
    seqs = [r.seq_count for r in items]
    assert all((b - a) % 16384 == 1 for a, b in zip(seqs, seqs[1:], strict=False)), seqs
    (r1,), (r2,) = first.reports, second.reports
    assert (r2.msg_counter - r1.msg_counter) % 65536 == 1


def test_counters_of_received_accepted_and_refused_tcs_move(hil: IntegrationApi) -> None:
    before = system(hil)
    hil.send_and_assert_command(*PING)
    hil.send_and_assert_failure(99, 1, code=FailureCode.UNKNOWN_SERVICE)
    after = system(hil)
    # The ping, the refused TC and the one-shot that reads `after` (sampled as it runs).
    assert after["tc_received"] - before["tc_received"] == 3
    assert after["tc_accepted"] - before["tc_accepted"] == 2
    assert after["tc_refused"] - before["tc_refused"] == 1
    assert after["tm_sent"] > before["tm_sent"]


# --- request outcomes (ICD 6, 15.10) ---------------------------------------------------------


def outcomes_of(hil: IntegrationApi, *rids: RequestId) -> list[Outcome]:
    done = hil.send_and_assert_command(Service.REQUEST_OUTCOME, 1, outcome_query(list(rids)))
    (report,) = [t for t in done.reports if (t.service, t.subtype) == (149, 2)]
    return read_outcomes(report.source_data)


def test_the_outcome_query_says_what_became_of_each_request(hil: IntegrationApi) -> None:
    done = hil.send_packet(make_tc(*PING, b"", hil.fresh_seq()))
    assert hil.await_report(done, {7}) is not None
    refused = hil.send_packet(make_tc(Service.TEST, 9, b"", hil.fresh_seq()))
    assert hil.await_report(refused, {2}) is not None
    never = RequestId.unpack(make_tc(*PING, b"", hil.fresh_seq()))
    outcomes = outcomes_of(hil, done, refused, never)
    assert outcomes == [
        Outcome(done, 7),
        Outcome(refused, 2, FailureCode.UNKNOWN_SUBTYPE, bytes([17, 9])),
        Outcome(never, 0),
    ]


def test_the_outcome_query_is_itself_not_remembered(hil: IntegrationApi) -> None:
    query = make_tc(Service.REQUEST_OUTCOME, 1, outcome_query([RequestId(0x18C8, 0xC000)]),
                    hil.fresh_seq())  # fmt: skip
    rid = hil.send_packet(query)
    assert hil.await_report(rid, {7}) is not None
    hil.send_packet(query)  # again: answered again, not a duplicate
    assert len(hil.link.await_tm_count(lambda r: r.request_id == rid and r.subtype == 7, 2,
                                       timeout=3.0) or []) == 2  # fmt: skip
    assert outcomes_of(hil, rid) == [Outcome(rid, 0)]


def test_an_outcome_query_of_no_request_is_out_of_range(hil: IntegrationApi) -> None:
    hil.send_and_assert_failure(Service.REQUEST_OUTCOME, 1, b"\x00",
                                code=FailureCode.VALUE_OUT_OF_RANGE, data=b"\x00\x00")  # fmt: skip
    hil.send_and_assert_failure(Service.REQUEST_OUTCOME, 1, b"\x02\x18\xc8\xc0\x00",
                                code=FailureCode.BAD_APP_DATA)  # fmt: skip


def test_a_retransmission_after_a_reboot_is_still_a_duplicate(hil: IntegrationApi) -> None:
    packet = make_tc(*PING, b"", hil.fresh_seq())
    rid = hil.send_packet(packet)
    assert hil.await_report(rid, {7}) is not None
    hil.target.reset()
    mark = hil.mark()
    hil.send_packet(packet)
    report = hil.await_report(rid, {2}, start=mark)
    assert report is not None
    code, reached, original_code = struct.unpack_from("!HBH", report.source_data, 4)
    assert (code, reached, original_code) == (FailureCode.DUPLICATE, 7, 0)
    assert hil.link.await_tm(tm(17, 2), timeout=0.3, start=mark) is None, "not run again"
    assert outcomes_of(hil, rid) == [Outcome(rid, 7)]
