"""In-order execution of the host's TCs (docs/ICD.md 6.1), on the flight software's core:
the TCs are built and numbered here, as the ICD describes them, and the order in which
the target ran them is read from its acceptance reports."""

from __future__ import annotations

import struct

import pytest
from fw_harness import Harness, Reply

from firmware_sim.health import NonVolatile
from protocol.codes import EventId, FailureCode, FunctionId
from protocol.framing import encode_frame
from protocol.link import HOLD_WINDOW, gap_timeout
from protocol.payloads import GapReport
from protocol.request_id import RequestId

PING = (17, 1)
START = (149, 3)
SET_MODE_TEST = (8, 1, struct.pack("!HB", FunctionId.SET_MODE, 3))
"""A TC that acts (hazardous, signed with the null key in TEST mode)."""
GAP_S = gap_timeout()


def accepted(reply: Reply) -> list[int]:
    """Sequence counts of the requests the target accepted, in the order it did."""
    return [r.request_id.seq_count for r in reply.reports if int(r.subtype) == 1]


def started(h: Harness, count: int = 500) -> Harness:
    """The target runs TCs in order from ``count + 1``."""
    reply = h.tc(*START, seq=count)
    assert reply.ok, reply.reports
    h.seq = count
    return h


def send(h: Harness, *packets: bytes) -> Reply:
    """Several TCs in one read of the port."""
    return h.send_bytes(b"".join(encode_frame(p) for p in packets))


def test_a_tc_ahead_of_a_missing_count_waits_for_it_then_both_run_in_order() -> None:
    h = started(Harness())
    first, second, third = (h.packet(*SET_MODE_TEST) for _ in range(3))
    early = send(h, third, second)
    assert early.reports == [], "ahead of count 501: they wait, unanswered"
    assert h.fsw.dispatcher.order.waiting == 2
    gaps = [GapReport.unpack(t.source_data) for t in early.of(149, 4)]
    assert gaps == [GapReport(501, 503, 1), GapReport(501, 502, 2)], "count 501 is missing"
    filled = send(h, first)
    assert accepted(filled) == [501, 502, 503]
    assert all(r.success for r in filled.reports)
    assert h.fsw.dispatcher.order.expected == 504 and h.fsw.dispatcher.order.waiting == 0


def test_a_copy_of_a_waiting_tc_is_dropped_and_the_tc_runs_once() -> None:
    h = started(Harness())
    first, second = h.packet(*SET_MODE_TEST), h.packet(*SET_MODE_TEST)
    copies = send(h, second, second, second)
    assert copies.reports == []
    assert h.fsw.dispatcher.order.copies_dropped == 2
    assert len(copies.of(149, 4)) == 3, "each copy says again that 501 is missing"
    reply = send(h, first)
    assert accepted(reply) == [501, 502]
    again = send(h, second)
    assert again.failure is not None and again.failure[1] == FailureCode.DUPLICATE, (
        "a copy after it ran is a duplicate, answered at once"
    )


def test_pings_and_outcome_queries_never_wait_and_their_counts_count_as_arrived() -> None:
    h = started(Harness())
    first = h.packet(*SET_MODE_TEST)
    ping = h.packet(*PING)
    after = h.packet(*SET_MODE_TEST)
    reply = send(h, ping)
    assert reply.ok, "a ping ahead of a missing count runs at once"
    assert send(h, after).reports == []
    filled = send(h, first)
    assert accepted(filled) == [501, 503], "the ping's count is not waited for"


def test_counts_outside_the_window_or_before_any_start_run_as_they_come() -> None:
    h = Harness()
    assert h.fsw.dispatcher.order.expected is None
    assert h.tc(*SET_MODE_TEST, seq=7000).ok and h.tc(*SET_MODE_TEST, seq=3).ok
    started(h)
    far = h.tc(*SET_MODE_TEST, seq=501 + HOLD_WINDOW + 1)
    behind = h.tc(*SET_MODE_TEST, seq=400)
    assert far.ok and behind.ok
    edge = h.tc(*SET_MODE_TEST, seq=501 + HOLD_WINDOW)
    assert edge.reports == [], f"{HOLD_WINDOW} ahead is inside the window"


def test_a_gap_that_never_fills_is_skipped_after_the_gap_timeout_and_said() -> None:
    h = started(Harness())
    h.seq = 502  # 501 is lost for good
    waiting = [h.packet(*SET_MODE_TEST) for _ in range(2)]
    assert send(h, *waiting).reports == []
    before = h.run_for(GAP_S - 0.1)
    assert accepted(before) == []
    after = h.run_for(0.2)
    assert accepted(after) == [503, 504]
    (gap,) = after.events(EventId.SEQUENCE_GAP)
    assert struct.unpack("!HHB", gap) == (501, 2, 2)
    late = h.tc(*SET_MODE_TEST, seq=501)
    assert late.ok, "a skipped count that still comes runs at once"


def test_a_start_sequence_drops_the_tcs_waiting_and_a_copy_of_it_does_not_restart() -> None:
    h = started(Harness())
    h.seq = 502
    send(h, h.packet(*SET_MODE_TEST))
    restart = h.packet(*START, seq=900)
    assert Reply(RequestId.unpack(restart), send(h, restart).tms).ok
    order = h.fsw.dispatcher.order
    assert order.waiting == 0 and order.expected == 901
    h.seq = 900
    assert h.tc(*SET_MODE_TEST).ok
    copy = Reply(RequestId.unpack(restart), send(h, restart).tms)
    assert copy.failure is not None and copy.failure[1] == FailureCode.DUPLICATE
    assert order.expected == 902, "the copy moved nothing back"


def test_a_refused_start_sequence_spends_its_count_like_any_tc() -> None:
    h = started(Harness())
    refused = h.tc(*START, b"\x00")
    assert refused.failure is not None and refused.failure[1] == FailureCode.BAD_APP_DATA
    assert h.tc(*SET_MODE_TEST).ok, "count 502 does not wait for 501"


def test_the_expected_count_survives_a_reboot_and_the_waiting_tcs_do_not(tmp_path) -> None:
    h = started(Harness())
    h.seq = 502
    send(h, h.packet(*SET_MODE_TEST))
    path = tmp_path / "nv.json"
    h.fsw.nv.save(path)
    nv = NonVolatile.load(path)
    assert nv.order.expected == 501 and nv.order.waiting == 0
    boots = h.fsw.nv.boot_count
    h.tc(8, 1, struct.pack("!H", FunctionId.RESET), seq=3000)  # outside the window: at once
    assert h.fsw.nv.boot_count == boots + 1
    assert h.fsw.dispatcher.order.expected == 501 and h.fsw.dispatcher.order.waiting == 0


@pytest.mark.parametrize("bad", [-1, 16384, "12", 1.5])
def test_a_store_with_a_wrong_expected_count_is_refused_by_name(tmp_path, bad) -> None:
    path = tmp_path / "nv.json"
    path.write_text(
        '{"boot_count": 1, "watchdog_resets": 0, "auth_replay": {}, "expected_seq": %s}'
        % ("\"12\"" if bad == "12" else bad)
    )
    with pytest.raises(ValueError, match="expected_seq must be a sequence count 0..16383"):
        NonVolatile.load(path)
