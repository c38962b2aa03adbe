"""The host link against the real flight software (``python -m firmware_sim``) on a pty,
directly or through the channel emulator, and against ptys nobody answers on."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import resource
import select
import struct
import threading
import time
from collections import Counter
from concurrent.futures import CancelledError
from dataclasses import replace
from pathlib import Path

import pytest
from cobs import cobs

from bench.link_reliability import start_order
from host import (
    NOW,
    Authenticator,
    BadBaudRate,
    Command,
    CommandFailed,
    CommandTimeout,
    Completion,
    Link,
    LinkClosed,
    LinkError,
    PortBusy,
    PortNotFound,
    Stage,
    Timing,
    event,
    tm,
)
from host.channel import TO_HOST, TO_TARGET, Channel
from host.commands import Tracker
from host.impairment import Impairment
from protocol.codes import AckFlags, EventId, FailureCode, RejectReason, VerificationSubtype
from protocol.framing import FrameDecoder
from protocol.packets import make_tc, parse_tc, parse_tm
from protocol.payloads import ParamId, parameter_ids
from protocol.request_id import RequestId
from protocol.verification import VerificationReport

PARAM_JOB_TIMEOUT = 0x0011  # ICD 15.7
CALM_S = 2.0
"""Acceptance timeout of tests that count frames: above any stall of a loaded CI machine."""
KEY_ID, KEY = 7, bytes(range(32))
SET_JOB_TIMEOUT = (20, 3, struct.pack("!BHI", 1, PARAM_JOB_TIMEOUT, 3000))
"""A hazardous TC (ICD 13)."""


# --- commands against the flight software ---------------------------------------------------


def test_ping_round_trip_carries_the_ping_report(link: Link) -> None:
    mark = link.history.mark()
    done = link.ping()
    assert done.stage is Stage.COMPLETION and done.transmissions == 1 and not done.duplicate
    assert [(r.service, r.subtype) for r in done.reports] == [(17, 2)]
    assert [int(v.subtype) for v in done.verification] == [1, 3, 7]
    seen = link.assert_tm(tm(17, 2), start=mark)
    assert seen.request_id == done.request_id
    assert done.request_id.apid == 0x0C8 and 0 < done.elapsed < CALM_S


def test_unknown_service_is_refused_at_acceptance_with_its_code(link: Link) -> None:
    with pytest.raises(CommandFailed) as failed:
        link.send(99, 1)
    err = failed.value
    assert err.stage is Stage.ACCEPTANCE
    assert err.code is FailureCode.UNKNOWN_SERVICE and err.data == bytes([99])
    text = str(err)
    for part in ("TC[99,1]", "acceptance", "UNKNOWN_SERVICE (0x0010)", "63", link.port):
        assert part in text, f"{part!r} missing from {text!r}"


def test_failure_at_start_names_the_stage(start_target) -> None:
    nominal = start_target()  # boots in NOMINAL: service 148 fails to start
    with (
        Link(nominal.path, acceptance_timeout_s=0.5).open() as link,
        pytest.raises(CommandFailed) as failed,
    ):
        link.send(148, 3)
    assert failed.value.stage is Stage.START
    assert failed.value.code is FailureCode.NOT_IN_TEST_MODE
    assert "TC[148,3] FAULT_INJECTION/LIST" in str(failed.value)


def test_hazardous_command_is_signed_with_the_null_key_in_test_mode(target) -> None:
    data = struct.pack("!BHI", 1, PARAM_JOB_TIMEOUT, 3000)
    with (
        Link(target.path, acceptance_timeout_s=0.5).open() as plain,
        pytest.raises(CommandFailed) as failed,
    ):
        plain.send(20, 3, data)
    assert failed.value.code is FailureCode.AUTH_FAILED
    with Link(target.path, acceptance_timeout_s=0.5, auth=Authenticator()).open() as link:
        mark = link.history.mark()
        assert link.send(20, 3, data).stage is Stage.COMPLETION
        link.assert_tm(event(EventId.PARAMETER_CHANGED), start=mark)


def test_a_command_is_signed_with_its_own_key(start_target) -> None:
    keyed = start_target("--key", f"{KEY_ID}:{KEY.hex()}")  # NOMINAL: the null key is refused
    null, own = Authenticator(), Authenticator(KEY_ID, KEY)
    with Link(keyed.path, acceptance_timeout_s=CALM_S, auth=null).open() as link:
        with pytest.raises(CommandFailed) as refused:
            link.send(*SET_JOB_TIMEOUT)
        assert refused.value.code is FailureCode.AUTH_REQUIRED
        done = link.send(*SET_JOB_TIMEOUT, auth=own)
    assert done.stage is Stage.COMPLETION
    assert (null.next_seq, own.next_seq) == (2, 2), "each signed one TC"


def test_auth_numbers_behind_the_target_are_resynchronised_in_the_link(
    start_target, hk_counters
) -> None:
    """A second host starts its anti-replay numbers at 1 again: each signed TC the target
    refuses with AUTH_REPLAY is sent once more above the number it names, even with the
    whole window in flight."""
    keyed = start_target("--key", f"{KEY_ID}:{KEY.hex()}")
    with Link(keyed.path, acceptance_timeout_s=CALM_S, auth=Authenticator(KEY_ID, KEY)) as first:
        assert all(isinstance(r, Completion) for r in first.send_many([SET_JOB_TIMEOUT] * 3))
    behind = Authenticator(KEY_ID, KEY)
    with Link(keyed.path, acceptance_timeout_s=CALM_S, auth=behind).open() as link:
        before = hk_counters(link)
        results = link.send_many([SET_JOB_TIMEOUT] * 5)
        after = hk_counters(link)
    assert all(isinstance(r, Completion) for r in results), results
    # The target took 4..8 (each TC arrives in signing order), whatever was refused first.
    assert behind.next_seq == 3 + 5 + 1
    assert after["tc_accepted"] - before["tc_accepted"] == 5 + 1, "each command once, and HK"
    refused = after["tc_refused"] - before["tc_refused"]
    assert 1 <= refused <= 3 and after["auth_failures"] - before["auth_failures"] == refused


def test_auth_replay_data_moves_the_authenticator_only_up_and_only_for_its_key() -> None:
    auth = Authenticator(KEY_ID, KEY, next_seq=10)
    assert auth.resync(struct.pack("!HI", KEY_ID, 41)) and auth.next_seq == 42
    assert auth.resync(struct.pack("!HI", KEY_ID, 5)) and auth.next_seq == 42
    assert not auth.resync(struct.pack("!HI", KEY_ID + 1, 99)) and auth.next_seq == 42
    assert not auth.resync(struct.pack("!H", KEY_ID))
    assert not Authenticator().resync(struct.pack("!HI", 0, 99))


def test_telemetry_is_awaited_and_asserted_by_predicate(link: Link) -> None:
    mark = link.history.mark()
    link.send(3, 27, struct.pack("!BH", 1, 1))
    hk = link.await_tm(tm(3, 25), start=mark)
    assert hk is not None and hk.time >= 0 and struct.unpack_from("!H", hk.source_data) == (1,)
    assert link.await_tm(tm(5, 4), timeout=0.05, start=mark) is None
    with pytest.raises(AssertionError, match=r"TM\[5,4\].*within 0.05 s"):
        link.assert_tm(tm(5, 4), timeout=0.05, start=mark)
    assert link.await_tm(tm(where=lambda r: r.seq_count == hk.seq_count), timeout=0) == hk
    assert link.await_tm(tm(3, 25), timeout=0, start=NOW) is None, "NOW: only what follows"
    link.clear_history()
    assert link.await_tm(tm(3, 25), timeout=0) is None
    # A mark taken before sending: NOW taken after submit could miss a quick answer.
    mark = link.history.mark()
    pending = link.submit(3, 27, struct.pack("!BH", 1, 2))
    assert link.assert_tm(tm(3, 25, where=lambda r: r.source_data[:2] == b"\0\2"), start=mark)
    assert pending.result().stage is Stage.COMPLETION


def test_window_keeps_at_most_w_commands_unaccepted(target, tmp_path: Path) -> None:
    log = tmp_path / "session.log"
    with (
        Channel(target.path, latency_s=0.02) as ch,
        Link(ch.host_path, window=4, session_log=log, acceptance_timeout_s=1.0).open() as link,
    ):
        results = link.send_many([Command(17, 1)] * 24)
    assert all(isinstance(r, Completion) for r in results)
    outstanding: set[str] = set()
    most = 0
    for line in log.read_text().splitlines():
        if " -> TC[17,1]" in line:
            outstanding.add(re.search(r"req (0x[0-9a-f]+)", line).group(1))
            most = max(most, len(outstanding))
        elif " <- TM[1,1]" in line:
            outstanding.discard(re.search(r"req (0x[0-9a-f]+)", line).group(1))
    assert most == 4, f"at most 4 TCs should await acceptance, and 4 should: saw {most}"


# --- losses, timeouts, retransmission, reconnection ------------------------------------------


def test_unanswered_command_times_out_after_every_retransmission(raw_pty, read_until) -> None:
    master, path = raw_pty
    with Link(path, acceptance_timeout_s=0.1).open(start=False) as link:
        with pytest.raises(CommandTimeout) as timed_out:
            link.send(17, 1)
        events = link.link_events
    err = timed_out.value
    assert err.stage is Stage.ACCEPTANCE and err.transmissions == 4
    assert path in str(err) and "TC[17,1] TEST/PING" in str(err) and "acceptance" in str(err)
    assert any(e.kind == "down" for e in events)
    sent = read_until(master, lambda d: d.count(b"\x00") >= 5, timeout=2.0)
    frames = [f for f in sent.split(b"\x00") if f]
    assert len(frames) >= 4 and len(set(frames[:4])) == 1, "the same octets, sent 4 times"
    assert parse_tc(cobs.decode(frames[0])).service == 17


def _discard(master: int, stop: threading.Event) -> None:
    """Read and drop what the host writes, as a dead board's USB-UART adapter does."""
    while not stop.is_set():
        if select.select([master], [], [], 0.05)[0]:
            with contextlib.suppress(BlockingIOError):
                os.read(master, 65536)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_dead_target_behind_a_live_port_is_down_within_two_timeouts_and_idle(
    raw_pty, caplog
) -> None:
    """The port opens and takes every write; nothing ever answers. The link says so once,
    within two acceptance timeouts, then retries without a line per attempt or a busy CPU."""
    master, path = raw_pty
    stop = threading.Event()
    sink = threading.Thread(target=_discard, args=(master, stop), daemon=True)
    sink.start()
    acc = 0.2
    caplog.set_level(logging.INFO, logger="host.link")
    try:
        with Link(path, acceptance_timeout_s=acc).open(start=False) as link:
            begun = time.monotonic()
            pending = [link.submit(17, 1) for _ in range(3)]
            down = link.await_link_event("down", timeout=20 * acc)
            assert down is not None and down.time - begun <= 2 * acc + 0.2, down
            assert "no octet from the target" in down.detail
            assert link.await_link_event("retrying", timeout=20 * acc) is not None
            for future in pending:
                err = future.exception(timeout=20 * acc)
                assert isinstance(err, CommandTimeout) and err.transmissions == 4
            cpu, wall = _cpu_s(), time.monotonic()
            assert link.await_link_event("up", timeout=2.0) is None, "nobody answers"
            used = (_cpu_s() - cpu) / (time.monotonic() - wall)
            kinds = [e.kind for e in link.link_events]
            lines = [r.getMessage() for r in caplog.records if r.name == "host.link"]
            retries = link.stats.start_tcs
    finally:
        stop.set()
        sink.join(timeout=2.0)
    assert kinds == ["opened", "down", "retrying"], kinds
    assert len(lines) == len(kinds), lines
    assert used < 0.05, f"{used:.3f} s of CPU per second while retrying"
    assert 1 <= retries <= 4, "about one ping per four acceptance timeouts"


