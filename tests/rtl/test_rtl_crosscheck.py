"""The model's fault outcomes held to the RTL's: a campaign's injections on both, compared
one by one (``hil campaign crosscheck``), on every site class and fault kind of a build
with TMR and one without. ``make bench`` runs the large sample (over 500 injections that
the model places); this is one injection per stratum."""

from __future__ import annotations

import json
from pathlib import Path

from host.campaign.crosscheck import crosscheck
from testbed.config.campaign import load_campaign
from testbed.sitemap import SiteClass

REPO = Path(__file__).resolve().parents[2]
CAMPAIGN = REPO / "configs" / "campaigns" / "rtl-crosscheck.yaml"
#: Site classes the model has no site in: the RTL injects them, apart from the comparison.
RTL_ONLY = {SiteClass.BUS_STAGING.value, SiteClass.BUS_STATE.value, SiteClass.RESET.value}


def test_every_injection_the_model_places_ends_on_the_rtl_as_on_the_model(tmp_path) -> None:
    campaign = load_campaign(CAMPAIGN)
    check = crosscheck(campaign, tmp_path, chip="rtl", injections=1, workers=1)
    assert check.differ == [], "\n".join(check.summary())
    strata = {(r["build"], r["stratum"]) for r in _runs(tmp_path / "rtl" / "runs.jsonl")}
    assert len(strata) == check.runs == 76  # 38 strata of each build, one injection each
    kinds = {s.split("/")[1] for _, s in strata}
    assert kinds == {"sbu", "mbu", "set", "stuck_at"}
    # The comparison covers every class the model has; the RTL-only classes ran on the RTL.
    compared = {cls for cls, seen in check.by_class.items() if set(seen) != {"not_injected"}}
    assert compared == {c.value for c in SiteClass} - RTL_ONLY
    assert check.compared == check.agree >= 58
    assert sum(check.chip_only.values()) == 2 * 9  # 3 classes x 3 kinds, on each build
    saved = json.loads((tmp_path / "crosscheck.json").read_text())
    assert saved["agree"] == check.agree and saved["differ"] == []


def _runs(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_digits_network_ends_on_the_rtl_as_on_the_model(tmp_path) -> None:
    """The classifier's injections, one per stratum of the bare and the fully protected
    build, in every chip job of its tiled layers: the same outcome class, and for an SDC
    the same number of changed predictions (``make bench`` runs the large sample)."""
    campaign = load_campaign(REPO / "configs" / "campaigns" / "digits-crosscheck.yaml")
    check = crosscheck(campaign, tmp_path, chip="rtl", injections=1, workers=1)
    assert check.differ == [], "\n".join(check.summary())
    runs = _runs(tmp_path / "rtl" / "runs.jsonl")
    assert len(runs) == check.runs == 2 * 25  # every stratum of sbu, mbu and set, twice
    assert check.compared == check.agree >= 35
    model = {(r["build"], r["stratum"]): r for r in _runs(tmp_path / "model" / "runs.jsonl")}
    assert {r["job"] for r in model.values()} >= {0, 1, 4}  # conv1, a tile of fc1, fc2
    sdc = [r for r in runs if r["outcome"] == "sdc"]
    assert sdc and all(r["changed"] == model[(r["build"], r["stratum"])]["changed"] for r in sdc)
