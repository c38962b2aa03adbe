"""``hil serve``: one process owns a target's serial port and shares it.

A ground system's server, on one machine: the server opens the port with one ``Link``
(one window, one sequence count, one session log) and carries the commands of every
client that connects to it (``hil`` commands, a pytest session, a campaign) through that
link. Every TM reaches every client; each command's reports reach the client that sent it.
Clients find the server by the port they name (``host.served``), so a ``hil`` command
needs no option to use it.

Commands from several clients interleave in the link's window in the order they arrive;
hazardous ones are signed by the client's key (the server's when the client has none),
with one anti-replay count per key for all clients, so two clients with the same key
never spend the same number.

It also serves a live view on localhost (``host/web/``): housekeeping plotted over time,
the event log, every command with its verification stages, and a running campaign's
progress. ``GET /api/snapshot`` gives the view's state as JSON; ``GET /api/stream`` gives
each change as it happens (server-sent events, one JSON item per message, with ``kind``
``hk``, ``event``, ``command``, ``campaign`` or ``link``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import mimetypes
import os
import queue
import secrets
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Future
from dataclasses import dataclass, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection, Listener
from pathlib import Path

from host.commands import Authenticator, Command
from host.errors import CommandFailed, CommandTimeout, HostError
from host.history import Received
from host.link import Link
from host.link_api import CommandOut, LinkEvent
from host.served import ServeRecord, find_server, pack_outcome, serve_dir
from host.telemetry import EventReport, Housekeeping, scale
from protocol.codes import EventId, HousekeepingSubtype, Service, VerificationSubtype
from protocol.payloads import HkStructure, hk_intervals
from protocol.request_id import RequestId

log = logging.getLogger("host.serve")

WEB_DIR = Path(__file__).with_name("web")
KEEP_HK = 600
"""Housekeeping reports the view keeps (all structures together)."""
KEEP_EVENTS = 200
KEEP_COMMANDS = 100
CLIENT_BACKLOG = 100_000
"""Messages waiting for one client: a client that falls this far behind is disconnected."""
VIEWER_BACKLOG = 10_000
"""Items waiting for one web viewer: a viewer this far behind is dropped (it reconnects)."""
KEEPALIVE_S = 15.0

STAGES = {
    VerificationSubtype.ACCEPTANCE_SUCCESS: ("accepted", True),
    VerificationSubtype.ACCEPTANCE_FAILURE: ("accepted", False),
    VerificationSubtype.START_SUCCESS: ("started", True),
    VerificationSubtype.START_FAILURE: ("started", False),
    VerificationSubtype.PROGRESS_SUCCESS: ("progress", True),
    VerificationSubtype.PROGRESS_FAILURE: ("progress", False),
    VerificationSubtype.COMPLETION_SUCCESS: ("completed", True),
    VerificationSubtype.COMPLETION_FAILURE: ("completed", False),
}
"""Service 1 reports as the view's verification stages."""


# --- what the web view shows ------------------------------------------------------------------


def hk_item(t: float, hk: Housekeeping) -> dict:
    """One housekeeping report for the view: every field in its unit."""
    fields: dict[str, list] = {}
    for name, value in hk.items():
        unit = hk.units[name]
        if hasattr(value, "name"):
            fields[name] = [value.name, ""]
        elif unit == "bool":
            fields[name] = [bool(value), ""]
        elif isinstance(value, bytes):
            fields[name] = [value.hex(), ""]
        else:
            number, base = scale(int(value), unit)
            fields[name] = [round(number, 6), "" if base == "-" else base]
    return {"kind": "hk", "t": t, "structure": hk.structure.name.lower(), "fields": fields}


