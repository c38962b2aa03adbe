"""A port that ``hil serve`` owns, seen from its clients.

``hil serve`` (``host.serve``) holds the serial port of one target and lets many
clients share it. It leaves a record in the serve directory (``$HIL_SERVE_DIR``, else
``/tmp/orbit-hil-<uid>``, readable by its user only) naming the port, its process and
the local socket clients connect to. ``open_link`` looks there first: for a served port
it returns a ``SharedLink``, which the server carries; otherwise a ``Link`` of its own.
Code written against ``Link`` runs unchanged on a ``SharedLink`` (``host.link_api``).

The client speaks to the server over a Unix socket with
``multiprocessing.connection`` (authenticated by the record's key), in tuples:

client -> server: ``("hello", name, pid)``, ``("submit", cid, Command)``,
``("cancel", cid)``, ``("cancel_queued", cid)``, ``("raw", cid, octets)``,
``("stats", cid)``, ``("publish", item)``, ``("bye",)``.

server -> client: ``("welcome", info)``, ``("tm", Received)``, ``("link", LinkEvent,
state)``, ``("sent", cid, request_id, at)``, ``("ended", cid, ok, result)``,
``("reply", cid, value)``.

Every TM the target sends reaches every client; a command's reports reach the client
that sent it with its ``Completion``, as on a link of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, replace
from multiprocessing.connection import Client, Connection
from pathlib import Path

from host.commands import Authenticator, Command, Completion, Timing
from host.errors import HostError, LinkClosed, LinkError
from host.history import History
from host.link import Link
from host.link_api import CommandOut, LinkApi, LinkEvent, Watcher
from host.link_events import LinkState, LinkStats
from protocol.link import DEFAULT_BAUD

REPLY_TIMEOUT_S = 10.0
"""Longest wait for the server's answer to a question about the link (stats, raw write)."""


def serve_dir() -> Path:
    """Where servers leave their records."""
    configured = os.environ.get("HIL_SERVE_DIR")
    return Path(configured) if configured else Path(f"/tmp/orbit-hil-{os.getuid()}")


def port_key(port: str) -> str:
    """One name per port, whichever path names it (a symlink and its target agree)."""
    if "://" not in port:
        port = os.path.realpath(port)
    return port


@dataclass(frozen=True)
class ServeRecord:
    """What a running ``hil serve`` tells its clients about itself."""

    port: str
    baud: int
    pid: int
    socket: str
    authkey: str
    web: str
    log: str

    @property
    def path(self) -> Path:
        return record_path(self.port)

    def write(self) -> None:
        folder = serve_dir()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.__dict__, f)
        tmp.replace(self.path)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def record_path(port: str) -> Path:
    digest = hashlib.sha256(port_key(port).encode()).hexdigest()[:16]
    return serve_dir() / f"serve-{digest}.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _load(path: Path) -> ServeRecord | None:
    """The record at ``path`` when its server still runs; a stale one is removed."""
    try:
        record = ServeRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not _alive(record.pid) or not Path(record.socket).exists():
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return record


def find_server(port: str) -> ServeRecord | None:
    """The running server of ``port``, or None."""
    return _load(record_path(port))


def running_servers() -> list[ServeRecord]:
    """Every running server of this user."""
    folder = serve_dir()
    if not folder.is_dir():
        return []
    found = (_load(path) for path in sorted(folder.glob("serve-*.json")))
    return [record for record in found if record is not None]


def open_link(
    port: str,
    baud: int | None = None,
    *,
    auth: Authenticator | None = None,
    client: str = "hil",
    **options: object,
) -> LinkApi:
    """An open link to ``port``: through its ``hil serve`` when one runs (``options``, the
    ``Link`` keywords, are then the server's business and must be left out, but for a
    session log, which is refused: the server keeps the one session log), else a ``Link``
    of its own."""
    record = find_server(port)
    if record is None:
        link = Link(port, DEFAULT_BAUD if baud is None else baud, auth=auth, **options)
        return link.open()
    if options.get("session_log") is not None:
        raise LinkError(
            f"{port} is served by hil serve (pid {record.pid}), which keeps the session log "
            f"({record.log or 'none: give hil serve --log FILE'}); leave out --log"
        )
    return SharedLink(record, auth=auth, client=client).open()


