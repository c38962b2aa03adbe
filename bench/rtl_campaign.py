"""The RTL in a campaign: injections per second on the chip's RTL under Icarus Verilog
(one simulation per worker serving every injection), for a 16 x 16 x 16 GEMM (int32
results) at N = 4 with every site class under single-bit upsets, with 1 and 2 workers;
where a run's time goes (back to the pre-job state, the job, the read-back), against
the simulator's own speed with no Python at all; and the model held to the RTL over the
large cross-check sample (``configs/campaigns/rtl-crosscheck.yaml``).

``python -m bench.rtl_campaign`` prints the figures; ``make bench`` writes them to
bench/results/rtl-campaign.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from campaign.plan import Plan
from campaign.rtl_backend import RtlBackend
from campaign.runner import run_campaign
from host.campaign.crosscheck import crosscheck
from testbed import rtl_sim
from testbed.config.campaign import load_campaign
from testbed.sitemap_builds import Build

REPO = Path(__file__).resolve().parents[1]
BUILD = "n4-bw1024-il1-ecc-scrub-tmr"
PER_STRATUM = 30
FREE_RUN_CYCLES = 200_000


def _campaign(tmp: Path) -> Path:
    doc = {
        "name": "bench-rtl",
        "target": str(REPO / "configs" / "targets" / "sim-rtl.yaml"),
        "builds": [BUILD], "backend": "rtl",
        "workload": {"kind": "gemm", "m": 16, "k": 16, "n": 16, "out_int32": True},
        "faults": ["sbu"], "injections": PER_STRATUM, "seed": 7,
    }  # fmt: skip
    path = tmp / "rtl.yaml"
    path.write_text(json.dumps(doc))
    return path


def free_running_cycles_per_s() -> float:
    """The simulator alone: ``scc_top`` clocked by a Verilog testbench, no Python."""
    build = Build.from_name(BUILD)
    out = rtl_sim.BUILD_ROOT / "free-run"
    out.mkdir(parents=True, exist_ok=True)
    vvp = out / "free_run.vvp"
    params = [f"-Pscc_free_run.{k}={v}" for k, v in build.hdl_parameters().items()]
    subprocess.run(["iverilog", "-g2012", "-o", str(vvp), "-s", "scc_free_run", *params,
                    *map(str, rtl_sim.sources())], check=True)  # fmt: skip
    started = time.perf_counter()
    subprocess.run(["vvp", "-n", str(vvp), f"+cycles={FREE_RUN_CYCLES}"], check=True,
                   capture_output=True)  # fmt: skip
    return FREE_RUN_CYCLES / (time.perf_counter() - started)


def _timed(path: Path, out: Path, workers: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    campaign = load_campaign(path)
    started = time.perf_counter()
    run = run_campaign(campaign, out, workers=workers)
    seconds = time.perf_counter() - started
    runs = sum(len(s.outcomes) for s in run.strata.values())
    return {"workers": workers, "runs": runs, "seconds": round(seconds, 2),
            "injections_per_s": round(runs / seconds, 2)}  # fmt: skip


def split(path: Path) -> dict:
    """Where the time of a run goes, on one simulation after its start."""
    campaign = load_campaign(path)
    plan = Plan(campaign, Build.from_name(BUILD))
    backend = RtlBackend(plan)
    try:
        stratum_runs = [(s, i) for s in plan.strata for i in range(min(10, s.population))]
        started = time.perf_counter()
        for s, i in stratum_runs:
            backend.run(plan.injection(s, i))
        wall = time.perf_counter() - started
        spent = backend.spent()
    finally:
        backend.close()
    runs = len(stratum_runs)
    return {"runs": runs, "seconds_per_run": round(wall / runs, 4),
            "cycles_per_run": round(spent["cycles"] / runs, 1),
            "seconds_per_run_by_part": {k: round(v / runs, 4) for k, v in spent["spent"].items()},
            }  # fmt: skip


def run() -> dict:
    """Measure; the figures."""
    tmp = Path(tempfile.mkdtemp(prefix="rtl-bench-"))
    try:
        path = _campaign(tmp)
        free = free_running_cycles_per_s()
        parts = split(path)
        one = _timed(path, tmp / "w1", 1)
        two = _timed(path, tmp / "w2", 2)
        check = crosscheck(load_campaign(REPO / "configs" / "campaigns" / "rtl-crosscheck.yaml"),
                           tmp / "crosscheck", chip="rtl", workers=2)  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    in_simulator = parts["cycles_per_run"] / free
    by_part = parts["seconds_per_run_by_part"]
    return {
        "simulator": "icarus",
        "workload": "16x16x16 GEMM, int32 out, at N = 4", "build": BUILD,
        "faults": "sbu in every site class, the campaign's stratified mix",
        "cores": len(os.sched_getaffinity(0)), "load_average": os.getloadavg()[0],
        "injections_per_s": two["injections_per_s"],
        "one_worker": one, "two_workers": two,
        "speedup_1_to_2_workers": round(two["injections_per_s"] / one["injections_per_s"], 2),
        "free_running_idle_cycles_per_s": round(free),
        "run": parts,
        "job_cycles_per_s": round(parts["cycles_per_run"] / by_part["job"]),
        "idle_speed_share_of_run": round(in_simulator / parts["seconds_per_run"], 3),
        "crosscheck": {"compared": check.compared, "agree": check.agree,
                       "differ": len(check.differ),
                       "rtl_only": dict(check.chip_only), "seconds": check.seconds},
    }  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
