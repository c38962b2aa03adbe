"""The mission soak of the digits network: its weights resident, its test images classified
in turn, accuracy over mission time. The stretches it counts without running must equal
running every inference on the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hil_process import REPO

from campaign.soak import SoakSpec, run_soak
from testbed.config.environment import load_environment
from testbed.sitemap_builds import Build
from workload.format import load_workload
from workload.reference import forward, int8_accuracy

DIGITS = REPO / "configs" / "workloads" / "digits"
LEO = load_environment(REPO / "configs" / "environments" / "leo-iss.yaml")
BARE = Build.from_name("n4-bw4096-il1-noecc-noscrub-notmr")
SECDED = Build.from_name("n4-bw4096-il1-ecc-noscrub-notmr")
FULL = Build.from_name("n4-bw4096-il4-ecc-scrub-tmr")


def spec(build: Build, **keys: object) -> SoakSpec:
    """A short flight at a huge acceleration: about a hundred upsets, a few in registers."""
    base = {"days": 0.003, "acceleration": 4e7, "duty_cycle": 1e-4, "samples": 10, "seed": 6,
            "network": DIGITS}  # fmt: skip
    base.update(keys)
    return SoakSpec(build, LEO, **base)


@pytest.mark.parametrize("build", [BARE, SECDED, FULL], ids=lambda b: b.name)
def test_counting_the_stretches_equals_running_every_inference(build: Build) -> None:
    fast = run_soak(spec(build, scrub_period=3000))
    slow = run_soak(spec(build, scrub_period=3000, run_every_job=True))
    assert fast.network["samples"] == slow.network["samples"]
    assert fast.jobs == slow.jobs and fast.incidents == slow.incidents
    assert fast.simulated_jobs * 5 < slow.simulated_jobs
    assert fast.landed["spm"] > 50 and fast.landed.get("flipflop", 0) >= 1
    due = sum(s["inferences"] for s in fast.network["samples"])
    assert due == sum(fast.jobs.values())  # every inference due is in one class, or missed


def test_the_bare_chip_answers_silently_wrong_and_secded_does_not() -> None:
    bare, secded = run_soak(spec(BARE)), run_soak(spec(SECDED))
    assert bare.jobs["sdc"] > 0 and bare.network["sdc_share"] > 0.1
    assert bare.network["class_changed_share"] <= bare.network["sdc_share"]
    # One upset per word is corrected on every read: the answers stay right, and counted.
    assert secded.jobs["sdc"] == 0 and secded.jobs["corrected"] > 0
    for r in (bare, secded):
        assert r.network["baseline_accuracy"] == pytest.approx(int8_accuracy(load_workload(DIGITS)))
        assert r.network["no_answer_share"] > 0  # SEFIs: the chip is down for a while


def test_without_upsets_every_sample_has_the_fault_free_accuracy() -> None:
    result = run_soak(spec(FULL, days=0.003, acceleration=1.0, samples=5))
    assert result.landed == {}
    net = load_workload(DIGITS)
    right = forward(net, net.test_inputs)[1] == net.test_labels
    first = 0
    for sample in result.network["samples"]:
        due = sample["inferences"]
        assert due > 0
        # Inference i classifies test image i mod 360, as the fault-free reference does.
        images = np.arange(first, first + due) % len(right)
        assert sample["right_share"] == pytest.approx(right[images].mean(), abs=1e-12)
        assert sample["sdc_share"] == 0 and sample["no_answer_share"] == 0
        first += due
    assert first == result.jobs["masked"] > 360
    json.loads(result.to_json())


def test_a_build_whose_bank_cannot_hold_the_weights_is_refused_in_one_line() -> None:
    small = Build.from_name("n4-bw1024-il1-ecc-scrub-tmr")
    want = r"weights of digits .* do not fit bank 1 of build n4-bw1024-il1-ecc-scrub-tmr"
    with pytest.raises(ValueError, match=want + r" \(1024 words\)"):
        run_soak(spec(small))


def test_a_campaign_soak_of_a_network_is_in_its_report(tmp_path: Path) -> None:
    from campaign.analysis import analyse
    from campaign.mission import run_soaks
    from campaign.report import headline, write_report
    from campaign.runner import run_campaign
    from testbed.config.campaign import load_campaign

    doc = {
        "name": "netsoak", "target": str(REPO / "configs" / "targets" / "sim-protected.yaml"),
        "builds": [BARE.name], "workload": {"kind": "network", "path": str(DIGITS), "images": 1},
        "sites": ["accumulator"], "faults": ["sbu"], "injections": 4,
        "environment": str(REPO / "configs" / "environments" / "leo-iss.yaml"),
        "soak": {"days": 0.003, "acceleration": 4e7, "duty": 1e-4}, "seed": 6,
    }  # fmt: skip
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(doc))
    campaign = load_campaign(path)
    run = run_campaign(campaign, tmp_path, workers=1)
    soaks = run_soaks(campaign, tmp_path)
    assert soaks[0]["network"]["name"] == "digits"
    a = analyse(run, soaks)
    paths = write_report(a, tmp_path)
    assert (tmp_path / "report-accuracy.png").stat().st_size > 10_000
    sentence = next(s for s in headline(a) if "test images with" in s)
    assert "bare classified digits test images with" in sentence
    assert "silently wrong" in sentence
    assert "report-accuracy.png" in paths["md"].read_text()
