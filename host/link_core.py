"""The ground side of the link as a pure object: bytes and time in, bytes and events out.

``LinkCore`` holds everything docs/ICD.md sections 6, 9, 13 and 14 ask of the host: the
queue of commands, the window of TCs without their acceptance report, retransmission of
the same octets inside the target's duplicate window, matching of reports to commands,
link start, re-signing after AUTH_REPLAY, the deadlines, and the link's state. It never
reads a clock, sleeps or touches a port: ``host.link`` is the threaded shell around it.

The shell's side of the conversation, in h11's shape:

- ``port_opened(now)`` / ``port_lost(now, why)``: the port came (back) or went away.
- ``submit(command, now) -> handle``, ``send_raw(data, now) -> handle``.
- ``receive_data(data, now)``: octets read from the port (handled at once; events out).
- ``data_to_send(now) -> bytes``: the next frame (or raw octets) to write, b"" when none;
  then ``data_written(now, ...)`` once the port took them (the acceptance timer of a TC
  starts there, ICD 14), or could not.
- ``tick(now)`` when ``next_deadline()`` has come; ``next_event()`` until it returns None.

Service 1 reports go to the request they name; other TM to the request
``host.tm_matching`` says (its docstring has the rule), or to none.

The link's states and every change between them are in ``_on`` (one ``match``). The
dead-target rule: while the link is up, a TC awaiting acceptance and no octet at all from
the target for ``SILENCE_TIMEOUTS`` acceptance timeouts (from the later of its first
transmission and the last octet heard) mean the target is gone. The link goes down,
holds new commands, lets those in flight run their course (retransmissions are
harmless), then retries the link start until it is answered.
"""

from __future__ import annotations

import bisect
import enum
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

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
    CommandError,
    CommandFailed,
    CommandTimeout,
    LinkClosed,
    LinkError,
    PortNotFound,
)
from host.link_events import (
    CommandEnded,
    CommandSent,
    Event,
    FrameDropped,
    FrameOut,
    LinkState,
    LinkStats,
    RawDone,
    ReopenPort,
    StateChanged,
    TmArrived,
)
from host.send_window import may_send_new
from host.stage import Stage
from host.tm_matching import TmMatcher
from protocol.codes import (
    START_SEQUENCE,
    FailureCode,
    OutcomeSubtype,
    RejectReason,
    Service,
    TestSubtype,
)
from protocol.errors import PacketError
from protocol.framing import NEED_DATA, Frame, FrameDecoder, FrameRejected, encode_frame
from protocol.link import (
    DUPLICATE_WINDOW,
    MAX_FRAME_LEN,
    MAX_OUTCOME_QUERIES,
    MAX_OUTSTANDING,
    SOURCE_ID_HOST,
)
from protocol.packets import PacketType, PacketValidator, Telemetry, parse_tm
from protocol.payloads import GapReport, outcome_query, read_outcomes
from protocol.request_id import RequestId
from protocol.sequence import SEQ_COUNT_MODULO, SeqCounter
from protocol.verification import VerificationReport

log = logging.getLogger("host.link")

GAP_REPORT = (Service.REQUEST_OUTCOME, OutcomeSubtype.GAP_REPORT)
"""The target's word that TCs wait for a missing count (ICD 6.1)."""

SILENCE_TIMEOUTS = 2
"""Acceptance timeouts without an octet from the target, with a TC awaiting acceptance,
after which the link is down (a dead board behind a live serial adapter)."""

Claim = Callable[[], bool]
"""Called when a queued command is about to be sent: False drops it (its caller cancelled)."""


class Trigger(enum.Enum):
    """What can change the link's state (``LinkCore._on``)."""

    OPENED = "port opened"
    LOST = "port lost"
    STARTED = "link start answered"
    START_FAILED = "link start failed"
    SILENT = "target silent"
    EXHAUSTED = "a TC exhausted its retransmissions"
    HEARD = "target heard"
    PROBING = "retry ping sent"
    CLOSE = "closed"


_WAITING = (LinkState.STARTING, LinkState.DOWN, LinkState.RETRYING)
"""States in which user commands wait in the queue and link-start pings go."""


@dataclass(slots=True)
class _Write:
    """What ``data_to_send`` handed out and ``data_written`` settles."""

    data: bytes
    resync: bool
    tracker: Tracker | None = None
    kind: str = ""
    epoch: int = 0
    stamp: tuple[int, int] = (0, 0)
    lost_mark: int = 0
    raw_handle: int = -1