def pack_outcome(result: object) -> tuple[bool, object]:
    """A command's outcome for the wire: errors go as their class and state, because the
    host's errors take keyword arguments that pickling by ``args`` cannot restore."""
    if isinstance(result, BaseException):
        cls = type(result)
        return False, (cls.__module__, cls.__qualname__, str(result), dict(vars(result)))
    return True, result


def unpack_outcome(ok: bool, payload: object) -> object:
    if ok:
        return payload
    module, name, message, attrs = payload  # type: ignore[misc]
    cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(cls, type) and issubclass(cls, HostError)):
        return LinkError(message)
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    vars(error).update(attrs)
    return error


class SharedLink(LinkApi):
    """A link to a target whose port ``hil serve`` owns (see the module docstring).

    ``auth`` signs this client's hazardous commands (None: the server's key); the server
    keeps one anti-replay count per key for all its clients.
    """

    def __init__(
        self,
        record: ServeRecord,
        *,
        auth: Authenticator | None = None,
        client: str = "hil",
        history_size: int = 20_000,
    ) -> None:
        self.record = record
        self.port = record.port
        self.baud = record.baud
        self.auth = auth
        self.client = client
        self.history = History(history_size)
        self._watchers: list[Watcher] = []
        self._cond = threading.Condition()
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._next_cid = 0
        self._futures: dict[int, Future] = {}
        self._replies: dict[int, Future] = {}
        self._events: list[LinkEvent] = []
        self._state = LinkState.PORT_DOWN
        self._timing = Timing()
        self._window = 1
        self._closed_why = ""
        self._reader: threading.Thread | None = None

    # --- what the server holds --------------------------------------------------------------

    @property
    def timing(self) -> Timing:
        return self._timing

    @property
    def window(self) -> int:
        return self._window

    @property
    def state(self) -> LinkState:
        with self._cond:
            return self._state

    @property
    def connected(self) -> bool:
        with self._cond:
            return self._conn is not None and self._state is not LinkState.PORT_DOWN

    @property
    def stats(self) -> LinkStats:
        """The server's link counters (all its clients together)."""
        return self._ask(("stats",))

    # --- opening and closing --------------------------------------------------------------

    def open(self, *, start: bool = True) -> SharedLink:
        """Connect to the server; with ``start``, wait (as long as a link start may take)
        until its link is up."""
        try:
            conn = Client(self.record.socket, family="AF_UNIX",
                          authkey=bytes.fromhex(self.record.authkey))  # fmt: skip
            conn.send(("hello", self.client, os.getpid()))
            kind, info = conn.recv()
        except (OSError, EOFError, ValueError) as exc:
            raise LinkError(
                f"{self.port}: hil serve (pid {self.record.pid}) does not answer on "
                f"{self.record.socket}: {exc}"
            ) from None
        if kind != "welcome":
            conn.close()
            raise LinkError(f"{self.port}: hil serve refused the connection: {info}")
        with self._cond:
            self._conn = conn
            self._timing = info["timing"]
            self._window = info["window"]
            self._state = info["state"]
            for ev in info["events"]:
                self._events.append(replace(ev, index=len(self._events)))
        self._reader = threading.Thread(target=self._read, name="hil-served", daemon=True)
        self._reader.start()
        if start:
            self.await_started(self._timing.acceptance_s * (2 + self._timing.max_retransmissions))
        return self

    def close(self) -> None:
        with self._cond:
            conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(OSError, ValueError):
            with self._send_lock:
                conn.send(("bye",))
        with contextlib.suppress(OSError):
            conn.close()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=2.0)
        self._end_all(f"{self.port}: the link was closed")

    def __enter__(self) -> SharedLink:
        return self if self._conn is not None else self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def await_started(self, timeout: float = 10.0) -> bool:
        """Wait until the server's link is up; False when it is not by the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._state is not LinkState.UP:
                left = deadline - time.monotonic()
                if left <= 0 or self._conn is None:
                    return False
                self._cond.wait(left)
            return True

    # --- commands --------------------------------------------------------------------------

    def submit_command(self, command: Command) -> Future[Completion]:
        if command.auth is None and self.auth is not None:
            command = replace(command, auth=self.auth)
        future: Future[Completion] = Future()
        cid = self._post(future, lambda cid: ("submit", cid, command), command.name)
        future.add_done_callback(lambda f: f.cancelled() and self._send_quietly(("cancel", cid)))
        return future

    def cancel_queued(self) -> int:
        """Cancel this client's commands the server has not sent yet; how many."""
        cids: list[int] = self._ask(("cancel_queued",))
        with self._cond:
            futures = [self._futures.pop(cid, None) for cid in cids]
        return sum(f.cancel() for f in futures if f is not None)

    def send_raw(self, data: bytes, *, timeout: float | None = None) -> None:
        """Octets written as they are by the server, between two of its frames."""
        future: Future[None] = Future()
        self._post(future, lambda cid: ("raw", cid, bytes(data)), "raw octets")
        future.result(timeout if timeout is not None else REPLY_TIMEOUT_S)

    def publish(self, item: dict) -> None:
        """Show ``item`` (a campaign's progress) to the server's viewers."""
        self._send_quietly(("publish", item))

    # --- the wire ------------------------------------------------------------------------------

    def _post(self, future: Future, message, what: str) -> int:
        with self._cond:
            conn = self._conn
            if conn is None:
                raise LinkClosed(self._closed_why or f"{what}: the link on {self.port} is not open")
            cid = self._next_cid
            self._next_cid += 1
            self._futures[cid] = future
        try:
            with self._send_lock:
                conn.send(message(cid))
        except (OSError, ValueError) as exc:
            with self._cond:
                self._futures.pop(cid, None)
            raise LinkClosed(f"{what}: hil serve on {self.port} is gone ({exc})") from None
        return cid

    def _ask(self, question: tuple):
        future: Future = Future()
        self._post(future, lambda cid: (question[0], cid, *question[1:]), question[0])
        return future.result(REPLY_TIMEOUT_S)

    def _send_quietly(self, message: tuple) -> None:
        with self._cond:
            conn = self._conn
        if conn is None:
            return
        with contextlib.suppress(OSError, ValueError), self._send_lock:
            conn.send(message)

    def _read(self) -> None:
        conn = self._conn
        assert conn is not None
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError, ValueError, TypeError):  # TypeError: closed under us
                break
            self._handle(message)
        with self._cond:
            gone = self._conn is not None
            self._conn = None
            self._state = LinkState.CLOSED
            self._cond.notify_all()
        if gone:
            self._end_all(f"{self.port}: hil serve (pid {self.record.pid}) ended")

    def _handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == "tm":
            item = message[1]
            self._tell(self.history.append(item.tm, item.time, item.request_id))
        elif kind == "link":
            _, ev, state = message
            with self._cond:
                ev = replace(ev, index=len(self._events))
                self._events.append(ev)
                self._state = state
                self._cond.notify_all()
            self._tell(ev)
        elif kind == "sent":
            _, cid, request_id, at = message
            with self._cond:
                future = self._futures.get(cid)
            if future is not None and (future.running() or future.set_running_or_notify_cancel()):
                self._tell(CommandOut(future, request_id, at))
        elif kind in ("ended", "reply"):
            cid = message[1]
            with self._cond:
                future = self._futures.pop(cid, None)
            if future is None or future.done():
                return
            outcome = unpack_outcome(*message[2:]) if kind == "ended" else message[2]
            if kind == "ended" and isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _end_all(self, why: str) -> None:
        with self._cond:
            self._closed_why = why
            futures, self._futures = self._futures, {}
        for future in futures.values():
            if not future.done():
                future.set_exception(LinkClosed(why))
