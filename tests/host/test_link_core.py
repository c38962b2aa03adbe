"""The link core without threads or ports: the test plays the target, feeding it the octets
a target sends (TM built with ``protocol``'s packet builders), and moves time by passing
``now``."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.commands import Authenticator, Command, Completion, Timing
from host.errors import CommandFailed, CommandTimeout, PortNotFound
from host.link_core import SILENCE_TIMEOUTS, LinkCore
from host.link_events import (
    CommandEnded,
    CommandSent,
    Event,
    FrameDropped,
    FrameOut,
    LinkState,
    ReopenPort,
    StateChanged,
    TmArrived,
)
from host.stage import Stage
from protocol.auth import split_auth
from protocol.codes import AckFlags, FailureCode, VerificationSubtype
from protocol.framing import NEED_DATA, Frame, FrameDecoder, encode_frame
from protocol.link import (
    DUPLICATE_WINDOW,
    HOLD_WINDOW,
    MAX_OUTCOME_QUERIES,
    MAX_OUTSTANDING,
    SOURCE_ID_HOST,
)
from protocol.packets import Telecommand, make_tm, parse_tc
from protocol.payloads import GapReport, Outcome, pack_outcomes, read_outcome_query
from protocol.request_id import RequestId
from protocol.sequence import seq_diff
from protocol.timecode import CdsTime
from protocol.verification import VerificationReport, make_verification_tm

ACC = 1.0
"""Acceptance timeout of these tests: time is passed in, so any value reads as well."""
TIMING = Timing(acceptance_s=ACC, completion_s=5.0, progress_s=3.0)
KEY_ID, KEY = 7, bytes(range(32))
SET_JOB_TIMEOUT = Command(20, 3, struct.pack("!BHI", 1, 0x0011, 3000))
"""A hazardous TC (ICD 13)."""
EPOCH = CdsTime.from_unix(0)
PING = Command(17, 1)


@dataclass
class Target:
    """The far end, as octets: what the core wrote (decoded back into TCs), and TM to
    answer with, numbered as a target numbers its TM (ICD 6)."""

    core: LinkCore
    seq: int = 0
    wire: list[bytes] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def written(self, now: float) -> list[bytes]:
        """Let the core write everything it wants to now; the frames, as written."""
        frames = []
        while data := self.core.data_to_send(now):
            self.core.data_written(now)
            frames.append(data)
        self.wire += frames
        self.collect()
        return frames

    def tcs(self, now: float) -> list[Telecommand]:
        """What the core writes now, decoded."""
        return [tc for frame in self.written(now) for tc in _decode(frame)]

    def tm(self, service: int, subtype: int, data: bytes, now: float, *, skip: int = 0) -> None:
        """The target sends one TM (``skip`` TM before it were lost on the way)."""
        self.seq += skip
        packet = make_tm(service, subtype, data, self.seq, time=EPOCH, dest_id=SOURCE_ID_HOST)
        self.seq += 1
        self.core.receive_data(encode_frame(packet), now)
        self.collect()

    def report(
        self, tc: Telecommand | RequestId, subtype: int, now: float, code: int | None = None,
        data: bytes = b"", *, skip: int = 0,
    ) -> None:  # fmt: skip
        """The target sends TM[1,subtype] about ``tc`` (a TC, or a request id)."""
        rid = tc.request_id if isinstance(tc, Telecommand) else tc
        report = VerificationReport(VerificationSubtype(subtype), rid, None, code, data)
        self.seq += skip
        packet = make_verification_tm(report, self.seq, time=EPOCH, dest_id=SOURCE_ID_HOST)
        self.seq += 1
        self.core.receive_data(encode_frame(packet), now)
        self.collect()

    def answer_ping(self, tc: Telecommand, now: float) -> None:
        """Every report of a ping, in the ICD's order (section 9)."""
        self.core.receive_data(_ping_answer(tc, self.seq), now)
        self.seq += 4
        self.collect()

    def answer_sync(self, tc: Telecommand, now: float) -> None:
        """Every report of a start-sequence TC[149,3] (ICD 6.1): accepted, started, done."""
        assert (tc.service, tc.subtype) == (149, 3), tc
        for sub in (1, 3, 7):
            self.report(tc, sub, now)

    def collect(self) -> None:
        while (ev := self.core.next_event()) is not None:
            self.events.append(ev)

    def ended(self) -> dict[int, Completion | Exception]:
        return {e.handle: e.result for e in self.events if isinstance(e, CommandEnded)}

    def changes(self) -> list[str]:
        return [e.kind for e in self.events if isinstance(e, StateChanged)]

    def advance(self, now: float) -> list[Telecommand]:
        """Time passes to ``now``: tick at every deadline on the way and write what the
        core returns, as the shell does; the TCs written meanwhile."""
        out: list[Telecommand] = []
        while (deadline := self.core.next_deadline()) is not None and deadline <= now:
            self.core.tick(deadline)
            self.collect()
            out += self.tcs(deadline)
            after = self.core.next_deadline()
            assert after is None or after > deadline, "a deadline that tick did not clear"
        self.core.tick(now)
        self.collect()
        return out + self.tcs(now)


