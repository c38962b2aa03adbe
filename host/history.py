"""Telemetry received, with arrival times, and F Prime-style waits on it.

Every TM the link receives goes into a bounded ``History``. Searches take a predicate, a
small object such as ``tm(service=5)`` or ``event(EventId.BOOT)``; ``start`` says where to
look from: ``None`` for everything still held, ``NOW`` for what arrives after the call, or
an index from ``History.mark()``. ``await_*`` return None at the deadline, ``assert_*``
raise ``AssertionError`` naming what was awaited and what came instead.
"""

from __future__ import annotations

import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from host.names import tm_name
from protocol.codes import EventId, Service
from protocol.packets import Telemetry
from protocol.request_id import RequestId

NOW: Final = "NOW"
"""``start=NOW``: only TM that arrives after the call."""

Start = int | Literal["NOW"] | None


@dataclass(frozen=True, slots=True)
class Received:
    """One TM as the host received it: ``index`` counts TM since the link was made,
    ``time`` is ``time.monotonic()`` at arrival, ``request_id`` the TC it was matched to."""

    index: int
    time: float
    tm: Telemetry
    request_id: RequestId | None = None

    @property
    def service(self) -> int:
        return self.tm.service

    @property
    def subtype(self) -> int:
        return self.tm.subtype

    @property
    def source_data(self) -> bytes:
        return self.tm.source_data

    @property
    def seq_count(self) -> int:
        return self.tm.seq_count

    @property
    def event_id(self) -> EventId | int | None:
        """The event id of a service 5 report, else None."""
        if self.tm.service != Service.EVENT_REPORTING or len(self.tm.source_data) < 2:
            return None
        (eid,) = struct.unpack_from("!H", self.tm.source_data)
        try:
            return EventId(eid)
        except ValueError:
            return eid

    def __str__(self) -> str:
        tm = self.tm
        return (
            f"{tm_name(tm.service, tm.subtype, tm.source_data)} seq {tm.seq_count} "
            f"({len(tm.source_data)} octets) at {self.time:.3f}"
        )


@dataclass(frozen=True, slots=True)
class TmPredicate:
    """Matches TM by service, subtype, event id and an optional test on the ``Received``."""

    service: int | None = None
    subtype: int | None = None
    event_id: int | None = None
    where: Callable[[Received], bool] | None = None

    def __call__(self, item: Received) -> bool:
        if self.service is not None and item.service != self.service:
            return False
        if self.subtype is not None and item.subtype != self.subtype:
            return False
        if self.event_id is not None and item.event_id != self.event_id:
            return False
        return self.where is None or bool(self.where(item))

    def __str__(self) -> str:
        service = "*" if self.service is None else str(self.service)
        subtype = "*" if self.subtype is None else str(self.subtype)
        text = f"TM[{service},{subtype}]"
        if self.event_id is not None:
            try:
                text += f" event {EventId(self.event_id).name}"
            except ValueError:
                text += f" event {self.event_id:#06x}"
        if self.where is not None:
            text += f" where {getattr(self.where, '__name__', repr(self.where))}"
        return text


def tm(
    service: int | None = None,
    subtype: int | None = None,
    *,
    where: Callable[[Received], bool] | None = None,
) -> TmPredicate:
    """A predicate on TM type (None matches any) and, optionally, a test of your own."""
    return TmPredicate(service=service, subtype=subtype, where=where)


def event(
    event_id: EventId | int, *, where: Callable[[Received], bool] | None = None
) -> TmPredicate:
    """A predicate on service 5 reports of one event."""
    return TmPredicate(service=Service.EVENT_REPORTING, event_id=int(event_id), where=where)


Predicate = Callable[[Received], bool]


def _describe(predicate: Predicate) -> str:
    if isinstance(predicate, TmPredicate):
        return str(predicate)
    return getattr(predicate, "__name__", repr(predicate))


class History:
    """A bounded, thread-safe list of ``Received`` that waiters can block on."""

    def __init__(self, maxlen: int = 20_000) -> None:
        if maxlen < 1:
            raise ValueError(f"history size must be at least 1, got {maxlen}")
        self._items: deque[Received] = deque(maxlen=maxlen)
        self._next = 0
        self._cond = threading.Condition()

    def append(self, item_tm: Telemetry, at: float, request_id: RequestId | None) -> Received:
        """Record a TM that arrived at ``at`` and wake the waiters."""
        with self._cond:
            item = Received(self._next, at, item_tm, request_id)
            self._next += 1
            self._items.append(item)
            self._cond.notify_all()
        return item

    def mark(self) -> int:
        """The index the next TM will get: pass it as ``start`` to see only what follows."""
        with self._cond:
            return self._next

    def clear(self) -> None:
        """Forget what was received so far (a test starts with an empty history)."""
        with self._cond:
            self._items.clear()

    def items(self, start: Start = None) -> list[Received]:
        """A copy of what is held, from ``start`` on."""
        with self._cond:
            first = self._resolve(start)
            return [r for r in self._items if r.index >= first]

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def _resolve(self, start: Start) -> int:
        if start is None:
            return 0
        if start == NOW:
            return self._next
        if isinstance(start, int):
            return start
        raise ValueError(f"start must be None, NOW or an index from mark(), got {start!r}")

    def await_count(
        self, predicate: Predicate, count: int, timeout: float, start: Start = None
    ) -> list[Received] | None:
        """The first ``count`` matching TM from ``start``, or None if they are not all there
        by the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            first = self._resolve(start)
            found: list[Received] = []
            scanned = first
            while True:
                fresh: list[Received] = []
                for item in reversed(self._items):  # only what arrived since the last scan
                    if item.index < scanned:
                        break
                    fresh.append(item)
                for item in reversed(fresh):
                    if predicate(item):
                        found.append(item)
                        if len(found) == count:
                            return found
                scanned = self._next
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def await_one(
        self, predicate: Predicate, timeout: float, start: Start = None
    ) -> Received | None:
        """The first matching TM from ``start``, or None at the deadline."""
        found = self.await_count(predicate, 1, timeout, start)
        return None if found is None else found[0]

    def assert_count(
        self, predicate: Predicate, count: int, timeout: float, start: Start = None
    ) -> list[Received]:
        """As ``await_count``, but a shortfall raises AssertionError."""
        mark = self._resolve_now(start)
        found = self.await_count(predicate, count, timeout, mark)
        if found is None:
            seen = self.items(mark)
            matched = sum(1 for r in seen if predicate(r))
            tail = "; ".join(str(r) for r in seen[-8:]) or "nothing"
            raise AssertionError(
                f"expected {count} x {_describe(predicate)} within {timeout} s, got {matched}; "
                f"{len(seen)} TM received meanwhile, last: {tail}"
            )
        return found

    def assert_one(self, predicate: Predicate, timeout: float, start: Start = None) -> Received:
        """As ``await_one``, but none raises AssertionError."""
        return self.assert_count(predicate, 1, timeout, start)[0]

    def _resolve_now(self, start: Start) -> int:
        with self._cond:
            return self._resolve(start)