def test_link_start_without_target_names_port_and_command(raw_pty) -> None:
    _, path = raw_pty
    link = Link(path, acceptance_timeout_s=0.05)
    with pytest.raises(CommandTimeout, match=rf"TC\[17,1\] TEST/PING .* on {path}"):
        link.open()
    assert not link.connected


def _drop_replies_to_the_next_tc(ch: Channel) -> list[tuple[int, int]]:
    """Make the channel drop every service 1 and 17 TM up to the next TM[1,7]; the list of
    what it dropped."""
    dropped: list[tuple[int, int]] = []

    def drop(frame: bytes) -> bool:
        if dropped and dropped[-1] == (1, 7):
            return False
        packet = parse_tm(cobs.decode(frame))
        if packet.service in (1, 17):
            dropped.append((packet.service, packet.subtype))
            return True
        return False

    ch.set_frame_filter(TO_HOST, drop)
    return dropped


def test_lost_replies_lead_to_one_execution_and_a_duplicate_answer(target, hk_counters) -> None:
    with Channel(target.path) as ch, Link(ch.host_path, acceptance_timeout_s=0.5).open() as link:
        before = hk_counters(link)
        dropped = _drop_replies_to_the_next_tc(ch)
        done = link.ping()
        ch.set_frame_filter(TO_HOST, None)
        after = hk_counters(link)
    assert dropped == [(1, 1), (1, 3), (17, 2), (1, 7)]
    # One retransmission after the acceptance timeout; a machine stalled longer than another
    # timeout sends one more copy, and the target must then count one more duplicate.
    assert done.duplicate and done.transmissions >= 2 and done.stage is Stage.COMPLETION
    dup = done.verification[-1]
    assert dup.failure_code is FailureCode.DUPLICATE and dup.failure_data == b"\x07\x00\x00"
    assert after["tc_accepted"] - before["tc_accepted"] == 2, "the ping and the second HK"
    assert after["tc_duplicates"] - before["tc_duplicates"] == done.transmissions - 1
    assert after["tc_received"] - before["tc_received"] == done.transmissions + 1