def _ping_answer(tc: Telecommand, seq: int) -> bytes:
    """The octets a target answers a ping with: TM[1,1], TM[1,3], TM[17,2], TM[1,7]."""
    out = b""
    for n, sub in enumerate((1, 3, 0, 7)):
        if sub:
            report = VerificationReport(VerificationSubtype(sub), tc.request_id)
            packet = make_verification_tm(report, seq + n, time=EPOCH, dest_id=SOURCE_ID_HOST)
        else:
            packet = make_tm(17, 2, b"", seq + n, time=EPOCH, dest_id=SOURCE_ID_HOST)
        out += encode_frame(packet)
    return out


def _decode(frame: bytes) -> list[Telecommand]:
    decoder = FrameDecoder()
    decoder.receive_data(frame)
    out = []
    while (ev := decoder.next_event()) is not NEED_DATA:
        assert isinstance(ev, Frame), ev
        out.append(parse_tc(ev.payload))
    return out


def _up(**options) -> Target:
    """A core on an open port whose link is up (opened without a link start)."""
    core = LinkCore(TIMING, port="test", seq_start=100, **options)
    core.port_opened(0.0, start=False)
    target = Target(core)
    target.collect()
    assert core.state is LinkState.UP
    return target


# --- the window -------------------------------------------------------------------------------


def test_window_holds_at_most_max_outstanding_tcs_without_acceptance() -> None:
    t = _up()
    for _ in range(MAX_OUTSTANDING + 4):
        t.core.submit(PING, 0.0)
    sent = t.tcs(0.0)
    assert len(sent) == MAX_OUTSTANDING
    assert t.tcs(0.1) == [], "nothing more until an acceptance report"
    t.report(sent[0], 1, 0.2)
    more = t.tcs(0.2)
    assert len(more) == 1 and more[0].request_id not in {tc.request_id for tc in sent}
    t.report(sent[1], 2, 0.3, FailureCode.UNKNOWN_SUBTYPE, b"\x01")  # a failure frees one too
    assert len(t.tcs(0.3)) == 1


def test_window_of_one_sends_in_submission_order() -> None:
    t = _up(window=1)
    handles = [t.core.submit(Command(17, 1), 0.0), t.core.submit(Command(3, 27, b"\1\0\1"), 0.0)]
    first = t.tcs(0.0)
    assert [tc.service for tc in first] == [17]
    t.answer_ping(first[0], 0.1)
    second = t.tcs(0.1)
    assert [tc.service for tc in second] == [3]
    assert isinstance(t.ended()[handles[0]], Completion)


def test_tcs_after_a_lost_one_stay_within_the_reach_of_in_order_execution() -> None:
    """One TC is lost with every copy while the target answers all the others (as a
    target that does not order TCs would): no new TC goes HOLD_WINDOW counts or more past
    it (ICD 14), so a target that orders TCs could hold every one of them (ICD 6.1), and
    the others wait for it to end. This also keeps every copy of it inside the target's
    duplicate window."""
    t = _up()
    handles = [t.core.submit(PING, 0.0) for _ in range(2 * DUPLICATE_WINDOW)]
    order: list[RequestId] = []
    lost: RequestId | None = None
    now = 0.0
    while len(t.ended()) < len(handles) and now < 60 * ACC:
        if round(now / 0.05) % 10 == 0:
            t.tm(3, 25, b"\0\1", now)  # housekeeping: the target is alive while the rest wait
        for _ in range(8):  # a fast line: the window turns over several times per step
            for tc in t.tcs(now) + t.advance(now):
                lost = lost or tc.request_id
                order.append(tc.request_id)
                if tc.request_id != lost:
                    t.answer_ping(tc, now)
        if t.core.reopen_pending:
            t.core.port_lost(now, "reopening")  # what the shell does on ReopenPort
            t.core.port_opened(now)
        now += 0.05
    copies = [i for i, rid in enumerate(order) if rid == lost]
    assert len(copies) == 4, "the lost TC went 4 times"
    others = set(order[copies[0] : copies[-1]]) - {lost}
    assert HOLD_WINDOW - MAX_OUTSTANDING <= len(others) < HOLD_WINDOW
    assert all(seq_diff(rid.seq_count, lost.seq_count) < HOLD_WINDOW for rid in others)
    ended = t.ended()
    assert isinstance(ended[handles[0]], CommandTimeout)
    assert sum(isinstance(ended.get(h), Completion) for h in handles) == len(handles) - 1
    assert t.changes() == ["down", "disconnected", "reconnected", "retrying", "up"]


