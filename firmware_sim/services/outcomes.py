"""Service 149: what became of earlier requests, and where in-order execution starts
(ICD sections 6 and 15.10)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from protocol.codes import OutcomeSubtype, Service
from protocol.payloads import Reader, pack_outcomes, read_outcome_query
from protocol.request_id import RequestId

if TYPE_CHECKING:
    from firmware_sim.ordering import InOrder
    from firmware_sim.requests import RequestMemory
    from firmware_sim.services.verification import Request
    from firmware_sim.telemetry import TmSender


class OutcomeService:
    """TC[149,1], answered by TM[149,2] in every mode from the request memory; TC[149,3],
    the start of in-order execution from its own sequence count."""

    def __init__(
        self, memory: RequestMemory, order: InOrder, tm: TmSender, now: Callable[[], float],
        log: Callable[[str], None],
    ) -> None:  # fmt: skip
        self.memory = memory
        self.order = order
        self.tm = tm
        self.now = now
        self.log = log

    def accept(self, subtype: int, data: bytes) -> list[RequestId]:
        if subtype == OutcomeSubtype.START_SEQUENCE:
            Reader(data).end()
            return []
        return read_outcome_query(data)

    def start(self, subtype: int, request: list[RequestId]) -> None:
        pass

    def execute(self, subtype: int, request: list[RequestId], req: Request) -> None:
        if subtype == OutcomeSubtype.START_SEQUENCE:
            dropped = self.order.start(req.tc.seq_count)
            self.log(
                f"in-order execution from sequence count {self.order.expected}"
                + (f"; {dropped} TC(s) waiting dropped" if dropped else "")
            )
            req.complete(self.now())
            return
        outcomes = [self.memory.outcome(rid) for rid in request]
        self.tm.send(
            Service.REQUEST_OUTCOME, OutcomeSubtype.OUTCOME_REPORT, pack_outcomes(outcomes),
            req.dest_id,
        )  # fmt: skip
        req.complete(self.now())
