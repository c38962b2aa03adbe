"""In-order execution of the host's TCs (ICD section 6.1), in the spirit of COP-1's FARM.

A TC is checked and accepted (or refused) as it arrives; what waits is the start of its
execution. After a ``TC[149,3]`` start-sequence with count c, the flight software expects
count c + 1 next:

- an accepted TC with the expected count starts at once, and then every TC waiting whose
  turn has come, in count order; the expected count moves past each count handled;
- an accepted TC up to ``HOLD_WINDOW`` counts ahead of the expected one waits to start
  until the counts before it have arrived;
- every other count (behind the expected one, far ahead of it, before any start-sequence)
  starts at once, as without ordering;
- a TC handled at once whatever its count (``passed``: refused at acceptance, a
  duplicate, a ping or an outcome query, which only read) only marks its count as
  arrived; a copy of a TC that waits says the host is resending it.

Each time a TC begins to wait, or a copy of one waiting arrives, ``take_gap`` has a gap
report for the host (TM[149,4]): the missing count, so that the host resends it now.

When the missing count has not come ``gap_timeout_s`` after the oldest TC waiting began
to wait (the host has stopped sending it: ``protocol.link.gap_timeout``), the gap is
skipped: the waiting TCs start in count order and the caller raises ``SEQUENCE_GAP``. A
start-sequence first starts the TCs still waiting, in count order. The expected count
is kept in the non-volatile store; the waiting TCs are not (a reboot ends them as
``INTERRUPTED``, as any request it cuts short).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from protocol.link import HOLD_WINDOW
from protocol.sequence import SEQ_COUNT_MODULO, seq_diff

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Gap:
    """Counts skipped because they never came: ``missing`` counts from ``first``, with
    ``held`` TCs waiting behind them."""

    first: int
    missing: int
    held: int


@dataclass(slots=True)
class InOrder(Generic[T]):
    """The sequence state of the host's TCs (see the module docstring); ``T`` is what the
    caller keeps of an accepted TC until it starts."""

    expected: int | None = None
    """The count the next TC in order has; None before any start-sequence."""
    hold: int = HOLD_WINDOW
    _waiting: dict[int, tuple[T, float]] = field(default_factory=dict)
    """By count: an accepted TC waiting for the counts before it, and since when."""
    _arrived: set[int] = field(default_factory=set)
    """Counts ahead of ``expected`` already handled at once."""
    _gap: tuple[int, int] | None = None
    """(missing count, count that arrived) for the next gap report, if one is due."""

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def start(self, count: int) -> list[T]:
        """A start-sequence with ``count`` ran: expect ``count + 1`` next. The TCs still
        waiting, in count order, to start now."""
        leftovers = [self._waiting[c][0] for c in self._by_distance(self._waiting)]
        self._waiting.clear()
        self._arrived.clear()
        self._gap = None
        self.expected = (count + 1) % SEQ_COUNT_MODULO
        return leftovers

    def arrive(self, count: int, item: T, now: float) -> list[T]:
        """An accepted TC with ``count``: what starts now, in order (none while it waits;
        more than it when it fills a gap)."""
        if self.expected is None:
            return [item]
        ahead = seq_diff(count, self.expected)
        if ahead == 0:
            self._advance()
            return [item, *self._release()]
        if not 0 < ahead <= self.hold:
            return [item]
        self._waiting[count] = (item, now)
        self._gap = (self.expected, count)
        return []

    def passed(self, count: int) -> list[T]:
        """A TC with ``count`` was handled at once: what starts now that its count arrived."""
        if self.expected is None:
            return []
        ahead = seq_diff(count, self.expected)
        if ahead == 0:
            self._advance()
            return self._release()
        if 0 < ahead <= self.hold:
            if count in self._waiting:
                self._gap = (self.expected, count)  # the host resends it: it lacks the gap
            else:
                self._arrived.add(count)
        return []

    def take_gap(self) -> tuple[int, int, int] | None:
        """(missing count, count that arrived ahead of it, TCs waiting) once, when the host
        should hear it; else None."""
        gap, self._gap = self._gap, None
        if gap is None or not self._waiting:
            return None
        return gap[0], gap[1], len(self._waiting)

    def deadline(self, gap_timeout_s: float) -> float | None:
        """When the gap in front of the waiting TCs is skipped (None: none waits)."""
        if not self._waiting:
            return None
        return min(since for _, since in self._waiting.values()) + gap_timeout_s

    def expire(self, now: float, gap_timeout_s: float) -> tuple[Gap, list[T]] | None:
        """Skip the gap when its time has come: the gap and the TCs to start, in order."""
        due = self.deadline(gap_timeout_s)
        if due is None or now < due or self.expected is None:
            return None
        first = self.expected
        nearest = self._by_distance(self._waiting)[0]
        span = seq_diff(nearest, first)
        missing = span - sum(1 for c in self._arrived if 0 <= seq_diff(c, first) < span)
        held = len(self._waiting)
        self.expected = nearest
        self._arrived = {c for c in self._arrived if seq_diff(c, nearest) > 0}
        return Gap(first, missing, held), self._release()

    def reboot(self) -> None:
        """The waiting TCs are lost with the volatile memory; the expected count stays."""
        self._waiting.clear()
        self._arrived.clear()
        self._gap = None

    def _by_distance(self, counts: dict[int, object]) -> list[int]:
        """``counts`` in the order they follow the expected count."""
        first = self.expected or 0
        return sorted(counts, key=lambda c: seq_diff(c, first))

    def _advance(self) -> None:
        assert self.expected is not None
        self.expected = (self.expected + 1) % SEQ_COUNT_MODULO
        while self.expected in self._arrived:
            self._arrived.discard(self.expected)
            self.expected = (self.expected + 1) % SEQ_COUNT_MODULO

    def _release(self) -> list[T]:
        """The waiting TCs whose turn has come, in order, moving the expected count on."""
        out: list[T] = []
        while self.expected in self._waiting:
            out.append(self._waiting.pop(self.expected)[0])
            self._advance()
        return out
