"""A progress line on stderr for long transfers (tqdm is not a dependency of orbit-hil).

``ProgressLine`` is a ``progress(done, total)`` callback: it redraws one line in place
(``\\r``) at most ten times a second, and ends it with a newline when the work is done.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

REDRAW_S = 0.1
BAR = 24
MIN_TOTAL = 4096
"""Transfers smaller than this finish before a line would help: none is drawn."""


class ProgressLine:
    """``load  [#########.......]  4000/10000 octets  40 %  1.2 MB/s``"""

    def __init__(
        self, label: str, stream: TextIO | None = None, *, min_total: int = MIN_TOTAL
    ) -> None:
        self.label = label
        self.min_total = min_total
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self._drawn = 0.0
        self._done = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        finished = done >= total
        if total < self.min_total or self._done or (not finished and now - self._drawn < REDRAW_S):
            return
        self._drawn = now
        fill = BAR * done // max(total, 1)
        rate = done / max(now - self.started, 1e-6)
        line = (
            f"\r{self.label}  [{'#' * fill}{'.' * (BAR - fill)}]  {done}/{total} octets  "
            f"{100 * done // max(total, 1):3d} %  {_rate(rate)}"
        )
        self.stream.write(line + ("\n" if finished else ""))
        self.stream.flush()
        self._done = finished

    def close(self) -> None:
        """End the line if the work stopped before it was done."""
        if self._drawn and not self._done:
            self.stream.write("\n")
            self.stream.flush()
            self._done = True


def _rate(octets_per_s: float) -> str:
    for unit, size in (("MB/s", 1e6), ("kB/s", 1e3)):
        if octets_per_s >= size:
            return f"{octets_per_s / size:.1f} {unit}"
    return f"{octets_per_s:.0f} B/s"
