"""Service 149: what became of earlier requests, and where in-order execution starts
(ICD sections 6 and 15.10)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from protocol.codes import OutcomeSubtype, Service
from protocol.payloads import Reader, pack_outcomes, read_outcome_query
from protocol.request_id import RequestId

if TYPE_CHECKING:
    from firmware_sim.requests import RequestMemory
    from firmware_sim.services.verification import Request
    from firmware_sim.telemetry import TmSender


class OutcomeService:
    """TC[149,1], answered by TM[149,2] in every mode from the request memory; TC[149,3],
    the start of in-order execution from its own sequence count, which the dispatcher
    acts on once it completed (``firmware_sim.dispatcher``)."""

    def __init__(self, memory: RequestMemory, tm: TmSender, now: Callable[[], float]) -> None:
        self.memory = memory
        self.tm = tm
        self.now = now

    def accept(self, subtype: int, data: bytes) -> list[RequestId]:
        if subtype == OutcomeSubtype.START_SEQUENCE:
            Reader(data).end()
            return []
        return read_outcome_query(data)

    def start(self, subtype: int, request: list[RequestId]) -> None:
        pass

    def execute(self, subtype: int, request: list[RequestId], req: Request) -> None:
        if subtype == OutcomeSubtype.START_SEQUENCE:
            req.complete(self.now())
            return
        outcomes = [self.memory.outcome(rid) for rid in request]
        self.tm.send(
            Service.REQUEST_OUTCOME, OutcomeSubtype.OUTCOME_REPORT, pack_outcomes(outcomes),
            req.dest_id,
        )  # fmt: skip
        req.complete(self.now())