def test_an_answer_handled_before_the_write_returns_counts_that_transmission(
    target, monkeypatch
) -> None:
    """The reader may handle the target's answer while the sender is still inside
    ``port.write`` (a loaded machine preempts it there): that copy was sent all the same."""
    with Channel(target.path) as ch, Link(ch.host_path, acceptance_timeout_s=1.0).open() as link:
        port = link._port
        write = port.write

        def write_then_stall(data: bytes) -> int | None:
            mark = link.history.mark()
            n = write(data)
            # Return only once the reader has handled the TC's last report (or 0.5 s passed:
            # the channel dropped them).
            link.await_tm(tm(1, where=lambda r: r.subtype in (2, 7)), timeout=0.5, start=mark)
            return n

        monkeypatch.setattr(port, "write", write_then_stall)
        plain = link.ping()
        dropped = _drop_replies_to_the_next_tc(ch)
        duplicate = link.ping()
    assert plain.transmissions == 1 and not plain.duplicate and plain.elapsed > 0
    assert dropped == [(1, 1), (1, 3), (17, 2), (1, 7)]
    assert duplicate.duplicate and duplicate.transmissions == 2


def test_reconnects_when_the_device_disappears_and_carries_on(
    target, tmp_path: Path, caplog
) -> None:
    link_path = tmp_path / "ttyHIL"
    with (
        Channel(target.path, link_path=link_path) as ch,
        Link(str(link_path), acceptance_timeout_s=0.5).open() as link,
    ):
        link.ping()
        start = len(link.link_events)
        ch.disconnect_host()
        assert link.await_link_event("disconnected", start=start) is not None
        assert not link_path.exists()
        pending = link.submit(17, 1)  # held while the port is down
        ch.reconnect_host()
        assert link.await_link_event("reconnected", start=start) is not None
        assert pending.result(timeout=10).stage is Stage.COMPLETION
        assert link.await_link_event("up", start=start) is not None
        assert link.ping().stage is Stage.COMPLETION
        assert link.stats.reconnects == 1
    assert "disconnected" in caplog.text and "reconnected" in caplog.text


