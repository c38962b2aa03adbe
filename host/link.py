"""The ground side of the serial link: TCs out, TM in, over any pyserial URL.

``Link`` is the threaded shell around ``host.link_core.LinkCore``, which holds every rule
of the protocol (window, retransmission, matching reports to commands, link start,
re-signing after AUTH_REPLAY, the deadlines and the dead-target rule; see its docstring).
The shell opens ``/dev/ttyUSB0``, a pty path, ``socket://host:port``, ``spy://...`` or
``loop://`` and runs two threads, because pyserial offers no portable way to wait for
both a readable port and a new command:

- a reader: bytes from the port into the core. It never dies on a read error: when the
  device goes away it reopens the port with exponential backoff until the link is closed.
- a sender: ticks the core at its next deadline and writes what it returns, with the lock
  released (a slow line blocks here, not the reader). It sleeps on a condition until the
  next deadline or the next thing to do; nothing polls.

Every change of the link's state is one ``LinkEvent`` and one log line: ``opened``,
``up``, ``down`` (a TC exhausted its retransmissions, or the target fell silent),
``retrying``, ``start_failed``, ``disconnected``, ``reconnected``, ``closed``.

``send`` waits for one command; ``submit`` returns a future, so that many can be in flight;
``send_many`` does both. Each command ends as a ``Completion`` or a ``CommandFailed`` /
``CommandTimeout`` (or ``LinkClosed`` when the link is closed under it), or is cancelled by
its caller before it was sent (``Future.cancel``, ``cancel_queued``): none is dropped
silently. ``send_raw`` writes octets of the caller's own (damaged frames, garbage) from
the sender thread, between two frames.
"""

from __future__ import annotations

import errno
import logging
import random
import threading
import time
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

import serial

from host.commands import Authenticator, Command, Completion, Timing
from host.errors import (
    BadBaudRate,
    HostError,
    LinkClosed,
    LinkError,
    PortBusy,
    PortConfigError,
    PortNotFound,
)
from host.history import NOW, History
from host.link_api import CommandOut, LinkApi, LinkEvent, Watcher
from host.link_core import Claim, LinkCore
from host.link_events import (
    CommandEnded,
    CommandSent,
    FrameDropped,
    FrameOut,
    LinkState,
    LinkStats,
    RawDone,
    ReopenPort,
    StateChanged,
    TmArrived,
)
from host.session_log import SessionLog
from protocol.link import (
    DEFAULT_BAUD,
    DUPLICATE_WINDOW,
    MAX_FRAME_LEN,
    MAX_OUTSTANDING,
    SOURCE_ID_HOST,
    acceptance_timeout,
    frame_time_s,
)
from protocol.sequence import SEQ_COUNT_MODULO

log = logging.getLogger("host.link")

RAW_LOG_OCTETS = 64
"""Octets of a raw write shown in the session log."""
READ_TIMEOUT_S = 0.1
"""Longest a read blocks: bounds how long ``close`` waits for the reader."""
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 2.0

__all__ = ["Link", "LinkEvent", "LinkState", "LinkStats", "NOW"]

_WARN = frozenset({"disconnected", "reconnected", "down", "retrying", "start_failed"})
"""Link events logged as warnings; the others are logged as information."""


def _valid_baud(baud: object) -> int:
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise BadBaudRate(f"baud rate must be a positive integer (e.g. 115200), got {baud!r}")
    return baud


