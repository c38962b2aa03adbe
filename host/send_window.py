"""When the link may send a new TC: the window of ICD 14 and the target's duplicate window.

Pure functions over the link core's trackers, kept apart from the core because the
reasoning is long and self-contained.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection

from host.commands import Tracker
from protocol.link import DUPLICATE_WINDOW


def may_send_new(
    open_: Collection[Tracker], recent: deque[tuple[int, Tracker]], window: int
) -> bool:
    """The window of ICD 14, and a bound that keeps every retransmission inside the
    target's duplicate window (ICD 6: the last DUPLICATE_WINDOW TCs it accepted).

    The target takes TCs in arrival order, which is our write order, so a TC ``w`` that
    may still be written again (not known accepted) stays in its duplicate window while
    fewer than DUPLICATE_WINDOW other TCs can be accepted after it: those with a copy
    written after ``w``'s first copy, those that may still be written again, and the new
    one. Counting only new TCs sent after ``w`` is not enough: a retransmission of an
    older TC, written after ``w``'s first copy, is accepted after ``w`` too.

    ``recent`` holds (write number, tracker) of each copy written; entries older than the
    oldest first write that matters are dropped from it here.
    """
    if sum(t.in_window for t in open_) >= window:
        return False
    again = [t for t in open_ if t.may_write_again]
    written = [t for t in again if t.first_write is not None]
    if not written:
        recent.clear()
        return True
    written.sort(key=lambda t: t.first_write[1], reverse=True)  # type: ignore[index]
    oldest = written[-1].first_write[1]  # type: ignore[index]
    while recent and recent[0][0] < oldest:
        recent.popleft()
    later = set(again)
    copies = reversed(recent)
    entry = next(copies, None)
    for tracker in written:
        first = tracker.first_write[1]  # type: ignore[index]
        while entry is not None and entry[0] > first:
            later.add(entry[1])
            entry = next(copies, None)
        if len(later) - (tracker in later) + 1 >= DUPLICATE_WINDOW:
            return False
    return True
