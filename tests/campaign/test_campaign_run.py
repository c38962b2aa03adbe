"""Campaigns end to end: strata and sample sizes, outcomes against known answers, the same
result from 1 and 2 workers, from a Dask cluster, after a kill and --resume, and over
the serial link."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hil_process import ENV, HIL, REPO, HilSim, hil

from campaign.analysis import analyse
from campaign.plan import Plan
from campaign.report import write_report
from campaign.runner import ROUND, CampaignError, planned, run_campaign
from campaign.stats import narrow_enough, quantile, sample_size, wilson
from testbed.config import ConfigError
from testbed.config.campaign import load_campaign

TARGETS = REPO / "configs" / "targets"
ENVIRONMENTS = REPO / "configs" / "environments"
BARE = "n4-bw1024-il1-noecc-noscrub-notmr"
PROTECTED = "n4-bw1024-il1-ecc-scrub-tmr"


def campaign_file(tmp_path: Path, name: str = "t", **keys: object) -> Path:
    """A campaign file in ``tmp_path``: a small GEMM on the simulated target, with ``keys``."""
    doc = {
        "name": name,
        "target": str(TARGETS / "sim-protected.yaml"),
        "workload": {"kind": "gemm", "m": 8, "k": 8, "n": 8, "bias": True, "relu": True,
                     "shift": 7},
        "seed": 3,
    }  # fmt: skip
    doc.update(keys)
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


def outcomes(out: Path) -> dict[tuple, str]:
    rows = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    return {(r["build"], r["stratum"], r["index"]): r["outcome"] for r in rows}


def test_strata_follow_the_site_map_and_the_kinds(tmp_path: Path) -> None:
    c = load_campaign(campaign_file(tmp_path, builds=[PROTECTED], faults=["sbu", "mbu", "set"],
                                    injections=5))  # fmt: skip
    plan = Plan(c, c.build_list()[0])
    keys = {s.key for s in plan.strata}
    bits = plan.sitemap.bits_by_class()
    assert {f"{cls.value}/sbu" for cls in bits} <= keys
    # A multi-bit upset hits scratchpad cells only; a SET once per TMR register.
    assert {k for k in keys if k.endswith("/mbu")} == {"operand_memory/mbu"}
    sbu = {s.site_class: s for s in plan.strata if s.kind == "sbu"}
    sets = {s.site_class: s for s in plan.strata if s.kind == "set"}
    for cls, s in sbu.items():
        assert s.bits == bits[cls]
        assert s.population == s.bits * plan.points
    cfg = sbu[next(c for c in sets if c.value == "configuration_register")]
    assert sets[cfg.site_class].bits * 3 == cfg.bits
    # Every point lies in the job: BIAS, STREAM and FLUSH cycles, CHECK and DONE excluded.
    assert plan.points == sum(span.cycles for _, span in plan.spans)


def test_injections_do_not_depend_on_order_and_do_not_repeat(tmp_path: Path) -> None:
    c = load_campaign(campaign_file(tmp_path, builds=[BARE], injections=5, sites=["reset"]))
    plan = Plan(c, c.build_list()[0])
    s = plan.stratum("reset/sbu")
    first = [plan.injection(s, i) for i in range(s.population)]
    again = Plan(c, c.build_list()[0])
    assert [again.injection(s, i) for i in reversed(range(s.population))] == first[::-1]
    # A small population is sampled without replacement: all of it, each fault once.
    assert len({(i.entry, i.bit, i.tile, i.phase, i.cycle) for i in first}) == s.population
    with pytest.raises(IndexError):
        plan.injection(s, s.population)


def test_sample_sizes_are_leveugle_capped_by_the_population(tmp_path: Path) -> None:
    c = load_campaign(campaign_file(tmp_path, builds=[PROTECTED],
                                    precision={"margin": 0.05, "confidence": 0.99}))  # fmt: skip
    plan = Plan(c, c.build_list()[0])
    for s in plan.strata:
        assert planned(c, s) == min(s.population, sample_size(s.population, 0.05, 0.99))
    small = plan.stratum("reset/sbu")
    assert planned(c, small) == sample_size(small.population, 0.05, 0.99) < small.population


def test_single_upsets_in_secded_memory_are_never_wrong(tmp_path: Path) -> None:
    path = campaign_file(tmp_path, builds=[PROTECTED], sites=["operand_memory"], injections=150)
    run = run_campaign(load_campaign(path), tmp_path / "out")
    (row,) = analyse(run)["strata"]
    assert row["injected"] == 150
    harmless = row["counts"]["masked"] + row["counts"]["corrected"]
    assert harmless == 150, row["counts"]
    assert wilson(harmless, 150)[2] == 1.0
    # Upsets in operand words read after they landed were corrected, and counted.
    assert row["counts"]["corrected"] > 0


def test_a_stuck_bit_of_a_bare_read_row_always_fails(tmp_path: Path) -> None:
    # Every operand word passes its bank's read row: a data bit held at 0 or 1 there
    # reaches the result in every job on the bare build, so its AVF is 1. (The row's
    # valid and slot flags are in the same class; they are left out here.)
    path = campaign_file(tmp_path, builds=[BARE], sites=["memory_read"], faults=["stuck_at"],
                         injections=40)  # fmt: skip
    run_campaign(load_campaign(path), tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    data = [r["outcome"] for r in rows if r["entry"].endswith(".rrow_q")]
    assert len(data) >= 30
    assert data == ["sdc"] * len(data)
    assert wilson(len(data), len(data))[2] == 1.0  # the interval holds AVF 1


def test_early_stop_ends_at_the_first_narrow_checkpoint(tmp_path: Path) -> None:
    path = campaign_file(tmp_path, builds=[BARE], sites=["result_register"],
                         precision={"margin": 0.1, "early_stop": True})  # fmt: skip
    run = run_campaign(load_campaign(path), tmp_path / "out")
    (sr,) = run.strata.values()
    assert sr.rule == "margin" and sr.stop % ROUND == 0 and sr.stop < sr.planned
    z = quantile(0.95)

    def narrow(end: int) -> bool:
        counts = sr.prefix_counts(end)
        shares = {o: counts[o] for o in ("masked", "corrected", "detected", "sdc", "hang")}
        return narrow_enough(shares, end - counts["not_injected"], 0.1, z)

    assert narrow(sr.stop)
    assert sr.stop == ROUND or not narrow(sr.stop - ROUND)


def test_one_worker_and_two_give_the_same_runs(tmp_path: Path) -> None:
    path = campaign_file(tmp_path, builds=[BARE, PROTECTED], injections=6,
                         environment=str(ENVIRONMENTS / "leo-iss.yaml"))  # fmt: skip
    c = load_campaign(path)
    one = run_campaign(c, tmp_path / "one", workers=1)
    two = run_campaign(c, tmp_path / "two", workers=2)
    assert outcomes(tmp_path / "one") == outcomes(tmp_path / "two")
    a, b = analyse(one), analyse(two)
    assert a["strata"] == b["strata"] and a["builds"] == b["builds"]
    # A rate per device-year for each build, and the protected chip's below the bare one's.
    bare, protected = (x["orbit"]["sdc"]["per_year"] for x in a["builds"])
    assert protected < bare
    paths = write_report(a, tmp_path / "one")
    text = paths["md"].read_text()
    assert "silent data corruptions per device-year" in text.split("\n\n")[1]
    assert "<svg" in paths["html"].read_text()


def _run_until_killed(path: Path, out: Path, workers: int, lines: int) -> None:
    proc = subprocess.Popen([HIL, "campaign", "run", str(path), "--out", str(out), "--workers",
                             str(workers)], cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    runs = out / "runs.jsonl"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if runs.exists() and len(runs.read_bytes().splitlines()) >= lines:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the campaign ended before it was killed"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_killed_campaign_resumed_ends_as_an_uninterrupted_one(
    tmp_path: Path, workers: int
) -> None:
    path = campaign_file(tmp_path, builds=[BARE], injections=12, sites=["accumulator",
                         "pipeline_register", "sequencer_state"])  # fmt: skip
    whole = tmp_path / "whole"
    run_campaign(load_campaign(path), whole, workers=1)
    cut = tmp_path / "cut"
    _run_until_killed(path, cut, workers, lines=14)
    done = len(outcomes(cut))
    assert 0 < done < len(outcomes(whole))
    refused = hil("campaign", "run", str(path), "--out", str(cut))
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = hil("campaign", "run", str(path), "--out", str(cut), "--workers", str(workers),
                  "--resume", timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert outcomes(cut) == outcomes(whole)
    a = json.loads((cut / "report.json").read_text())
    b = analyse(run_campaign(load_campaign(path), whole, resume=True))
    assert a["strata"] == json.loads(json.dumps(b["strata"]))


def test_a_dask_cluster_gives_the_same_runs(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    path = campaign_file(tmp_path, builds=[BARE], injections=8,
                         sites=["accumulator", "configuration_register"])  # fmt: skip
    c = load_campaign(path)
    run_campaign(c, tmp_path / "local", workers=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:  # fmt: skip
        run_campaign(c, tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert outcomes(tmp_path / "dask") == outcomes(tmp_path / "local")


def test_the_link_and_the_model_give_results_of_the_same_shape(tmp_path: Path) -> None:
    path = campaign_file(tmp_path, builds=[BARE], injections=3, backend="link",
                         sites=["operand_memory", "accumulator", "configuration_register",
                                "pipeline_register"])  # fmt: skip
    c = load_campaign(path)
    link = analyse(run_campaign(c, tmp_path / "link"))
    model = analyse(run_campaign(c, tmp_path / "model", backend="model"))
    assert link["backend"] == "link" and model["backend"] == "model"
    assert [r["stratum"] for r in link["strata"]] == [r["stratum"] for r in model["strata"]]
    assert link["strata"][0].keys() == model["strata"][0].keys()
    # Both run the same injections on the same chip, so their outcomes agree.
    assert outcomes(tmp_path / "link") == outcomes(tmp_path / "model")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"injections": 5, "precision": {"margin": 0.05}}, "exactly one of 'injections'"),
        ({"injectoins": 5}, "did you mean 'injections'"),
        ({"injections": 5, "faults": ["seu"]}, "'faults[0]'"),
        ({"injections": 5, "sites": ["alu"]}, "site class"),
        ({"injections": 5, "builds": ["n4-bw1000"]}, "list of build names"),
        ({"injections": 0}, "'injections'"),
        ({"injections": 5, "soak": {"days": 1}}, "needs an 'environment'"),
    ],
)
def test_a_bad_campaign_file_is_one_line_naming_the_key(
    tmp_path: Path, keys: dict, message: str
) -> None:
    path = campaign_file(tmp_path, **keys)
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_hil_campaign_run_says_what_is_wrong_with_a_file_in_one_line(tmp_path: Path) -> None:
    path = campaign_file(tmp_path, injectoins=5)
    done = hil("campaign", "run", str(path), "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "t.yaml:1: 'injectoins': unknown key; did you mean 'injections'" in done.stderr
    assert "Traceback" not in done.stderr


def test_resume_refuses_another_campaigns_directory(tmp_path: Path) -> None:
    first = campaign_file(tmp_path, "a", builds=[BARE], injections=2, sites=["reset"])
    run_campaign(load_campaign(first), tmp_path / "out")
    other = campaign_file(tmp_path, "b", builds=[BARE], injections=3, sites=["reset"])
    with pytest.raises(CampaignError, match="another campaign"):
        run_campaign(load_campaign(other), tmp_path / "out", resume=True)


def test_any_run_replays_from_its_record(tmp_path: Path) -> None:
    path = campaign_file(tmp_path, builds=[BARE], injections=4,
                         sites=["accumulator", "sequencer_state"])  # fmt: skip
    run_campaign(load_campaign(path), tmp_path / "out")
    for (build, stratum, index), outcome in list(outcomes(tmp_path / "out").items())[::3]:
        done = hil("campaign", "replay", str(tmp_path / "out"), f"{build}/{stratum}/{index}")
        assert done.returncode == 0, done.stderr
        record, verdict = done.stdout.splitlines()
        assert json.loads(record)["index"] == index
        assert verdict.split(":")[0] == outcome


def test_a_campaign_with_a_soak_reports_rates_over_mission_time(tmp_path: Path) -> None:
    soak = {"days": 20, "acceleration": 2000, "scrub_periods": [50000, 500]}
    path = campaign_file(tmp_path, builds=[BARE, PROTECTED], injections=3, soak=soak,
                         sites=["operand_memory"],
                         environment=str(ENVIRONMENTS / "leo-iss.yaml"))  # fmt: skip
    out = tmp_path / "out"
    done = hil("campaign", "run", str(path), "--out", str(out), "--workers", "1", timeout=300)
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in out.glob("soak-*.json"))
    assert files == sorted(f"soak-{b}-p{p}.json" for b in (BARE, PROTECTED) for p in (50000, 500))
    report = json.loads((out / "report.json").read_text())
    soaks = {(s["build"], s["scrub_period"]): s for s in report["soaks"]}
    # Upsets landed on both builds; only the protected one finds uncorrectable words, and
    # only it has a formula to set them beside.
    assert all(sum(s["landed"].values()) > 0 for s in soaks.values())
    assert soaks[(BARE, 500)]["analytic_uncorrectable_per_day"] is None
    assert soaks[(PROTECTED, 500)]["analytic_uncorrectable_per_day"] > 0
    assert soaks[(BARE, 500)]["rates"]["uncorrectable"]["count"] == 0
    md = (out / "report.md").read_text()
    assert "## Mission soak" in md and "Flown 20 days in leo-iss" in md
    assert "report-soak.png" in md
    # The report again from the directory: the soaks are read, not flown again.
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("soak-*.json")}
    again = hil("campaign", "report", str(out))
    assert again.returncode == 0, again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("soak-*.json")} == before
    assert json.loads((out / "report.json").read_text())["soaks"] == report["soaks"]


def test_a_campaign_runs_on_a_chip_at_a_serial_port(tmp_path: Path) -> None:
    # `hil sim` stands for a board: a chip behind a serial port that the campaign did not
    # start. Its outcomes equal the model's, injection by injection.
    path = campaign_file(tmp_path, builds=[PROTECTED], injections=3,
                         sites=["operand_memory", "configuration_register"])  # fmt: skip
    run_campaign(load_campaign(path), tmp_path / "model")
    sim = HilSim("--mode", "test")
    try:
        done = hil("campaign", "run", str(path), "--out", str(tmp_path / "board"), "--port",
                   sim.port, timeout=120)  # fmt: skip
    finally:
        sim.stop()
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "board" / "campaign.json").read_text())
    assert meta["backend"] == "link"
    assert outcomes(tmp_path / "board") == outcomes(tmp_path / "model")
    assert meta["port"] == sim.port
    again = hil("campaign", "report", str(tmp_path / "board"))
    assert again.returncode == 0, again.stderr
    refused = hil("campaign", "run", str(path), "--out", str(tmp_path / "x"), "--port", "nope")
    assert refused.returncode == 2 and "--port 'nope': must be a device path" in refused.stderr


def test_a_set_on_a_net_several_registers_load_is_one_site_of_its_stratum(tmp_path: Path) -> None:
    c = load_campaign(campaign_file(tmp_path, builds=[BARE], faults=["sbu", "set"],
                                    sites=["pipeline_register"], injections=5))  # fmt: skip
    plan = Plan(c, c.build_list()[0])
    sbu, set_ = plan.stratum("pipeline_register/sbu"), plan.stratum("pipeline_register/set")
    others = {load for net in plan.sitemap.nets for load in net.loads[1:]}
    held = {load for load in others if any(e.name == load[0] for e in set_.entries)}
    assert len(held) == 2 * (plan.build.n - 1) > 0  # the skew chains' tag bits
    assert set_.bits == sbu.bits - len(held)
    # Every bit of the stratum is drawn once, and the loads behind a net's first never.
    located = [set_.locate(i) for i in range(set_.bits)]
    named = {(entry.name, bit) for entry, bit in located}
    assert len(named) == set_.bits and not named & held
    assert {(e.name, b) for e in sbu.entries for b in range(e.bits)} == named | held
