"""Service 17: are-you-alive (ICD section 15.2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from protocol.codes import Service, TestSubtype
from protocol.payloads import Reader

if TYPE_CHECKING:
    from firmware_sim.services.verification import Request
    from firmware_sim.telemetry import TmSender


class TestService:
    """TC[17,1] ping, answered by TM[17,2] in every mode."""

    __test__ = False  # not a pytest class, whatever its name

    def __init__(self, tm: TmSender, now: Callable[[], float]) -> None:
        self.tm = tm
        self.now = now

    def accept(self, subtype: int, data: bytes) -> None:
        Reader(data).end()

    def start(self, subtype: int, request: None) -> None:
        pass

    def execute(self, subtype: int, request: None, req: Request) -> None:
        self.tm.send(Service.TEST, TestSubtype.PING_REPORT, b"", req.dest_id)
        req.complete(self.now())
