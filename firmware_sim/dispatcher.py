"""From received bytes to services: receipt checks, duplicates, routing, auth, stages.

Order of checks for every frame (ICD sections 3, 6, 7, 8, 9, 13):

1. framing (BAD_COBS, TOO_LONG: counted, never answered);
2. packet receipt checks (``protocol.packets.parse_tc``): answered with TM[1,2] naming
   the first four octets as request id;
3. duplicate of an accepted TC the request memory holds: TM[1,2] DUPLICATE, not run;
4. service, then subtype known;
5. hazardous: the auth trailer (``protocol.auth.verify_tc``);
6. the service's own acceptance check of the application data;
7. accepted;
8. in order (``firmware_sim.ordering``, ICD 6.1): a TC accepted ahead of a missing
   sequence count waits for it; a start-sequence (TC[149,3]) sets where the order starts;
9. when its turn comes, the service's start check (mode, busy); then execution.

Every TC that reaches step 4 goes into the request memory (``firmware_sim.requests``),
accepted or refused, except outcome queries (TC[149,1]), which ask about the others.

A service raises ``PacketError`` (code and data of ICD section 10) to refuse. Anything
else a service raises is a bug: the request fails with INTERNAL_ERROR and the
dispatcher goes on with the next TC.
"""

from __future__ import annotations

import struct
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from firmware_sim.services.verification import Request, reject_unparsed
from protocol.auth import ReplayWindow, is_hazardous, verify_tc
from protocol.codes import (
    START_SEQUENCE,
    TC_TYPES,
    EventId,
    FailureCode,
    KeySubtype,
    Mode,
    OutcomeSubtype,
    RejectReason,
    Service,
    TestSubtype,
)
from protocol.errors import PacketError
from protocol.framing import NEED_DATA, FrameDecoder, FrameRejected
from protocol.packets import Telecommand, parse_tc
from protocol.payloads import REJECT_REASON_CODES, GapReport

if TYPE_CHECKING:
    from firmware_sim.core import FlightSoftware
    from firmware_sim.ordering import InOrder
    from firmware_sim.requests import RequestMemory

NEVER_WAIT = frozenset({(Service.TEST, TestSubtype.PING), (Service.REQUEST_OUTCOME,
                                                           OutcomeSubtype.REPORT_OUTCOMES)})
"""TCs that only read: they run on arrival even ahead of a missing count (ICD 6)."""


class ServiceHandler(Protocol):
    """What the dispatcher needs of a service."""

    def accept(self, subtype: int, data: bytes) -> Any:
        """Parse and check the application data; raise PacketError to refuse."""

    def start(self, subtype: int, request: Any) -> None:
        """Can it run now (mode, resources)? Raise PacketError to refuse."""

    def execute(self, subtype: int, request: Any, req: Request) -> None:
        """Do it: send its TM, then complete or fail ``req`` (now or later)."""


@dataclass(frozen=True, slots=True)
class Staged:
    """An accepted TC waiting for its turn to start (ICD 6.1)."""

    req: Request
    handler: ServiceHandler
    request: Any


@dataclass(slots=True)
class LinkStats:
    """What the link delivered since boot or CLEAR_COUNTERS."""

    rejected: dict[RejectReason, int] = field(
        default_factory=lambda: dict.fromkeys(RejectReason, 0)
    )
    tc_received: int = 0
    tc_accepted: int = 0
    tc_refused: int = 0
    duplicates: int = 0
    auth_failures: int = 0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


