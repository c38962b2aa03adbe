"""The ground side of the serial link: TCs out, TM in, over any pyserial URL.

``Link`` opens ``/dev/ttyUSB0``, a pty path, ``socket://host:port``, ``spy://...`` or
``loop://`` and runs two threads:

- a reader: bytes from the port into a ``protocol.framing.FrameDecoder`` with a TM
  validator; service 1 reports go to the command they name, other TM to the history. It
  never dies on a read error: when the device goes away it reopens the port with
  exponential backoff until the link is closed, and says so (log and ``link_events``).
- a sender: TCs out in submission order, at most ``window`` of them without their
  acceptance report (docs/ICD.md section 14), retransmissions of the same octets when the
  acceptance timeout expires, and every deadline of section 14. It sleeps on a condition
  until the next deadline or the next thing to do; nothing polls.

``send`` waits for one command; ``submit`` returns a future, so that many can be in flight;
``send_many`` does both. Each command ends as a ``Completion`` or a ``CommandFailed`` /
``CommandTimeout`` (or ``LinkClosed`` when the link is closed under it), or is cancelled by
its caller before it was sent (``Future.cancel``, ``cancel_queued``): none is dropped
silently. A signed command refused with AUTH_REPLAY is sent once more, as a new TC, above
the number the target says it last accepted (ICD 13). ``send_raw`` writes octets of the
caller's own (damaged frames, garbage) from the sender thread, between two frames.

How a TM that is not a service 1 report (TM[17,2], TM[6,6], a one-shot TM[3,25]...) is
matched to its TC: the ICD sends it after the request's start report and before its
completion report, requests are handled in arrival order, and its destination id is the
TC's source id. So such a TM belongs to the request of the last service 1 report received
if that report was a non-final success report of an open request of the same service and
no TM was lost since (TM sequence counts); otherwise to the oldest open request of the same
service; otherwise to none (it stays in the history, counted as unattributed).
"""

from __future__ import annotations

import bisect
import errno
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path

import serial

from host.commands import (
    Authenticator,
    Command,
    Completion,
    Phase,
    Timing,
    Tracker,
    build_packet,
    signer,
)
from host.errors import (
    BadBaudRate,
    CommandError,
    CommandFailed,
    CommandTimeout,
    HostError,
    LinkClosed,
    LinkError,
    PortBusy,
    PortConfigError,
    PortNotFound,
)
from host.history import NOW, History, Predicate, Received, Start
from host.session_log import SessionLog
from host.stage import Stage
from protocol.codes import AckFlags, FailureCode, RejectReason, Service, TestSubtype
from protocol.errors import PacketError
from protocol.framing import NEED_DATA, Frame, FrameDecoder, FrameRejected, encode_frame
from protocol.link import (
    DEFAULT_BAUD,
    DUPLICATE_WINDOW,
    MAX_FRAME_LEN,
    MAX_OUTSTANDING,
    SOURCE_ID_HOST,
    acceptance_timeout,
    frame_time_s,
)
from protocol.packets import PacketType, PacketValidator, Telemetry, parse_tm
from protocol.request_id import RequestId
from protocol.sequence import SEQ_COUNT_MODULO, SeqCounter, seq_diff
from protocol.verification import VerificationReport

log = logging.getLogger("host.link")

RAW_LOG_OCTETS = 64
"""Octets of a raw write shown in the session log."""
READ_TIMEOUT_S = 0.1
"""Longest a read blocks: bounds how long ``close`` waits for the reader."""
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 2.0

__all__ = ["Link", "LinkEvent", "LinkStats", "NOW"]


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """Something that happened to the link: ``opened``, ``up``, ``disconnected``,
    ``reconnected``, ``down`` (a TC exhausted its retransmissions), ``start_failed``,
    ``closed``. ``time`` is ``time.monotonic()``."""

    index: int
    time: float
    kind: str
    detail: str = ""


@dataclass(slots=True)
class LinkStats:
    """Counters of one link since it was made."""

    frames_sent: int = 0
    bytes_sent: int = 0
    retransmissions: int = 0
    fast_retransmissions: int = 0
    """Retransmissions sent before the acceptance timeout (``fast_retransmit``)."""
    tm_received: int = 0
    tm_lost: int = 0
    """TM missing from the target's sequence counts (ICD section 6)."""
    tm_count_restarts: int = 0
    """Times the TM sequence count went back (the target restarted)."""
    start_pings: int = 0
    """Link-start pings the link submitted on its own (on opening, after a reconnection)."""
    start_pings_accepted: int = 0
    """Link-start pings that ended past acceptance: the target surely accepted them."""
    start_pings_maybe: int = 0
    """Link-start pings that ended at acceptance after being sent: accepted or not."""
    reports_unmatched: int = 0
    """Service 1 reports about a request id not in flight (late, corrupted, or not ours)."""
    reports_malformed: int = 0
    tm_unattributed: int = 0
    """TM addressed to us that matched no request in flight."""
    frames_rejected: dict[RejectReason, int] = field(
        default_factory=lambda: dict.fromkeys(RejectReason, 0)
    )
    reconnects: int = 0

    @property
    def rejected_total(self) -> int:
        return sum(self.frames_rejected.values())