# --- retransmission ---------------------------------------------------------------------------


def test_unanswered_tc_goes_again_with_the_same_octets_at_each_acceptance_timeout() -> None:
    t = _up()
    handle = t.core.submit(PING, 0.0)
    first = t.written(0.0)
    assert len(first) == 1
    copies = []
    for n in range(1, 4):
        t.tm(5, 1, struct.pack("!H", 0x0100), n * ACC - 0.5)  # the target is alive, just lossy
        assert t.advance(n * ACC - 0.01) == [], "not before the acceptance timeout"
        copies += t.advance(n * ACC)
        assert len(copies) == n
    assert {tc.raw for tc in copies} == {tc.raw for tc in _decode(first[0])}
    t.tm(5, 1, struct.pack("!H", 0x0100), 3.5)
    t.advance(4 * ACC)
    result = t.ended()[handle]
    assert isinstance(result, CommandTimeout) and result.transmissions == 4
    assert t.changes()[0] == "down", "a TC that exhausted its retransmissions takes the link down"
    assert any(isinstance(e, ReopenPort) for e in t.events)
    assert t.core.stats.retransmissions == 3


def test_bad_crc_answer_is_retransmitted_at_once() -> None:
    t = _up()
    t.core.submit(PING, 0.0)
    (tc,) = t.tcs(0.0)
    t.report(tc, 2, 0.1, FailureCode.BAD_CRC, b"\0\1\0\2")
    (again,) = t.tcs(0.1)
    assert again.raw == tc.raw


def test_lost_reports_end_in_a_duplicate_answer_that_completes_once() -> None:
    t = _up()
    t.tm(5, 1, struct.pack("!H", 0x0100), 0.0)  # an event: the TM count starts here
    handle = t.core.submit(PING, 0.0)
    (tc,) = t.tcs(0.0)  # the target ran it; every report and the TM[17,2] were lost
    (again,) = t.advance(ACC)
    assert again.raw == tc.raw
    t.report(tc, 2, ACC + 0.1, FailureCode.DUPLICATE, b"\x07\x00\x00", skip=4)
    done = t.ended()[handle]
    assert isinstance(done, Completion) and done.duplicate and done.transmissions == 2
    assert t.core.stats.tm_lost == 4


def _accepted(command: Command) -> tuple[Target, int, Telecommand]:
    """A link up with ``command`` sent at 0 and accepted at 0.1: the target, the command's
    handle and its TC."""
    t = _up()
    handle = t.core.submit(command, 0.0)
    (tc,) = t.tcs(0.0)
    t.report(tc, 1, 0.1)
    return t, handle, tc


def _answer_query(t: Target, query: Telecommand, outcome: Outcome, now: float) -> None:
    """The target answers TC[149,1] with TM[149,2] about ``outcome``'s request."""
    assert (query.service, query.subtype) == (149, 1)
    assert read_outcome_query(query.app_data) == [outcome.request_id]
    t.report(query, 1, now)
    t.report(query, 3, now)
    t.tm(149, 2, pack_outcomes([outcome]), now)
    t.report(query, 7, now)


def test_an_accepted_tc_is_never_sent_again_but_asked_about_after_its_timeout() -> None:
    t, handle, tc = _accepted(Command(17, 1, ack=AckFlags.ACCEPTANCE | AckFlags.COMPLETION))
    (query,) = t.advance(0.1 + TIMING.completion_s)
    assert handle not in t.ended(), "not given up: asked about"
    assert t.core.stats.outcome_queries == 1
    _answer_query(t, query, Outcome(tc.request_id, 7), 0.2 + TIMING.completion_s)
    done = t.ended()[handle]
    assert isinstance(done, Completion) and done.recovered and done.stage is Stage.COMPLETION
    assert [f for f in t.wire if _decode(f)[0].service == 17] == t.wire[:1], "sent once"


