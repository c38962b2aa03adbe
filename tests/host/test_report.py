"""Fault-injection report: Wilson intervals, summaries, and the files written."""

from __future__ import annotations

import json

import pytest

from host.campaign.stats import wilson
from host.report import Outcome, Run, summarize, write


def test_wilson_interval_matches_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, table I: 0/10 -> 0 to 0.2775,
    # and the symmetric case 5/10 -> 0.2366 to 0.7634.
    _, lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    rate, lo, hi = wilson(5, 10)
    assert rate == 0.5
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))


def test_wilson_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="trials must be positive"):
        wilson(0, 0)
    with pytest.raises(ValueError, match="within 0..3"):
        wilson(4, 3)


def test_summary_counts_each_outcome_per_fault() -> None:
    runs = [
        Run("SBU scratchpad", "w1", Outcome.CORRECTED),
        Run("SBU scratchpad", "w2", Outcome.CORRECTED),
        Run("DBU scratchpad", "w3", Outcome.DETECTED),
        Run("SBU scratchpad", "w4", Outcome.MASKED),
    ]
    sbu, dbu = summarize(runs)
    assert (sbu.fault, sbu.runs, sbu.counts["corrected"], sbu.counts["masked"]) == (
        "SBU scratchpad", 3, 2, 1)
    assert dbu.counts == {"masked": 0, "corrected": 0, "detected": 1, "sdc": 0, "hang": 0}


def test_report_files_are_written_and_consistent(tmp_path) -> None:
    runs = [Run("SBU", f"w{i}", Outcome.CORRECTED if i % 3 else Outcome.SDC) for i in range(9)]
    paths = write(tmp_path, "demo", "Demo", runs, {"target": "sim"}, ["note"])
    data = json.loads(paths["json"].read_text())
    assert data["summary"][0]["counts"]["sdc"] == 3
    assert len(data["runs"]) == 9
    md = paths["md"].read_text()
    assert "| SBU | 9 |" in md and "demo.png" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_not_injected_are_counted_apart_and_in_no_rate(tmp_path) -> None:
    runs = [
        Run("SBU reg", "r1", Outcome.NOT_INJECTED, "refused"),
        Run("SBU reg", "r2", Outcome.CORRECTED),
        Run("SBU reg", "r3", Outcome.NOT_INJECTED, "point not reached"),
        Run("SEU none", "r4", Outcome.NOT_INJECTED, "refused"),
    ]
    reg, none = summarize(runs)
    assert (reg.runs, reg.not_injected, reg.counts["corrected"], reg.counts["masked"]) == (
        1, 2, 1, 0)
    assert reg.rates["corrected"] == wilson(1, 1) and "not_injected" not in reg.counts
    assert (none.runs, none.not_injected, none.rates) == (0, 1, {})
    md = write(tmp_path, "r", "R", runs, {}, [])["md"].read_text()
    assert "| SBU reg | 1 | 0 (0%" in md and md.count("| SEU none | 0 | - |") == 1
    assert "| not injected |" in md