class View:
    """The state the web page shows, and the viewers following it."""

    def __init__(self, port: str) -> None:
        self.port = port
        self.started = time.time()
        self._lock = threading.Lock()
        self._hk: deque[dict] = deque(maxlen=KEEP_HK)
        self._events: deque[dict] = deque(maxlen=KEEP_EVENTS)
        self._commands: OrderedDict[int, dict] = OrderedDict()
        self._campaign: dict | None = None
        self._link = {"kind": "link", "t": 0.0, "state": "port down", "detail": ""}
        self._viewers: list[queue.Queue] = []

    def add(self, item: dict) -> None:
        """Record ``item`` and send it to every viewer."""
        with self._lock:
            kind = item["kind"]
            if kind == "hk":
                self._hk.append(item)
            elif kind == "event":
                self._events.append(item)
            elif kind == "command":
                self._commands[item["id"]] = item
                while len(self._commands) > KEEP_COMMANDS:
                    self._commands.popitem(last=False)
            elif kind == "campaign":
                self._campaign = item
            elif kind == "link":
                self._link = item
            for viewer in list(self._viewers):
                try:
                    viewer.put_nowait(item)
                except queue.Full:  # too far behind: its page reconnects and starts afresh
                    self._viewers.remove(viewer)
                    with viewer.mutex:
                        viewer.queue.clear()
                    viewer.put_nowait(None)

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "port": self.port,
                "started": self.started,
                "link": {"state": self._link["state"], "detail": self._link["detail"]},
                "hk": list(self._hk),
                "events": list(self._events),
                "commands": list(self._commands.values()),
                "campaign": self._campaign,
            }

    def follow(self) -> queue.Queue:
        viewer: queue.Queue = queue.Queue(VIEWER_BACKLOG)
        with self._lock:
            self._viewers.append(viewer)
        return viewer

    def leave(self, viewer: queue.Queue) -> None:
        with self._lock:
            if viewer in self._viewers:
                self._viewers.remove(viewer)


def _handler(view: View) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "orbit-hil"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("web: " + format, *args)

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path == "/api/snapshot":
                self._send(json.dumps(view.snapshot()).encode(), "application/json")
            elif path == "/api/stream":
                self._stream()
            else:
                name = "index.html" if path == "/" else path.lstrip("/")
                file = WEB_DIR / name
                if "/" in name or not file.is_file():
                    self.send_error(HTTPStatus.NOT_FOUND, f"no such page: {path}")
                    return
                kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
                self._send(file.read_bytes(), kind)

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _stream(self) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            viewer = view.follow()
            try:
                while True:
                    try:
                        item = viewer.get(timeout=KEEPALIVE_S)
                    except queue.Empty:
                        self.wfile.write(b": keepalive\n\n")
                    else:
                        if item is None:
                            return
                        self.wfile.write(b"data: " + json.dumps(item).encode() + b"\n\n")
                    self.wfile.flush()
            except OSError:
                return
            finally:
                view.leave(viewer)

    return Handler


# --- the clients ------------------------------------------------------------------------------


class _Client:
    """One connected client: its commands, and the messages waiting to reach it."""

    def __init__(self, server: Server, conn: Connection, name: str, pid: int) -> None:
        self.server = server
        self.conn = conn
        self.label = f"{name} (pid {pid})"
        self.futures: dict[int, Future] = {}
        self.outbox: queue.Queue = queue.Queue()
        self.gone = False

    def put(self, message: tuple) -> None:
        if self.gone:
            return
        if self.outbox.qsize() >= CLIENT_BACKLOG:
            log.warning("client %s: %d messages behind, disconnected", self.label, CLIENT_BACKLOG)
            self.gone = True
            with contextlib.suppress(OSError):
                self.conn.close()
            return
        self.outbox.put_nowait(message)

    def write(self) -> None:
        while True:
            message = self.outbox.get()
            if message is None or self.gone:
                return
            try:
                self.conn.send(message)
            except (OSError, ValueError):
                self.gone = True
                return

    def read(self) -> None:
        try:
            while True:
                try:
                    message = self.conn.recv()
                except (EOFError, OSError, ValueError, TypeError):  # TypeError: closed under us
                    return
                if message[0] == "bye":
                    return
                self.server.request(self, message)
        finally:
            self.gone = True
            self.outbox.put(None)
            with contextlib.suppress(OSError):
                self.conn.close()
            self.server.left(self)