def test_command_held_while_the_port_is_gone_ends_after_the_down_timeout(
    target, tmp_path: Path
) -> None:
    link_path = tmp_path / "ttyHIL"
    with (
        Channel(target.path, link_path=link_path) as ch,
        Link(str(link_path), acceptance_timeout_s=0.5, down_timeout_s=0.3).open() as link,
    ):
        ch.disconnect_host()
        assert link.await_link_event("disconnected") is not None
        with pytest.raises(CommandTimeout, match="not sent: the port is down") as timed_out:
            link.send(17, 1)
        with pytest.raises(LinkError, match="port is down"):
            link.send_raw(b"\x00")
    assert timed_out.value.transmissions == 0 and timed_out.value.stage is Stage.ACCEPTANCE


def test_closing_the_link_ends_commands_in_flight(raw_pty) -> None:
    _, path = raw_pty
    link = Link(path, acceptance_timeout_s=5.0).open(start=False)
    pending = [link.submit(17, 1) for _ in range(3)]
    link.close()
    for future in pending:
        with pytest.raises(LinkClosed, match="closed before it ended"):
            future.result(timeout=1)
    with pytest.raises(LinkClosed):
        link.submit(17, 1)


def accepted_bounds(results: list) -> tuple[int, int]:
    """(TCs the target surely accepted, TCs it may have accepted) among ``results``: ended
    past acceptance, or ended at acceptance after being sent (never sent: not accepted)."""
    surely = maybe = 0
    for r in results:
        if isinstance(r, Completion) or r.stage is not Stage.ACCEPTANCE:
            surely += 1
        elif not isinstance(r, CommandTimeout) or r.transmissions > 0:
            maybe += 1
    return surely, maybe