class Dispatcher:
    """Receives frames, checks TCs and hands them to the services."""

    def __init__(
        self,
        fsw: FlightSoftware,
        services: dict[Service, ServiceHandler],
        memory: RequestMemory,
        order: InOrder,
        gap_timeout_s: float,
    ) -> None:
        self.fsw = fsw
        self.services = services
        self.decoder = FrameDecoder()
        self.stats = LinkStats()
        self.memory = memory
        self.order = order
        self.gap_timeout_s = gap_timeout_s

    def receive_data(self, data: bytes) -> None:
        self.decoder.receive_data(data)

    def clear_counters(self) -> None:
        self.stats = LinkStats()

    def process(self) -> None:
        """Handle every complete frame received, in order."""
        while (event := self.decoder.next_event()) is not NEED_DATA:
            if isinstance(event, FrameRejected):
                self._rejected(event.reason, event.detail)
                continue
            try:
                tc = parse_tc(event.payload)
            except PacketError as exc:
                reason = exc.reason or RejectReason.BAD_HEADER
                self._rejected(reason, exc.message)
                if exc.request_id is not None:
                    reject_unparsed(self.fsw.tm, exc.request_id, exc.code, exc.data)
                continue
            self.stats.tc_received += 1
            self.handle(tc)

    def _rejected(self, reason: RejectReason, detail: str) -> None:
        self.stats.rejected[reason] += 1
        code = REJECT_REASON_CODES[reason.value]
        self.fsw.log(f"link: {reason.value}: {detail}")
        # Built when sent: the total of that moment (counted from CLEAR_COUNTERS, if any).
        self.fsw.events.limited(
            EventId.LINK_PACKET_REJECTED,
            1,
            lambda since: (code, since, self.stats.rejected_total),
        )

    def handle(self, tc: Telecommand) -> None:
        """One well-formed TC: checked and accepted (or refused) now; started now or, when
        it arrives ahead of a missing count, when its turn comes (ICD 6.1)."""
        staged = self._accept(tc)
        kind = (tc.service, tc.subtype)
        if staged is None or kind in NEVER_WAIT or kind == START_SEQUENCE:
            ready = self.order.passed(tc.seq_count)
            if staged is not None:
                self._start(staged)
                if kind == START_SEQUENCE and staged.req.completed:
                    ready += self._start_sequence(tc.seq_count)
        else:
            ready = self.order.arrive(tc.seq_count, staged, self.fsw.now)
        for item in ready:
            self._start(item)
        gap = self.order.take_gap()
        if gap is not None:
            # ICD 6.1: say at once which count is missing, so the host resends it now.
            self.fsw.tm.send(
                Service.REQUEST_OUTCOME, OutcomeSubtype.GAP_REPORT, GapReport(*gap).pack(),
                tc.source_id,
            )  # fmt: skip

    def _start_sequence(self, count: int) -> list[Staged]:
        """A start-sequence completed (ICD 6.1): order from the next count. The TCs still
        waiting start first."""
        leftovers = self.order.start(count)
        self.fsw.log(
            f"in-order execution from sequence count {self.order.expected}"
            + (f"; starting the {len(leftovers)} TC(s) that waited" if leftovers else "")
        )
        return leftovers

    def next_deadline(self) -> float | None:
        """When ``tick`` has a gap to skip (None: no TC waits)."""
        return self.order.deadline(self.gap_timeout_s)

    def tick(self) -> None:
        """Skip a missing sequence count that did not come in time (ICD 6.1): the TCs that
        waited for it start in order, and SEQUENCE_GAP says what was skipped."""
        expired = self.order.expire(self.fsw.now, self.gap_timeout_s)
        if expired is None:
            return
        gap, ready = expired
        self.fsw.log(f"link: sequence counts {gap.first}+{gap.missing} never came; "
                     f"starting the {gap.held} TC(s) that waited for them")  # fmt: skip
        self.fsw.events.raise_event(EventId.SEQUENCE_GAP, gap.first, gap.missing, gap.held)
        for item in ready:
            self._start(item)

    def _accept(self, tc: Telecommand) -> Staged | None:
        """Steps 4 to 7: accepted (TM[1,1] sent, if asked for), or refused (None)."""
        fsw = self.fsw
        req = Request(tc, fsw.tm, fsw.now)
        original = self.memory.duplicate_of(tc)
        if original is not None:
            self.stats.duplicates += 1
            self._refuse(req, FailureCode.DUPLICATE, original.duplicate_data())
            return None
        if (tc.service, tc.subtype) != (Service.REQUEST_OUTCOME, OutcomeSubtype.REPORT_OUTCOMES):
            self.memory.remember(req)
        try:
            handler, data = self._route(tc)
            request = handler.accept(tc.subtype, data)
        except PacketError as exc:
            self._refuse(req, exc.code, exc.data, exc.message)
            return None
        except Exception:  # a bug in a service must not stop the flight software
            self._bug(req, "acceptance")
            return None
        self.stats.tc_accepted += 1
        fsw.log(f"TC[{tc.service},{tc.subtype}] {tc.request_id}: accepted")
        req.accept(fsw.now)
        return Staged(req, handler, request)

    def _start(self, staged: Staged) -> None:
        """Step 8: an accepted TC whose turn has come: its start check, then execution."""
        fsw, req, handler, request = self.fsw, staged.req, staged.handler, staged.request
        tc = req.tc
        try:
            handler.start(tc.subtype, request)
        except PacketError as exc:
            fsw.log(f"TC[{tc.service},{tc.subtype}] {tc.request_id}: start refused: {exc}")
            req.fail(exc.code, exc.data, fsw.now)
            return
        except Exception:
            self._bug(req, "start")
            return
        req.start(fsw.now)
        try:
            handler.execute(tc.subtype, request, req)
        except PacketError as exc:
            req.fail(exc.code, exc.data, fsw.now)
        except Exception:
            self._bug(req, "execution")

    def _route(self, tc: Telecommand) -> tuple[ServiceHandler, bytes]:
        """The service of a TC and its application data (trailer removed), or refuse."""
        if tc.service not in Service._value2member_map_:
            raise PacketError(
                f"service {tc.service} is not in ICD section 8",
                code=FailureCode.UNKNOWN_SERVICE,
                data=bytes([tc.service]),
            )
        if (tc.service, tc.subtype) not in TC_TYPES:
            raise PacketError(
                f"TC[{tc.service},{tc.subtype}]: subtype {tc.subtype} is not a TC of service "
                f"{tc.service}",
                code=FailureCode.UNKNOWN_SUBTYPE,
                data=bytes([tc.service, tc.subtype]),
            )
        handler = self.services.get(Service(tc.service))
        if handler is None:
            raise PacketError(
                f"service {tc.service} has no handler", code=FailureCode.UNKNOWN_SERVICE,
                data=bytes([tc.service]),
            )  # fmt: skip
        data = tc.app_data
        if is_hazardous(tc.service, tc.subtype, data):
            data = self._authenticate(tc)
        return handler, data

    def _authenticate(self, tc: Telecommand) -> bytes:
        fsw = self.fsw
        try:
            data, trailer = verify_tc(
                tc,
                fsw.keys,
                allow_null_key=fsw.mode == Mode.TEST,
                replay=fsw.nv.auth_replay,
            )
            self._check_key_role(tc, trailer.key_id)
        except PacketError as exc:
            self.stats.auth_failures += 1
            key_id = struct.unpack_from("!H", exc.data)[0] if len(exc.data) >= 2 else 0xFFFF
            if exc.code == FailureCode.AUTH_REQUIRED:
                key_id = 0
            fsw.events.raise_event(EventId.AUTH_FAILURE, tc.request_id.as_u32(), exc.code, key_id)
            raise
        if trailer.key_id != 0:
            fsw.nv.auth_replay.setdefault(trailer.key_id, ReplayWindow()).accept(trailer.seq)
        return data

    def _check_key_role(self, tc: Telecommand, key_id: int) -> None:
        """ICD 13: the master key signs key management (TC[150,1]) and nothing else."""
        master = self.fsw.config.master_key_id
        managing = (tc.service, tc.subtype) == (Service.KEY_MANAGEMENT, KeySubtype.DERIVE_KEY)
        if managing == (master is not None and key_id == master):
            return
        why = (
            "key management must be signed by the master key"
            if managing
            else "the master key signs key management only"
        )
        raise PacketError(
            f"TC[{tc.service},{tc.subtype}] {tc.request_id}: key id {key_id}: {why}",
            code=FailureCode.KEY_NOT_ALLOWED,
            request_id=tc.request_id,
            data=struct.pack("!H", key_id),
        )

    def _refuse(self, req: Request, code: int, data: bytes, why: str = "") -> None:
        self.stats.tc_refused += 1
        tc = req.tc
        self.fsw.log(
            f"TC[{tc.service},{tc.subtype}] {tc.request_id}: refused "
            f"{FailureCode(code).name if code in FailureCode._value2member_map_ else code}"
            + (f": {why}" if why else "")
        )
        req.fail(code, data, self.fsw.now)

    def _bug(self, req: Request, stage: str) -> None:
        self.fsw.log(f"INTERNAL ERROR at {stage} of {req.request_id}:\n{traceback.format_exc()}")
        if not req.finished:
            req.fail(FailureCode.INTERNAL_ERROR, b"", self.fsw.now)
