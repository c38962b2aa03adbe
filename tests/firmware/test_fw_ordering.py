"""In-order execution of the host's TCs (docs/ICD.md 6.1), on the flight software's core:
the TCs are built and numbered here, as the ICD describes them. A TC is accepted as it
arrives; the order in which the target started them is read from its start reports."""

from __future__ import annotations

import json
import struct

import pytest
from fw_harness import Harness, Reply

from firmware_sim.health import NonVolatile
from protocol.codes import EventId, FailureCode, FunctionId
from protocol.framing import encode_frame
from protocol.link import HOLD_WINDOW, gap_timeout
from protocol.payloads import GapReport, outcome_query, read_outcomes
from protocol.request_id import RequestId

PING = (17, 1)
START = (149, 3)
SET_MODE_TEST = (8, 1, struct.pack("!HB", FunctionId.SET_MODE, 3))
"""A TC that acts (hazardous, signed with the null key in TEST mode)."""
GAP_S = gap_timeout()


def stage(reply: Reply, subtype: int) -> list[int]:
    """Sequence counts of the requests that reached ``subtype`` (1 accepted, 3 started), in
    the order the target reported them."""
    return [r.request_id.seq_count for r in reply.reports if int(r.subtype) == subtype]


def started(h: Harness, count: int = 500) -> Harness:
    """The target runs TCs in order from ``count + 1``."""
    reply = h.tc(*START, seq=count)
    assert reply.ok, reply.reports
    h.seq = count
    return h


def send(h: Harness, *packets: bytes) -> Reply:
    """Several TCs in one read of the port."""
    return h.send_bytes(b"".join(encode_frame(p) for p in packets))


def test_a_tc_ahead_of_a_missing_count_is_accepted_and_starts_after_it() -> None:
    h = started(Harness())
    first, second, third = (h.packet(*SET_MODE_TEST) for _ in range(3))
    early = send(h, third, second)
    assert stage(early, 1) == [503, 502], "accepted as they arrive"
    assert stage(early, 3) == [], "ahead of count 501: they wait to start"
    assert h.fsw.dispatcher.order.waiting == 2
    gaps = [GapReport.unpack(t.source_data) for t in early.of(149, 4)]
    assert gaps == [GapReport(501, 503, 1), GapReport(501, 502, 2)], "count 501 is missing"
    filled = send(h, first)
    assert stage(filled, 3) == [501, 502, 503]
    assert all(r.success for r in filled.reports) and len(stage(filled, 7)) == 3
    assert h.fsw.dispatcher.order.expected == 504 and h.fsw.dispatcher.order.waiting == 0


def test_a_copy_of_a_waiting_tc_is_a_duplicate_and_the_tc_starts_once() -> None:
    h = started(Harness())
    first, second = h.packet(*SET_MODE_TEST), h.packet(*SET_MODE_TEST)
    send(h, second)
    copies = send(h, second, second)
    refusals = [r for r in copies.reports if not r.success]
    assert [(r.failure_code, r.failure_data) for r in refusals] == [
        (FailureCode.DUPLICATE, struct.pack("!BH", 1, 0))
    ] * 2, "the original was accepted and has not started"
    assert len(copies.of(149, 4)) == 2, "each copy says again that 501 is missing"
    filled = send(h, first)
    assert stage(filled, 3) == [501, 502]


def test_pings_and_outcome_queries_never_wait_and_their_counts_count_as_arrived() -> None:
    h = started(Harness())
    first = h.packet(*SET_MODE_TEST)
    ping = h.packet(*PING)
    after = h.packet(*SET_MODE_TEST)
    assert send(h, ping).of(17, 2), "the ping is answered at once"
    assert stage(send(h, after), 3) == []
    filled = send(h, first)
    assert stage(filled, 3) == [501, 503], "the ping's count is not waited for"


def test_counts_outside_the_window_or_before_any_start_start_as_they_come() -> None:
    h = Harness()
    assert h.fsw.dispatcher.order.expected is None
    assert h.tc(*SET_MODE_TEST, seq=7000).ok and h.tc(*SET_MODE_TEST, seq=3).ok
    started(h)
    far = h.tc(*SET_MODE_TEST, seq=501 + HOLD_WINDOW + 1)
    behind = h.tc(*SET_MODE_TEST, seq=400)
    assert far.ok and behind.ok
    edge = h.tc(*SET_MODE_TEST, seq=501 + HOLD_WINDOW)
    assert stage(edge, 1) and not stage(edge, 3), f"{HOLD_WINDOW} ahead is inside the window"


def test_a_gap_that_never_fills_is_skipped_after_the_gap_timeout_and_said() -> None:
    h = started(Harness())
    h.seq = 502  # 501 is lost for good
    waiting = [h.packet(*SET_MODE_TEST) for _ in range(2)]
    assert stage(send(h, *waiting), 3) == []
    before = h.run_for(GAP_S - 0.1)
    assert stage(before, 3) == []
    after = h.run_for(0.2)
    assert stage(after, 3) == [503, 504]
    (gap,) = after.events(EventId.SEQUENCE_GAP)
    assert struct.unpack("!HHB", gap) == (501, 2, 2)
    late = h.tc(*SET_MODE_TEST, seq=501)
    assert late.ok, "a skipped count that still comes starts at once"


def test_a_start_sequence_starts_the_tcs_waiting_and_a_copy_of_it_does_not_restart() -> None:
    h = started(Harness())
    h.seq = 502
    send(h, h.packet(*SET_MODE_TEST))
    restart = h.packet(*START, seq=900)
    reply = Reply(None, send(h, restart).tms)
    assert stage(reply, 7)[0] == 900 and stage(reply, 3) == [900, 503]
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


def test_the_expected_count_survives_a_reboot_and_a_tc_waiting_ends_interrupted(
    tmp_path,
) -> None:
    h = started(Harness())
    h.seq = 502
    waiting = h.packet(*SET_MODE_TEST)
    send(h, waiting)
    path = tmp_path / "nv.json"
    h.fsw.nv.save(path)
    assert NonVolatile.load(path).order.expected == 501
    boots = h.fsw.nv.boot_count
    h.tc(8, 1, struct.pack("!H", FunctionId.RESET), seq=3000)  # outside the window: at once
    assert h.fsw.nv.boot_count == boots + 1
    assert h.fsw.dispatcher.order.expected == 501 and h.fsw.dispatcher.order.waiting == 0
    asked = h.tc(149, 1, outcome_query([RequestId.unpack(waiting)]), seq=3001)
    (outcome,) = read_outcomes(asked.of(149, 2)[0].source_data)
    assert (outcome.stage, outcome.code) == (4, FailureCode.INTERRUPTED), "failed to start"


@pytest.mark.parametrize("bad", ["-1", "16384", '"12"', "1.5"])
def test_a_store_with_a_wrong_expected_count_is_refused_by_name(tmp_path, bad) -> None:
    path = tmp_path / "nv.json"
    store = {"boot_count": 1, "watchdog_resets": 0, "auth_replay": {}}
    path.write_text(json.dumps(store | {"expected_seq": json.loads(bad)}))
    with pytest.raises(ValueError, match="expected_seq must be a sequence count 0..16383"):
        NonVolatile.load(path)
