"""One telecommand's life on the host, sans I/O: sent, retransmitted, verified, done.

``Tracker`` follows docs/ICD.md sections 9 and 14 for one TC: it is told when the TC went
out, which service 1 reports arrived and when its deadline passed, and answers whether to
send the same octets again. When it is done it holds a ``Completion`` or a
``CommandError``. The link core (``host.link_core``) tells it each of these in turn,
and its shell (``host.link``) owns the clock, the port and the threads.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from host.errors import CommandError, CommandFailed, CommandTimeout
from host.failures import explain
from host.names import tc_name
from host.stage import Stage
from protocol.auth import is_hazardous, sign_tc
from protocol.codes import AckFlags, FailureCode
from protocol.link import (
    COMPLETION_TIMEOUT_S,
    MAX_RETRANSMISSIONS,
    PROGRESS_TIMEOUT_S,
    SOURCE_ID_HOST,
    acceptance_timeout,
)
from protocol.packets import Telemetry, make_tc
from protocol.payloads import Outcome
from protocol.request_id import RequestId
from protocol.verification import VerificationReport

RETRANSMIT_ON: frozenset[int] = frozenset({FailureCode.BAD_CRC, FailureCode.BAD_LENGTH})
"""Acceptance failures that mean the TC was damaged on the way: send it again (ICD 14)."""


@dataclass(frozen=True, slots=True)
class Command:
    """A TC to send: what, which success reports to ask for, and an optional ``timeout``:
    the longest wait for its next report after acceptance, in place of the ICD's completion
    timeout (or, for a TC that asks for progress reports, its progress timeout). ``auth``
    signs it, when it is hazardous, in place of the link's authenticator."""

    service: int
    subtype: int
    app_data: bytes = b""
    ack: AckFlags = AckFlags.ALL
    timeout: float | None = None
    auth: Authenticator | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return tc_name(self.service, self.subtype, self.app_data)


@dataclass(frozen=True, slots=True)
class Completion:
    """A command that ended well: the reports that verified it and the TM it produced.

    ``stage`` is the last stage confirmed (None when no success report was asked for).
    ``duplicate`` is True when the outcome is known from the target's DUPLICATE answer to a
    retransmission: the original ran once, and TM it produced before may have been lost.
    """

    command: str
    request_id: RequestId
    stage: Stage | None
    reports: tuple[Telemetry, ...]
    verification: tuple[VerificationReport, ...]
    transmissions: int
    duplicate: bool
    sent_at: float
    done_at: float
    recovered: bool = False
    """The report that ended it was lost; the target said the outcome when asked
    (TC[149,1], docs/ICD.md section 14)."""

    @property
    def elapsed(self) -> float:
        """Seconds from the first transmission to the end."""
        return self.done_at - self.sent_at


@dataclass(frozen=True, slots=True)
class Timing:
    """The timeouts and retry count of docs/ICD.md section 14, for one link."""

    acceptance_s: float = acceptance_timeout()
    completion_s: float = COMPLETION_TIMEOUT_S
    progress_s: float = PROGRESS_TIMEOUT_S
    max_retransmissions: int = MAX_RETRANSMISSIONS

    def __post_init__(self) -> None:
        for name in ("acceptance_s", "completion_s", "progress_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Timing.{name} must be positive, got {getattr(self, name)}")
        if self.max_retransmissions < 0:
            raise ValueError(
                f"Timing.max_retransmissions must be >= 0, got {self.max_retransmissions}"
            )


@dataclass(slots=True)
class Authenticator:
    """Signs hazardous TCs (ICD section 13): key id 0 is the null key (TEST mode only).

    ``next_seq`` is the anti-replay number of the next TC; the target keeps the last one it
    accepted across resets, so a host that restarts must start above it.
    """

    key_id: int = 0
    key: bytes | None = None
    next_seq: int = 1

    def sign(
        self, service: int, subtype: int, app_data: bytes, seq_count: int, *, ack: AckFlags,
        source_id: int,
    ) -> bytes:  # fmt: skip
        """Packet bytes of the TC with its auth trailer; uses up one anti-replay number."""
        packet = sign_tc(
            service, subtype, app_data, seq_count, key_id=self.key_id, auth_seq=self.next_seq,
            key=self.key, ack_flags=ack, source_id=source_id,
        )  # fmt: skip
        self.next_seq += 1
        return packet

    def resync(self, replay_data: bytes) -> bool:
        """A TC signed here was refused with AUTH_REPLAY, whose data is the key id (u16) and
        the last number the target accepted with it (u32): go above that number. False when
        the data is not about this key (or it is the null key, whose numbers are not checked).
        """
        if len(replay_data) < 6:
            return False
        key_id, last = struct.unpack_from("!HI", replay_data)
        if key_id != self.key_id or key_id == 0:
            return False
        self.next_seq = max(self.next_seq, last + 1)
        return True