def test_commands_run_in_the_order_sent_over_a_lossy_line(target, record_property) -> None:
    """ICD 6.1: 300 TC[20,1] with BER 1e-4 and 5 % of frames dropped each way, eight in
    flight. A lost TC is retransmitted after TCs sent behind it arrived; the target holds
    their start until it comes, so the start reports (sent as the target starts each TC)
    name the requests in the order of their counts."""
    noisy = Impairment(ber=1e-4, frame_drop=0.05)
    report = Command(20, 1, parameter_ids([ParamId.JOB_TIMEOUT]))
    with (
        Channel(target.path, baud=1_000_000, seed=7) as ch,
        Link(ch.host_path, 1_000_000, acceptance_timeout_s=0.3).open() as link,
    ):
        start = link.history.mark()
        ch.set_impairment(TO_TARGET, noisy)
        ch.set_impairment(TO_HOST, noisy)
        results = link.send_many([report] * 300)
        ch.set_impairment(TO_TARGET, Impairment())
        ch.set_impairment(TO_HOST, Impairment())
        stats = replace(link.stats)
        received = link.history.items(start)
        dropped = ch.counters()[TO_TARGET].stream.frames_dropped
    ours = {r.request_id for r in results if isinstance(r, Completion)}
    order, late = start_order(received, ours)
    record_property("ordered_run", {"starts_seen": len(order), "dropped_to_target": dropped,
                                    "retransmissions": stats.retransmissions})  # fmt: skip
    assert len(ours) >= 280 and dropped > 0 and stats.retransmissions > 0
    assert len(order) >= 250, "most start reports arrive"
    assert late == [], f"requests started out of order: {late[:5]}"


