"""The stages of a request and how service 1 reports name them (docs/ICD.md section 9)."""

from __future__ import annotations

import enum


class Stage(enum.Enum):
    """Acceptance, start, progress, completion: the order reports about a request come in."""

    ACCEPTANCE = "acceptance"
    START = "start"
    PROGRESS = "progress"
    COMPLETION = "completion"

    @property
    def rank(self) -> int:
        """0 for acceptance ... 3 for completion."""
        return _ORDER.index(self)

    @classmethod
    def of_report(cls, subtype: int) -> Stage:
        """The stage TM[1,subtype] reports on: 1-2 acceptance, 3-4 start, 5-6 progress, 7-8
        completion."""
        if not 1 <= subtype <= 8:
            raise ValueError(f"service 1 subtype must be 1..8, got {subtype}")
        return _ORDER[(subtype - 1) // 2]


_ORDER = (Stage.ACCEPTANCE, Stage.START, Stage.PROGRESS, Stage.COMPLETION)
