"""In-order execution of the host's TCs (ICD section 6), in the spirit of COP-1's FARM.

After a ``TC[149,3]`` start-sequence with count c, the flight software expects count
c + 1 next. A TC that arrives with the expected count is handled at once, and the
expected count moves on past it and past every count already handled or waiting. A TC
that arrives up to ``HOLD_WINDOW`` counts ahead of the expected one waits: it is handled,
in count order, when the counts before it have arrived. A copy of a waiting TC is
dropped (the first is handled once). Every other count (behind the expected one, far
ahead of it, or before any start-sequence) is handled at once, as without ordering.

Some TCs never wait (``handle_now``: pings, outcome queries, duplicates): they only read,
or say what happened already. One that arrives ahead of the expected count is handled at
once and its count marked as arrived.

When the missing count has not come ``gap_timeout_s`` after the oldest TC waiting began
to wait (the host has stopped sending it: ``protocol.link.gap_timeout``), the gap is
skipped: the waiting TCs run in count order and the caller raises ``SEQUENCE_GAP``. A
start-sequence drops the TCs waiting (a new host session does not run the last one's
leftovers; TCs the host still waits for it retransmits). The expected count is kept in
the non-volatile store; the waiting TCs are not (a reboot loses them, unanswered, and the
host retransmits them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.link import HOLD_WINDOW
from protocol.packets import Telecommand
from protocol.sequence import SEQ_COUNT_MODULO, seq_diff


@dataclass(frozen=True, slots=True)
class Gap:
    """Counts skipped because they never came: ``missing`` counts from ``first``, with
    ``held`` TCs waiting behind them."""

    first: int
    missing: int
    held: int


@dataclass(slots=True)
class InOrder:
    """The sequence state of the host's TCs (see the module docstring)."""

    expected: int | None = None
    """The count the next TC in order has; None before any start-sequence."""
    hold: int = HOLD_WINDOW
    _waiting: dict[int, tuple[Telecommand, float]] = field(default_factory=dict)
    """By count: a TC waiting for the counts before it, and when it began to wait."""
    _arrived: set[int] = field(default_factory=set)
    """Counts ahead of ``expected`` already handled (TCs that do not wait)."""
    copies_dropped: int = 0
    """Copies of waiting TCs dropped."""
    waited: int = 0
    """TCs that waited for an earlier count."""
    starts: int = 0
    """Start-sequences run."""
    gap_due: bool = False
    """A TC has just begun to wait for a missing count, or a copy of one waiting came:
    the host should hear which count is missing (``take_gap``)."""
    _gap_trigger: int = 0

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def start(self, count: int) -> int:
        """A start-sequence with ``count``: expect ``count + 1`` next; drop the TCs waiting.
        How many were dropped."""
        dropped = len(self._waiting)
        self._waiting.clear()
        self._arrived.clear()
        self.expected = (count + 1) % SEQ_COUNT_MODULO
        self.starts += 1
        return dropped

    def arrive(self, tc: Telecommand, now: float, *, handle_now: bool = False) -> list[Telecommand]:
        """``tc`` passed the receipt checks: the TCs to handle now, in order (none while it
        waits; more than it when it fills a gap)."""
        if self.expected is None:
            return [tc]
        ahead = seq_diff(tc.seq_count, self.expected)
        if ahead == 0:
            self._advance()
            return [tc, *self._release()]
        if not 0 < ahead <= self.hold:
            return [tc]
        if handle_now:
            self._arrived.add(tc.seq_count)
            return [tc]
        earlier = self._waiting.get(tc.seq_count)
        self.gap_due, self._gap_trigger = True, tc.seq_count
        if earlier is not None and bytes(earlier[0].raw) == bytes(tc.raw):
            self.copies_dropped += 1
            return []
        self._waiting[tc.seq_count] = (tc, now)
        self.waited += 1
        return []

    def take_gap(self) -> tuple[int, int, int] | None:
        """(missing count, count of the TC that arrived ahead of it, TCs waiting) when the
        host should hear it (``gap_due``), once; else None."""
        if not self.gap_due or self.expected is None or not self._waiting:
            self.gap_due = False
            return None
        self.gap_due = False
        return self.expected, self._gap_trigger, len(self._waiting)

    def deadline(self, gap_timeout_s: float) -> float | None:
        """When the gap in front of the waiting TCs is skipped (None: none waits)."""
        if not self._waiting:
            return None
        return min(since for _, since in self._waiting.values()) + gap_timeout_s

    def expire(self, now: float, gap_timeout_s: float) -> tuple[Gap, list[Telecommand]] | None:
        """Skip the gap when its time has come: the gap and the TCs to handle, in order."""
        due = self.deadline(gap_timeout_s)
        if due is None or now < due or self.expected is None:
            return None
        first = self.expected
        nearest = min(self._waiting, key=lambda c: seq_diff(c, first))
        missing = seq_diff(nearest, first) - sum(
            1 for c in self._arrived if 0 <= seq_diff(c, first) < seq_diff(nearest, first)
        )
        held = len(self._waiting)
        self.expected = nearest
        self._arrived = {c for c in self._arrived if seq_diff(c, nearest) > 0}
        return Gap(first, missing, held), self._release()

    def reboot(self) -> None:
        """The waiting TCs are lost with the volatile memory; the expected count stays."""
        self._waiting.clear()
        self._arrived.clear()

    def _advance(self) -> None:
        assert self.expected is not None
        self.expected = (self.expected + 1) % SEQ_COUNT_MODULO
        while self.expected in self._arrived:
            self._arrived.discard(self.expected)
            self.expected = (self.expected + 1) % SEQ_COUNT_MODULO

    def _release(self) -> list[Telecommand]:
        """The waiting TCs whose turn has come, in order, moving the expected count on."""
        out: list[Telecommand] = []
        while self.expected in self._waiting:
            out.append(self._waiting.pop(self.expected)[0])
            self._advance()
        return out