def test_every_command_ends_over_a_lossy_noisy_line(target, hk_counters, record_property) -> None:
    """1,000 pings, BER 1e-4 and 5 % of frames dropped each way at 1 Mbaud."""
    noisy = Impairment(ber=1e-4, frame_drop=0.05)
    with (
        Channel(target.path, baud=1_000_000, seed=1) as ch,
        Link(ch.host_path, 1_000_000, acceptance_timeout_s=0.3).open() as link,
    ):
        before = hk_counters(link)
        pings_before = replace(link.stats)
        ch.set_impairment(TO_TARGET, noisy)
        ch.set_impairment(TO_HOST, noisy)
        results = link.send_many([Command(17, 1)] * 1000)
        ch.set_impairment(TO_TARGET, Impairment())
        ch.set_impairment(TO_HOST, Impairment())
        # A ping that exhausts its retransmissions takes the link down, and the link starts
        # again with pings of its own (ICD 14), which the target may accept too: let them end.
        assert link.await_started(timeout=30.0)
        after = hk_counters(link)
        stats = replace(link.stats)
        line = ch.counters()
    outcome = Counter(
        "completed" if isinstance(r, Completion) else f"{type(r).__name__} at {r.stage.value}"
        for r in results
    )
    counts = dict(outcome) | {
        "retransmissions": stats.retransmissions,
        "outcome queries": stats.outcome_queries,
        "recovered": sum(isinstance(r, Completion) and r.recovered for r in results),
        "duplicates answered": sum(isinstance(r, Completion) and r.duplicate for r in results),
        "tm_lost": stats.tm_lost,
        "frames_rejected": stats.rejected_total,
        "frames_dropped_by_channel": line[TO_TARGET].stream.frames_dropped
        + line[TO_HOST].stream.frames_dropped,
        "bits_flipped": line[TO_TARGET].stream.bits_flipped + line[TO_HOST].stream.bits_flipped,
    }
    record_property("lossy_ping_counts", counts)
    print(f"\n1000 pings over BER 1e-4 + 5 % frame drop: {counts}")
    assert len(results) == 1000
    assert all(isinstance(r, Completion | CommandFailed | CommandTimeout) for r in results)
    assert outcome["completed"] >= 850, counts
    assert line[TO_HOST].stream.frames_dropped > 0 and line[TO_TARGET].stream.bits_flipped > 0
    accepted = after["tc_accepted"] - before["tc_accepted"] - 1  # less the second HK
    surely, maybe = accepted_bounds(results)
    surely += stats.start_tcs_accepted - pings_before.start_tcs_accepted
    maybe += stats.start_tcs_maybe - pings_before.start_tcs_maybe
    # The outcome queries the link sent when reports were lost (ICD 14) are TCs too.
    surely += stats.outcomes_answered - pings_before.outcomes_answered
    asked = stats.outcome_queries - pings_before.outcome_queries
    answered = stats.outcomes_answered - pings_before.outcomes_answered
    maybe += asked - answered
    maybe += stats.outcome_query_resends - pings_before.outcome_query_resends
    # Each TC the target accepted, it accepted once: no retransmission ran twice (a copy
    # arriving after the original left the target's duplicate window would).
    assert surely <= accepted <= surely + maybe, (accepted, surely, maybe, counts)
    # No request that was accepted ends unknown: a lost report is asked about.
    unknown = [
        r for r in results if isinstance(r, CommandTimeout) and r.stage is not Stage.ACCEPTANCE
    ]
    assert not unknown, unknown[:3]
    assert asked > 0 and answered > 0, "the line loses reports: some were asked about"


# --- raw octets and cancelling ------------------------------------------------------------


def _wire_frames(sent: bytes) -> list[bytes]:
    return [f for f in sent.split(b"\x00") if f]


def test_raw_octets_go_out_whole_between_frames(raw_pty, read_until) -> None:
    master, path = raw_pty
    with Link(path, acceptance_timeout_s=5.0).open(start=False) as link:
        first = link.submit(17, 1)
        link.send_raw(b"\x05abc")  # an unfinished frame: the link's next frame ends it
        second = link.submit(17, 1)
        sent = read_until(master, lambda d: len(_wire_frames(d)) >= 3, timeout=5.0)
    frames = _wire_frames(sent)
    assert frames[1] == b"\x05abc" and b"\x00\x05abc\x00" in sent, sent.hex(" ")
    assert [parse_tc(cobs.decode(f)).service for f in (frames[0], frames[2])] == [17, 17]
    for future in (first, second):
        with pytest.raises(LinkClosed):
            future.result(timeout=1)
    with pytest.raises(LinkClosed, match="not open"):
        link.send_raw(b"\x00")


