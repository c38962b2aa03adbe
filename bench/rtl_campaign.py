"""The RTL in a campaign: injections per second on the chip's RTL (one simulation per
worker serving every injection), under Icarus Verilog and under Verilator, for a
16 x 16 x 16 GEMM (int32 results) at N = 4 with every site class under single-bit
upsets, with 1 and 2 workers, and Verilator's speed-up; where a run's time goes (back to
the pre-job state, the job, the read-back), against Icarus's own speed with no Python at
all; and the model held to the RTL over the large cross-check sample
(``configs/campaigns/rtl-crosscheck.yaml``), on each simulator.

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

from bench.campaign_bench import timed
from campaign.plan import Plan
from campaign.rtl_backend import RtlBackend
from host.campaign.crosscheck import crosscheck
from testbed import rtl_sim
from testbed.config.campaign import load_campaign
from testbed.sitemap_builds import Build

REPO = Path(__file__).resolve().parents[1]
BUILD = "n4-bw1024-il1-ecc-scrub-tmr"
PER_STRATUM = 30
FREE_RUN_CYCLES = 200_000


def _campaign(tmp: Path, simulator: str = "icarus") -> Path:
    doc = {
        "name": "bench-rtl",
        "target": str(REPO / "configs" / "targets" / "sim-rtl.yaml"),
        "builds": [BUILD], "backend": "rtl", "simulator": simulator,
        "workload": {"kind": "gemm", "m": 16, "k": 16, "n": 16, "out_int32": True},
        "faults": ["sbu"], "injections": PER_STRATUM, "seed": 7,
    }  # fmt: skip
    path = tmp / f"rtl-{simulator}.yaml"
    path.write_text(json.dumps(doc))
    return path


def free_running_cycles_per_s() -> float:
    """The simulator alone: ``scc_top`` clocked by a Verilog testbench, no Python."""
    build = Build.from_name(BUILD)
    out = rtl_sim.BUILD_ROOT / "free-run"
    out.mkdir(parents=True, exist_ok=True)
    vvp = out / "free_run.vvp"
    params = [f"-Pscc_free_run.{k}={v}" for k, v in build.hdl_parameters().items()]
    tb = Path(__file__).resolve().parent / "verilog" / "scc_free_run.v"
    subprocess.run(["iverilog", "-g2012", "-o", str(vvp), "-s", "scc_free_run", *params,
                    str(tb), *map(str, rtl_sim.sources())], check=True)  # fmt: skip
    started = time.perf_counter()
    subprocess.run(["vvp", "-n", str(vvp), f"+cycles={FREE_RUN_CYCLES}"], check=True,
                   capture_output=True)  # fmt: skip
    return FREE_RUN_CYCLES / (time.perf_counter() - started)


def split(path: Path) -> dict:
    """Where the time of a run goes, on one simulation after its start."""
    campaign = load_campaign(path)
    plan = Plan(campaign, Build.from_name(BUILD))
    backend = RtlBackend(plan, campaign.simulator)
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


def _on(simulator: str, tmp: Path) -> dict:
    path = _campaign(tmp, simulator)
    parts = split(path)  # builds the simulator's model of the chip first
    one = timed(path, tmp / f"{simulator}-w1", 1)
    two = timed(path, tmp / f"{simulator}-w2", 2)
    xc = load_campaign(REPO / "configs" / "campaigns" / "rtl-crosscheck.yaml")
    check = crosscheck(xc.model_copy(update={"simulator": simulator}), tmp / f"xc-{simulator}",
                       chip="rtl", workers=2)  # fmt: skip
    by_part = parts["seconds_per_run_by_part"]
    return {
        "injections_per_s": two["injections_per_s"], "one_worker": one, "two_workers": two,
        "speedup_1_to_2_workers": round(two["injections_per_s"] / one["injections_per_s"], 2),
        "run": parts,
        "job_cycles_per_s": round(parts["cycles_per_run"] / by_part["job"]),
        "crosscheck": {"compared": check.compared, "agree": check.agree,
                       "differ": len(check.differ), "rtl_only": dict(check.chip_only),
                       "seconds": check.seconds},
    }  # fmt: skip


def run() -> dict:
    """Measure; the figures."""
    tmp = Path(tempfile.mkdtemp(prefix="rtl-bench-"))
    try:
        free = free_running_cycles_per_s()
        icarus = _on("icarus", tmp)
        verilator = _on("verilator", tmp)
        network = _network_crosscheck(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    run_s = icarus["run"]["seconds_per_run"]
    return {
        "workload": "16x16x16 GEMM, int32 out, at N = 4", "build": BUILD,
        "faults": "sbu in every site class, the campaign's stratified mix",
        "cores": len(os.sched_getaffinity(0)), "load_average": os.getloadavg()[0],
        "injections_per_s": {"icarus": icarus["injections_per_s"],
                             "verilator": verilator["injections_per_s"]},
        "verilator_speedup": round(verilator["injections_per_s"] / icarus["injections_per_s"], 2),
        "icarus_free_running_idle_cycles_per_s": round(free),
        "icarus_idle_speed_share_of_run": round(icarus["run"]["cycles_per_run"] / free / run_s, 3),
        "icarus": icarus, "verilator": verilator, "digits_crosscheck": network,
    }  # fmt: skip


def _network_crosscheck(tmp: Path) -> dict:
    """The digits classifier's injections on the model and on the RTL (Verilator), the
    sample of ``configs/campaigns/digits-crosscheck.yaml``: outcome classes and changed
    predictions compared one by one."""
    xc = load_campaign(REPO / "configs" / "campaigns" / "digits-crosscheck.yaml")
    check = crosscheck(xc.model_copy(update={"simulator": "verilator"}), tmp / "xc-digits",
                       chip="rtl", workers=2)  # fmt: skip
    return {"workload": xc.workload.describe(), "builds": xc.builds, "runs": check.runs,
            "compared": check.compared, "agree": check.agree, "differ": len(check.differ),
            "rtl_only": dict(check.chip_only), "seconds": check.seconds}  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
