"""What the link core (``host.link_core``) tells its shell: events, and its link states.

Events are frozen, slotted dataclasses; ``at`` is the time the core was given with the
call that produced them (``time.monotonic()`` in the threaded shell).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from host.commands import Completion
from host.errors import CommandError, LinkError
from protocol.codes import RejectReason
from protocol.framing import FrameRejected
from protocol.packets import Telemetry
from protocol.request_id import RequestId


class LinkState(enum.Enum):
    """Where the link is (docs/ICD.md section 14, link start and link down)."""

    PORT_DOWN = "port down"
    """No port: not opened yet, or the device went away and is being reopened."""
    STARTING = "starting"
    """Port open, link-start pings running; user TCs wait."""
    UP = "up"
    """The target answers: TCs flow through the window."""
    DOWN = "down"
    """The target stopped answering: user TCs wait; the TCs in flight run their course."""
    RETRYING = "retrying"
    """Down, nothing in flight any more: link-start pings until one is answered."""
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class CommandEnded:
    """A submitted command ended: ``result`` is its ``Completion`` or its error."""

    handle: int
    result: Completion | CommandError
    at: float


@dataclass(frozen=True, slots=True)
class CommandSent:
    """A submitted command got its octets and request id and goes out for the first time
    (again, with a new request id, when it is signed anew after AUTH_REPLAY)."""

    handle: int
    request_id: RequestId
    at: float


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The link changed state; ``kind`` names the change (``up``, ``down``, ``retrying``,
    ``start_failed``, ``disconnected``, ``reconnected``), ``detail`` says why."""

    kind: str
    state: LinkState
    detail: str
    at: float
    error: CommandError | None = None
    """The link-start ping's error, for ``start_failed``."""


@dataclass(frozen=True, slots=True)
class TmArrived:
    """A TM decoded, with the request it was matched to (None: none) and its raw octets."""

    tm: Telemetry
    request_id: RequestId | None
    raw: bytes
    at: float


@dataclass(frozen=True, slots=True)
class FrameDropped:
    """Octets from the target that did not make a TM, and why."""

    rejection: FrameRejected
    raw: bytes
    at: float


@dataclass(frozen=True, slots=True)
class FrameOut:
    """The octets ``data_to_send`` just returned: a TC frame (``packet`` set) or raw
    octets of the caller's own (``packet`` empty); ``note`` says why a TC goes again."""

    data: bytes
    packet: bytes
    note: str
    at: float


@dataclass(frozen=True, slots=True)
class RawDone:
    """Raw octets from ``send_raw`` were written (``error`` None) or could not be."""

    handle: int
    error: LinkError | None
    at: float


@dataclass(frozen=True, slots=True)
class ReopenPort:
    """The core asks for the port to be closed and opened again (ICD 14, link down)."""

    why: str
    at: float


Event = (
    CommandEnded
    | CommandSent
    | StateChanged
    | TmArrived
    | FrameDropped
    | FrameOut
    | RawDone
    | ReopenPort
)


@dataclass(slots=True)
class LinkStats:
    """Counters of one link since it was made."""

    frames_sent: int = 0
    bytes_sent: int = 0
    retransmissions: int = 0
    fast_retransmissions: int = 0
    """Retransmissions sent before the acceptance timeout (``fast_retransmit``)."""
    gap_retransmissions: int = 0
    """Retransmissions sent at once because the target said it waits for that TC's
    count and a later TC's copy had arrived (TM[149,4], ICD 6.1)."""
    tm_received: int = 0
    tm_lost: int = 0
    """TM missing from the target's sequence counts (ICD section 6)."""
    tm_count_restarts: int = 0
    """Times the TM sequence count went back (the target restarted)."""
    start_tcs: int = 0
    """TCs the link submitted on its own, outcome queries aside: link-start pings (on
    opening, after a reconnection, while retrying after the link went down) and the
    start-sequence TCs that follow them or a jump of the sequence count (ICD 6.1)."""
    start_tcs_accepted: int = 0
    """Of those, the ones that ended past acceptance: the target surely accepted them."""
    start_tcs_maybe: int = 0
    """Of those, the ones that ended at acceptance after being sent: accepted or not."""
    reports_unmatched: int = 0
    """Service 1 reports about a request id not in flight (late, corrupted, or not ours)."""
    reports_malformed: int = 0
    tm_unattributed: int = 0
    """TM addressed to us that matched no request in flight."""
    frames_rejected: dict[RejectReason, int] = field(
        default_factory=lambda: dict.fromkeys(RejectReason, 0)
    )
    seq_collisions: int = 0
    """TCs renumbered because the target remembered an earlier request with their octets
    (another session's sequence counts, ICD 6)."""
    outcome_queries: int = 0
    """TC[149,1] sent because a request's reports stopped coming (ICD 14, lost reports)."""
    outcomes_answered: int = 0
    """Of those, the ones the target answered about the request."""
    outcome_query_resends: int = 0
    """Copies of outcome queries written again. The target does not remember queries
    (ICD 6), so each copy that arrives is answered, and counted as a TC it accepted."""
    reconnects: int = 0
    link_downs: int = 0
    """Times the link went down (a TC exhausted its retransmissions, or the target fell
    silent)."""

    @property
    def rejected_total(self) -> int:
        return sum(self.frames_rejected.values())
