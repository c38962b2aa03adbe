"""Campaigns whose workload is an int8 network: its layers as the chip jobs the flight
software tiles them into, a faulty job's C carried through the later layers, SDCs told
apart by whether they changed a predicted class, and the files that ask for it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hil_process import REPO, hil

from campaign.analysis import analyse
from campaign.model_backend import ModelBackend
from campaign.outcome import Observation, Outcome, classify
from campaign.plan import Plan
from campaign.report import write_report
from campaign.runner import CampaignError, run_campaign
from firmware_sim.accel import Accelerator, JobPoint, Reg
from firmware_sim.accel.sitemap_sites import model_site
from firmware_sim.jobs import JobSpec, tile
from protocol.codes import FunctionId
from protocol.payloads import OperandSource, layer_flags
from testbed.config import ConfigError
from testbed.config.campaign import load_campaign
from workload import reference
from workload.format import load_workload

DIGITS = REPO / "configs" / "workloads" / "digits"
TARGET = REPO / "configs" / "targets" / "sim-protected.yaml"
ENVIRONMENT = REPO / "configs" / "environments" / "leo-iss.yaml"
BARE = "n4-bw1024-il1-noecc-noscrub-notmr"


def network_campaign(tmp_path: Path, **keys: object) -> Path:
    doc = {
        "name": "net",
        "target": str(TARGET),
        "builds": [BARE],
        "workload": {"kind": "network", "path": str(DIGITS), "images": 2},
        "faults": ["sbu"],
        "injections": 4,
        "seed": 5,
    }
    doc.update(keys)
    path = tmp_path / "net.yaml"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> Plan:
    c = load_campaign(network_campaign(tmp_path_factory.mktemp("net")))
    return Plan(c, c.build_list()[0])


@pytest.fixture(scope="module")
def backend(plan: Plan) -> ModelBackend:
    return ModelBackend(plan)


def test_the_layers_run_as_the_chip_jobs_the_flight_software_tiles_them_into(plan) -> None:
    w = plan.workload
    net = load_workload(DIGITS)
    # fc1's B (288 x 32) does not fit a 1024-word bank at N = 4: three column blocks.
    assert [j.label for j in w.jobs] == ["conv1", "fc1 1/3", "fc1 2/3", "fc1 3/3", "fc2"]
    gemm = reference.gemm_jobs(net, 2)[1]
    flags = layer_flags(True, gemm.relu, gemm.out_int32)
    spec = JobSpec(FunctionId.RUN_LAYER, 0, OperandSource.FIRMWARE_RAM, gemm.m, gemm.k, gemm.n,
                   flags=flags, shift=gemm.shift)  # fmt: skip
    blocks = tile(spec, 4, 1024)
    assert [j.dims for j in w.jobs[1:4]] == [(b.rows, 288, b.cols) for b in blocks]
    # Each job run alone on the chip model gives its part of the reference's layer output.
    outputs = reference.layer_outputs(net, net.test_inputs[:2])
    fc1 = np.concatenate([w.job_golden(j) for j in (1, 2, 3)], axis=1)
    assert np.array_equal(fc1, outputs[1])
    for j, job in enumerate(w.jobs):
        c, err = Accelerator(**plan.build.options()).run_gemm(**job.job_args())
        assert not err and np.array_equal(c, w.job_golden(j)), job.label
    assert np.array_equal(w.golden, outputs[-1])
    assert np.array_equal(w.classes, np.argmax(outputs[-1], axis=1))
    # Every job point of every chip job is a point of the plan, in order.
    assert plan.points == sum(span.cycles for _, span in plan.spans)
    assert [j for j, _ in plan.spans] == sorted(j for j, _ in plan.spans)
    assert {j for j, _ in plan.spans} == set(range(5))


def test_a_fault_in_a_tile_of_fc1_reaches_the_logits_as_on_the_chip(plan, backend) -> None:
    """An SDC from an accumulator upset in a tile of fc1: the model backend's verdict equals
    what the chip model gives when that job runs with the fault and fc2 then runs on the
    chip as well (no reference arithmetic in the check)."""
    w = plan.workload
    stratum = plan.stratum("accumulator/sbu")
    found = None
    for index in range(400):
        inj = plan.injection(stratum, index)
        if inj.job in (1, 2, 3):
            verdict = backend.run(inj)
            if verdict.outcome is Outcome.SDC:
                found = inj, verdict
                break
    assert found is not None, "no SDC among 400 accumulator upsets in fc1"
    inj, verdict = found
    job = w.jobs[inj.job]
    chip = Accelerator(**plan.build.options())
    chip.write_reg(Reg.SCRUB_PERIOD, 0)
    place = chip.load_job(**job.job_args())
    site = model_site(plan.sitemap.entry(inj.entry), inj.bit)
    assert not chip.run([(JobPoint(inj.tile, inj.phase, inj.cycle), site)])
    m, _, n = job.dims
    block = chip.unpack_c(chip.dump(place.c_addr, place.c_words), m, n, job.out_int32)
    assert not np.array_equal(block, w.job_golden(inj.job))
    fc1 = np.concatenate([block if j == inj.job else w.job_golden(j) for j in (1, 2, 3)], axis=1)
    fc2 = w.jobs[4]
    logits, err = Accelerator(**plan.build.options()).run_gemm(
        fc1, fc2.b, fc2.bias, relu=fc2.relu, shift=fc2.shift, out_int32=fc2.out_int32
    )
    assert not err
    assert np.array_equal(w.finish(inj.job, block), logits)
    changed = int(np.count_nonzero(np.argmax(logits, axis=1) != w.classes))
    assert verdict.changed == changed
    assert f"predicted class changed for {changed} of 2 images" in verdict.detail


def test_an_sdc_of_a_classifier_says_whether_a_predicted_class_changed() -> None:
    golden = np.array([[1, 9, 3], [7, 2, 0]], dtype=np.int32)
    classes = np.array([1, 0])
    same = golden.copy()
    same[0, 2] = 4  # logits wrong, every argmax kept
    assert classify(Observation(same), golden, classes=classes) == (
        Outcome.SDC, "1 of 6 outputs wrong, delivered as good; predicted class changed for 0 "
        "of 2 images", 0)  # fmt: skip
    flipped = golden.copy()
    flipped[1, 1] = 8
    v = classify(Observation(flipped), golden, classes=classes)
    assert (v.outcome, v.changed) == (Outcome.SDC, 1)
    assert classify(Observation(golden.copy()), golden, classes=classes).changed is None
    assert classify(Observation(flipped), golden).changed is None  # not a classifier


def test_a_network_campaign_reports_class_changing_sdcs_apart(tmp_path: Path) -> None:
    path = network_campaign(tmp_path, sites=["accumulator", "operand_memory"], injections=48,
                            environment=str(ENVIRONMENT))  # fmt: skip
    campaign = load_campaign(path)
    out = tmp_path / "out"
    run = run_campaign(campaign, out, workers=1)
    rows = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 48
    sdc = [r for r in rows if r["outcome"] == "sdc"]
    assert sdc and all(isinstance(r["changed"], int) for r in sdc)
    assert all("changed" not in r for r in rows if r["outcome"] != "sdc")
    a = analyse(run)
    for row in a["strata"]:
        mine = [r for r in sdc if r["stratum"] == row["stratum"]]
        assert row["counts"]["sdc"] == len(mine)
        assert row["counts"]["sdc_class"] == sum(1 for r in mine if r["changed"])
    orbit = a["builds"][0]["orbit"]
    assert 0 < orbit["sdc_class"]["per_year"] <= orbit["sdc"]["per_year"]
    paths = write_report(a, out)
    text = paths["md"].read_text()
    assert "class-changing SDC / device-year" in text
    assert "the ones that changed a predicted class" in text


def test_network_campaign_files_are_checked_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"stuck bit holds for a whole run"):
        load_campaign(network_campaign(tmp_path, faults=["sbu", "stuck_at"]))
    with pytest.raises(ConfigError, match=r"'workload.images': test images 359..360 asked for, "
                                          r"digits holds 360 \(0..359\)"):  # fmt: skip
        load_campaign(network_campaign(tmp_path, workload={
            "kind": "network", "path": str(DIGITS), "images": 2, "first": 359}))  # fmt: skip
    with pytest.raises(ConfigError, match=r"images"):
        load_campaign(network_campaign(tmp_path, workload={
            "kind": "network", "path": str(DIGITS), "images": 65}))  # fmt: skip
    with pytest.raises(ConfigError):
        load_campaign(network_campaign(tmp_path, workload={
            "kind": "network", "path": str(tmp_path / "nowhere")}))  # fmt: skip
    campaign = load_campaign(network_campaign(tmp_path))
    out = tmp_path / "link"
    with pytest.raises(CampaignError, match=r"several chip jobs.*use the model or RTL backend"):
        run_campaign(campaign, out, backend="link")
    assert not out.exists()


def test_hil_campaign_refuses_a_network_over_the_link_in_one_line(tmp_path: Path) -> None:
    done = hil("campaign", "run", str(network_campaign(tmp_path)), "--backend", "link",
               "--out", str(tmp_path / "o"))  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("hil campaign: ") and "use the model or RTL backend" in last
