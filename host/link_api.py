"""What every link to a target offers its callers, whoever carries the frames.

``LinkApi`` holds the calls built on two things a link provides, ``submit_command`` and a
``History`` of the TM received: sending one command or many, the ping, and the waits on
telemetry. ``host.link.Link`` drives a port itself; ``host.served.SharedLink`` asks the
``hil serve`` process that owns the port. Code written against one runs on the other.

A link also tells its watchers (``watch``) what happens on it, one object at a time: each
TM as a ``Received``, each change of the link's state as a ``LinkEvent``, and each
command's first transmission as a ``CommandOut``. Watchers run on the link's own threads
with its lock held: they must return at once and never call the link.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass

from host.commands import Authenticator, Command, Completion
from host.errors import HostError
from host.history import History, Predicate, Received, Start
from protocol.codes import AckFlags, Service, TestSubtype
from protocol.request_id import RequestId


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """Something that happened to the link: ``opened``, ``up``, ``disconnected``,
    ``reconnected``, ``down``, ``retrying``, ``start_failed``, ``closed``. ``time`` is
    ``time.monotonic()``."""

    index: int
    time: float
    kind: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CommandOut:
    """A command submitted with ``future`` went out with ``request_id`` at ``at``."""

    future: Future
    request_id: RequestId
    at: float


Watcher = Callable[[Received | LinkEvent | CommandOut], None]


class LinkApi:
    """The calls every link offers (see the module docstring). A subclass provides
    ``port``, ``history``, ``submit_command``, ``_watchers``, and ``_events`` (its link
    events) under the condition ``_cond``, notified when one is added."""

    port: str
    history: History
    _watchers: list[Watcher]
    _events: list[LinkEvent]
    _cond: threading.Condition

    def submit_command(self, command: Command) -> Future[Completion]:
        raise NotImplementedError

    def watch(self, watcher: Watcher) -> None:
        """Tell ``watcher`` every TM, link event and command sent from now on."""
        self._watchers.append(watcher)

    def _tell(self, note: Received | LinkEvent | CommandOut) -> None:
        for watcher in self._watchers:
            watcher(note)

    # --- link state ------------------------------------------------------------------------

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