def signer(command: Command, default: Authenticator | None) -> Authenticator | None:
    """The authenticator that signs ``command``: its own, else ``default``; None when the
    command is not hazardous (ICD 13: only hazardous TCs carry a trailer)."""
    auth = command.auth if command.auth is not None else default
    if auth is None or not is_hazardous(command.service, command.subtype, command.app_data):
        return None
    return auth


def build_packet(
    command: Command,
    seq_count: int,
    *,
    source_id: int = SOURCE_ID_HOST,
    auth: Authenticator | None = None,
) -> bytes:
    """The TC's octets: signed when it is hazardous and an authenticator (the command's own,
    else ``auth``) is given."""
    auth = signer(command, auth)
    if auth is not None:
        return auth.sign(
            command.service, command.subtype, command.app_data, seq_count,
            ack=command.ack, source_id=source_id,
        )  # fmt: skip
    return make_tc(
        command.service, command.subtype, command.app_data, seq_count,
        ack_flags=command.ack, source_id=source_id,
    )  # fmt: skip


class Phase(enum.Enum):
    QUEUED = "queued"
    SENDING = "sending"
    AWAIT_ACCEPTANCE = "awaiting acceptance"
    AWAIT_COMPLETION = "awaiting completion"
    DONE = "done"


def _final_stage(ack: AckFlags) -> Stage | None:
    """The last success report asked for: the one that ends the request for the host.

    Progress reports only come from long requests, so they never end one.
    """
    if ack & AckFlags.COMPLETION:
        return Stage.COMPLETION
    if ack & AckFlags.START:
        return Stage.START
    if ack & AckFlags.ACCEPTANCE:
        return Stage.ACCEPTANCE
    return None


