"""Which request a TM that is not a service 1 report belongs to, and TM loss counting.

The ICD sends such a TM (TM[17,2], TM[6,6], a one-shot TM[3,25]...) after the request's
start report and before its completion report, requests are handled in arrival order, and
its destination id is the TC's source id. So it belongs to the request of the last
service 1 report received if that report was a non-final success report of an open
request of the same service and no TM was lost since (TM sequence counts, ICD 6);
otherwise to the oldest open request of the same service; otherwise to none (it stays in
the history, counted as unattributed).
"""

from __future__ import annotations

from collections.abc import Iterable

from host.commands import Tracker
from host.link_events import LinkStats
from host.stage import Stage
from protocol.packets import Telemetry
from protocol.sequence import seq_diff
from protocol.verification import VerificationReport


class TmMatcher:
    """The matching rule of the module docstring, fed every TM in arrival order."""

    def __init__(self) -> None:
        self._current: Tracker | None = None
        self._gap_since_current = False
        self._last_seq: int | None = None

    def count(self, tm: Telemetry, stats: LinkStats) -> None:
        """Count a TM and the TM missing before it (a gap, or a restarted count)."""
        stats.tm_received += 1
        if self._last_seq is not None:
            step = seq_diff(tm.seq_count, self._last_seq)
            if step > 1:
                stats.tm_lost += step - 1
                self._gap_since_current = True
            elif step <= 0:
                stats.tm_count_restarts += 1
                self._gap_since_current = True
        self._last_seq = tm.seq_count

    def reported(self, tracker: Tracker, report: VerificationReport) -> None:
        """A service 1 report about ``tracker`` was handled."""
        stage = Stage.of_report(int(report.subtype))
        if report.success and stage is not Stage.COMPLETION and not tracker.done:
            self._current, self._gap_since_current = tracker, False
        elif self._current is tracker:
            self._current = None

    def forget(self, tracker: Tracker) -> None:
        """``tracker`` left flight."""
        if self._current is tracker:
            self._current = None

    def attribute(self, tm: Telemetry, open_: Iterable[Tracker]) -> Tracker | None:
        """The request a TM addressed to us belongs to, or None."""
        current = self._current
        if (
            current is not None
            and not current.done
            and not self._gap_since_current
            and current.command.service == tm.service
        ):
            return current
        candidates = [
            t
            for t in open_
            if t.command.service == tm.service and not t.done and t.sent_at is not None
        ]
        return min(candidates, key=lambda t: t.send_index) if candidates else None