def test_raw_garbage_does_not_spoil_the_next_command(link: Link) -> None:
    link.send_raw(b"\x07" + bytes(range(1, 40)))  # no delimiter: cut off by the next frame
    done = link.ping()
    assert done.stage is Stage.COMPLETION and done.transmissions == 1


def test_queued_commands_can_be_cancelled_until_they_are_sent(raw_pty, read_until) -> None:
    master, path = raw_pty
    with Link(path, window=1, acceptance_timeout_s=5.0).open(start=False) as link:
        sent = link.submit(17, 1)
        read_until(master, lambda d: len(_wire_frames(d)) >= 1, timeout=5.0)
        queued = [link.submit(17, 1) for _ in range(3)]
        assert queued[0].cancel() and not sent.cancel()
        assert link.cancel_queued() == 2
        assert link.cancel_queued() == 0
    assert link.stats.frames_sent == 1
    assert all(f.cancelled() for f in queued)
    with pytest.raises(CancelledError):
        queued[1].result()
    with pytest.raises(LinkClosed):
        sent.result()


# --- ports, URLs and options ----------------------------------------------------------------


def test_wrong_port_is_named() -> None:
    with pytest.raises(PortNotFound, match=r"/dev/ttyNOPE0: no such device"):
        Link("/dev/ttyNOPE0").open()


def test_busy_port_is_reported(raw_pty) -> None:
    _, path = raw_pty
    with Link(path).open(start=False), pytest.raises(PortBusy, match=rf"{path}: port is busy"):
        Link(path).open(start=False)


@pytest.mark.parametrize("baud", [0, -9600, "fast", 9600.5, True])
def test_bad_baud_rate_is_refused(baud) -> None:
    with pytest.raises(BadBaudRate, match="baud rate must be a positive integer"):
        Link("/dev/null", baud)


def test_spy_url_logs_the_bytes_in_hex(target, tmp_path: Path) -> None:
    spy = tmp_path / "spy.txt"
    with Link(f"spy://{target.path}?file={spy}", acceptance_timeout_s=0.5).open() as link:
        link.ping()
    text = spy.read_text()
    assert "TX" in text and "RX" in text and "18 C8" in text.upper()


def test_loop_url_rejects_our_own_tcs_as_telemetry(tmp_path: Path) -> None:
    log = tmp_path / "loop.log"
    with Link("loop://", acceptance_timeout_s=0.05, max_retransmissions=0, session_log=log).open(
        start=False
    ) as link:
        with pytest.raises(CommandTimeout):
            link.send(17, 1)
        assert link.stats.frames_rejected[RejectReason.BAD_HEADER] >= 1
    text = log.read_text()
    assert re.search(r"-> TC\[17,1\] TEST/PING seq \d+ req 0x18c8[0-9a-f]{4} ack ALL app 0", text)
    assert "<- REJECTED bad_header: TM: packet type bit says TC" in text


def test_session_log_has_one_line_per_frame_each_way(target, tmp_path: Path) -> None:
    log = tmp_path / "session.log"
    with Link(target.path, session_log=log, acceptance_timeout_s=CALM_S).open() as link:
        link.ping()
        with pytest.raises(CommandFailed):
            link.send(99, 1)
    lines = [line for line in log.read_text().splitlines() if not line.startswith("#")]
    tx = [line for line in lines if " -> " in line]
    rx = [line for line in lines if " <- " in line]
    # The link start (a ping, then the start of in-order execution), a ping, a refused TC.
    assert len(tx) == 4 and len(rx) >= 12
    assert any("TM[1,2] REQUEST_VERIFICATION/ACCEPTANCE_FAILURE" in x and "UNKNOWN_SERVICE" in x
               for x in rx)  # fmt: skip
    for line in tx + rx:
        stamp, _, rest = line.partition(" ")
        float(stamp)
        decoded, _, octets = rest.partition(" | ")
        assert "seq" in decoded and octets.endswith("00")
        raw = bytes.fromhex(octets)
        decoder = FrameDecoder()
        decoder.receive_data(raw)
        assert len(decoder.events()) == 1, line
    assert any(" == opened" in line for line in lines) and any(" == up" in line for line in lines)


