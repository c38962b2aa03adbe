"""The statistics of a fault-injection campaign: sample sizes, intervals, rates.

Statistical fault injection (Leveugle, Calvez, Maistri, Vanhauwaert, "Statistical fault
injection: quantified error and confidence", DATE 2009) draws n of the N possible
faults (site bit x injection cycle) of a population so that a share measured on the
sample lies within a margin e of the population's share with confidence given by the
normal quantile t:

    n = N / (1 + e^2 (N - 1) / (t^2 p (1 - p)))

with p = 0.5 when nothing is known of the share (the largest n). Shares are given with
Wilson score intervals, which stay meaningful for the zero and small counts a campaign
produces where the normal approximation does not.
"""

from __future__ import annotations

import math
from statistics import NormalDist

HOURS_PER_DAY = 24.0
DAYS_PER_YEAR = 365.25
FIT_HOURS = 1e9
"""A FIT is one failure per 1e9 device-hours."""


def quantile(confidence: float) -> float:
    """The two-sided normal quantile t of a confidence (0.95 -> 1.96)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def sample_size(population: int, margin: float, confidence: float = 0.95, p: float = 0.5) -> int:
    """Leveugle's n for a population of ``population`` faults (never more than it)."""
    if population < 1:
        raise ValueError(f"population must be at least 1, got {population}")
    if not 0 < margin < 1:
        raise ValueError(f"margin must be between 0 and 1, got {margin}")
    if not 0 < p < 1:
        raise ValueError(f"p must be between 0 and 1, got {p}")
    t = quantile(confidence)
    n = population / (1 + margin * margin * (population - 1) / (t * t * p * (1 - p)))
    return min(population, math.ceil(n))


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float, float]:
    """(rate, low, high) with the Wilson score interval at ``z`` (1.96: 95 %)."""
    if trials <= 0:
        raise ValueError(f"trials must be positive, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be within 0..{trials}, got {successes}")
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # At 0 and at all the bounds are exactly 0 and 1; the sum above rounds them off.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return p, low, high


def narrow_enough(counts: dict[str, int], trials: int, margin: float, z: float) -> bool:
    """Whether every share's Wilson interval is at most 2 x ``margin`` wide (so each
    estimate is within ``margin`` of the interval's ends)."""
    if trials <= 0:
        return False
    for count in counts.values():
        _, low, high = wilson(count, trials, z)
        if high - low > 2 * margin:
            return False
    return True


def per_day_to_fit(per_day: float) -> float:
    """Failures per device-day as FIT (failures per 1e9 device-hours)."""
    return per_day / HOURS_PER_DAY * FIT_HOURS


def per_day_to_year(per_day: float) -> float:
    """Failures per device-day as failures per device-year (365.25 days)."""
    return per_day * DAYS_PER_YEAR