def _valid_baud(baud: object) -> int:
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise BadBaudRate(f"baud rate must be a positive integer (e.g. 115200), got {baud!r}")
    return baud


class Link:
    """A link to one target (see the module docstring).

    ``acceptance_timeout_s`` defaults to the ICD's formula at ``baud``;
    ``completion_timeout_s``, ``progress_timeout_s`` and ``max_retransmissions`` to the ICD's
    values; ``window`` to its MAX_OUTSTANDING. ``auth`` signs hazardous TCs (a command's own
    ``auth`` in its place); after an AUTH_REPLAY the link moves it above the target's number
    and sends the command once more, as a new TC. The link changes its authenticators under
    its lock: do not share one with another link while both run. ``restart``
    sends the link-start ping again after each reconnection. A command submitted while the
    port is down waits for it at most ``down_timeout_s`` (default: the time the ICD gives a
    TC, 1 + max_retransmissions acceptance timeouts). ``session_log`` is a path (or a
    ``SessionLog``) to log every frame to.

    ``fast_retransmit`` (off by default: docs/ICD.md section 14 lists only the acceptance
    timeout and BAD_CRC/BAD_LENGTH as reasons to send again) also retransmits a TC as soon
    as the target has answered a TC written after it with no TM lost in between: on a lossy
    link this turns each lost TC from a stall of one acceptance timeout into one round trip.
    Retransmissions are always the same octets, so duplicate detection keeps them safe.
    """

    def __init__(
        self,
        port: str,
        baud: int = DEFAULT_BAUD,
        *,
        window: int = MAX_OUTSTANDING,
        acceptance_timeout_s: float | None = None,
        completion_timeout_s: float | None = None,
        progress_timeout_s: float | None = None,
        max_retransmissions: int | None = None,
        source_id: int = SOURCE_ID_HOST,
        auth: Authenticator | None = None,
        history_size: int = 20_000,
        session_log: str | Path | SessionLog | None = None,
        restart: bool = True,
        down_timeout_s: float | None = None,
        fast_retransmit: bool = False,
    ) -> None:
        self.port = str(port)
        self.baud = _valid_baud(baud)
        if not 1 <= window <= DUPLICATE_WINDOW:
            raise ValueError(f"window must be in 1..{DUPLICATE_WINDOW}, got {window}")
        self.window = window
        timing = Timing(acceptance_s=acceptance_timeout(self.baud))
        overrides = {
            "acceptance_s": acceptance_timeout_s,
            "completion_s": completion_timeout_s,
            "progress_s": progress_timeout_s,
            "max_retransmissions": max_retransmissions,
        }
        self.timing = replace(timing, **{k: v for k, v in overrides.items() if v is not None})
        self.source_id = source_id
        self.auth = auth
        self.restart = restart
        self.fast_retransmit = fast_retransmit
        self.down_timeout_s = (
            down_timeout_s
            if down_timeout_s is not None
            else self.timing.acceptance_s * (1 + self.timing.max_retransmissions)
        )
        self.history = History(history_size)
        self.stats = LinkStats()
        self._session_log = (
            session_log
            if isinstance(session_log, SessionLog) or session_log is None
            else SessionLog(session_log)
        )
        self._own_log = session_log is not None and not isinstance(session_log, SessionLog)
        self._write_timeout = max(1.0, 4 * frame_time_s(MAX_FRAME_LEN + 1, self.baud))

        self._cond = threading.Condition()
        self._stopping = False
        self._stop_event = threading.Event()
        self._opened = False
        self._port: serial.SerialBase | None = None
        self._reopen_requested = ""
        self._down_since: float | None = None
        self._need_resync = True
        self._seq = SeqCounter(0)
        self._queue: deque[Tracker] = deque()
        self._recent_writes: deque[tuple[int, Tracker]] = deque()
        """(write number, tracker) of each copy written since the oldest first write of a
        TC that may still be written again (``_may_send_new``)."""
        self._starts = 0
        """Link starts running (``_start_link``)."""
        """Trackers not yet sent, in submission order (``Tracker.order``)."""
        self._orders = 0
        self._raw: deque[tuple[bytes, Future[None]]] = deque()
        self._urgent: deque[tuple[Tracker, str]] = deque()
        self._open: dict[RequestId, Tracker] = {}
        self._futures: dict[Tracker, Future] = {}
        self._sent_count = 0
        self._write_count = 0
        self._epoch = 0
        self._current: Tracker | None = None
        self._gap_since_current = False
        self._last_tm_seq: int | None = None
        self._events: list[LinkEvent] = []
        self._decoder = FrameDecoder(validator=PacketValidator(PacketType.TM))
        self._rx_raw = bytearray()
        self._threads: list[threading.Thread] = []

    # --- opening and closing --------------------------------------------------------------

    def open(self, *, start: bool = True) -> Link:
        """Open the port and start the threads; with ``start``, ping until the target answers
        (ICD 14 "Link start"): a target that never does raises ``CommandTimeout``."""
        with self._cond:
            if self._opened:
                raise RuntimeError(f"link on {self.port} is already open")
            self._opened = True
        try:
            self._port = self._make_port()
        except BaseException:
            self._opened = False
            self._close_log()
            raise
        self._seq = SeqCounter(random.randrange(SEQ_COUNT_MODULO))
        if self._session_log is not None:
            self._session_log.header(self.port, self.baud)
        self._event("opened", f"{self.port} at {self.baud} baud")
        for name, target in (("reader", self._reader), ("sender", self._sender)):
            thread = threading.Thread(target=target, name=f"link-{name} {self.port}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if start:
            try:
                self._start_link()
            except HostError:
                self.close()
                raise
        return self

    def close(self) -> None:
        """Stop the threads, close the port; commands still in flight end with LinkClosed."""
        with self._cond:
            if self._stopping or not self._opened:
                self._stopping = True
                return
            self._stopping = True
            self._stop_event.set()
            port = self._port
            self._cond.notify_all()
        for cancel in ("cancel_write", "cancel_read"):
            fn = getattr(port, cancel, None) if port is not None else None
            if fn is not None:
                try:
                    fn()
                except Exception:  # the port may already be gone
                    pass
        for thread in self._threads:
            thread.join(timeout=5.0)
        with self._cond:
            port, self._port = self._port, None
            pending = list(self._queue) + list(self._open.values())
            raws = [future for _, future in self._raw]
            self._queue.clear()
            self._open.clear()
            self._raw.clear()
            for tracker in pending:
                tracker.abandon(_closed_error(tracker, self.port))
        if port is not None:
            try:
                port.close()
            except Exception:
                pass
        self._resolve(pending)
        for future in raws:
            future.set_exception(LinkClosed(f"{self.port}: closed before the raw octets went out"))
        self._event("closed")
        self._close_log()

    def __enter__(self) -> Link:
        if not self._opened:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _close_log(self) -> None:
        if self._own_log and self._session_log is not None:
            self._session_log.close()

    def _make_port(self) -> serial.SerialBase:
        """Open the port, 8-N-1, no flow control; errors say which port and what is wrong."""
        try:
            return serial.serial_for_url(
                self.port, baudrate=self.baud, bytesize=8, parity="N", stopbits=1,
                timeout=READ_TIMEOUT_S, write_timeout=self._write_timeout, xonxoff=False,
                rtscts=False, dsrdtr=False, exclusive=True,
            )  # fmt: skip
        except ValueError as exc:
            text = str(exc)
            if "baud" in text.lower():
                raise BadBaudRate(f"{self.port}: baud rate {self.baud} refused: {text}") from exc
            raise PortConfigError(f"{self.port}: {text}") from exc
        except serial.SerialException as exc:
            raise _port_error(self.port, self.baud, exc) from exc

    # --- commands --------------------------------------------------------------------------

    def submit(
        self,
        service: int,
        subtype: int,
        app_data: bytes = b"",
        *,
        ack: AckFlags = AckFlags.ALL,
        timeout: float | None = None,
        auth: Authenticator | None = None,
    ) -> Future[Completion]:
        """Queue a TC; the future ends with its ``Completion`` or its ``CommandError``.

        ``auth`` signs this command (when hazardous) in place of the link's authenticator.
        Until the TC is sent the future can be cancelled (``Future.cancel``): it is then
        never sent; once sent it runs to its end.
        """
        return self.submit_command(Command(service, subtype, bytes(app_data), ack, timeout, auth))

    def submit_command(self, command: Command, *, internal: bool = False) -> Future[Completion]:
        """Queue a ``Command`` (see ``submit``)."""
        future: Future[Completion] = Future()
        tracker = Tracker(command, self.timing, self.port, time.monotonic(), internal=internal)
        with self._cond:
            if self._stopping or not self._opened:
                raise LinkClosed(f"{command.name}: the link on {self.port} is not open")
            tracker.order = self._orders
            self._orders += 1
            self._queue.append(tracker)
            self._futures[tracker] = future
            self._cond.notify_all()
        return future

    def send(
        self,
        service: int,
        subtype: int,
        app_data: bytes = b"",
        *,
        ack: AckFlags = AckFlags.ALL,
        timeout: float | None = None,
        auth: Authenticator | None = None,
    ) -> Completion:
        """Send a TC and wait until it is verified as ``ack`` asks; raises CommandFailed or
        CommandTimeout. ``timeout`` is the longest wait for the next report after acceptance
        (default: the ICD's completion timeout, or its progress timeout when ``ack`` asks for
        progress reports, as ALL does). ``auth`` signs it in place of the link's."""
        return self.submit(service, subtype, app_data, ack=ack, timeout=timeout, auth=auth).result()

    def cancel_queued(self) -> int:
        """Cancel every command submitted and not yet sent (their futures end cancelled);
        how many. Commands already sent run to their end."""
        cancelled: list[Future] = []
        with self._cond:
            keep: deque[Tracker] = deque()
            for tracker in self._queue:
                future = self._futures.get(tracker)
                if tracker.internal or future is None or future.running():
                    keep.append(tracker)
                    continue
                del self._futures[tracker]
                if not future.cancelled():  # else its caller cancelled it already
                    cancelled.append(future)
            self._queue = keep
            self._cond.notify_all()
        return sum(future.cancel() for future in cancelled)

    def send_raw(self, data: bytes, *, timeout: float | None = None) -> None:
        """Write ``data`` to the port as it is (damaged frames, garbage, TCs built by hand),
        from the sender thread between two of its frames; returns once written. The link's
        next frame starts with a 0x00, so whatever ``data`` leaves unfinished ends there.
        Raises LinkError when the port is down or the write fails, TimeoutError after
        ``timeout`` seconds."""
        future: Future[None] = Future()
        with self._cond:
            if self._stopping or not self._opened:
                raise LinkClosed(f"{self.port}: the link is not open: raw octets not written")
            self._raw.append((bytes(data), future))
            self._cond.notify_all()
        future.result(timeout)

    def send_many(self, commands: Iterable[Command | tuple]) -> list[Completion | HostError]:
        """Send every command through the window; each result is a Completion or the error
        that ended that command, in the order given."""
        futures = [
            self.submit_command(c if isinstance(c, Command) else Command(*c)) for c in commands
        ]
        results: list[Completion | HostError] = []
        for future in futures:
            try:
                results.append(future.result())
            except HostError as exc:
                results.append(exc)
        return results

    def ping(self, *, ack: AckFlags = AckFlags.ALL) -> Completion:
        """TC[17,1]: its Completion carries the TM[17,2]."""
        return self.send(Service.TEST, TestSubtype.PING, ack=ack)

    # --- telemetry -------------------------------------------------------------------------

    def await_tm(
        self, predicate: Predicate, timeout: float = 5.0, *, start: Start = None
    ) -> Received | None:
        """The first TM matching ``predicate`` from ``start`` (None: all still held), or None
        when none has come by the deadline."""
        return self.history.await_one(predicate, timeout, start)

    def assert_tm(
        self, predicate: Predicate, timeout: float = 5.0, *, start: Start = None
    ) -> Received:
        """As ``await_tm``, but raises AssertionError when none comes."""
        return self.history.assert_one(predicate, timeout, start)

    def await_tm_count(
        self, predicate: Predicate, count: int, timeout: float = 5.0, *, start: Start = None
    ) -> list[Received] | None:
        """The first ``count`` TM matching, or None if fewer came by the deadline."""
        return self.history.await_count(predicate, count, timeout, start)

    def assert_tm_count(
        self, predicate: Predicate, count: int, timeout: float = 5.0, *, start: Start = None
    ) -> list[Received]:
        """As ``await_tm_count``, but raises AssertionError on a shortfall."""
        return self.history.assert_count(predicate, count, timeout, start)

    def clear_history(self) -> None:
        """Forget the TM received so far."""
        self.history.clear()

    # --- link state ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        with self._cond:
            return self._port is not None

    @property
    def link_events(self) -> list[LinkEvent]:
        with self._cond:
            return list(self._events)

    def await_link_event(
        self, kind: str, timeout: float = 5.0, *, start: int = 0
    ) -> LinkEvent | None:
        """The first link event of ``kind`` with index >= ``start``, or None at the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self._events[start:]:
                    if ev.kind == kind:
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def _event(self, kind: str, detail: str = "") -> None:
        now = time.monotonic()
        with self._cond:
            self._events.append(LinkEvent(len(self._events), now, kind, detail))
            self._cond.notify_all()
        if self._session_log is not None:
            self._session_log.event(now, kind, detail)

    # --- the sender thread ------------------------------------------------------------------

    def _sender(self) -> None:
        cond = self._cond
        with cond:
            while not self._stopping:
                now = time.monotonic()
                finished: list[Tracker] = []
                writes: list[tuple[Tracker, str]] = []
                for tracker in list(self._open.values()):
                    if tracker.deadline is not None and tracker.deadline <= now:
                        if tracker.expire(now):
                            tracker.begin_write()
                            writes.append((tracker, "retransmit"))
                        elif tracker.done:
                            self._finish(tracker, finished)
                while self._urgent:
                    tracker, kind = self._urgent.popleft()
                    # Accepted since it was queued: a copy now could only run it again.
                    if tracker.done or tracker.accepted:
                        continue
                    if all(t is not tracker for t, _ in writes):
                        writes.append((tracker, kind))
                raws = list(self._raw)
                self._raw.clear()
                if self._port is not None:
                    while self._queue and self._may_send_new():
                        tracker = self._queue.popleft()
                        if self._cancelled(tracker):
                            continue
                        self._assign(tracker)
                        writes.append((tracker, "first"))
                else:
                    self._expire_held(now, finished)
                if writes or finished or raws:
                    self._write(writes, finished, raws)
                    continue
                cond.wait(self._next_wakeup(now))

    def _may_send_new(self) -> bool:
        """The window of ICD 14, and a bound that keeps every retransmission inside the
        target's duplicate window (ICD 6: the last DUPLICATE_WINDOW TCs it accepted).

        The target takes TCs in arrival order, which is our write order, so a TC ``w`` that
        may still be written again (not known accepted) stays in its duplicate window while
        fewer than DUPLICATE_WINDOW other TCs can be accepted after it: those with a copy
        written after ``w``'s first copy, those that may still be written again, and the new
        one. Counting only new TCs sent after ``w`` is not enough: a retransmission of an
        older TC, written after ``w``'s first copy, is accepted after ``w`` too.
        """
        open_ = self._open.values()
        if sum(t.in_window for t in open_) >= self.window:
            return False
        again = [t for t in open_ if t.may_write_again]
        written = [t for t in again if t.first_write is not None]
        recent = self._recent_writes
        if not written:
            recent.clear()
            return True
        written.sort(key=lambda t: t.first_write[1], reverse=True)  # type: ignore[index]
        oldest = written[-1].first_write[1]  # type: ignore[index]
        while recent and recent[0][0] < oldest:
            recent.popleft()
        later = set(again)
        copies = reversed(recent)
        entry = next(copies, None)
        for tracker in written:
            first = tracker.first_write[1]  # type: ignore[index]
            while entry is not None and entry[0] > first:
                later.add(entry[1])
                entry = next(copies, None)
            if len(later) - (tracker in later) + 1 >= DUPLICATE_WINDOW:
                return False
        return True

    def _cancelled(self, tracker: Tracker) -> bool:
        """Mark the future of a tracker leaving the queue as running; True when its caller
        cancelled it (then it is dropped, never sent)."""
        future = self._futures.get(tracker)
        if future is None or future.running() or future.set_running_or_notify_cancel():
            return False
        del self._futures[tracker]
        return True

    def _assign(self, tracker: Tracker) -> None:
        tracker.signed_by = signer(tracker.command, self.auth)
        while True:
            packet = build_packet(
                tracker.command, self._seq.next(), source_id=self.source_id, auth=self.auth
            )
            tracker.assign(packet)
            if tracker.request_id not in self._open:
                break
        self._open[tracker.request_id] = tracker
        tracker.send_index = self._sent_count
        self._sent_count += 1

    def _expire_held(self, now: float, finished: list[Tracker]) -> None:
        """Commands held unsent while the port is down end after ``down_timeout_s``."""
        down_since = self._down_since if self._down_since is not None else now
        while self._queue:
            tracker = self._queue[0]
            held_since = max(tracker.submitted_at, down_since)
            if now - held_since < self.down_timeout_s:
                break
            self._queue.popleft()
            tracker.abandon(
                CommandTimeout(
                    command=tracker.name,
                    stage=Stage.ACCEPTANCE,
                    request_id=None,
                    port=self.port,
                    waited_s=now - held_since,
                    transmissions=0,
                    note="not sent: the port is down and did not come back",
                )  # fmt: skip
            )
            finished.append(tracker)

    def _next_wakeup(self, now: float) -> float | None:
        deadlines = [t.deadline for t in self._open.values() if t.deadline is not None]
        if self._port is None and self._queue and self._down_since is not None:
            held = max(self._queue[0].submitted_at, self._down_since)
            deadlines.append(held + self.down_timeout_s)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now)

    def _write(
        self,
        writes: list[tuple[Tracker, str]],
        finished: list[Tracker],
        raws: list[tuple[bytes, Future[None]]],
    ) -> None:
        """Write frames, then raw octets, with the lock released (a slow line blocks here,
        not the reader)."""
        port = self._port
        resync = self._need_resync
        self._need_resync = False
        failure = ""
        done: list[tuple[Tracker, str, bool, float, bytes]] = []
        lost_mark = self._lost_mark()
        stamps = []
        started = time.monotonic()
        for tracker, kind in writes:
            # Counted before the lock is released: the answer may be handled before we return.
            tracker.writing(started, counts=kind != "rewrite")
            if kind == "retransmit":
                self.stats.retransmissions += 1
            self._write_count += 1
            stamps.append((self._epoch, self._write_count))
            self._recent_writes.append((self._write_count, tracker))
        self._cond.release()
        try:
            self._resolve(finished)
            for tracker, kind in writes:
                frame = encode_frame(tracker.packet)
                data = b"\x00" + frame if resync else frame
                written = False
                if port is not None and not failure and self._session_log is not None:
                    note = {"retransmit": "retransmission", "rewrite": "after reconnection"}
                    self._session_log.tx(time.monotonic(), data, tracker.packet, note.get(kind, ""))
                if port is not None and not failure:
                    try:
                        port.write(data)
                        written, resync = True, False
                    except serial.SerialTimeoutException:
                        written, resync = True, True  # a frame cut short: 0x00 before the next
                    except (serial.SerialException, OSError, ValueError, TypeError) as exc:
                        failure = f"write failed: {exc}"
                at = time.monotonic()
                done.append((tracker, kind, written, at, data))
            for data, future in raws:
                failure, raw_resync = self._write_raw(port, data, future, failure)
                resync = resync or raw_resync
        finally:
            self._cond.acquire()
        self._need_resync = self._need_resync or resync
        more: list[Tracker] = []
        for (tracker, kind, written, at, data), stamp in zip(done, stamps, strict=True):
            tracker.sent(at, written=written, counts=kind != "rewrite")
            if written:
                self.stats.frames_sent += 1
                self.stats.bytes_sent += len(data)
                tracker.first_write = tracker.first_write or stamp
                tracker.last_write, tracker.lost_mark = stamp, lost_mark
            if tracker.done:
                self._finish(tracker, more)
        if failure and port is self._port and not self._reopen_requested:
            self._request_reopen(failure)
        if more:
            self._cond.release()
            try:
                self._resolve(more)
            finally:
                self._cond.acquire()

    def _write_raw(
        self, port: serial.SerialBase | None, data: bytes, future: Future[None], failure: str
    ) -> tuple[str, bool]:
        """One raw write (lock released): (the write failure, if any; whether the next
        frame must start with a 0x00)."""
        if port is None or failure:
            why = failure or "the port is down (disconnected)"
            future.set_exception(LinkError(f"{self.port}: {why}: raw octets not written"))
            return failure, False
        if self._session_log is not None:
            shown = data[:RAW_LOG_OCTETS].hex(" ") + (" ..." if len(data) > RAW_LOG_OCTETS else "")
            self._session_log.event(time.monotonic(), "raw", f"{len(data)} octets: {shown}")
        try:
            port.write(data)
        except serial.SerialTimeoutException as exc:
            future.set_exception(LinkError(f"{self.port}: raw write cut short: {exc}"))
            return failure, True
        except (serial.SerialException, OSError, ValueError, TypeError) as exc:
            future.set_exception(LinkError(f"{self.port}: raw write failed: {exc}"))
            return f"write failed: {exc}", True
        future.set_result(None)
        return failure, True

    def _finish(self, tracker: Tracker, finished: list[Tracker]) -> None:
        """Take a done tracker out of flight (lock held); the caller resolves its future.

        Once only: the reader may finish a tracker while the sender is writing it."""
        if tracker.request_id is None or self._open.get(tracker.request_id) is not tracker:
            return
        del self._open[tracker.request_id]
        if self._current is tracker:
            self._current = None
        if tracker.internal:
            result = tracker.result
            if not isinstance(result, CommandError) or result.stage is not Stage.ACCEPTANCE:
                self.stats.start_pings_accepted += 1
            elif tracker.attempts > tracker.unwritten:
                self.stats.start_pings_maybe += 1
        finished.append(tracker)
        if tracker.link_down and not tracker.internal and not self._stopping:
            self._event_locked("down", f"{tracker.name} exhausted its retransmissions")
            log.error("%s: link down: %s", self.port, tracker.result)
            self._request_reopen("link down: reopening the port (ICD 14)")
        self._cond.notify_all()

    def _resolve(self, trackers: Iterable[Tracker]) -> None:
        """Complete the futures (lock not held: their callbacks may use the link)."""
        for tracker in trackers:
            with self._cond:
                future = self._futures.pop(tracker, None)
            if future is None or future.done():
                continue
            if isinstance(tracker.result, Completion):
                future.set_result(tracker.result)
            else:
                future.set_exception(tracker.result or _closed_error(tracker, self.port))

    def _event_locked(self, kind: str, detail: str) -> None:
        now = time.monotonic()
        self._events.append(LinkEvent(len(self._events), now, kind, detail))
        if self._session_log is not None:
            self._session_log.event(now, kind, detail)

    def _request_reopen(self, why: str) -> None:
        self._reopen_requested = why
        port = self._port
        cancel = getattr(port, "cancel_read", None) if port is not None else None
        if cancel is not None:
            try:
                cancel()
            except Exception:
                pass

    # --- the reader thread ------------------------------------------------------------------

    def _reader(self) -> None:
        backoff = BACKOFF_MIN_S
        failures = 0
        while True:
            with self._cond:
                if self._stopping:
                    return
                port, reopen = self._port, self._reopen_requested
            if port is not None and reopen:
                self._drop_port(port, reopen)
                continue
            if port is None:
                try:
                    port = self._make_port()
                except LinkError as exc:
                    failures += 1
                    if failures == 1:
                        log.info("%s: cannot reopen yet (%s); retrying", self.port, exc)
                    if self._stop_event.wait(backoff):
                        return
                    backoff = min(2 * backoff, BACKOFF_MAX_S)
                    continue
                backoff, failures = BACKOFF_MIN_S, 0
                self._adopt(port)
                continue
            try:
                data = port.read(max(1, port.in_waiting))
            except Exception as exc:  # SerialException, OSError, or a port closed under us
                with self._cond:
                    if self._stopping:
                        return
                self._drop_port(port, f"read failed: {exc}")
                continue
            if data:
                try:
                    self._receive(data)
                except Exception:  # a bug of ours must not stop the link: say so, go on
                    log.exception("%s: error handling received bytes", self.port)

    def _drop_port(self, port: serial.SerialBase, why: str) -> None:
        with self._cond:
            if self._port is not port:
                return
            self._port = None
            self._down_since = time.monotonic()
            self._reopen_requested = ""
            self._event_locked("disconnected", why)
            self._cond.notify_all()
        log.warning(
            "%s: disconnected (%s); reconnecting, backoff %.2f s doubling to %.1f s",
            self.port, why, BACKOFF_MIN_S, BACKOFF_MAX_S,
        )  # fmt: skip
        try:
            port.close()
        except Exception:
            pass
        # Whatever partial frame was in the decoder is lost with the device: close it.
        self._receive(b"\x00")

    def _adopt(self, port: serial.SerialBase) -> None:
        with self._cond:
            if self._stopping:
                try:
                    port.close()
                except Exception:
                    pass
                return
            self._port = port
            self._down_since = None
            self._need_resync = True
            self._epoch += 1
            self.stats.reconnects += 1
            for tracker in self._open.values():
                # An accepted TC is not written again: the copy could only run it twice.
                if tracker.needs_write and not tracker.done and not tracker.accepted:
                    self._urgent.append((tracker, "rewrite"))
            self._event_locked("reconnected", self.port)
            if self.restart:
                self._starts += 1  # before the lock is released: see await_started
            self._cond.notify_all()
        log.warning("%s: reconnected", self.port)
        if self.restart:
            self._start_ping_async(1)

    def _start_link(self) -> None:
        """ICD 14 link start: ping until a TM[17,2] comes. TM is never retransmitted, so a
        ping whose report or completion was lost is followed by a new one, up to
        1 + max_retransmissions pings; a ping nobody accepts ends the attempt at once.
        After a reconnection the same runs from the futures' callbacks
        (``_start_ping_async``); ``await_started`` waits for either to end."""
        with self._cond:
            self._starts += 1
        try:
            attempt = 1
            while not self._after_start_ping(self._start_ping(), attempt, wait=True):
                attempt += 1
        finally:
            self._start_over()

    def _start_ping(self) -> Future:
        future = self.submit_command(Command(Service.TEST, TestSubtype.PING), internal=True)
        with self._cond:
            self.stats.start_pings += 1
        return future

    def _start_ping_async(self, attempt: int) -> None:
        try:
            future = self._start_ping()
        except LinkClosed:
            self._start_over()
            return
        future.add_done_callback(lambda f: self._next_start_ping(f, attempt))

    def _next_start_ping(self, future: Future, attempt: int) -> None:
        over = True
        try:
            over = self._after_start_ping(future, attempt, wait=False)
        finally:
            if over:
                self._start_over()
            else:
                self._start_ping_async(attempt + 1)

    def _start_over(self) -> None:
        with self._cond:
            self._starts -= 1
            self._cond.notify_all()

    def await_started(self, timeout: float = 10.0) -> bool:
        """Wait until the port is open, no reopening is pending and no link start (the pings
        the link sends on its own after opening or a reconnection) is running; False when
        that has not happened by the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._port is None or self._reopen_requested or self._starts:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    return False
                self._cond.wait(left)
            return True

    def _after_start_ping(self, future: Future, attempt: int, *, wait: bool) -> bool:
        """True when the start attempt is over (up, or failed for good)."""
        try:
            completion = future.result()
        except LinkClosed:
            if wait:
                raise
            return True
        except CommandError as exc:
            unanswered = isinstance(exc, CommandTimeout) and exc.stage is Stage.ACCEPTANCE
            if unanswered or attempt > self.timing.max_retransmissions:
                self._event("start_failed", str(exc))
                if wait:
                    raise
                return True
        else:
            if completion.reports:
                self._event("up", f"the target answered link-start ping {attempt}")
                return True
            if attempt > self.timing.max_retransmissions:
                self._event("start_failed", f"no TM[17,2] after {attempt} pings")
                if wait:
                    raise CommandTimeout(
                        command=completion.command, stage=Stage.COMPLETION,
                        request_id=completion.request_id, port=self.port,
                        waited_s=completion.elapsed, transmissions=attempt,
                        note="the pings completed but no TM[17,2] came back",
                    )  # fmt: skip
                return True
        if not wait:
            with self._cond:
                if self._stopping:
                    return True
        return False

    def _receive(self, data: bytes) -> None:
        """Split at delimiters so each frame event can be logged with its raw octets."""
        parts = data.split(b"\x00")
        last = len(parts) - 1
        for i, part in enumerate(parts):
            delimited = i < last
            if part and len(self._rx_raw) <= MAX_FRAME_LEN:
                self._rx_raw += part[: MAX_FRAME_LEN + 1 - len(self._rx_raw)]
            self._decoder.receive_data(part + b"\x00" if delimited else part)
            while (ev := self._decoder.next_event()) is not NEED_DATA:
                raw = bytes(self._rx_raw) + (b"\x00" if delimited else b"")
                if isinstance(ev, Frame):
                    self._on_frame(ev, raw)
                else:
                    self._on_rejected(ev, raw)
            if delimited:
                self._rx_raw.clear()

    def _on_rejected(self, rejection: FrameRejected, raw: bytes) -> None:
        at = time.monotonic()
        with self._cond:
            self.stats.frames_rejected[rejection.reason] += 1
        if self._session_log is not None:
            self._session_log.rejected(at, raw, rejection)
        log.debug("%s: frame rejected: %s", self.port, rejection.detail)

    def _on_frame(self, frame: Frame, raw: bytes) -> None:
        at = time.monotonic()
        try:
            tm = parse_tm(frame.payload)
        except PacketError as exc:  # the validator passed it: only spacepackets can refuse
            self._on_rejected(
                FrameRejected(exc.reason or RejectReason.BAD_HEADER, exc.message, len(raw)), raw
            )
            return
        if self._session_log is not None:
            self._session_log.rx(at, raw, tm)
        finished: list[Tracker] = []
        with self._cond:
            request_id = self._dispatch(tm, at, finished)
        self.history.append(tm, at, request_id)
        self._resolve(finished)

    def _dispatch(self, tm: Telemetry, at: float, finished: list[Tracker]) -> RequestId | None:
        """Count the TM and hand it to the request it is about (lock held)."""
        self.stats.tm_received += 1
        if self._last_tm_seq is not None:
            step = seq_diff(tm.seq_count, self._last_tm_seq)
            if step > 1:
                self.stats.tm_lost += step - 1
                self._gap_since_current = True
            elif step <= 0:
                self.stats.tm_count_restarts += 1
                self._gap_since_current = True
        self._last_tm_seq = tm.seq_count
        if tm.service == Service.REQUEST_VERIFICATION:
            try:
                report = VerificationReport.unpack(tm.subtype, tm.source_data)
            except PacketError as exc:
                self.stats.reports_malformed += 1
                log.warning("%s: malformed service 1 report: %s", self.port, exc.message)
                return None
            tracker = self._open.get(report.request_id)
            if tracker is None:
                self.stats.reports_unmatched += 1
                return report.request_id
            if tracker.on_report(report, at):
                tracker.begin_write()
                self._urgent.append((tracker, "retransmit"))
            if self.fast_retransmit:
                self._retransmit_skipped(tracker)
            stage = Stage.of_report(int(report.subtype))
            if report.success and stage is not Stage.COMPLETION and not tracker.done:
                self._current, self._gap_since_current = tracker, False
            elif self._current is tracker:
                self._current = None
            if tracker.done:
                self._resend_after_replay(tracker)
                self._finish(tracker, finished)
            self._cond.notify_all()
            return report.request_id
        if tm.dest_id == 0 or tm.dest_id != self.source_id:
            return None
        tracker = self._attribute(tm)
        if tracker is None:
            self.stats.tm_unattributed += 1
            return None
        tracker.add_report_tm(tm)
        return tracker.request_id

    def _resend_after_replay(self, tracker: Tracker) -> None:
        """ICD 13: a signed TC refused with AUTH_REPLAY names the last number the target
        accepted with its key. Move the authenticator above it and queue the command again
        (lock held), once, in its submission place; the new TC takes over the future."""
        result, auth = tracker.result, tracker.signed_by
        if (
            auth is None
            or tracker.replayed
            or not isinstance(result, CommandFailed)
            or result.code != FailureCode.AUTH_REPLAY
            or not auth.resync(result.data)
        ):
            return
        again = Tracker(
            tracker.command, self.timing, self.port, tracker.submitted_at,
            internal=tracker.internal, order=tracker.order, replayed=True,
        )  # fmt: skip
        future = self._futures.pop(tracker, None)
        if future is not None:
            self._futures[again] = future
        self._queue.insert(bisect.bisect(self._queue, again.order, key=lambda t: t.order), again)
        log.info(
            "%s: %s refused as a replay: key %d moved to %d, sending it again",
            self.port, tracker.name, auth.key_id, auth.next_seq,
        )  # fmt: skip

    def _lost_mark(self) -> int:
        return self.stats.tm_lost + self.stats.tm_count_restarts

    def _retransmit_skipped(self, answered: Tracker) -> None:
        """Fast retransmission (an option; see ``Link``): the target answers TCs in arrival
        order, so a report about a TC all of whose copies were written after TC n's latest
        copy, with no TM lost since, means that copy of n never arrived whole."""
        first = answered.first_write
        if first is None or first[0] != self._epoch:
            return
        lost = self._lost_mark()
        for tracker in self._open.values():
            last = tracker.last_write
            if (
                tracker is answered
                or tracker.phase is not Phase.AWAIT_ACCEPTANCE
                or not tracker.retransmittable
                or tracker.deadline is None  # being written already
                or last is None
                or last[0] != first[0]
                or last[1] >= first[1]
                or tracker.lost_mark != lost
                or tracker.attempts > self.timing.max_retransmissions
            ):
                continue
            tracker.begin_write()
            self._urgent.append((tracker, "retransmit"))
            self.stats.fast_retransmissions += 1

    def _attribute(self, tm: Telemetry) -> Tracker | None:
        current = self._current
        if (
            current is not None
            and not current.done
            and not self._gap_since_current
            and current.command.service == tm.service
        ):
            return current
        candidates = [
            t
            for t in self._open.values()
            if t.command.service == tm.service and not t.done and t.sent_at is not None
        ]
        return min(candidates, key=lambda t: t.send_index) if candidates else None


def _closed_error(tracker: Tracker, port: str) -> LinkClosed:
    return LinkClosed(f"{tracker.name} on {port}: the link was closed before it ended")


def _port_error(port: str, baud: int, exc: serial.SerialException) -> LinkError:
    """A pyserial open error as one of ours, naming the port."""
    text = str(exc)
    code = exc.errno
    if "exclusively lock" in text or code in (errno.EBUSY, errno.EAGAIN):
        return PortBusy(
            f"{port}: port is busy: another process has it open (exclusive lock refused: {text})"
        )
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO) or "No such file" in text:
        return PortNotFound(f"{port}: no such device (is the target connected or running?)")
    if "Connection refused" in text or "not known" in text or "unreachable" in text:
        return PortNotFound(f"{port}: nothing answers there ({text})")
    if code == errno.EACCES:
        return PortConfigError(f"{port}: permission denied (is the user in group dialout?)")
    if "baud" in text.lower():
        return BadBaudRate(f"{port}: baud rate {baud} refused by the device: {text}")
    if "Inappropriate ioctl" in text:
        return PortConfigError(f"{port}: not a serial device or pty ({text})")
    return PortConfigError(f"{port}: cannot open: {text}")
