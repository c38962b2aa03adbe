"""The progress bar of every long ``hil`` operation: loads, dumps, a job's operands,
inference batches and campaign runs.

``Progress`` is a context manager and a ``progress(done, total)`` callback. On a terminal
it draws one rich bar on stderr (count, percentage, rate and ETA, redrawn in place by
rich); elsewhere (a pipe, a CI log) it writes a plain line every ``LOG_EVERY_S``. Work
stopped by Ctrl-C ends with ``LABEL: interrupted after X of Y UNIT``, and the
KeyboardInterrupt goes on to the caller, which exits 130.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Column
from rich.text import Text

OCTETS = "octets"
MIN_OCTETS = 4096
"""Transfers smaller than this finish before a bar would help: none is drawn."""
BAR_WIDTH = 24
LOG_EVERY_S = 10.0
"""Seconds between plain progress lines when stderr is no terminal."""


class _ItemRate(ProgressColumn):
    """Items per second, from rich's own speed estimate."""

    def __init__(self, unit: str) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = "?" if speed is None else f"{speed:.1f}" if speed < 10 else f"{speed:.0f}"
        return Text(f"{shown}/s", style="progress.data.speed")


class Progress:
    """``with Progress("dump FIRMWARE_RAM") as bar: target.dump(..., progress=bar)``.

    ``unit`` is ``octets`` (sizes and rate in kB, MB) or a count's noun (``runs``,
    ``images``); nothing is shown for a total below ``min_total``. ``note(text)`` sets a
    text shown after the ETA (a campaign's count per outcome class).
    """

    def __init__(
        self,
        label: str,
        unit: str = OCTETS,
        *,
        min_total: int | None = None,
        console: Console | None = None,
    ) -> None:
        self.label = label
        self.unit = unit
        self.min_total = (MIN_OCTETS if unit == OCTETS else 1) if min_total is None else min_total
        self.console = console if console is not None else Console(stderr=True)
        self.done = 0
        self.total: int | None = None
        self._note = ""
        self._bar: RichProgress | None = None
        self._task = None
        self._logged = 0.0
        self._started = time.monotonic()

    def _columns(self) -> list[ProgressColumn]:
        # Every column keeps its width; a note too long for the terminal is cut short.
        whole = Column(no_wrap=True)
        if self.unit == OCTETS:
            amount: list[ProgressColumn] = [DownloadColumn(table_column=whole),
                                            TransferSpeedColumn(table_column=whole)]
        else:
            amount = [MofNCompleteColumn(table_column=whole),
                      TextColumn(self.unit, table_column=whole), _ItemRate(self.unit)]
        note = Column(no_wrap=True, overflow="ellipsis", ratio=1)
        return [
            TextColumn("[bold]{task.description}", table_column=whole), BarColumn(BAR_WIDTH),
            *amount, TaskProgressColumn(table_column=whole), TextColumn("ETA"),
            TimeRemainingColumn(table_column=whole),
            TextColumn("{task.fields[note]}", table_column=note),
        ]  # fmt: skip

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if total < self.min_total:
            return
        if not self.console.is_terminal:
            self._log(finished=done >= total)
            return
        if self._bar is None:
            self._bar = RichProgress(*self._columns(), console=self.console)
            self._task = self._bar.add_task(self.label, total=total, note=self._note)
            self._bar.start()
        self._bar.update(self._task, completed=done, total=total, note=self._note)

    def note(self, text: str) -> None:
        """Show ``text`` after the ETA from the next update on."""
        self._note = text
        if self._bar is not None:
            self._bar.update(self._task, note=text)

    def _log(self, finished: bool) -> None:
        now = time.monotonic()
        # A short operation stays quiet; a long one says how far it got, and that it ended.
        due = now - self._started >= LOG_EVERY_S and now - self._logged >= LOG_EVERY_S
        if due or (finished and self._logged):
            self._logged = now
            note = f"  {self._note}" if self._note else ""
            print(f"{self.label}: {self._of()}{note}", file=sys.stderr, flush=True)

    def _of(self) -> str:
        return f"{self.done:,} of {self.total or 0:,} {self.unit}"

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        stopped = self.total is not None and self.done < self.total
        if kind is not None and issubclass(kind, KeyboardInterrupt) and stopped:
            print(f"{self.label}: interrupted after {self._of()}", file=sys.stderr, flush=True)