class LinkCore:
    """The link's protocol state (see the module docstring).

    ``window`` is ICD 14's MAX_OUTSTANDING by default; ``auth`` signs hazardous TCs (a
    command's own ``auth`` in its place) and is moved above the target's number after an
    AUTH_REPLAY. ``restart`` runs the link start again after each reconnection and retries
    it after the link went down. A command held because the link is not up (port gone,
    link start running, target down) ends after ``down_timeout_s``. ``fast_retransmit``
    also retransmits a TC as soon as a TC written after it was answered with no TM lost
    in between. ``seq_start`` is the first TC sequence count.
    """

    def __init__(
        self,
        timing: Timing,
        *,
        port: str = "link",
        window: int = MAX_OUTSTANDING,
        source_id: int = SOURCE_ID_HOST,
        auth: Authenticator | None = None,
        restart: bool = True,
        down_timeout_s: float | None = None,
        fast_retransmit: bool = False,
        seq_start: int = 0,
    ) -> None:
        self.timing = timing
        self.port = port
        self.window = window
        self.source_id = source_id
        self.auth = auth
        self.restart = restart
        self.fast_retransmit = fast_retransmit
        self.down_timeout_s = (
            down_timeout_s
            if down_timeout_s is not None
            else timing.acceptance_s * (1 + timing.max_retransmissions)
        )
        self.stats = LinkStats()
        self.state = LinkState.PORT_DOWN
        self.start_error: CommandError | None = None
        """Why the last link start failed (None while none has)."""

        self._seq = SeqCounter(seq_start)
        self._events: deque[Event] = deque()
        self._queue: deque[Tracker] = deque()
        """Trackers not yet sent, in submission order (``Tracker.order``)."""
        self._asking: deque[Tracker] = deque()
        """Outcome queries not yet sent: they go before the queue, while the target still
        remembers the requests they ask about."""
        self._claims: dict[Tracker, Claim] = {}
        self._orders = 0
        self._open: dict[RequestId, Tracker] = {}
        self._due: deque[tuple[Tracker, str]] = deque()
        """Copies to write: retransmissions and rewrites, before any new TC."""
        self._raw: deque[tuple[int, bytes]] = deque()
        self._raws = 0
        self._writing: _Write | None = None
        self._sent_count = 0
        self._write_count = 0
        self._epoch = 0
        self._matcher = TmMatcher()
        self._decoder = FrameDecoder(validator=PacketValidator(PacketType.TM))
        self._rx_raw = bytearray()

        self._port_open = False
        self._port_ok = False
        """False after a failed write, until the port is opened again."""
        self._reopen_pending = False
        self._gone = ""
        """Why the port cannot come back (commands then end at once), or empty."""
        self._need_resync = True
        self._opened_before = False
        self._start_on_open = True
        self._ever_up = False
        self._was_down = False
        self._held_since: float | None = None
        self._last_heard = float("-inf")
        """When the last octet came from the target (the dead-target rule)."""
        self._jumped_at = 0
        """``send_index`` from which a collision moves the sequence counter again."""
        self._start_tracker: Tracker | None = None
        """The link start's TC in flight: its ping, then its start-sequence."""
        self._sync: Tracker | None = None
        """The start-sequence TC (ICD 6.1) not yet known accepted: no new TC but outcome
        queries goes after it until it is."""
        self._start_attempt = 0
        self._next_probe_at = 0.0

    # --- the port ------------------------------------------------------------------------

    def port_opened(self, now: float, *, start: bool = True) -> None:
        """The port is open (first time, or again): with ``start`` (first time) or
        ``restart`` (again), run the link start (ICD 14)."""
        self._port_open = self._port_ok = True
        self._reopen_pending = False
        self._gone = ""
        self._need_resync = True
        self._epoch += 1
        if self._opened_before:
            self.stats.reconnects += 1
            self._start_on_open = self.restart
        else:
            self._start_on_open = start
        for tracker in self._open.values():
            # An accepted TC is not written again: the copy could only run it twice.
            if tracker.needs_write and not tracker.done and not tracker.accepted:
                self._due.append((tracker, "rewrite"))
        self._on(Trigger.OPENED, now)
        self._opened_before = True

    def port_lost(self, now: float, why: str) -> None:
        """The port went away (read or write failed, or closed for a reopening)."""
        if not self._port_open:
            return
        self._port_open = self._port_ok = False
        self._reopen_pending = False
        # Whatever partial frame was in the decoder is lost with the device: close it.
        self.receive_data(b"\x00", now, heard=False)
        while self._raw:
            handle, _ = self._raw.popleft()
            self._events.append(RawDone(handle, self._port_down_error(), now))
        self._on(Trigger.LOST, now, why)

    def port_gone(self, now: float, why: str) -> None:
        """The port cannot come back (a pseudo-terminal whose target process ended): every
        command still pending ends now with ``PortNotFound`` naming ``why``, and so does
        every command submitted until the port opens again."""
        self._gone = why
        pending = list(self._queue) + list(self._asking) + list(self._open.values())
        self._queue.clear()
        self._asking.clear()
        self._open.clear()
        self._due.clear()
        for tracker in pending:
            tracker.abandon(PortNotFound(f"{tracker.name} on {self.port}: {why}"))
            self._ended(tracker, now)

    def _port_down_error(self) -> LinkError:
        return LinkError(f"{self.port}: the port is down (disconnected): raw octets not written")

    @property
    def gone(self) -> str:
        """Why the port cannot come back (a pty whose target process ended), or empty."""
        return self._gone

    @property
    def port_open(self) -> bool:
        """The core believes the port is there."""
        return self._port_open

    @property
    def reopen_pending(self) -> bool:
        """A ``ReopenPort`` was asked for and the port has not been lost since."""
        return self._reopen_pending

    @property
    def started(self) -> bool:
        """The port is open and the link up: no link start runs, nothing waits for one."""
        return self._port_open and not self._reopen_pending and self.state is LinkState.UP

    def close(self, now: float) -> None:
        """End every command and raw write still pending with ``LinkClosed``."""
        pending = list(self._queue) + list(self._asking) + list(self._open.values())
        self._queue.clear()
        self._asking.clear()
        self._open.clear()
        self._due.clear()
        self._on(Trigger.CLOSE, now)
        for tracker in pending:
            tracker.abandon(
                LinkClosed(f"{tracker.name} on {self.port}: the link was closed before it ended")
            )
            self._ended(tracker, now)
        while self._raw:
            handle, _ = self._raw.popleft()
            error = LinkClosed(f"{self.port}: closed before the raw octets went out")
            self._events.append(RawDone(handle, error, now))
        self._claims.clear()

    # --- commands ------------------------------------------------------------------------

    def submit(
        self, command: Command, now: float, *, internal: bool = False, claim: Claim | None = None,
        query_for: Tracker | None = None,
    ) -> int:  # fmt: skip
        """Queue a command; its handle names it in ``CommandEnded``. ``claim`` is asked, when
        the command is about to leave the queue, whether it still may (see ``Claim``).
        ``internal``: the link's own (a link-start ping, or an outcome query ``query_for``
        a request)."""
        if self.state is LinkState.CLOSED:
            raise LinkClosed(f"{command.name}: the link on {self.port} is not open")
        if self._gone:
            raise PortNotFound(f"{command.name} on {self.port}: {self._gone}")
        tracker = Tracker(command, self.timing, self.port, now, internal=internal,
                          query_for=query_for)  # fmt: skip
        tracker.order = self._orders
        self._orders += 1
        (self._queue if query_for is None else self._asking).append(tracker)
        if claim is not None:
            self._claims[tracker] = claim
        if self._own(tracker):
            self.stats.start_tcs += 1
        return tracker.order

    def _submit_sync(self, now: float) -> Tracker:
        """Queue a start-sequence TC, to go before any other new TC but outcome queries
        (ICD 6.1). One still queued serves; one already sent is dropped, so that no late
        copy of it can move the target's expected count back."""
        old = self._sync
        if old is not None and any(t is old for t in self._queue):
            return old
        if old is not None and not old.done:
            self._drop(old, now, "a newer start-sequence replaces it")
        self.submit(Command(*START_SEQUENCE), now, internal=True)
        self._sync = self._queue[-1]
        return self._sync

    def send_raw(self, data: bytes, now: float) -> int:
        """Queue octets to write as they are, between two frames; ``RawDone`` says how it went.
        The next frame starts with a 0x00, so whatever ``data`` leaves unfinished ends there."""
        handle = self._raws
        self._raws += 1
        if not self._port_open:
            self._events.append(RawDone(handle, self._port_down_error(), now))
        else:
            self._raw.append((handle, bytes(data)))
        return handle

    def cancel_queued(self) -> list[int]:
        """Drop every user command not yet sent (a replayed one is already running); their
        handles."""
        keep: deque[Tracker] = deque()
        dropped: list[int] = []
        for tracker in self._queue:
            if tracker.internal or tracker.replayed:
                keep.append(tracker)
                continue
            self._claims.pop(tracker, None)
            dropped.append(tracker.order)
        self._queue = keep
        return dropped

    @property
    def queued(self) -> int:
        """Commands submitted and not yet sent."""
        return len(self._queue) + len(self._asking)

    @property
    def in_flight(self) -> int:
        """Commands sent and not ended."""
        return len(self._open)

    # --- output --------------------------------------------------------------------------

    def next_event(self) -> Event | None:
        """The oldest event not yet taken, or None."""
        return self._events.popleft() if self._events else None

    def data_to_send(self, now: float) -> bytes:
        """The next octets to write (one frame, or one raw write), b"" when nothing may go
        now. Each call must be followed by ``data_written`` before the next."""
        if self._writing is not None or not self._port_ok:
            return b""
        item = self._next_copy() or self._next_new(now) or self._next_raw()
        if item is None:
            return b""
        if isinstance(item, _Write):
            item.epoch = self._epoch
            self._writing = item
            self._need_resync = False
            self._events.append(FrameOut(item.data, b"", "", now))
            return item.data
        tracker, kind = item
        frame = encode_frame(tracker.packet)
        write = _Write(
            b"\x00" + frame if self._need_resync else frame, self._need_resync, tracker, kind,
            self._epoch,
        )  # fmt: skip
        self._need_resync = False
        # Counted now, not when the write returns: the answer may come first.
        tracker.writing(now, counts=kind != "rewrite")
        if kind == "retransmit":
            self.stats.retransmissions += 1
        if tracker.query_for is not None and tracker.copies > 1:
            self.stats.outcome_query_resends += 1
        self._write_count += 1
        write.stamp = (self._epoch, self._write_count)
        write.lost_mark = self._lost_mark()
        self._writing = write
        note = {"retransmit": "retransmission", "rewrite": "after reconnection"}.get(kind, "")
        self._events.append(FrameOut(write.data, tracker.packet, note, now))
        return write.data

    def data_written(
        self, now: float, *, written: bool = True, cut_short: bool = False, error: str = ""
    ) -> None:
        """The octets of the last ``data_to_send`` were handed to the port (``written``),
        cut short by the write timeout (``cut_short``: a 0x00 must start the next frame), or
        not written because the port failed (``error``: it is then reopened)."""
        write, self._writing = self._writing, None
        if write is None:
            return
        ok = written and not error
        if cut_short or (write.raw_handle >= 0 and (ok or error)):
            self._need_resync = True
        elif not ok:
            self._need_resync = self._need_resync or write.resync
        if write.raw_handle >= 0:
            failure: LinkError | None = None
            if error:
                failure = LinkError(f"{self.port}: raw write failed: {error}")
            elif cut_short:
                failure = LinkError(f"{self.port}: raw write cut short")
            self._events.append(RawDone(write.raw_handle, failure, now))
        else:
            self._settle_write(write, now, ok or cut_short)
        if error and write.epoch == self._epoch:  # not a write to a port since replaced
            self._port_ok = False
            self._ask_reopen(f"write failed: {error}", now)

    def _settle_write(self, write: _Write, now: float, written: bool) -> None:
        tracker = write.tracker
        assert tracker is not None
        counts = write.kind != "rewrite"
        tracker.sent(now, written=written, counts=counts)
        if written:
            self.stats.frames_sent += 1
            self.stats.bytes_sent += len(write.data)
            tracker.first_write = tracker.first_write or write.stamp
            tracker.last_write, tracker.lost_mark = write.stamp, write.lost_mark
        if tracker.done:
            self._finish(tracker, now)

    def _next_copy(self) -> tuple[Tracker, str] | None:
        while self._due:
            tracker, kind = self._due.popleft()
            if any(t is tracker for t, _ in self._due):  # one copy covers every reason
                self._due = deque((t, k) for t, k in self._due if t is not tracker)
            # Accepted since it was queued: a copy now could only run it again.
            if not (tracker.done or tracker.accepted):
                return tracker, kind
        return None

    def _copies_unwritten(self, now: float) -> None:
        """Copies due while the port is down go nowhere; their timers run all the same, so
        a TC still ends after its last transmission (and is written again on reopening)."""
        while (item := self._next_copy()) is not None:
            tracker, kind = item
            tracker.writing(now, counts=kind != "rewrite")
            if kind == "retransmit":
                self.stats.retransmissions += 1
            tracker.sent(now, written=False, counts=kind != "rewrite")
            if tracker.done:
                self._finish(tracker, now)

    def _next_raw(self) -> _Write | None:
        if not self._raw:
            return None
        handle, data = self._raw.popleft()
        return _Write(data, self._need_resync, raw_handle=handle)

    def _next_new(self, now: float) -> tuple[Tracker, str] | None:
        while True:
            # An outcome query is not remembered by the target (ICD 6), so only the window
            # of ICD 14 holds it back: it must go while its request is still remembered.
            query = self.state is LinkState.UP and bool(self._asking)
            if not may_send_new(self._open.values(), self._write_count, self.window,
                                self._seq.peek, query=query):  # fmt: skip
                return None
            tracker = self._take_sendable()
            if tracker is None:
                return None
            claim = self._claims.pop(tracker, None)
            if claim is not None and not claim():
                continue  # cancelled by its caller: never sent
            self._assign(tracker, now)
            return tracker, "first"

    def _take_sendable(self) -> Tracker | None:
        """The next tracker that may leave the queue: any while the link is up, only the
        link's own TCs while it waits for the link start (ICD 14). Outcome queries go
        first; then a start-sequence, and nothing else until it is accepted (ICD 6.1)."""
        sync = self._sync
        if sync is not None and (sync.done or sync.accepted):
            self._sync = sync = None
        if self.state is LinkState.UP:
            if self._asking:
                return self._asking.popleft()
            if sync is not None:
                if any(t is sync for t in self._queue):
                    self._queue.remove(sync)
                    return sync
                return None  # sent, not yet accepted
            return self._queue.popleft() if self._queue else None
        if self.state in _WAITING:
            for tracker in self._queue:
                if tracker.internal and tracker.query_for is None:
                    self._queue.remove(tracker)
                    return tracker
        return None

    def _assign(self, tracker: Tracker, now: float) -> None:
        tracker.signed_by = signer(tracker.command, self.auth)
        while True:
            packet = build_packet(
                tracker.command, self._seq.next(), source_id=self.source_id, auth=self.auth
            )
            tracker.assign(packet)
            if tracker.request_id not in self._open:
                break
        self._open[tracker.request_id] = tracker  # type: ignore[index]
        tracker.send_index = self._sent_count
        self._sent_count += 1
        if not tracker.internal:
            self._events.append(CommandSent(tracker.order, tracker.request_id, now))

    # --- time ----------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When ``tick`` has something to do (None: only new input can give it work)."""
        times = [t.deadline for t in self._open.values() if t.deadline is not None]
        held = self._held_deadline()
        if held is not None:
            times.append(held)
        silence = self._silence_deadline()
        if silence is not None:
            times.append(silence)
        if self._may_probe():
            times.append(self._next_probe_at)
        return min(times) if times else None

    def tick(self, now: float) -> None:
        """Act on every deadline that has come: retransmissions, timeouts, held commands,
        the dead-target rule, retry pings."""
        for tracker in list(self._open.values()):
            if tracker.deadline is not None and tracker.deadline <= now:
                if self._may_ask(tracker):
                    self._ask(tracker, now)
                elif tracker.expire(now):
                    tracker.begin_write()
                    self._due.append((tracker, "retransmit"))
                elif tracker.done:
                    self._finish(tracker, now)
        if not self._port_ok and self._writing is None:
            self._copies_unwritten(now)
        self._expire_held(now)
        silence = self._silence_deadline()
        if silence is not None and silence <= now:
            waiting = [t for t in self._open.values() if t.in_window]
            quiet = now - (silence - SILENCE_TIMEOUTS * self.timing.acceptance_s)
            self._on(
                Trigger.SILENT, now,
                f"no octet from the target for {quiet:.2f} s with {len(waiting)} TC(s) "
                f"awaiting acceptance (the oldest {waiting[0].name})",
            )  # fmt: skip
        if self._may_probe() and self._next_probe_at <= now:
            self._submit_start_ping(now)
            self._on(Trigger.PROBING, now)

    def _held(self, tracker: Tracker) -> bool:
        """The tracker waits in the queue because of the link's state, not the window."""
        if self.state is LinkState.PORT_DOWN:
            return True
        return self.state in _WAITING and (not tracker.internal or tracker.query_for is not None)

    def _held_deadline(self) -> float | None:
        if self._held_since is None:
            return None
        times = [
            max(t.submitted_at, self._held_since) + self.down_timeout_s
            for t in (*self._queue, *self._asking)
            if self._held(t)
        ]
        return min(times) if times else None

    def _expire_held(self, now: float) -> None:
        """Commands held unsent while the link is not up end after ``down_timeout_s``."""
        if self._held_since is None:
            return
        why = {
            LinkState.PORT_DOWN: "the port is down and did not come back",
            LinkState.STARTING: "the link start did not end",
        }.get(self.state, "the link is down: the target stopped answering")
        for tracker in [*self._queue, *self._asking]:
            held_since = max(tracker.submitted_at, self._held_since)
            # The same sum as _held_deadline: a deadline met is a deadline acted on.
            if not self._held(tracker) or now < held_since + self.down_timeout_s:
                continue
            (self._queue if tracker.query_for is None else self._asking).remove(tracker)
            self._claims.pop(tracker, None)
            tracker.abandon(
                CommandTimeout(
                    command=tracker.name, stage=Stage.ACCEPTANCE, request_id=None,
                    port=self.port, waited_s=now - held_since, transmissions=0,
                    note=f"not sent: {why}",
                )  # fmt: skip
            )
            self._ended(tracker, now)

    def _silence_deadline(self) -> float | None:
        """The dead-target rule: a TC awaits acceptance, and nothing came from the target
        since it (or, if it was sent before that, since the last octet) for
        SILENCE_TIMEOUTS acceptance timeouts."""
        if self.state is not LinkState.UP:
            return None
        sent = [t.sent_at for t in self._open.values() if t.in_window and t.sent_at is not None]
        if not sent:
            return None
        return max(self._last_heard, min(sent)) + SILENCE_TIMEOUTS * self.timing.acceptance_s

    def _may_probe(self) -> bool:
        """Down and retrying: no ping running, nothing awaiting acceptance (the TCs in flight
        are probes enough), and the port there."""
        return (
            self.state in (LinkState.DOWN, LinkState.RETRYING)
            and self.restart
            and self._ever_up
            and self._port_ok
            and not self._reopen_pending  # the link start follows the reopening (ICD 14)
            and self._start_tracker is None
            and not any(t.in_window for t in self._open.values())
        )

    # --- input ---------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float, *, heard: bool = True) -> None:
        """Octets read from the port; split at delimiters so each frame event carries its
        raw octets."""
        if data and heard:
            self._last_heard = now
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
                    self._on_frame(ev, raw, now)
                else:
                    self._on_rejected(ev, raw, now)
            if delimited:
                self._rx_raw.clear()

    def _on_rejected(self, rejection: FrameRejected, raw: bytes, now: float) -> None:
        self.stats.frames_rejected[rejection.reason] += 1
        self._events.append(FrameDropped(rejection, raw, now))

    def _on_frame(self, frame: Frame, raw: bytes, now: float) -> None:
        try:
            tm = parse_tm(frame.payload)
        except PacketError as exc:  # the validator passed it: only spacepackets can refuse
            rejection = FrameRejected(exc.reason or RejectReason.BAD_HEADER, exc.message, len(raw))
            self._on_rejected(rejection, raw, now)
            return
        finished: list[Tracker] = []
        request_id = self._dispatch(tm, now, finished)
        self._events.append(TmArrived(tm, request_id, raw, now))
        for tracker in finished:
            self._finish(tracker, now)
        if self.state in (LinkState.DOWN, LinkState.RETRYING):
            self._on(Trigger.HEARD, now, f"{tm.service},{tm.subtype} received")

    def _dispatch(self, tm: Telemetry, at: float, finished: list[Tracker]) -> RequestId | None:
        """Count the TM and hand it to the request it is about."""
        self._matcher.count(tm, self.stats)
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
                self._due.append((tracker, "retransmit"))
            if tracker.collided:
                self._renumber(tracker, at)
                return report.request_id
            if self.fast_retransmit:
                self._retransmit_skipped(tracker)
            self._matcher.reported(tracker, report)
            if tracker.done:
                finished.append(tracker)
            return report.request_id
        if tm.dest_id == 0 or tm.dest_id != self.source_id:
            return None
        if (tm.service, tm.subtype) == GAP_REPORT:
            return self._on_gap(tm)
        tracker = self._matcher.attribute(tm, self._open.values())
        if tracker is None:
            self.stats.tm_unattributed += 1
            return None
        tracker.add_report_tm(tm)
        return tracker.request_id

    def _on_gap(self, tm: Telemetry) -> RequestId | None:
        """ICD 6.1: the target holds TCs for a missing count. If our latest copy of that TC
        was written before the first copy of the TC that arrived ahead of it, that copy was
        lost (the line keeps the order of writes): write it again now, without waiting for
        its acceptance timeout. The TC of the missing count, if ours."""
        try:
            gap = GapReport.unpack(tm.source_data)
        except PacketError:
            self.stats.reports_malformed += 1
            return None
        by_count = {t.request_id.seq_count: t for t in self._open.values() if t.request_id}
        missing, arrived = by_count.get(gap.missing), by_count.get(gap.arrived)
        if missing is None:
            return None
        last = missing.last_write
        first = None if arrived is None else arrived.first_write
        if (
            missing.phase is Phase.AWAIT_ACCEPTANCE
            and missing.retransmittable
            and missing.deadline is not None  # not being written already
            and missing.attempts <= self.timing.max_retransmissions
            and last is not None
            and first is not None
            and last[0] == first[0]
            and last[1] < first[1]
        ):
            missing.begin_write()
            self._due.append((missing, "retransmit"))
            self.stats.gap_retransmissions += 1
        return missing.request_id

    def _lost_mark(self) -> int:
        return self.stats.tm_lost + self.stats.tm_count_restarts

    def _retransmit_skipped(self, answered: Tracker) -> None:
        """Fast retransmission (an option; see ``LinkCore``): the target answers TCs in
        arrival order, so a report about a TC all of whose copies were written after TC n's
        latest copy, with no TM lost since, means that copy of n never arrived whole."""
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
            self._due.append((tracker, "retransmit"))
            self.stats.fast_retransmissions += 1

    # --- ends ----------------------------------------------------------------------------

    def _finish(self, tracker: Tracker, now: float) -> None:
        """Take a done tracker out of flight, once (a report may end it while it is being
        written), and say how it ended."""
        if tracker.request_id is None or self._open.get(tracker.request_id) is not tracker:
            return
        del self._open[tracker.request_id]
        self._matcher.forget(tracker)
        if self._resend_after_replay(tracker):
            return
        if self._own(tracker):
            result = tracker.result
            if not isinstance(result, CommandError) or result.stage is not Stage.ACCEPTANCE:
                self.stats.start_tcs_accepted += 1
            elif tracker.attempts > tracker.unwritten:
                self.stats.start_tcs_maybe += 1
        starting = tracker is self._start_tracker  # its failure is the link start's
        self._ended(tracker, now)
        if tracker.link_down and not starting:
            self._on(Trigger.EXHAUSTED, now, f"{tracker.name} exhausted its retransmissions")

    @staticmethod
    def _own(tracker: Tracker) -> bool:
        """A TC the link sent on its own that is not an outcome query: a link-start ping or
        a start-sequence."""
        return tracker.internal and tracker.query_for is None

    def _drop(self, tracker: Tracker, now: float, why: str) -> None:
        """Stop retransmitting one of the link's own TCs: it ends here, unanswered."""
        tracker.abandon(
            CommandTimeout(
                command=tracker.name, stage=Stage.ACCEPTANCE, request_id=tracker.request_id,
                port=self.port, waited_s=now - (tracker.sent_at or now),
                transmissions=tracker.attempts, note=why,
            )  # fmt: skip
        )
        self._finish(tracker, now)

    def _ended(self, tracker: Tracker, now: float) -> None:
        if tracker.internal:
            if tracker is self._start_tracker:
                command = tracker.command
                if (command.service, command.subtype) == START_SEQUENCE:
                    self._start_sync_ended(tracker, now)
                else:
                    self._start_ping_ended(tracker, now)
            elif tracker.query_for is not None:
                self._query_ended(tracker, now)
            return
        assert tracker.result is not None
        self._events.append(CommandEnded(tracker.order, tracker.result, now))

    def _resend_after_replay(self, tracker: Tracker) -> bool:
        """ICD 13: a signed TC refused with AUTH_REPLAY names the last number the target
        accepted with its key. Move the authenticator above it and queue the command again,
        once, in its submission place; the new TC keeps the handle. True when it did."""
        result, auth = tracker.result, tracker.signed_by
        if (
            auth is None
            or tracker.replayed
            or not isinstance(result, CommandFailed)
            or result.code != FailureCode.AUTH_REPLAY
            or not auth.resync(result.data)
        ):
            return False
        again = Tracker(
            tracker.command, self.timing, self.port, tracker.submitted_at,
            internal=tracker.internal, order=tracker.order, replayed=True,
        )  # fmt: skip
        self._queue.insert(bisect.bisect(self._queue, again.order, key=lambda t: t.order), again)
        if tracker is self._start_tracker:
            self._start_tracker = again
        log.info(
            "%s: %s refused as a replay: key %d moved to %d, sending it again",
            self.port, tracker.name, auth.key_id, auth.next_seq,
        )  # fmt: skip
        return True

    # --- sequence count collisions ----------------------------------------------------------

    def _renumber(self, tracker: Tracker, now: float) -> None:
        """ICD 6: the target answered DUPLICATE to the only copy of a TC, so it remembers an
        earlier request with the same octets (another session's, whose counts this one's
        random start fell among). Move the counter past the target's memory and queue the
        command again, in its submission place, to get a new count; it has not run."""
        del self._open[tracker.request_id]  # type: ignore[arg-type]
        self._matcher.forget(tracker)
        self.stats.seq_collisions += 1
        if tracker.renumbered >= SEQ_COUNT_MODULO // DUPLICATE_WINDOW:
            tracker.abandon(
                CommandTimeout(
                    command=tracker.name, stage=Stage.ACCEPTANCE, request_id=tracker.request_id,
                    port=self.port, waited_s=now - (tracker.sent_at or now),
                    transmissions=tracker.attempts,
                    note="every sequence count tried is one the target remembers",
                )  # fmt: skip
            )
            self._ended(tracker, now)
            return
        jumped = tracker.send_index >= self._jumped_at
        if jumped:
            self._seq = SeqCounter((self._seq.peek + DUPLICATE_WINDOW) % SEQ_COUNT_MODULO)
            self._jumped_at = self._sent_count
        again = Tracker(
            tracker.command, self.timing, self.port, tracker.submitted_at,
            internal=tracker.internal, order=tracker.order, replayed=tracker.replayed,
            renumbered=tracker.renumbered + 1, query_for=tracker.query_for,
        )  # fmt: skip
        if again.query_for is not None:
            self._asking.appendleft(again)
        else:
            self._queue.insert(
                bisect.bisect(self._queue, again.order, key=lambda t: t.order), again
            )
        if tracker is self._start_tracker:
            self._start_tracker = again
        if tracker is self._sync:
            self._sync = again
        elif jumped and self.state is LinkState.UP:
            self._submit_sync(now)  # in-order execution follows the count's jump (ICD 6.1)
        log.info("%s: %s collided with a request the target remembers; sending it renumbered",
                 self.port, tracker.name)  # fmt: skip

    # --- lost reports ----------------------------------------------------------------------

    def _may_ask(self, tracker: Tracker) -> bool:
        """A request accepted and then silent past its deadline is asked about (ICD 14, lost
        reports), at most MAX_OUTCOME_QUERIES times in a row without an answer."""
        return (
            tracker.phase is Phase.AWAIT_COMPLETION
            and tracker.accepted
            and not tracker.internal
            and tracker.request_id is not None
            and tracker.asked < MAX_OUTCOME_QUERIES
        )

    def _ask(self, tracker: Tracker, now: float) -> None:
        assert tracker.request_id is not None
        tracker.deadline = None
        tracker.asked += 1
        self.stats.outcome_queries += 1
        command = Command(
            Service.REQUEST_OUTCOME, OutcomeSubtype.REPORT_OUTCOMES,
            outcome_query([tracker.request_id]),
        )  # fmt: skip
        handle = self.submit(command, now, internal=True, query_for=tracker)
        assert self._asking[-1].order == handle

    def _query_ended(self, query: Tracker, now: float) -> None:
        """An outcome query ended: end the request as the target says, or ask again."""
        tracker = query.query_for
        assert tracker is not None
        if tracker.done or self.state is LinkState.CLOSED or self._gone:
            return
        outcome = None
        # Its report counts even when the query's own completion report was lost.
        for tm in query.reports:
            if (tm.service, tm.subtype) != (Service.REQUEST_OUTCOME, OutcomeSubtype.OUTCOME_REPORT):
                continue
            try:
                outcome = next(
                    (o for o in read_outcomes(tm.source_data)
                     if o.request_id == tracker.request_id), None,
                )  # fmt: skip
            except PacketError:
                self.stats.reports_malformed += 1
            if outcome is not None:
                break
        if outcome is None:
            if self._may_ask(tracker):
                self._ask(tracker, now)
                return
            tracker.expire(now)
        else:
            self.stats.outcomes_answered += 1
            tracker.apply_outcome(outcome, now)
        if tracker.done:
            self._finish(tracker, now)

    # --- link start ----------------------------------------------------------------------

    def _submit_start_ping(self, now: float) -> None:
        handle = self.submit(Command(Service.TEST, TestSubtype.PING), now, internal=True)
        self._start_tracker = self._queue[-1]
        assert self._start_tracker.order == handle
        self._start_attempt += 1

    def _start_ping_ended(self, tracker: Tracker, now: float) -> None:
        """ICD 14 link start: when a ping's TM[17,2] comes, the start-sequence follows. TM
        is never retransmitted, so a ping whose report or completion was lost is followed by
        a new one, up to 1 + max_retransmissions pings; a ping nobody accepts ends the
        attempt at once. While the link is down, pings go on (one at a time) until one is
        answered."""
        self._start_tracker = None
        result = tracker.result
        if isinstance(result, LinkClosed) or self.state is LinkState.CLOSED:
            return
        if isinstance(result, Completion) and result.reports:
            self._start_tracker = self._submit_sync(now)
            return
        self._start_step_failed(tracker, now)

    def _start_sync_ended(self, tracker: Tracker, now: float) -> None:
        """ICD 14 link start, second step: the link is up once the target accepted the
        start-sequence (ICD 6.1), or refused it as unknown (it does not order TCs)."""
        self._start_tracker = None
        result = tracker.result
        if isinstance(result, LinkClosed) or self.state is LinkState.CLOSED:
            return
        attempt = self._start_attempt
        if tracker.accepted:
            self._on(Trigger.STARTED, now, f"the target answered link-start ping {attempt} "
                     "and runs TCs in order from here")  # fmt: skip
            return
        if isinstance(result, CommandFailed) and result.stage is Stage.ACCEPTANCE:
            self._on(Trigger.STARTED, now, f"the target answered link-start ping {attempt}; "
                     f"it refused the start of in-order execution: {result.words}")  # fmt: skip
            return
        self._start_step_failed(tracker, now)

    def _start_step_failed(self, tracker: Tracker, now: float) -> None:
        """A link-start TC ended without starting the link: try again, or give up."""
        result = tracker.result
        attempt = self._start_attempt
        self._next_probe_at = (tracker.sent_at or now) + self.timing.acceptance_s
        if self.state is not LinkState.STARTING and self.state is not LinkState.PORT_DOWN:
            return  # retrying: _may_probe sends the next one
        unanswered = isinstance(result, CommandTimeout) and result.stage is Stage.ACCEPTANCE
        if unanswered or attempt > self.timing.max_retransmissions:
            error = result if isinstance(result, CommandError) else None
            if error is None:
                assert isinstance(result, Completion)
                error = CommandTimeout(
                    command=result.command, stage=Stage.COMPLETION,
                    request_id=result.request_id, port=self.port, waited_s=result.elapsed,
                    transmissions=attempt, note="the pings completed but no TM[17,2] came back",
                )  # fmt: skip
            self._on(Trigger.START_FAILED, now, str(error), error)
            return
        self._submit_start_ping(now)

    def _begin_start(self, now: float) -> None:
        self._start_attempt = 0
        self.start_error = None
        if self._start_tracker is None:
            self._submit_start_ping(now)

    def _ask_reopen(self, why: str, now: float) -> None:
        if self._reopen_pending or not self._port_open:
            return
        self._reopen_pending = True
        self._events.append(ReopenPort(why, now))

    # --- the state machine ---------------------------------------------------------------

    def _on(
        self, trigger: Trigger, now: float, detail: str = "", error: CommandError | None = None
    ) -> None:
        """Every change of the link's state, in one place."""
        old = self.state
        kind = ""
        match (old, trigger):
            case (_, Trigger.CLOSE):
                new = LinkState.CLOSED
            case (LinkState.CLOSED, _):
                return
            case (LinkState.PORT_DOWN, Trigger.OPENED):
                kind = "reconnected" if self._opened_before else ""
                detail = detail or self.port
                if self._was_down and self.restart:
                    new = LinkState.DOWN  # the link start is retried once nothing is in flight
                elif self._start_on_open:
                    new = LinkState.STARTING
                    self._begin_start(now)
                else:
                    new = LinkState.UP
            case (LinkState.PORT_DOWN, Trigger.START_FAILED):
                new, kind, self._was_down = old, "start_failed", True
            case (_, Trigger.LOST):
                new, kind = LinkState.PORT_DOWN, "disconnected"
                self._was_down = self._was_down or old in (LinkState.DOWN, LinkState.RETRYING)
            case (LinkState.STARTING | LinkState.DOWN | LinkState.RETRYING, Trigger.STARTED):
                new, kind = LinkState.UP, "up"
            case (LinkState.STARTING, Trigger.START_FAILED):
                new, kind = LinkState.DOWN, "start_failed"
            case (LinkState.UP, Trigger.SILENT):
                new, kind = LinkState.DOWN, "down"
            case (LinkState.UP, Trigger.EXHAUSTED):
                new, kind = LinkState.DOWN, "down"
                detail += "; reopening the port (ICD 14)"
                self._ask_reopen(detail, now)
            case (LinkState.DOWN, Trigger.PROBING):
                new, kind = LinkState.RETRYING, "retrying"
                detail = "link-start pings until the target answers"
            case (LinkState.DOWN | LinkState.RETRYING, Trigger.HEARD) if not self.restart:
                new, kind = LinkState.UP, "up"
            case _:
                return
        self.state = new
        if new is LinkState.UP:
            self._held_since = None
            self._was_down = False
            self._ever_up = True
        elif old is LinkState.UP or self._held_since is None:
            self._held_since = now
        if new is LinkState.DOWN and old is not LinkState.PORT_DOWN:
            self.stats.link_downs += 1
        if trigger is Trigger.START_FAILED:
            self.start_error = error
        if kind:
            self._events.append(StateChanged(kind, new, detail, now, error))