# --- the verification rules, sans I/O -------------------------------------------------------


def _tracker(ack: AckFlags = AckFlags.ALL) -> tuple[Tracker, RequestId]:
    tracker = Tracker(
        Command(17, 1, ack=ack), Timing(acceptance_s=1.0, completion_s=5.0), "pty", 0.0
    )
    tracker.assign(make_tc(17, 1, b"", 42, ack_flags=ack))
    assert tracker.request_id is not None
    return tracker, tracker.request_id


def _transmit(tracker: Tracker, at: float) -> None:
    tracker.writing(at)
    tracker.sent(at, written=True)


def _report(rid: RequestId, subtype: int, code: int | None = None, data: bytes = b""):
    step = 0 if subtype in (5, 6) else None
    return VerificationReport(VerificationSubtype(subtype), rid, step, code, data)


def test_acceptance_timeouts_retransmit_three_times_then_give_up() -> None:
    tracker, _ = _tracker()
    _transmit(tracker, 0.0)
    for attempt in range(1, 4):
        assert tracker.expire(tracker.deadline) is True
        _transmit(tracker, float(attempt))
    assert tracker.expire(tracker.deadline) is False
    assert isinstance(tracker.result, CommandTimeout) and tracker.link_down
    assert tracker.result.transmissions == 4


def test_bad_crc_answer_retransmits_at_once() -> None:
    tracker, rid = _tracker()
    _transmit(tracker, 0.0)
    assert tracker.on_report(_report(rid, 2, FailureCode.BAD_CRC, b"\0\1\0\2"), 0.1) is True
    assert not tracker.done


def test_duplicate_answer_with_a_failure_reports_the_original_stage() -> None:
    tracker, rid = _tracker()
    _transmit(tracker, 0.0)
    _transmit(tracker, 1.0)
    data = struct.pack("!BH", 4, FailureCode.WRONG_MODE)
    tracker.on_report(_report(rid, 2, FailureCode.DUPLICATE, data), 1.1)
    err = tracker.result
    assert isinstance(err, CommandFailed) and err.stage is Stage.START
    assert err.code is FailureCode.WRONG_MODE and "DUPLICATE" in str(err)


def test_success_reports_asked_for_decide_when_a_command_ends() -> None:
    tracker, rid = _tracker(AckFlags.ACCEPTANCE | AckFlags.START)
    _transmit(tracker, 0.0)
    tracker.on_report(_report(rid, 1), 0.1)
    assert not tracker.done
    tracker.on_report(_report(rid, 3), 0.2)
    assert isinstance(tracker.result, Completion) and tracker.result.stage is Stage.START
    silent, _ = _tracker(AckFlags.NONE)
    _transmit(silent, 0.0)
    assert isinstance(silent.result, Completion) and silent.result.stage is None


def test_completion_timeout_is_not_retried() -> None:
    tracker, rid = _tracker(AckFlags.ACCEPTANCE | AckFlags.COMPLETION)
    _transmit(tracker, 0.0)
    tracker.on_report(_report(rid, 1), 0.1)
    assert tracker.expire(tracker.deadline) is False
    assert isinstance(tracker.result, CommandTimeout)
    assert tracker.result.stage is Stage.COMPLETION and not tracker.link_down


def test_unknown_failure_code_from_a_newer_peer_is_shown_as_a_number() -> None:
    tracker, rid = _tracker()
    _transmit(tracker, 0.0)
    tracker.on_report(_report(rid, 8, 0x0ABC, b"\x01"), 0.2)
    assert isinstance(tracker.result, CommandFailed) and tracker.result.code == 0x0ABC
    assert "unknown code (0x0abc)" in str(tracker.result)


def test_no_file_descriptor_leaks(raw_pty) -> None:
    _, path = raw_pty
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with Link(path, acceptance_timeout_s=0.05).open(start=False):
            pass
    assert len(os.listdir("/proc/self/fd")) == before
