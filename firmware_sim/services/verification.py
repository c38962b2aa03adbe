"""Service 1: the stages of one request, reported in order (ICD sections 9, 10, 15.1).

A ``Request`` follows one TC from acceptance to completion. Failure reports are always
sent and end the request; success reports only when the TC's flag for the stage is set.
It remembers the last stage reached, which is what a DUPLICATE answer quotes.
"""

from __future__ import annotations

from firmware_sim.telemetry import TmSender
from protocol.codes import AckFlags, FailureCode, Service
from protocol.codes import VerificationSubtype as V
from protocol.link import PROGRESS_INTERVAL_S
from protocol.packets import Telecommand
from protocol.request_id import RequestId
from protocol.verification import VerificationReport


class Request:
    """One TC on its way through acceptance, start, progress and completion."""

    def __init__(self, tc: Telecommand, tm: TmSender, now: float) -> None:
        self.tc = tc
        self.request_id: RequestId = tc.request_id
        self.flags = AckFlags(tc.ack_flags)
        self.dest_id = tc.source_id
        self.tm = tm
        self.last_subtype = 0
        """Subtype of the last stage reached (reported or not): 0 before acceptance."""
        self.failure_code = 0
        self.failure_data = b""
        self.steps = 0
        self.last_report = now

    @property
    def accepted(self) -> bool:
        return (
            self.last_subtype >= V.ACCEPTANCE_SUCCESS and self.last_subtype != V.ACCEPTANCE_FAILURE
        )

    @property
    def started(self) -> bool:
        return self.last_subtype >= V.START_SUCCESS and self.last_subtype != V.START_FAILURE

    @property
    def completed(self) -> bool:
        return self.last_subtype == V.COMPLETION_SUCCESS and self.failure_code == 0

    @property
    def finished(self) -> bool:
        """A failure was reported or the request completed."""
        return self.failure_code != 0 or self.last_subtype == V.COMPLETION_SUCCESS

    def wants_progress(self) -> bool:
        return bool(self.flags & AckFlags.PROGRESS)

    def _report(self, report: VerificationReport, flag: AckFlags | None, now: float) -> None:
        self.last_subtype = report.subtype
        if flag is None or self.flags & flag:
            self.tm.send(Service.REQUEST_VERIFICATION, report.subtype, report.pack(), self.dest_id)
            self.last_report = now

    def accept(self, now: float) -> None:
        self._report(
            VerificationReport(V.ACCEPTANCE_SUCCESS, self.request_id), AckFlags.ACCEPTANCE, now
        )

    def start(self, now: float) -> None:
        self._report(VerificationReport(V.START_SUCCESS, self.request_id), AckFlags.START, now)

    def progress(self, now: float) -> None:
        """The next progress step (ids 0, 1, 2, ...)."""
        report = VerificationReport(V.PROGRESS_SUCCESS, self.request_id, step=self.steps)
        self.steps = min(self.steps + 1, 0xFFFF)
        self._report(report, AckFlags.PROGRESS, now)

    def progress_due(self, now: float) -> bool:
        """A request that asked for progress and has been silent for PROGRESS_INTERVAL_S."""
        return (
            self.wants_progress()
            and not self.finished
            and now - self.last_report >= PROGRESS_INTERVAL_S
        )

    def complete(self, now: float) -> None:
        self._report(
            VerificationReport(V.COMPLETION_SUCCESS, self.request_id), AckFlags.COMPLETION, now
        )

    def fail(self, code: FailureCode | int, data: bytes = b"", now: float = 0.0) -> None:
        """Fail at the stage the request is in: acceptance, start, or completion."""
        if not self.accepted:
            subtype = V.ACCEPTANCE_FAILURE
        elif not self.started:
            subtype = V.START_FAILURE
        else:
            subtype = V.COMPLETION_FAILURE
        self.failure_code = int(code)
        self.failure_data = bytes(data)
        self._report(
            VerificationReport(subtype, self.request_id, failure_code=int(code), failure_data=data),
            None,
            now,
        )


def reject_unparsed(
    tm: TmSender, request_id: RequestId, code: FailureCode | int, data: bytes
) -> None:
    """TM[1,2] for a packet that failed the receipt checks (no TC to build a Request on)."""
    report = VerificationReport(
        V.ACCEPTANCE_FAILURE, request_id, failure_code=int(code), failure_data=data
    )
    tm.send(Service.REQUEST_VERIFICATION, V.ACCEPTANCE_FAILURE, report.pack(), 0)
