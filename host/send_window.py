"""When the link may send a new TC: the window of ICD 14 and the target's duplicate window.

Pure functions over the link core's trackers, kept apart from the core because the
reasoning is long and self-contained.
"""

from __future__ import annotations

from collections.abc import Collection

from host.commands import Tracker
from protocol.link import DUPLICATE_WINDOW, HOLD_WINDOW
from protocol.sequence import seq_diff


def may_send_new(
    open_: Collection[Tracker], writes: int, window: int, next_count: int, *,
    query: bool = False,
) -> bool:  # fmt: skip
    """The window of ICD 14, and a bound that keeps every request in flight inside the
    target's request memory (ICD 6: the last DUPLICATE_WINDOW TCs it received): a
    retransmission is then always recognised as a duplicate, and an outcome query about a
    request whose reports were lost always answered.

    The target takes TCs in arrival order, which is our write order, so a request ``w``
    in flight (written, not ended) stays in the memory while fewer than DUPLICATE_WINDOW
    other TCs can arrive after it: those with a copy written after ``w``'s first copy,
    those that may still be written again, and the new one. Counting only new TCs sent
    after ``w`` is not enough: a retransmission of an older TC, written after ``w``'s
    first copy, arrives after ``w`` too. Every copy written after it is counted, which
    counts a TC written twice twice: the bound is met a few TCs early, never late. Only
    the oldest request in flight needs checking.

    Outcome queries are not remembered by the target: they are neither checked nor held
    back by this bound (``query``: the new TC is one), though their copies are counted.
    ``writes`` is the number of the link's last write (``Tracker.first_write[1]`` counts
    the same way).

    And the reach of in-order execution (ICD 6.1): the new TC's count (``next_count``)
    stays less than HOLD_WINDOW past the count of every TC awaiting acceptance, so that
    the target can hold it until those arrive.
    """
    waiting = [t for t in open_ if t.in_window]
    if len(waiting) >= window:
        return False
    if any(
        t.request_id is not None and seq_diff(next_count, t.request_id.seq_count) >= HOLD_WINDOW
        for t in waiting
    ):
        return False
    if query:
        return True
    oldest: int | None = None
    again = 0
    for t in open_:
        if t.query_for is not None:
            continue
        if t.may_write_again:
            again += 1
        if t.first_write is not None and not t.done:
            first = t.first_write[1]
            oldest = first if oldest is None else min(oldest, first)
    if oldest is None:
        return True
    return (writes - oldest) + again + 1 < DUPLICATE_WINDOW
