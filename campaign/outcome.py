"""How an injected run ended, from what the chip delivered and reported (docs/FAULTS.md,
"Outcome classes"): the same rules for every backend.

- not injected: the target refused the fault, has no such site, or the job never reached
  its point. Never a sample of any class.
- hang: the job did not end; only a reset (or the flight software's job watchdog) got
  the chip back.
- detected: the job ended in an error, or its result could not be read back (an
  uncorrectable word): no result was delivered as good.
- SDC: the result differs from the golden run's and nothing said so.
- corrected: the result is right and a mitigation acted (ECC corrected a word, TMR
  outvoted a copy). A flipped counter is the fault itself, not a mitigation acting
  (``classify(..., counter_site=True)``).
- masked: the result is right and nothing noticed.

For a classifier (a network workload) an SDC is told apart further by what it did to
the answer: ``Verdict.changed`` counts the images whose predicted class (the first of
equal largest logits) differs from the golden run's; an SDC with none changed left every
answer right although logits were wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

import numpy as np


class Outcome(StrEnum):
    """How a run ended: one of the classes of an injected fault, or not injected."""

    MASKED = "masked"  # result correct, nothing noticed
    CORRECTED = "corrected"  # result correct, a mitigation acted
    DETECTED = "detected"  # error reported, no wrong result delivered
    SDC = "sdc"  # wrong result delivered as good
    HANG = "hang"  # recovered only by watchdog or reset
    NOT_INJECTED = "not_injected"  # the fault never happened: no sample of any class


CLASSES: tuple[Outcome, ...] = tuple(o for o in Outcome if o is not Outcome.NOT_INJECTED)
"""The outcome classes of an injected run, the ones shares and rates are given for."""


#: Counters that say a mitigation acted, as the ACCELERATOR housekeeping names them.
MITIGATION_COUNTERS = ("ecc_corrected", "tmr_mismatches")


ENDED_WITHOUT_DONE = "the chip went idle without DONE: no result (the job fails)"
"""Why a run whose sequencer left BUSY without setting DONE delivered nothing."""


@dataclass(frozen=True)
class Observation:
    """What one run of the job showed: its result (None if it delivered none), whether
    it ended in an error or hung, and the mitigation counters' increments."""

    result: np.ndarray | None
    error: str = ""
    hung: bool = False
    counters: dict[str, int] | None = None


class Verdict(NamedTuple):
    """How a run ended and a line saying why; for a classifier's SDC, how many images'
    predicted class changed (None for any other run)."""

    outcome: Outcome
    detail: str
    changed: int | None = None


def classify(
    seen: Observation,
    golden: np.ndarray,
    counter_site: bool = False,
    classes: np.ndarray | None = None,
) -> Verdict:
    """The outcome class of an injected run and a line saying why. With ``counter_site``
    the fault hit a counter: the counter reads wrong, but no mitigation acted, so its
    change makes no run "corrected". ``classes``: the golden run's predicted class of
    each row of logits, for a classifier."""
    if seen.hung:
        return Verdict(Outcome.HANG, seen.error or "the job never ended; the chip was reset")
    counters = {} if counter_site else seen.counters or {}
    moved = {k: v for k, v in counters.items() if v}
    if seen.error:
        return Verdict(Outcome.DETECTED, seen.error)
    assert seen.result is not None, "a run that ended without error delivers a result"
    if seen.result is not golden and not np.array_equal(seen.result, golden):
        wrong = int(np.count_nonzero(seen.result != golden))
        why = f"{wrong} of {golden.size} outputs wrong, delivered as good"
        if classes is None:
            return Verdict(Outcome.SDC, why)
        changed = int(np.count_nonzero(np.argmax(seen.result, axis=1) != classes))
        why += f"; predicted class changed for {changed} of {len(classes)} images"
        return Verdict(Outcome.SDC, why, changed)
    acted = [k for k in MITIGATION_COUNTERS if moved.get(k)]
    if acted:
        why = "counted: " + ", ".join(f"{k} +{moved[k]}" for k in acted)
        return Verdict(Outcome.CORRECTED, why)
    return Verdict(Outcome.MASKED, "result correct, nothing noticed")