def test_a_lost_failure_report_ends_the_request_with_the_code_and_data_asked() -> None:
    t, handle, tc = _accepted(SET_JOB_TIMEOUT)
    (query,) = t.advance(0.2 + TIMING.progress_s)
    failed = Outcome(tc.request_id, 8, FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x03")
    _answer_query(t, query, failed, 0.3 + TIMING.progress_s)
    error = t.ended()[handle]
    assert isinstance(error, CommandFailed) and error.stage is Stage.COMPLETION
    assert (error.code, error.data) == (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x03")
    assert "when asked (TC[149,1])" in str(error)


def test_a_request_still_running_is_awaited_again_then_ends_by_its_report() -> None:
    t, handle, tc = _accepted(PING)
    now = 0.2 + TIMING.progress_s
    (query,) = t.advance(now)
    _answer_query(t, query, Outcome(tc.request_id, 3), now)
    assert handle not in t.ended()
    assert t.core.next_deadline() == pytest.approx(now + TIMING.progress_s)
    t.report(tc, 7, now + 1.0)
    assert isinstance(t.ended()[handle], Completion)


def test_queries_whose_answers_are_lost_are_sent_anew_then_the_request_times_out() -> None:
    t, handle, tc = _accepted(PING)
    now, asked = 0.1, []
    while handle not in t.ended() and now < 120.0:
        now = t.core.next_deadline() or now + 1.0
        for query in t.advance(now):
            asked.append(query.request_id)
            t.report(query, 1, now)  # accepted; its TM[149,2] and completion are lost
    assert len(asked) == MAX_OUTCOME_QUERIES
    assert len(set(asked)) == len(asked), "each a new TC"
    error = t.ended()[handle]
    assert isinstance(error, CommandTimeout) and error.stage is Stage.START  # its next report
    assert f"{len(asked)} outcome queries got no answer" in str(error)
    assert t.changes() == []


def test_a_query_nobody_accepts_takes_the_link_down_as_any_tc() -> None:
    t, _, tc = _accepted(PING)
    sent = t.advance(0.2 + TIMING.progress_s + 4 * TIMING.acceptance_s)
    copies = 1 + TIMING.max_retransmissions
    assert [q.service for q in sent][:copies] == [149] * copies
    assert len({q.request_id for q in sent[:copies]}) == 1
    assert t.changes()[0] == "down"


def test_an_answer_whose_query_lost_its_completion_report_still_counts() -> None:
    t, handle, tc = _accepted(PING)
    now = 0.2 + TIMING.progress_s
    (query,) = t.advance(now)
    t.report(query, 1, now)
    t.tm(149, 2, pack_outcomes([Outcome(tc.request_id, 7)]), now)  # its TM[1,7] is lost
    assert [q.service for q in t.advance(now + 10.0)] == []  # not asked again
    done = t.ended()[handle]
    assert isinstance(done, Completion) and done.recovered


def test_a_request_the_target_forgot_times_out_saying_so() -> None:
    t, handle, tc = _accepted(PING)
    (query,) = t.advance(0.2 + TIMING.progress_s)
    _answer_query(t, query, Outcome(tc.request_id, 0), 0.3 + TIMING.progress_s)
    error = t.ended()[handle]
    assert isinstance(error, CommandTimeout) and "no longer remembers it" in str(error)


def test_new_tcs_wait_rather_than_push_a_request_in_flight_out_of_the_target_s_memory() -> None:
    """A request accepted and then silent must still be in the target's memory when the
    link asks about it (ICD 6, 14): fewer than DUPLICATE_WINDOW other TCs go after it
    until it ends; the outcome query itself still goes."""
    t = _up()
    handles = [t.core.submit(PING, 0.0) for _ in range(2 * DUPLICATE_WINDOW)]
    stuck: Telecommand | None = None
    order: list[int] = []  # service of each TC written after the stuck one
    now = 0.0
    while len(t.ended()) < len(handles) and now < 60.0:
        for _ in range(8):
            for tc in t.tcs(now) + t.advance(now):
                if stuck is None:
                    stuck = tc
                    t.report(tc, 1, now)  # accepted; the rest of its reports are lost
                    continue
                order.append(tc.service)
                if tc.service == 149:
                    _answer_query(t, tc, Outcome(stuck.request_id, 7), now)
                else:
                    t.answer_ping(tc, now)
        now += 0.05
    before_query = order.index(149)
    assert DUPLICATE_WINDOW - MAX_OUTSTANDING <= before_query <= DUPLICATE_WINDOW - 1
    done = t.ended()[handles[0]]
    assert isinstance(done, Completion) and done.recovered
    ended = t.ended()
    assert all(isinstance(ended[h], Completion) for h in handles), "then the rest went"


def _gap(t: Target, missing: Telecommand, arrived: Telecommand, now: float) -> None:
    """The target's TM[149,4]: TCs wait for ``missing``; ``arrived`` came ahead of it."""
    t.tm(149, 4, GapReport(missing.seq_count, arrived.seq_count, 1).pack(), now)


def test_a_gap_report_sends_the_lost_tc_again_at_once() -> None:
    """ICD 6.1, 14: the first TC was lost, the second arrived and waits for it; the target
    says so and the first goes again before its acceptance timeout."""
    t = _up()
    handles = [t.core.submit(PING, 0.0) for _ in range(2)]
    lost, waiting = t.tcs(0.0)
    _gap(t, lost, waiting, 0.01)
    (again,) = t.tcs(0.01)
    assert again.request_id == lost.request_id and t.core.stats.gap_retransmissions == 1
    _gap(t, lost, waiting, 0.02)  # the same report again: that copy is not known lost
    assert t.tcs(0.02) == []
    t.answer_ping(again, 0.03)
    t.answer_ping(waiting, 0.03)
    assert all(isinstance(t.ended()[h], Completion) for h in handles)
    assert t.core.stats.retransmissions == 1


def test_a_gap_report_about_a_copy_written_after_the_arrival_sends_nothing() -> None:
    t = _up()
    t.core.submit(PING, 0.0)
    (first,) = t.tcs(0.0)
    t.core.submit(PING, 0.5)
    (second,) = t.tcs(0.5)
    (copy,) = t.advance(ACC)  # the first's acceptance timeout: its copy goes
    assert copy.request_id == first.request_id
    _gap(t, first, second, ACC + 0.01)  # about the second, written before the copy
    assert t.tcs(ACC + 0.01) == [] and t.core.stats.gap_retransmissions == 0


def test_a_duplicate_answer_to_the_only_copy_renumbers_the_command() -> None:
    """A new session's random counts fell among those the target remembers (ICD 6): the
    TC has not run; it is sent again with a count past the target's memory."""
    t = _up()
    handle = t.core.submit(PING, 0.0)
    (tc,) = t.tcs(0.0)
    t.report(tc, 2, 0.1, FailureCode.DUPLICATE, struct.pack("!BH", 7, 0))
    (sync,) = t.tcs(0.1)
    assert (sync.service, sync.subtype) == (149, 3), "in-order execution follows the jump"
    assert seq_diff(sync.seq_count, tc.seq_count) >= DUPLICATE_WINDOW
    assert t.tcs(0.15) == [], "nothing new goes until the start-sequence is accepted"
    t.answer_sync(sync, 0.15)
    (again,) = t.tcs(0.15)
    assert again.service == 17 and again.seq_count == sync.seq_count + 1
    assert t.core.stats.seq_collisions == 1
    t.answer_ping(again, 0.2)
    done = t.ended()[handle]
    assert isinstance(done, Completion) and not done.duplicate and len(done.reports) == 1


def test_a_duplicate_answer_to_a_retransmission_is_the_original_s_outcome() -> None:
    t = _up()
    handle = t.core.submit(PING, 0.0)
    (tc,) = t.tcs(0.0)
    (copy,) = t.advance(TIMING.acceptance_s + 0.01)  # its acceptance report was lost
    assert copy.request_id == tc.request_id
    t.report(tc, 2, 2.0, FailureCode.DUPLICATE, struct.pack("!BH", 7, 0))
    done = t.ended()[handle]
    assert isinstance(done, Completion) and done.duplicate
    assert t.core.stats.seq_collisions == 0


# --- matching TM to commands ------------------------------------------------------------------


def test_a_ping_report_goes_to_the_request_whose_start_report_preceded_it() -> None:
    t = _up()
    a, b = t.core.submit(PING, 0.0), t.core.submit(PING, 0.0)
    tc_a, tc_b = t.tcs(0.0)
    t.report(tc_a, 1, 0.1)
    t.report(tc_b, 1, 0.1)
    t.report(tc_b, 3, 0.1)  # the target started B first (A waits, say)
    t.tm(17, 2, b"", 0.1)
    t.report(tc_b, 7, 0.1)
    t.report(tc_a, 3, 0.2)
    t.tm(17, 2, b"", 0.2)
    t.report(tc_a, 7, 0.2)
    ended = t.ended()
    arrivals = [e for e in t.events if isinstance(e, TmArrived) and e.tm.service == 17]
    assert [e.request_id for e in arrivals] == [tc_b.request_id, tc_a.request_id]
    assert all(len(ended[h].reports) == 1 for h in (a, b))


def test_after_lost_tm_a_ping_report_goes_to_the_oldest_open_ping() -> None:
    t = _up()
    t.core.submit(PING, 0.0)
    t.core.submit(PING, 0.0)
    tc_a, tc_b = t.tcs(0.0)
    t.report(tc_a, 1, 0.1)
    t.report(tc_b, 1, 0.1)
    t.report(tc_b, 3, 0.1)
    t.tm(17, 2, b"", 0.1, skip=1)  # a TM was lost before it: B's start may not be the last
    arrival = [e for e in t.events if isinstance(e, TmArrived)][-1]
    assert arrival.request_id == tc_a.request_id
    assert t.core.stats.tm_lost == 1


def test_tm_for_another_ground_station_is_not_attributed() -> None:
    t, _, tc = _accepted(PING)
    t.report(tc, 3, 0.1)
    packet = make_tm(17, 2, b"", t.seq, time=EPOCH, dest_id=SOURCE_ID_HOST + 1)
    t.core.receive_data(encode_frame(packet), 0.1)
    t.collect()
    assert [e for e in t.events if isinstance(e, TmArrived)][-1].request_id is None
    assert t.core.stats.tm_unattributed == 0, "not addressed to us: not ours to count"


def test_report_about_an_unknown_request_is_counted_and_kept() -> None:
    t = _up()
    t.core.submit(PING, 0.0)
    (tc,) = t.tcs(0.0)
    own = tc.request_id
    stranger = RequestId(own.packet_id, own.seq_ctrl ^ 1)
    t.report(stranger, 1, 0.1)
    assert t.core.stats.reports_unmatched == 1
    assert [e for e in t.events if isinstance(e, TmArrived)][-1].request_id == stranger
    t.report(own, 1, 0.2)
    assert t.core.stats.reports_unmatched == 1 and t.core.in_flight == 1


# --- authentication ---------------------------------------------------------------------------


def test_auth_replay_refusal_resigns_above_the_targets_number_as_a_new_tc() -> None:
    auth = Authenticator(KEY_ID, KEY, next_seq=1)
    t = _up(auth=auth)
    handle = t.core.submit(SET_JOB_TIMEOUT, 0.0)
    (tc,) = t.tcs(0.0)
    assert split_auth(tc.app_data)[1].seq == 1
    t.report(tc, 2, 0.1, FailureCode.AUTH_REPLAY, struct.pack("!HI", KEY_ID, 41))
    assert handle not in t.ended(), "the refusal is not the command's end"
    (again,) = t.tcs(0.1)
    assert again.request_id != tc.request_id, "a new TC, not a retransmission"
    data, trailer = split_auth(again.app_data)
    assert trailer.key_id == KEY_ID and trailer.seq == 42 and data == SET_JOB_TIMEOUT.app_data
    for sub in (1, 3, 7):
        t.report(again, sub, 0.2)
    done = t.ended()[handle]
    assert isinstance(done, Completion) and done.request_id == again.request_id
    assert auth.next_seq == 43


def test_a_second_auth_replay_ends_the_command_with_the_refusal() -> None:
    auth = Authenticator(KEY_ID, KEY, next_seq=1)
    t = _up(auth=auth)
    handle = t.core.submit(SET_JOB_TIMEOUT, 0.0)
    (tc,) = t.tcs(0.0)
    t.report(tc, 2, 0.1, FailureCode.AUTH_REPLAY, struct.pack("!HI", KEY_ID, 41))
    (again,) = t.tcs(0.1)
    t.report(again, 2, 0.2, FailureCode.AUTH_REPLAY, struct.pack("!HI", KEY_ID, 99))
    result = t.ended()[handle]
    assert isinstance(result, CommandFailed) and result.code is FailureCode.AUTH_REPLAY
    assert t.tcs(0.2) == [], "sent once more, not forever"


# --- link start -------------------------------------------------------------------------------


def _starting() -> Target:
    core = LinkCore(TIMING, port="test", seq_start=100)
    core.port_opened(0.0, start=True)
    t = Target(core)
    t.collect()
    assert core.state is LinkState.STARTING
    return t


def test_link_start_tcs_first_and_holds_commands_until_the_target_answers() -> None:
    t = _starting()
    handle = t.core.submit(Command(3, 27, b"\1\0\1"), 0.0)
    frames = t.written(0.0)
    assert len(frames) == 1 and frames[0].startswith(b"\x00"), "one 0x00, then TC[17,1] (ICD 14)"
    (ping,) = _decode(frames[0])
    assert (ping.service, ping.subtype) == (17, 1)
    t.answer_ping(ping, 0.1)
    (sync,) = t.tcs(0.1)
    assert sync.seq_count == ping.seq_count + 1, "then the start of in-order execution"
    assert t.changes() == [] and not t.core.started
    t.answer_sync(sync, 0.15)
    assert t.changes() == ["up"] and t.core.started
    assert [tc.service for tc in t.tcs(0.15)] == [3]
    assert handle not in t.ended()


def test_a_target_that_does_not_order_tcs_is_up_all_the_same() -> None:
    """ICD 14: a start-sequence refused at acceptance (a target without ICD 6.1)."""
    t = _starting()
    (ping,) = t.tcs(0.0)
    t.answer_ping(ping, 0.1)
    (sync,) = t.tcs(0.1)
    t.report(sync, 2, 0.2, FailureCode.UNKNOWN_SUBTYPE, bytes([149, 3]))
    assert t.changes() == ["up"]
    up = [e for e in t.events if isinstance(e, StateChanged)][-1]
    assert "refused the start of in-order execution" in up.detail


def test_a_start_sequence_nobody_accepts_fails_the_link_start() -> None:
    t = _starting()
    (ping,) = t.tcs(0.0)
    t.answer_ping(ping, 0.1)
    t.tcs(0.1)
    t.advance(0.1 + 4 * ACC)
    assert t.changes() == ["start_failed"] and not t.core.started
    error = t.core.start_error
    assert isinstance(error, CommandTimeout) and "TC[149,3]" in str(error)


def test_link_start_tcs_again_when_the_ping_report_is_lost() -> None:
    t = _starting()
    (ping,) = t.tcs(0.0)
    t.report(ping, 1, 0.1)
    t.report(ping, 3, 0.1)
    t.report(ping, 7, 0.1, skip=1)  # its TM[17,2] was lost
    (second,) = t.tcs(0.1)
    assert second.service == 17 and second.request_id != ping.request_id
    t.answer_ping(second, 0.2)
    t.answer_sync(*t.tcs(0.2), 0.2)
    assert t.changes() == ["up"] and t.core.stats.start_tcs == 3


def test_link_start_nobody_answers_fails_after_every_transmission() -> None:
    t = _starting()
    t.written(0.0)
    t.advance(4 * ACC)
    assert t.changes() == ["start_failed"]
    error = t.core.start_error
    assert isinstance(error, CommandTimeout) and error.transmissions == 4
    assert len(t.wire) == 4 and not t.core.started


# --- the dead-target rule ---------------------------------------------------------------------


def test_a_silent_target_is_down_after_two_acceptance_timeouts_and_retried_quietly() -> None:
    t = _up()
    in_flight = [t.core.submit(PING, 0.0) for _ in range(3)]
    t.written(0.0)
    down_at = SILENCE_TIMEOUTS * ACC
    t.advance(down_at - 0.01)
    assert t.core.state is LinkState.UP
    t.advance(down_at)
    assert t.core.state is LinkState.DOWN and t.changes() == ["down"]
    down = [e for e in t.events if isinstance(e, StateChanged)][-1]
    assert "no octet from the target" in down.detail and "3 TC(s)" in down.detail
    held = t.core.submit(PING, down_at + 0.1)
    t.advance(4 * ACC)  # the TCs in flight run their course
    assert all(isinstance(t.ended()[h], CommandTimeout) for h in in_flight)
    assert not any(isinstance(e, ReopenPort) for e in t.events), "silence reopens nothing"
    assert t.core.state is LinkState.RETRYING and t.changes() == ["down", "retrying"]
    probes_before = len(t.wire)
    t.advance(12 * ACC)
    assert t.changes() == ["down", "retrying"], "retrying says nothing more"
    probes = _decode(b"".join(t.wire[probes_before:]))
    assert all(tc.service == 17 for tc in probes) and len(probes) <= 12, "one frame per timeout"
    assert isinstance(t.ended()[held], CommandTimeout), "held commands end after down_timeout"
    assert "the link is down" in str(t.ended()[held])
    # The target comes back: the next probe is answered and the link is up.
    t.advance(13 * ACC)
    (probe,) = _decode(t.wire[-1])
    t.answer_ping(probe, 13 * ACC + 0.1)
    t.answer_sync(*t.tcs(13 * ACC + 0.1), 13 * ACC + 0.1)
    assert t.changes() == ["down", "retrying", "up"]
    after = t.core.submit(PING, 13.2 * ACC)
    assert len(t.tcs(13.2 * ACC)) == 1 and after not in t.ended()


def test_a_lossy_but_live_target_is_not_declared_down() -> None:
    t = _up()
    t.core.submit(PING, 0.0)
    t.written(0.0)
    for k in range(1, 8):
        t.tm(3, 25, b"\0\1", k * 0.5)  # housekeeping keeps coming; the ping is lost
        t.advance(k * 0.5)
    assert t.core.state is LinkState.UP and t.changes() == []


def test_a_command_held_while_the_port_is_gone_ends_after_the_down_timeout() -> None:
    t = _up()
    t.core.port_lost(1.0, "read failed")
    handle = t.core.submit(PING, 1.0)
    t.advance(1.0 + t.core.down_timeout_s - 0.01)
    assert handle not in t.ended()
    t.advance(1.0 + t.core.down_timeout_s)
    result = t.ended()[handle]
    assert isinstance(result, CommandTimeout) and result.transmissions == 0
    assert "the port is down" in str(result) and t.changes() == ["disconnected"]


def test_a_tc_unwritten_while_the_port_was_down_is_written_again_on_reopening() -> None:
    t = _up()
    t.core.submit(PING, 0.0)
    (tc,) = t.tcs(0.0)
    t.core.port_lost(0.5, "read failed")
    t.advance(ACC)  # its retransmission is due, and goes nowhere
    t.core.port_opened(1.5)
    t.collect()
    frames = t.written(1.5)
    assert [_decode(f)[0].raw for f in frames][:1] == [tc.raw]
    assert t.changes() == ["disconnected", "reconnected"]


def test_a_cancelled_command_is_never_sent() -> None:
    t = _up()
    t.core.submit(PING, 0.0, claim=lambda: False)
    kept = t.core.submit(Command(3, 27, b"\1\0\1"), 0.0, claim=lambda: True)
    assert [tc.service for tc in t.tcs(0.0)] == [3]
    assert kept not in t.ended()


def test_a_write_cut_short_makes_the_next_frame_start_with_a_delimiter() -> None:
    t = _up()
    t.core.submit(PING, 0.0)
    t.core.submit(PING, 0.0)
    assert t.core.data_to_send(0.0).startswith(b"\x00"), "the first frame after opening"
    t.core.data_written(0.0, cut_short=True)
    assert t.core.data_to_send(0.0).startswith(b"\x00")
    t.core.data_written(0.0)


def test_a_command_says_its_request_id_when_it_first_goes_out() -> None:
    t = _up()
    handle = t.core.submit(PING, 0.0)
    t.collect()
    assert not any(isinstance(e, CommandSent) for e in t.events), "not before it is sent"
    (tc,) = t.tcs(0.5)
    t.collect()
    sent = [e for e in t.events if isinstance(e, CommandSent)]
    assert [(e.handle, e.request_id.seq_count, e.at) for e in sent] == [(handle, tc.seq_count, 0.5)]
    t.advance(TIMING.acceptance_s + 1.0)  # a retransmission is the same request: no second
    assert sum(isinstance(e, CommandSent) for e in t.events) == 1


# --- octets from the line ---------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(1, 300), max_size=20))
def test_any_octets_in_any_chunks_never_break_the_core(noise: bytes, cuts: list[int]) -> None:
    t = _up()
    handle = t.core.submit(PING, 0.0)
    (tc,) = t.tcs(0.0)
    pos = 0
    for cut in [*cuts, len(noise)]:
        t.core.receive_data(noise[pos : pos + cut], 0.1)
        pos += cut
    t.collect()
    assert [type(e) for e in t.events[:2]] == [CommandSent, FrameOut]
    assert all(isinstance(e, TmArrived | FrameDropped) for e in t.events[2:])
    t.core.receive_data(b"\x00", 0.2)  # whatever the noise left unfinished ends here
    t.answer_ping(tc, 0.3)
    done = t.ended().get(handle)
    assert isinstance(done, Completion), done


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 64), min_size=1, max_size=30))
def test_reports_split_anywhere_on_the_line_are_handled_the_same(cuts: list[int]) -> None:
    whole, split = _up(), _up()
    for t in (whole, split):
        t.core.submit(PING, 0.0)
    (tc_w,), (tc_s,) = whole.tcs(0.0), split.tcs(0.0)
    whole.answer_ping(tc_w, 0.1)
    stream = _ping_answer(tc_s, 0)
    pos = 0
    for cut in [*cuts, len(stream)]:
        split.core.receive_data(stream[pos : pos + cut], 0.1)
        pos += cut
    split.collect()
    (a,), (b,) = whole.ended().values(), split.ended().values()
    assert isinstance(a, Completion) and isinstance(b, Completion)
    assert a.reports == b.reports and [v.subtype for v in a.verification] == [1, 3, 7]
    assert [v.subtype for v in b.verification] == [1, 3, 7]


def test_a_port_that_is_gone_ends_every_command_at_once_and_refuses_new_ones() -> None:
    t = _up()
    sent = t.core.submit(PING, 0.0)
    queued = t.core.submit(PING, 0.0)
    assert len(t.tcs(0.0)) == 2
    t.core.port_lost(0.1, "read failed")
    t.core.port_gone(0.2, "the target's pseudo-terminal is gone")
    t.collect()
    ended = t.ended()
    assert set(ended) == {sent, queued}
    for outcome in ended.values():
        assert isinstance(outcome, PortNotFound) and "pseudo-terminal is gone" in str(outcome)
    with pytest.raises(PortNotFound, match="pseudo-terminal is gone"):
        t.core.submit(PING, 0.3)
    t.core.port_opened(0.4, start=False)  # it came back after all: commands go out again
    t.core.submit(PING, 0.5)
    assert len(t.tcs(0.5)) == 1