# --- the server -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Owned:
    """A command on the link: whose it is, and its row in the view once it went out."""

    client: _Client | None
    cid: int
    label: str
    name: str
    row: dict | None = None


class Server:
    """Owns ``link`` (open) and serves it to clients and web viewers (module docstring)."""

    def __init__(
        self, link: Link, *, log_path: str = "", hk_interval_s: float | None = None
    ) -> None:
        self.link = link
        self.hk_interval_s = hk_interval_s
        """Housekeeping interval asked of the target at start and after each of its boots."""
        self.view = View(link.port)
        self.log_path = log_path
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self._clients: list[_Client] = []
        self._owners: dict[Future, _Owned] = {}
        self._early: dict[Future, CommandOut] = {}
        self._rows: dict[RequestId, dict] = {}
        self._next_row = 0
        self._auths: dict[tuple[int, bytes | None], Authenticator] = {}
        self._stop = threading.Event()
        self._listener: Listener | None = None
        self._http: ThreadingHTTPServer | None = None
        self.record: ServeRecord | None = None
        self.web_url = ""

    # --- lifecycle ---

    def start(self, *, http_port: int | None = 8470, http_host: str = "127.0.0.1") -> None:
        """Listen for clients (and viewers, unless ``http_port`` is None) and say so in the
        serve directory."""
        running = find_server(self.link.port)
        if running is not None:
            raise HostError(f"{self.link.port} is already served by hil serve (pid {running.pid})")
        folder = serve_dir()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        authkey = secrets.token_bytes(32)
        socket_path = folder / f"serve-{os.getpid()}.sock"
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        self._listener = Listener(str(socket_path), family="AF_UNIX", authkey=authkey)
        os.chmod(socket_path, 0o600)
        if http_port is not None:
            try:
                self._http = ThreadingHTTPServer((http_host, http_port), _handler(self.view))
            except OSError as exc:
                self._listener.close()
                raise HostError(f"--http-port {http_port}: cannot listen on it: {exc}") from None
            self._http.daemon_threads = True
            host, port = self._http.server_address[:2]
            self.web_url = f"http://{host}:{port}/"
            threading.Thread(target=self._http.serve_forever, name="hil-serve-web",
                             daemon=True).start()  # fmt: skip
        self.link.watch(self._heard)
        self.view.add(self._link_item(self.link.state.value, ""))
        threading.Thread(target=self._accept, name="hil-serve-accept", daemon=True).start()
        self.record = ServeRecord(
            port=self.link.port, baud=self.link.baud, pid=os.getpid(), socket=str(socket_path),
            authkey=authkey.hex(), web=self.web_url, log=self.log_path,
        )  # fmt: skip
        self.record.write()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``stop``; True when stopped."""
        return self._stop.wait(timeout)

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self.record is not None:
            self.record.remove()
            with contextlib.suppress(FileNotFoundError):
                Path(self.record.socket).unlink()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.gone = True
            client.outbox.put(None)
            with contextlib.suppress(OSError):
                client.conn.close()

    def ask_for_housekeeping(self) -> None:
        """Ask the target for each housekeeping structure every ``hk_interval_s`` (TC[3,31]);
        a refusal is logged, not raised (the view then shows the target's own rate)."""
        if self.hk_interval_s is None:
            return
        ms = round(self.hk_interval_s * 1000)
        intervals = hk_intervals([(structure, ms) for structure in HkStructure])
        command = Command(Service.HOUSEKEEPING, HousekeepingSubtype.MODIFY_INTERVAL, intervals)
        try:
            self.submit(command).result()
        except HostError as exc:
            log.warning("housekeeping every %g s not set: %s", self.hk_interval_s, exc)

    # --- clients ---

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn = self._listener.accept()
            except (OSError, EOFError):
                if self._stop.is_set():
                    return
                continue  # a connection with the wrong key, or one that hung up at once
            threading.Thread(target=self._welcome, args=(conn,), daemon=True).start()

    def _welcome(self, conn: Connection) -> None:
        try:
            kind, name, pid = conn.recv()
        except (EOFError, OSError, ValueError, TypeError):
            conn.close()
            return
        client = _Client(self, conn, str(name), int(pid))
        with self._lock:
            self._clients.append(client)
            info = {
                "timing": self.link.timing,
                "window": self.link.window,
                "state": self.link.state,
                "events": self.link.link_events,
            }
        client.put(("welcome", info))
        log.info("client %s connected", client.label)
        threading.Thread(target=client.write, name="hil-serve-out", daemon=True).start()
        client.read()

    def left(self, client: _Client) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)
        # What it had queued and not sent goes nowhere now: cancel it.
        for future in list(client.futures.values()):
            future.cancel()
        log.info("client %s left", client.label)

    def request(self, client: _Client, message: tuple) -> None:
        kind = message[0]
        try:
            if kind == "submit":
                _, cid, command = message
                self.submit(command, client, cid)
            elif kind == "cancel":
                future = client.futures.get(message[1])
                if future is not None:
                    future.cancel()
            elif kind == "cancel_queued":
                cids = [cid for cid, f in list(client.futures.items()) if f.cancel()]
                client.put(("reply", message[1], cids))
            elif kind == "raw":
                _, cid, data = message
                threading.Thread(target=self._raw, args=(client, cid, data), daemon=True).start()
            elif kind == "stats":
                client.put(("reply", message[1], self.link.stats))
            elif kind == "publish":
                item = dict(message[1])
                if item.get("kind") == "campaign":
                    item["t"] = self._t()
                    self.view.add(item)
        except HostError as exc:
            if len(message) > 1 and isinstance(message[1], int):
                client.put(("ended", message[1], *pack_outcome(exc)))

    def submit(self, command: Command, client: _Client | None = None, cid: int = -1) -> Future:
        """Send ``command`` on the link for ``client`` (None: the server's own)."""
        if command.auth is not None:
            key = (command.auth.key_id, command.auth.key)
            with self._lock:
                auth = self._auths.setdefault(key, Authenticator(*key))
            command = replace(command, auth=auth)
        label = client.label if client is not None else "hil serve"
        future = self.link.submit_command(command)
        with self._lock:
            self._owners[future] = _Owned(client, cid, label, command.name)
            early = self._early.pop(future, None)
        if client is not None:
            client.futures[cid] = future
        if early is not None:  # it went out before it was written down here
            self._sent(early)
        future.add_done_callback(self._ended)
        return future

    def _raw(self, client: _Client, cid: int, data: bytes) -> None:
        try:
            self.link.send_raw(data)
        except HostError as exc:
            client.put(("ended", cid, *pack_outcome(exc)))
        else:
            client.put(("ended", cid, True, None))

    def _ended(self, future: Future) -> None:
        with self._lock:
            owned = self._owners.pop(future, None)
        if owned is None:
            return
        if owned.client is not None:
            owned.client.futures.pop(owned.cid, None)
            if future.cancelled():
                outcome: object = HostError("cancelled before it was sent")
            else:
                outcome = future.exception() or future.result()
            owned.client.put(("ended", owned.cid, *pack_outcome(outcome)))
        if future.cancelled() or owned.row is None:
            return
        exc = future.exception()
        with self._lock:
            row = owned.row
            if exc is None:
                row["state"] = "completed"
            elif isinstance(exc, CommandTimeout):
                row["state"], row["detail"] = "timeout", str(exc)
            else:
                row["state"] = "failed"
                row["detail"] = exc.words if isinstance(exc, CommandFailed) else str(exc)
            item = self._public(row)
        self.view.add(item)

    # --- what the link tells ---

    def _t(self, at: float | None = None) -> float:
        return round((time.monotonic() if at is None else at) - self._t0, 3)

    def _heard(self, note: Received | LinkEvent | CommandOut) -> None:
        """Runs on the link's threads with its lock held: pass things on, never wait."""
        try:
            if isinstance(note, Received):
                self._tm(note)
            elif isinstance(note, LinkEvent):
                self._link_event(note)
            else:
                self._sent(note)
        except Exception:  # a view that cannot show something must not stop the link
            log.exception("could not pass on %r", note)

    def _tm(self, item: Received) -> None:
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.put(("tm", item))
        service, subtype = item.tm.service, item.tm.subtype
        if service == Service.HOUSEKEEPING and subtype == HousekeepingSubtype.HK_REPORT:
            hk = Housekeeping.from_source_data(item.tm.source_data, item.tm.time)
            self.view.add(hk_item(self._t(item.time), hk))
        elif service == Service.EVENT_REPORTING:
            report = EventReport.from_received(item)
            severity = getattr(report.severity, "name", str(report.severity))
            text = str(report).split(None, 1)[1] if " " in str(report) else str(report)
            self.view.add({"kind": "event", "t": self._t(item.time), "name": report.name,
                           "severity": severity, "text": text})  # fmt: skip
            if report.event_id == EventId.BOOT and self.hk_interval_s is not None:
                # A reboot restores the target's own intervals: ask for ours again (not
                # from here, which runs on the link's thread).
                threading.Thread(target=self.ask_for_housekeeping, daemon=True).start()
        elif service == Service.REQUEST_VERIFICATION and item.request_id is not None:
            self._stage(item, subtype)

    def _stage(self, item: Received, subtype: int) -> None:
        try:
            stage, ok = STAGES[VerificationSubtype(subtype)]
        except (ValueError, KeyError):
            return
        with self._lock:
            row = self._rows.get(item.request_id)
            if row is None:
                return
            entry = {"stage": stage, "t": self._t(item.time), "ok": ok}
            if not ok:
                entry = {"stage": "failed", "of": stage, "t": entry["t"], "ok": False}
            row["stages"].append(entry)
            if ok and stage in ("started", "progress"):
                row["state"] = "running"
            item_out = self._public(row)
        self.view.add(item_out)

    def _sent(self, note: CommandOut) -> None:
        with self._lock:
            owned = self._owners.get(note.future)
            if owned is None:
                self._early[note.future] = note
                return
            if owned.client is not None:
                owned.client.put(("sent", owned.cid, note.request_id, note.at))
            if owned.row is None:
                owned.row = {"kind": "command", "id": self._next_row, "t": self._t(note.at),
                             "client": owned.label, "name": owned.name, "state": "sent",
                             "detail": "", "stages": []}  # fmt: skip
                self._next_row += 1
            self._rows[note.request_id] = owned.row
            while len(self._rows) > 4 * KEEP_COMMANDS:
                self._rows.pop(next(iter(self._rows)))
            item = self._public(owned.row)
        self.view.add(item)

    def _link_event(self, ev: LinkEvent) -> None:
        with self._lock:
            clients = list(self._clients)
        state = self.link.state
        for client in clients:
            client.put(("link", ev, state))
        self.view.add(self._link_item(state.value, ev.detail, ev.time))
        log.info("link %s%s", ev.kind, f": {ev.detail}" if ev.detail else "")

    def _link_item(self, state: str, detail: str, at: float | None = None) -> dict:
        return {"kind": "link", "t": self._t(at), "state": state, "detail": detail}

    @staticmethod
    def _public(row: dict) -> dict:
        return {**row, "stages": list(row["stages"])}