@dataclass(eq=False)
class Tracker:
    """The state of one TC on the host (see the module docstring)."""

    command: Command
    timing: Timing
    port: str
    submitted_at: float
    internal: bool = False
    phase: Phase = Phase.QUEUED
    packet: bytes = b""
    request_id: RequestId | None = None
    deadline: float | None = None
    attempts: int = 0
    unwritten: int = 0
    needs_write: bool = False
    send_index: int = -1
    sent_at: float | None = None
    accepted: bool = False
    reached: Stage | None = None
    duplicate: bool = False
    reports: list[Telemetry] = field(default_factory=list)
    verification: list[VerificationReport] = field(default_factory=list)
    result: Completion | CommandError | None = None
    link_down: bool = False
    """Set when the TC exhausted its retransmissions: the ICD says the link is down."""
    first_write: tuple[int, int] | None = None
    last_write: tuple[int, int] | None = None
    """(connection, frame number) of the first and latest copy written: the link's order."""
    lost_mark: int = 0
    """The link's count of lost TM when the latest copy was written."""
    order: int = 0
    """Submission order: the link's queue is kept in it."""
    signed_by: Authenticator | None = None
    """The authenticator that signed the octets (None: not signed)."""
    replayed: bool = False
    copies: int = 0
    """Copies of the octets the link began to write, rewrites after a reconnection too."""
    collided: bool = False
    """Its first and only copy was answered DUPLICATE: the target remembers an earlier
    request with the same octets (another session's), so this one must be renumbered."""
    renumbered: int = 0
    """Times the command was given a new sequence count after a collision."""
    asked: int = 0
    """Outcome queries (TC[149,1]) sent about it since its last report."""
    query_for: Tracker | None = None
    """For an outcome query the link sends on its own: the request it asks about."""
    recovered: bool = False
    """Its outcome came from an outcome query: the report saying it was lost."""
    """A second TC of the command, sent after the first was refused with AUTH_REPLAY."""

    @property
    def name(self) -> str:
        return self.command.name

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    @property
    def final(self) -> Stage | None:
        return _final_stage(self.command.ack)

    @property
    def retransmittable(self) -> bool:
        """Only TCs that ask for acceptance are ever sent again (ICD 14)."""
        return bool(self.command.ack & AckFlags.ACCEPTANCE)

    @property
    def in_window(self) -> bool:
        """Counts against the window: sent (or being sent) without its acceptance report."""
        return self.phase in (Phase.SENDING, Phase.AWAIT_ACCEPTANCE) and self.retransmittable

    @property
    def may_write_again(self) -> bool:
        """The link may still write a copy of the octets: not done, not known accepted, and
        retransmittable or waiting to be written again after a reconnection."""
        return not self.done and not self.accepted and (self.retransmittable or self.needs_write)

    def assign(self, packet: bytes) -> None:
        """Give the TC its octets (and so its sequence count) just before its first sending."""
        self.packet = packet
        self.request_id = RequestId.unpack(packet)
        self.phase = Phase.SENDING

    def begin_write(self) -> None:
        """The link has decided to write the octets: no deadline runs until they are out."""
        self.deadline = None

    def writing(self, now: float, *, counts: bool = True) -> None:
        """The link starts writing the octets now.

        The transmission counts from here, not from ``sent``: the target may answer, and the
        reader handle the answer, before the writer has returned from the port (a loaded
        machine can preempt it there for any time). ``counts`` is False when this only makes
        up for an attempt the port refused.
        """
        self.begin_write()
        self.copies += 1
        if counts:
            self.attempts += 1
        if self.sent_at is None:
            self.sent_at = now

    def sent(self, now: float, *, written: bool, counts: bool = True) -> None:
        """The octets of the write begun with ``writing`` were handed to the port
        (``written``) or could not be (port down); the acceptance timer starts now (ICD 14).
        """
        if counts:
            self.unwritten += not written
        elif written:
            self.unwritten -= 1  # the attempt the port refused went out after all
        self.needs_write = not written
        if self.phase is Phase.DONE:
            return
        if self.phase in (Phase.SENDING, Phase.AWAIT_ACCEPTANCE) and self.retransmittable:
            self.phase = Phase.AWAIT_ACCEPTANCE
            self.deadline = now + self.timing.acceptance_s
        elif self.phase is Phase.SENDING:
            # No acceptance report will come unless it fails: wait for the next stage asked for.
            if self.final is None:
                self._complete(now)
            else:
                self.phase = Phase.AWAIT_COMPLETION
                self.deadline = now + self._after_acceptance_s()
        elif self.deadline is None:
            self.deadline = now + self._after_acceptance_s()

    def add_report_tm(self, tm: Telemetry) -> None:
        """A TM this request produced (ping report, dump report...)."""
        self.reports.append(tm)

    def on_report(self, report: VerificationReport, now: float) -> bool:
        """A service 1 report about this request; True if the TC should be sent again now."""
        if self.phase is Phase.DONE:
            return False
        self.verification.append(report)
        sub = int(report.subtype)
        stage = Stage.of_report(sub)
        if not report.success:
            code = report.failure_code
            assert code is not None
            if stage is Stage.ACCEPTANCE and code == FailureCode.DUPLICATE:
                self._on_duplicate(report.failure_data, now)
                return False
            if stage is Stage.ACCEPTANCE and code in RETRANSMIT_ON and not self.accepted:
                if self.retransmittable and self.attempts <= self.timing.max_retransmissions:
                    return True
                self.link_down = self.retransmittable
                note = (
                    f"after {self.attempts} transmissions; the link is down"
                    if self.retransmittable
                    else "sent without the ACCEPTANCE flag, so never retransmitted"
                )
                self._fail(stage, code, report.failure_data, now, note=note)
                return False
            if stage is Stage.ACCEPTANCE and code in RETRANSMIT_ON:
                return False  # a damaged copy of a TC already accepted
            self._fail(stage, code, report.failure_data, now, step=report.step)
            return False
        self._reach(stage, now)
        return False

    def expire(self, now: float) -> bool:
        """The deadline passed; True if the TC should be sent again now."""
        if self.phase is Phase.AWAIT_ACCEPTANCE:
            if self.attempts <= self.timing.max_retransmissions:
                return True
            self.link_down = True
            self._timeout(Stage.ACCEPTANCE, self.timing.acceptance_s * self.attempts, now)
        elif self.phase is Phase.AWAIT_COMPLETION:
            waiting = self._awaited_stage()
            self._timeout(waiting, self._after_acceptance_s(), now)
        return False

    def abandon(self, error: CommandError) -> None:
        """End the request with ``error`` (link closed, port down too long)."""
        self.phase = Phase.DONE
        self.deadline = None
        self.result = error

    # --- transitions ----------------------------------------------------------------------

    def _after_acceptance_s(self) -> float:
        """How long the next report may take: the command's own timeout, else the progress
        timeout for a TC that asked for progress reports, else the completion timeout."""
        if self.command.timeout is not None:
            return self.command.timeout
        if self.command.ack & AckFlags.PROGRESS:
            return self.timing.progress_s
        return self.timing.completion_s

    def _awaited_stage(self) -> Stage:
        final = self.final or Stage.ACCEPTANCE
        done_rank = self.reached.rank if self.reached is not None else -1
        if self.command.ack & AckFlags.START and done_rank < Stage.START.rank <= final.rank:
            return Stage.START
        return final

    def _accept(self, now: float) -> None:
        if not self.accepted:
            self.accepted = True
            if self.phase in (Phase.SENDING, Phase.AWAIT_ACCEPTANCE):
                self.phase = Phase.AWAIT_COMPLETION
                self.deadline = now + self._after_acceptance_s()

    def _reach(self, stage: Stage, now: float) -> None:
        self._accept(now)
        if self.reached is None or stage.rank > self.reached.rank:
            self.reached = stage
        final = self.final
        if final is not None and self.reached.rank >= final.rank:
            self._complete(now)
        elif self.command.ack & AckFlags.PROGRESS:
            self.deadline = now + self._after_acceptance_s()

    def _on_duplicate(self, data: bytes, now: float) -> None:
        """The target already accepted this TC; its data says how far the original got.
        When no other copy was ever written, the original is not ours: a collision."""
        if self.copies == 1 and not self.accepted:
            self.collided = True
            self.deadline = None
            return
        self.duplicate = True
        if len(data) < 3:
            self._accept(now)
            return
        reached_sub, code = struct.unpack_from("!BH", data)
        try:
            stage = Stage.of_report(reached_sub)
        except ValueError:
            self._accept(now)
            return
        if code != 0:
            self._accept(now)
            self._fail(
                stage, code, b"", now,
                note="the original's failure report was lost; known from the DUPLICATE "
                "answer to a retransmission, which does not repeat the failure data",
            )  # fmt: skip
            return
        self._reach(stage, now)

    def apply_outcome(self, outcome: Outcome, now: float) -> None:
        """The target's answer to an outcome query about this request (ICD 15.10): end it
        as the target says, or wait again while it runs."""
        self.asked = 0
        if not outcome.known:
            self._timeout(
                self._awaited_stage(), self._after_acceptance_s(), now,
                extra="the target, asked, no longer remembers it",
            )  # fmt: skip
            return
        stage = Stage.of_report(outcome.stage)
        if outcome.code != 0:
            self._accept(now)
            self._fail(
                stage, outcome.code, outcome.data, now,
                note="its failure report was lost; the target said it when asked (TC[149,1])",
            )  # fmt: skip
            return
        self.recovered = True
        self._reach(stage, now)
        if not self.done:  # still running: its reports may come yet
            self.deadline = now + self._after_acceptance_s()

    def _complete(self, now: float) -> None:
        assert self.request_id is not None
        self.phase = Phase.DONE
        self.deadline = None
        self.result = Completion(
            command=self.name,
            request_id=self.request_id,
            stage=self.reached,
            reports=tuple(self.reports),
            verification=tuple(self.verification),
            transmissions=self.attempts,
            duplicate=self.duplicate,
            sent_at=self.sent_at if self.sent_at is not None else now,
            done_at=now,
            recovered=self.recovered,
        )

    def _fail(
        self, stage: Stage, code: int, data: bytes, now: float, *, step: int | None = None,
        note: str = "",
    ) -> None:  # fmt: skip
        self.phase = Phase.DONE
        self.deadline = None
        try:
            code = FailureCode(code)
        except ValueError:
            pass  # a newer peer's code: shown as a number
        tc = self.command
        self.result = CommandFailed(
            command=self.name, stage=stage, code=code, data=data, request_id=self.request_id,
            port=self.port, step=step, note=note,
            words=explain(code, data, tc.service, tc.app_data),
        )  # fmt: skip

    def _timeout(self, stage: Stage, waited: float, now: float, *, extra: str = "") -> None:
        self.phase = Phase.DONE
        self.deadline = None
        notes = [extra] if extra else []
        if self.asked:
            notes.append(f"{self.asked} outcome queries got no answer")
        if self.unwritten:
            notes.append(f"{self.unwritten} of them not written: the port was down")
        if stage is Stage.ACCEPTANCE:
            notes.append("is the target running, on this port, at this baud rate?")
        else:
            notes.append("accepted, so not retried: it may have acted")
        self.result = CommandTimeout(
            command=self.name, stage=stage, request_id=self.request_id, port=self.port,
            waited_s=waited, transmissions=self.attempts, note="; ".join(notes),
        )  # fmt: skip
