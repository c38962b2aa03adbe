"""The integration-test API in F Prime's shape (``fprime_gds`` ``IntegrationTestAPI``).

Verb families: ``send_and_assert_*`` (send, and fail the test unless the target answers as
expected), ``await_*`` (None on timeout) and ``assert_*`` (AssertionError on timeout).
Predicates are small objects (``host.history.tm``, ``host.history.event``, ``hk_field``).
``start`` says where to search the history from: None for everything since the test began
(the history is cleared per test), ``NOW`` for what arrives after the call, or a mark.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from host.commands import Completion
from host.errors import CommandError, CommandFailed
from host.history import NOW, Received, Start, TmPredicate
from host.link_api import LinkApi
from host.stage import Stage
from host.target import Target
from host.telemetry import EventReport, Housekeeping
from protocol.codes import AckFlags, EventId, FailureCode, HousekeepingSubtype, Service
from protocol.framing import encode_frame
from protocol.link import APID_FSW, HOLD_WINDOW
from protocol.packets import make_tc
from protocol.payloads import MAX_LIST_COUNT, HkStructure, outcome_query, read_outcomes
from protocol.request_id import RequestId
from protocol.sequence import SEQ_COUNT_MODULO, seq_diff

CLEAR_AHEAD = 512
"""How far past the link's latest count ``fresh_seq`` keeps a hand-built packet's count:
further than the link's own TCs go during a test."""

Value = object | Callable[[object], bool]
"""An expected value, or a test of the value."""


def _matches(expected: Value, actual: object) -> bool:
    if callable(expected) and not isinstance(expected, type):
        return bool(expected(actual))
    return actual == expected


@dataclass(frozen=True, slots=True)
class HkFieldPredicate:
    """Matches a TM[3,25] of ``structure`` whose ``field`` has ``value`` (or passes it)."""

    structure: HkStructure
    field: str
    value: Value = None

    def __call__(self, item: Received) -> bool:
        if (item.service, item.subtype) != (Service.HOUSEKEEPING, HousekeepingSubtype.HK_REPORT):
            return False
        if len(item.source_data) < 2 or struct.unpack_from("!H", item.source_data)[0] != int(
            self.structure
        ):
            return False
        try:
            report = Housekeeping.from_source_data(item.source_data)
        except Exception:
            return False
        return self.value is None or _matches(self.value, report[self.field])

    def __str__(self) -> str:
        return f"HK {self.structure.name}.{self.field} == {self.value!r}"


def hk_field(structure: HkStructure, field: str, value: Value = None) -> HkFieldPredicate:
    """A predicate on one housekeeping field (any value when ``value`` is None)."""
    return HkFieldPredicate(HkStructure(structure), field, value)


@dataclass(frozen=True, slots=True)
class EventPredicate:
    """Matches an event report by id (None: any) and auxiliary data (each given field equal
    to, or passing, its expected value)."""

    event_id: EventId | int | None = None
    args: Mapping[str, Value] | None = None

    def __call__(self, item: Received) -> bool:
        if item.service != Service.EVENT_REPORTING or not 1 <= item.subtype <= 4:
            return False
        if self.event_id is not None and item.event_id != self.event_id:
            return False
        if not self.args:
            return True
        report = EventReport.from_received(item)
        return all(k in report.args and _matches(v, report.args[k]) for k, v in self.args.items())

    def __str__(self) -> str:
        name = getattr(self.event_id, "name", self.event_id) if self.event_id else "any event"
        return f"{name}{'' if not self.args else ' with ' + repr(dict(self.args))}"


