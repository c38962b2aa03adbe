"""The statistics of campaigns against known answers."""

from __future__ import annotations

import math

import pytest

from campaign.stats import (
    narrow_enough,
    per_day_to_fit,
    per_day_to_year,
    quantile,
    sample_size,
    wilson,
)


def test_quantile_of_common_confidences() -> None:
    assert quantile(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert quantile(0.99) == pytest.approx(2.575829, abs=1e-6)
    assert quantile(0.90) == pytest.approx(1.644854, abs=1e-6)


def test_sample_size_of_a_large_population_is_the_textbook_384() -> None:
    # e = 5 %, 95 %, p = 0.5: t^2 p (1 - p) / e^2 = 384.1 for an infinite population.
    assert sample_size(10**12, 0.05, 0.95) == 385
    assert sample_size(10**12, 0.01, 0.95) == 9604


@pytest.mark.parametrize("population", [1, 2, 50, 400, 10_000, 2_556 * 300])
@pytest.mark.parametrize("margin", [0.01, 0.05, 0.1])
def test_sample_size_follows_leveugle(population: int, margin: float) -> None:
    t = quantile(0.95)
    exact = population / (1 + margin**2 * (population - 1) / (t * t * 0.25))
    n = sample_size(population, margin)
    assert n == min(population, math.ceil(exact))
    assert 1 <= n <= population


def test_sample_size_grows_with_the_confidence_and_shrinks_with_the_margin() -> None:
    assert sample_size(10**6, 0.05, 0.99) > sample_size(10**6, 0.05, 0.95)
    assert sample_size(10**6, 0.02) > sample_size(10**6, 0.05)


@pytest.mark.parametrize("bad", [dict(population=0, margin=0.05), dict(population=10, margin=0),
                                 dict(population=10, margin=0.05, p=1.0)])  # fmt: skip
def test_sample_size_refuses_what_means_nothing(bad: dict) -> None:
    with pytest.raises(ValueError):
        sample_size(**bad)


def test_wilson_known_values() -> None:
    # Published 95 % Wilson intervals (Newcombe, Stat. Med. 17:857, 1998, table I):
    # 0/10 -> [0, 0.2775], 1/10 -> [0.0179, 0.4042], 81/263 -> [0.2553, 0.3662].
    assert wilson(0, 10) == pytest.approx((0.0, 0.0, 0.2775), abs=1e-4)
    assert wilson(1, 10)[1:] == pytest.approx((0.0179, 0.4042), abs=1e-4)
    assert wilson(81, 263)[1:] == pytest.approx((0.2553, 0.3662), abs=1e-4)


def test_wilson_ends_are_exact_at_zero_and_all() -> None:
    assert wilson(0, 7)[1] == 0.0
    assert wilson(7, 7)[2] == 1.0
    assert wilson(7, 7)[1] < 1.0


def test_narrow_enough_compares_every_interval_with_twice_the_margin() -> None:
    # 400 runs: a share near 0.5 has a 95 % interval about 0.097 wide.
    z = quantile(0.95)
    assert narrow_enough({"a": 200, "b": 200}, 400, 0.05, z)
    assert not narrow_enough({"a": 200, "b": 200}, 400, 0.04, z)
    assert narrow_enough({"a": 0, "b": 400}, 400, 0.01, z)
    assert not narrow_enough({"a": 0}, 0, 0.05, z)


def test_rate_conversions() -> None:
    assert per_day_to_fit(24e-9) == pytest.approx(1.0)
    assert per_day_to_year(1.0) == pytest.approx(365.25)
