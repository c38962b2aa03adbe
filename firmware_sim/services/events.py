"""Service 5: event reports, their auxiliary data, enabling and rate limiting (ICD 11, 15.4).

Each event's auxiliary data is laid out by ``protocol.payloads.EVENT_FIELDS``, the one
definition both sides use; the ICD's table is checked against it. Rate-limited events
carry how many occurrences they stand for, so that a suppressed occurrence is never lost,
only folded into the next report; a count larger than its ``since`` field can hold is sent
as the field's largest value and the rest is carried into the next report.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from protocol.codes import EVENT_SEVERITY, EventId, EventSubtype, FailureCode, Service, Severity
from protocol.payloads import (
    EVENT_FIELDS,
    EventSelector,
    ParamId,
    Reader,
    int_range,
    out_of_range,
    refuse,
    saturate,
)

if TYPE_CHECKING:
    from firmware_sim.services.parameters import ParameterStore
    from firmware_sim.services.verification import Request
    from firmware_sim.telemetry import TmSender

E = EventId
RATE_LIMITED = frozenset(
    {E.LINK_PACKET_REJECTED, E.EDAC_CORRECTED, E.SCRUB_PASS_DONE, E.TMR_MISMATCH, E.TM_OVERFLOW}
)
"""Events sent at most once per EVENT_RATE_LIMIT; their data counts what they stand for."""
RATE_LIMITED_FROM_SCRUBBER = frozenset({E.EDAC_UNCORRECTABLE})
"""Events rate-limited only when the chip's counters alone found them (address unknown)."""

NO_JOB = 0xFFFF


def pack_aux(event_id: EventId, values: tuple) -> bytes:
    """The auxiliary data of an event with fixed fields; counts saturate at their type's
    largest value instead of wrapping."""
    fields = EVENT_FIELDS[event_id]
    fmt = "!" + "".join(f.fmt for f in fields)
    fitted = (saturate(v, f.fmt) for f, v in zip(fields, values, strict=True))
    return struct.pack(fmt, *fitted)


def since_max(event_id: EventId) -> int | None:
    """The largest count the event's ``since`` field holds, or None if it has none."""
    for f in EVENT_FIELDS[event_id]:
        if f.name == "since":
            return int_range(f.fmt)[1]
    return None


class EventService:
    """Raises events as TM[5,severity]; TC[5,5] and TC[5,6] enable and disable them."""

    def __init__(
        self,
        tm: TmSender,
        params: ParameterStore,
        now: Callable[[], float],
        log: Callable[[str], None],
    ) -> None:
        self.tm = tm
        self.params = params
        self.now = now
        self.log = log
        self.enabled: set[EventId] = set(EventId)
        self.raised = 0
        self.suppressed = 0
        self._last_sent: dict[EventId, float] = {}
        self._since: dict[EventId, int] = {}
        self._build: dict[EventId, Callable[[int], tuple]] = {}

    def raise_event(self, event_id: EventId, *values: object, raw: bytes | None = None) -> bool:
        """Report an event now (if enabled); ``raw`` replaces the packed ``values``."""
        self.raised += 1
        data = raw if raw is not None else pack_aux(event_id, values)
        self.log(f"event {event_id.name} {data.hex()}")
        if event_id not in self.enabled:
            return False
        self.tm.send(
            Service.EVENT_REPORTING, EVENT_SEVERITY[event_id], struct.pack("!H", event_id) + data
        )
        self._last_sent[event_id] = self.now()
        return True

    def limited(self, event_id: EventId, count: int, build: Callable[[int], tuple]) -> None:
        """``count`` more occurrences of a rate-limited event; ``build(since)`` -> values."""
        self._since[event_id] = self._since.get(event_id, 0) + count
        self._build[event_id] = build
        self._emit_if_due(event_id)

    def flush(self) -> None:
        """Send rate-limited events whose interval has passed since they were held back."""
        for event_id in list(self._build):
            self._emit_if_due(event_id)

    def _emit_if_due(self, event_id: EventId) -> None:
        since = self._since.get(event_id, 0)
        if not since:
            return
        interval = self.params.seconds(ParamId.EVENT_RATE_LIMIT)
        last = self._last_sent.get(event_id)
        if last is not None and self.now() - last < interval:
            self.suppressed += 1
            return
        cap = since_max(event_id)
        sent = since if cap is None else min(since, cap)
        self._since[event_id] = since - sent
        build = self._build[event_id] if since > sent else self._build.pop(event_id)
        if not self.raise_event(event_id, *build(sent)):
            self._last_sent[event_id] = self.now()

    # --- the service -----------------------------------------------------------------

    def accept(self, subtype: int, data: bytes) -> set[EventId]:
        r = Reader(data)
        raw = r.u8("selector")
        try:
            selector = EventSelector(raw)
        except ValueError:
            raise out_of_range(0, f"event selector {raw} is not 0, 1..4 or 255") from None
        if selector is EventSelector.LISTED:
            chosen = set()
            for _ in range(r.count("event count")):
                eid = r.u16("event id")
                if eid not in EventId._value2member_map_:
                    raise refuse(
                        FailureCode.UNKNOWN_EVENT,
                        f"event id {eid:#06x} is not defined",
                        struct.pack("!H", eid),
                    )
                chosen.add(EventId(eid))
        elif selector is EventSelector.ALL:
            chosen = set(EventId)
        else:
            chosen = {e for e, s in EVENT_SEVERITY.items() if s == Severity(selector)}
        r.end()
        return chosen

    def start(self, subtype: int, request: set[EventId]) -> None:
        pass

    def execute(self, subtype: int, request: set[EventId], req: Request) -> None:
        if subtype == EventSubtype.ENABLE_REPORTS:
            self.enabled |= request
        else:
            self.enabled -= request
        req.complete(self.now())