class Link(LinkApi):
    """A link to one target (see the module docstring).

    ``acceptance_timeout_s`` defaults to the ICD's formula at ``baud``;
    ``completion_timeout_s``, ``progress_timeout_s`` and ``max_retransmissions`` to the ICD's
    values; ``window`` to its MAX_OUTSTANDING. ``auth`` signs hazardous TCs (a command's own
    ``auth`` in its place); after an AUTH_REPLAY the link moves it above the target's number
    and sends the command once more, as a new TC. The link changes its authenticators under
    its lock: do not share one with another link while both run. ``restart``
    sends the link-start ping again after each reconnection, and retries it after the link
    went down. A command submitted while the link is not up (port gone, link start
    running, target silent) waits for it at most ``down_timeout_s`` (default: the time the
    ICD gives a TC, 1 + max_retransmissions acceptance timeouts). ``session_log`` is a path
    (or a ``SessionLog``) to log every frame to.

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
        timing = Timing(acceptance_s=acceptance_timeout(self.baud))
        overrides = {
            "acceptance_s": acceptance_timeout_s,
            "completion_s": completion_timeout_s,
            "progress_s": progress_timeout_s,
            "max_retransmissions": max_retransmissions,
        }
        timing = replace(timing, **{k: v for k, v in overrides.items() if v is not None})
        self._core = LinkCore(
            timing, port=self.port, window=window, source_id=source_id, auth=auth,
            restart=restart, down_timeout_s=down_timeout_s, fast_retransmit=fast_retransmit,
            seq_start=random.randrange(SEQ_COUNT_MODULO),
        )  # fmt: skip
        self.history = History(history_size)
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
        self._opening = False
        """In ``open``: a failed link start is the error ``open`` raises, not a log line."""
        self._port: serial.SerialBase | None = None
        self._reopen_requested = ""
        self._futures: dict[int, Future] = {}
        self._raw_futures: dict[int, Future[None]] = {}
        self._events: list[LinkEvent] = []
        self._threads: list[threading.Thread] = []
        self._watchers: list[Watcher] = []

    # --- what the core holds ---------------------------------------------------------------

    @property
    def timing(self) -> Timing:
        """The timeouts and retry count in use."""
        return self._core.timing

    @property
    def window(self) -> int:
        return self._core.window

    @property
    def source_id(self) -> int:
        return self._core.source_id

    @property
    def restart(self) -> bool:
        return self._core.restart

    @property
    def fast_retransmit(self) -> bool:
        return self._core.fast_retransmit

    @property
    def down_timeout_s(self) -> float:
        return self._core.down_timeout_s

    @property
    def stats(self) -> LinkStats:
        """The link's counters (the core's own object: read, do not change)."""
        return self._core.stats

    @property
    def auth(self) -> Authenticator | None:
        """The authenticator of hazardous TCs; may be replaced between commands."""
        return self._core.auth

    @auth.setter
    def auth(self, auth: Authenticator | None) -> None:
        with self._cond:
            self._core.auth = auth

    @property
    def state(self) -> LinkState:
        """Where the link is: port down, starting, up, down, retrying, closed."""
        with self._cond:
            return self._core.state

    # --- opening and closing --------------------------------------------------------------

    def open(self, *, start: bool = True) -> Link:
        """Open the port and start the threads; with ``start``, ping until the target answers
        (ICD 14 "Link start"): a target that never does raises ``CommandTimeout``."""
        with self._cond:
            if self._opened:
                raise RuntimeError(f"link on {self.port} is already open")
            self._opened = True
        try:
            port = self._make_port()
        except BaseException:
            self._opened = False
            self._close_log()
            raise
        if self._session_log is not None:
            self._session_log.header(self.port, self.baud)
        self._event("opened", f"{self.port} at {self.baud} baud", time.monotonic())
        with self._cond:
            self._port = port
            self._opening = start
            self._core.port_opened(time.monotonic(), start=start)
            ended = self._drain_locked()
        self._resolve(ended)
        for name, target in (("reader", self._reader), ("sender", self._sender)):
            thread = threading.Thread(target=target, name=f"link-{name} {self.port}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if start:
            try:
                self._await_link_start()
            except HostError:
                self.close()
                raise
            finally:
                with self._cond:
                    self._opening = False
        return self

    def _await_link_start(self) -> None:
        with self._cond:
            while not self._core.started and self._core.start_error is None:
                if self._stopping:
                    raise LinkClosed(f"{self.port}: the link was closed during its start")
                self._cond.wait()
            if self._core.start_error is not None and not self._core.started:
                raise self._core.start_error

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
            self._core.close(time.monotonic())
            ended = self._drain_locked()
        if port is not None:
            try:
                port.close()
            except Exception:
                pass
        self._resolve(ended)
        self._event("closed", "", time.monotonic())
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

    def submit_command(self, command: Command) -> Future[Completion]:
        """Queue a ``Command`` (see ``submit``)."""
        future: Future[Completion] = Future()
        with self._cond:
            if self._stopping or not self._opened:
                raise LinkClosed(f"{command.name}: the link on {self.port} is not open")
            handle = self._core.submit(command, time.monotonic(), claim=future_claim(future))
            self._futures[handle] = future
            self._cond.notify_all()
        return future

    def cancel_queued(self) -> int:
        """Cancel every command submitted and not yet sent (their futures end cancelled);
        how many. Commands already sent run to their end."""
        cancelled: list[Future] = []
        with self._cond:
            for handle in self._core.cancel_queued():
                future = self._futures.pop(handle, None)
                if future is not None and not future.cancelled():  # else cancelled already
                    cancelled.append(future)
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
            handle = self._core.send_raw(bytes(data), time.monotonic())
            self._raw_futures[handle] = future
            ended = self._drain_locked()
            self._cond.notify_all()
        self._resolve(ended)
        future.result(timeout)

    # --- link state ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        with self._cond:
            return self._port is not None

    @property
    def gone(self) -> str:
        """Why the port cannot come back (a pty whose target process ended), or empty."""
        with self._cond:
            return self._core.gone

    def await_started(self, timeout: float = 10.0) -> bool:
        """Wait until the port is open, no reopening is pending and the link is up (no link
        start or retry is running); False when that has not happened by the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._port is None or self._reopen_requested or not self._core.started:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    return False
                self._cond.wait(left)
            return True

    def _event(self, kind: str, detail: str, at: float) -> None:
        with self._cond:
            self._event_locked(kind, detail, at)
            self._cond.notify_all()

    def _event_locked(self, kind: str, detail: str, at: float) -> None:
        self._events.append(LinkEvent(len(self._events), at, kind, detail))
        self._tell(self._events[-1])
        if self._session_log is not None:
            self._session_log.event(at, kind, detail)
        quiet = kind == "start_failed" and self._opening
        level = logging.WARNING if kind in _WARN and not quiet else logging.INFO
        log.log(level, "%s: %s%s", self.port, kind, f": {detail}" if detail else "")

    # --- between the core and the threads ---------------------------------------------------

    def _drain_locked(self) -> list[tuple[Future, object]]:
        """Act on the core's events (lock held); the futures to end, with their outcome, are
        returned to be ended once the lock is released (their callbacks may use the link)."""
        ended: list[tuple[Future, object]] = []
        slog = self._session_log
        while (ev := self._core.next_event()) is not None:
            match ev:
                case TmArrived(tm=tm, request_id=rid, raw=raw, at=at):
                    if slog is not None:
                        slog.rx(at, raw, tm)
                    item = self.history.append(tm, at, rid)
                    self._tell(item)
                case CommandSent(handle=handle, request_id=rid, at=at):
                    future = self._futures.get(handle)
                    if future is not None and self._watchers:
                        self._tell(CommandOut(future, rid, at))
                case CommandEnded(handle=handle, result=result):
                    future = self._futures.pop(handle, None)
                    if future is not None:
                        ended.append((future, result))
                case FrameOut(data=data, packet=packet, note=note, at=at) if slog is not None:
                    if packet:
                        slog.tx(at, data, packet, note)
                    else:
                        shown = data[:RAW_LOG_OCTETS].hex(" ")
                        shown += " ..." if len(data) > RAW_LOG_OCTETS else ""
                        slog.event(at, "raw", f"{len(data)} octets: {shown}")
                case FrameDropped(rejection=rejection, raw=raw, at=at):
                    if slog is not None:
                        slog.rejected(at, raw, rejection)
                    log.debug("%s: frame rejected: %s", self.port, rejection.detail)
                case RawDone(handle=handle, error=error):
                    raw_future = self._raw_futures.pop(handle, None)
                    if raw_future is not None:
                        ended.append((raw_future, error))
                case StateChanged(kind=kind, detail=detail, at=at):
                    self._event_locked(kind, detail, at)
                case ReopenPort(why=why):
                    self._request_reopen(why)
        self._cond.notify_all()
        return ended

    @staticmethod
    def _resolve(ended: list[tuple[Future, object]]) -> None:
        """End futures (lock not held): a result, or an exception (None: a raw write done)."""
        for future, outcome in ended:
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _request_reopen(self, why: str) -> None:
        self._reopen_requested = why
        port = self._port
        cancel = getattr(port, "cancel_read", None) if port is not None else None
        if cancel is not None:
            try:
                cancel()
            except Exception:
                pass

    # --- the sender thread ------------------------------------------------------------------

    def _sender(self) -> None:
        cond = self._cond
        core = self._core
        with cond:
            while not self._stopping:
                now = time.monotonic()
                core.tick(now)
                port = self._port
                data = core.data_to_send(now) if port is not None else b""
                ended = self._drain_locked()
                if data:
                    cond.release()
                    try:
                        self._resolve(ended)
                        outcome = _write(port, data)
                    finally:
                        cond.acquire()
                    core.data_written(time.monotonic(), **outcome)
                    continue
                if ended:
                    cond.release()
                    try:
                        self._resolve(ended)
                    finally:
                        cond.acquire()
                    continue
                deadline = core.next_deadline()
                cond.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))

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
                        if isinstance(exc, PortNotFound) and _is_pty(self.port):
                            self._port_gone()
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
                with self._cond:
                    try:
                        self._core.receive_data(data, time.monotonic())
                    except Exception:  # a bug of ours must not stop the link: say so, go on
                        log.exception("%s: error handling received bytes", self.port)
                    ended = self._drain_locked()
                self._resolve(ended)

    def _port_gone(self) -> None:
        """A pseudo-terminal that vanished never comes back: its target process ended."""
        with self._cond:
            self._core.port_gone(
                time.monotonic(),
                "the target's pseudo-terminal is gone: the process serving it (a simulated "
                "chip) ended",
            )
            ended = self._drain_locked()
        self._resolve(ended)

    def _drop_port(self, port: serial.SerialBase, why: str) -> None:
        with self._cond:
            if self._port is not port:
                return
            self._port = None
            self._reopen_requested = ""
            self._core.port_lost(time.monotonic(), why)
            ended = self._drain_locked()
        try:
            port.close()
        except Exception:
            pass
        self._resolve(ended)

    def _adopt(self, port: serial.SerialBase) -> None:
        with self._cond:
            if self._stopping:
                try:
                    port.close()
                except Exception:
                    pass
                return
            self._port = port
            self._core.port_opened(time.monotonic())
            ended = self._drain_locked()
        self._resolve(ended)


def future_claim(future: Future) -> Claim:
    """The core's ``Claim`` for a command with a future: mark it running, False when its
    caller cancelled it first."""
    return lambda: future.running() or future.set_running_or_notify_cancel()


def _write(port: serial.SerialBase, data: bytes) -> dict[str, object]:
    """One write to the port (lock released), as ``LinkCore.data_written`` keywords."""
    try:
        port.write(data)
    except serial.SerialTimeoutException:
        return {"cut_short": True}  # a frame cut short: the core sends 0x00 before the next
    except (serial.SerialException, OSError, ValueError, TypeError) as exc:
        return {"written": False, "error": str(exc)}
    return {}


def _is_pty(port: str) -> bool:
    """Whether a port is a pseudo-terminal's device (which vanishes with its server)."""
    return port.startswith("/dev/pts/")


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