class IntegrationApi:
    """What a test drives a target with: commands, telemetry, events, and the ``Target``."""

    def __init__(self, link: LinkApi, target: Target | None = None) -> None:
        self.link = link
        self.target = target if target is not None else Target(link)

    # --- histories --------------------------------------------------------------------------

    def clear_histories(self) -> None:
        """Forget every TM received so far (done before each test)."""
        self.link.clear_history()

    def mark(self) -> int:
        """A ``start`` that searches only what arrives after this call."""
        return self.link.history.mark()

    # --- commands ---------------------------------------------------------------------------

    def send_command(
        self,
        service: int,
        subtype: int,
        app_data: bytes = b"",
        *,
        ack: AckFlags = AckFlags.ALL,
        timeout: float | None = None,
    ) -> Completion | CommandError:
        """Send a TC and wait; its Completion, or the CommandError that ended it."""
        try:
            return self.link.send(service, subtype, app_data, ack=ack, timeout=timeout)
        except CommandError as exc:
            return exc

    def send_and_assert_command(
        self,
        service: int,
        subtype: int,
        app_data: bytes = b"",
        *,
        ack: AckFlags = AckFlags.ALL,
        timeout: float | None = None,
        max_delay: float | None = None,
        events: list[EventId | EventPredicate] | None = None,
        event_timeout: float = 5.0,
    ) -> Completion:
        """Send a TC; fail unless it completes (within ``max_delay`` s, when given) and each
        of ``events`` follows it."""
        mark = self.mark()
        result = self.send_command(service, subtype, app_data, ack=ack, timeout=timeout)
        if isinstance(result, CommandError):
            raise AssertionError(f"command did not complete: {result}") from result
        if max_delay is not None and result.elapsed > max_delay:
            raise AssertionError(
                f"{result.command} took {result.elapsed:.3f} s, more than {max_delay} s"
            )
        for expected in events or []:
            pred = expected if isinstance(expected, EventPredicate) else EventPredicate(expected)
            self.assert_event(pred, timeout=event_timeout, start=mark)
        return result

    def send_and_assert_failure(
        self,
        service: int,
        subtype: int,
        app_data: bytes = b"",
        *,
        code: FailureCode | int,
        stage: Stage | None = None,
        data: bytes | None = None,
        ack: AckFlags = AckFlags.ALL,
        timeout: float | None = None,
    ) -> CommandFailed:
        """Send a TC; fail unless the target refuses it with ``code`` (at ``stage``, with
        failure ``data``, when given)."""
        result = self.send_command(service, subtype, app_data, ack=ack, timeout=timeout)
        return self.assert_failure(result, code=code, stage=stage, data=data)

    @staticmethod
    def assert_failure(
        result: Completion | CommandError | Exception,
        *,
        code: FailureCode | int,
        stage: Stage | None = None,
        data: bytes | None = None,
    ) -> CommandFailed:
        """Fail unless ``result`` is a CommandFailed with ``code`` (``stage``, ``data``)."""
        want = (
            f"failure {FailureCode(code).name if code in FailureCode._value2member_map_ else code}"
        )
        if stage is not None:
            want += f" at {stage.value}"
        if not isinstance(result, CommandFailed):
            raise AssertionError(f"expected {want}, got {result}")
        if int(result.code) != int(code) or (stage is not None and result.stage is not stage):
            raise AssertionError(f"expected {want}, got {result}")
        if data is not None and result.data != data:
            raise AssertionError(
                f"expected {want} with data {data.hex(' ') or '(none)'}, got {result}"
            )
        return result

    # --- raw octets (bad input, duplicates) ----------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        """Write octets to the port as they are (garbage, damaged frames, repeated TCs),
        between two of the link's frames; returns once written."""
        self.link.send_raw(bytes(data))

    def fresh_seq(self, *, apid: int = APID_FSW) -> int:
        """A TC sequence count that no request the target remembers has (asked with
        TC[149,1], docs/ICD.md 15.10): a packet built by hand with it is a new request,
        not a duplicate of an earlier one (ICD 6). It is also clear of the link's own next
        counts, so the packet runs as it comes rather than waiting in their sequence (ICD
        6.1)."""
        for _ in range(8):
            counts = random.sample(range(SEQ_COUNT_MODULO), MAX_LIST_COUNT)
            ids = [RequestId.unpack(make_tc(Service.TEST, 1, b"", c, apid=apid)) for c in counts]
            done = self.link.send(Service.REQUEST_OUTCOME, 1, outcome_query(ids))
            report = next((t for t in done.reports if (t.service, t.subtype) == (149, 2)), None)
            if report is None:
                continue  # the answer was lost: ask again
            assert done.request_id is not None
            ours = done.request_id.seq_count  # the link's own sequence is about here
            for outcome in read_outcomes(report.source_data):
                count = outcome.request_id.seq_count
                if not outcome.known and not -HOLD_WINDOW <= seq_diff(count, ours) <= CLEAR_AHEAD:
                    return count
        raise AssertionError(f"{self.link.port}: no sequence count the target does not remember")

    def send_packet(self, packet: bytes) -> RequestId:
        """Frame a packet (good or bad) and write it raw; its request id (first 4 octets)."""
        self.send_raw(b"\x00" + encode_frame(packet))
        return RequestId.unpack(packet) if len(packet) >= 4 else RequestId(0, 0)

    def await_report(
        self,
        request_id: RequestId,
        subtypes: set[int] | None = None,
        *,
        timeout: float = 5.0,
        start: Start = None,
    ) -> Received | None:
        """The first service 1 report about ``request_id`` (of ``subtypes``), or None."""

        def about(item: Received) -> bool:
            return (
                item.service == Service.REQUEST_VERIFICATION
                and (subtypes is None or item.subtype in subtypes)
                and len(item.source_data) >= 4
                and RequestId.unpack(item.source_data) == request_id
            )

        about.__name__ = f"report on {request_id}"
        return self.link.await_tm(about, timeout, start=start)

    # --- telemetry --------------------------------------------------------------------------

    def await_telemetry(
        self, predicate: Callable[[Received], bool], timeout: float = 5.0, *, start: Start = None
    ) -> Received | None:
        """The first TM matching ``predicate`` from ``start``, or None at the deadline."""
        return self.link.await_tm(predicate, timeout, start=start)

    def assert_telemetry(
        self, predicate: Callable[[Received], bool], timeout: float = 5.0, *, start: Start = None
    ) -> Received:
        """As ``await_telemetry``, but fails the test when none comes."""
        return self.link.assert_tm(predicate, timeout, start=start)

    def await_telemetry_count(
        self,
        predicate: Callable[[Received], bool],
        count: int,
        timeout: float = 5.0,
        *,
        start: Start = None,
    ) -> list[Received] | None:
        """The first ``count`` TM matching, or None if fewer came by the deadline."""
        return self.link.await_tm_count(predicate, count, timeout, start=start)

    def assert_telemetry_count(
        self,
        predicate: Callable[[Received], bool],
        count: int | Callable[[int], bool],
        timeout: float = 0.0,
        *,
        start: Start = None,
    ) -> list[Received]:
        """Fail unless the number of matching TM is ``count`` (or passes it) by the deadline."""
        return self._assert_count(predicate, count, timeout, start, "TM")

    def housekeeping(self, structure: HkStructure = HkStructure.SYSTEM) -> Housekeeping:
        """A one-shot housekeeping report, decoded."""
        return self.target.housekeeping(structure)

    # --- events -----------------------------------------------------------------------------

    @staticmethod
    def _event_pred(
        event: EventId | int | EventPredicate | None, args: Mapping[str, Value] | None
    ) -> EventPredicate:
        if isinstance(event, EventPredicate):
            return event if args is None else EventPredicate(event.event_id, args)
        return EventPredicate(event, args)

    def await_event(
        self,
        event: EventId | int | EventPredicate | None,
        args: Mapping[str, Value] | None = None,
        *,
        timeout: float = 5.0,
        start: Start = None,
    ) -> EventReport | None:
        """The first report of ``event`` (with ``args``) from ``start``, or None."""
        item = self.link.await_tm(self._event_pred(event, args), timeout, start=start)
        return None if item is None else EventReport.from_received(item)

    def assert_event(
        self,
        event: EventId | int | EventPredicate | None,
        args: Mapping[str, Value] | None = None,
        *,
        timeout: float = 5.0,
        start: Start = None,
    ) -> EventReport:
        """As ``await_event``, but fails the test when none comes."""
        return EventReport.from_received(
            self.link.assert_tm(self._event_pred(event, args), timeout, start=start)
        )

    def assert_event_count(
        self,
        count: int | Callable[[int], bool],
        event: EventId | int | EventPredicate | None = None,
        args: Mapping[str, Value] | None = None,
        *,
        timeout: float = 0.0,
        start: Start = None,
    ) -> list[EventReport]:
        """Fail unless the number of reports of ``event`` is ``count`` (an int, or a test of
        the number) by the deadline; an exact count is checked once the deadline passes."""
        found = self._assert_count(self._event_pred(event, args), count, timeout, start, "event")
        return [EventReport.from_received(r) for r in found]

    def _assert_count(
        self,
        predicate: Callable[[Received], bool],
        count: int | Callable[[int], bool],
        timeout: float,
        start: Start,
        what: str,
    ) -> list[Received]:
        mark = self.mark() if start == NOW else start
        deadline = time.monotonic() + timeout
        test = count if callable(count) else None
        while True:
            upto = self.mark()
            found = [r for r in self.link.history.items(mark) if predicate(r)]
            ok = test(len(found)) if test is not None else len(found) == count
            left = deadline - time.monotonic()
            if test is not None and ok:
                return found
            if left <= 0:
                break
            # An exact count holds only once the deadline has passed: wait for more TM.
            self.link.await_tm(predicate, left, start=upto)
        if ok:
            return found
        name = str(predicate) if isinstance(predicate, (TmPredicate, EventPredicate)) else what
        expected = getattr(count, "__name__", count)
        tail = "; ".join(str(r) for r in found[-5:]) or "none"
        raise AssertionError(
            f"expected {expected} x {name} within {timeout} s, got {len(found)}: {tail}"
        )
