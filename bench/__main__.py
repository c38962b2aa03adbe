"""`make bench`: run every benchmark and write its figures to bench/results/*.json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from cocotb_tests.sim import run

RESULTS = Path(__file__).resolve().parent / "results"

#: (M, K, N, bias+ReLU) per job; 64 x 64 x 64 is the utilization target's shape.
SHAPES = [
    (8, 8, 8, False),
    (16, 16, 16, False),
    (32, 32, 32, False),
    (64, 64, 64, False),
    (64, 64, 64, True),
    (48, 64, 40, True),
    (33, 17, 45, True),
]

BUILDS = {"n8": {"N": 8, "BANK_WORDS": 1024}, "n4": {"N": 4, "BANK_WORDS": 2048}}


def chip() -> dict:
    """GEMM cycle counts and MAC utilization on the RTL, per build."""
    figures = {}
    for name, params in BUILDS.items():
        out = RESULTS / f"chip-{name}.json"
        os.environ["BENCH_SHAPES"] = json.dumps(SHAPES)
        os.environ["BENCH_OUT"] = str(out)
        run("scc_top", "bench.chip_gemm", params)
        figures[name] = json.loads(out.read_text())
    return figures


def main() -> int:
    RESULTS.mkdir(exist_ok=True)
    figures = chip()
    (RESULTS / "chip.json").write_text(json.dumps(figures, indent=2))
    for name, fig in figures.items():
        print(f"chip {name} (N={fig['array_n']}):")
        for job in fig["jobs"]:
            print(
                f"  {job['m']:3d} x {job['k']:3d} x {job['n']:3d}"
                f"{' +bias/relu' if job['bias_relu'] else '           '}"
                f"  {job['cycles']:6d} cycles  utilization {job['mac_utilization']:.3f}"
                f"  {job['sim_cycles_per_s']:7d} sim cycles/s"
            )
    from bench import (
        campaign_bench,
        infer_bench,
        link_bench,
        link_dead_target,
        link_flood,
        link_goodput,
        link_reliability,
        model_injection,
        rtl_campaign,
    )

    for name, bench in (
        ("model-injection", model_injection),
        ("campaign", campaign_bench),
        ("rtl-campaign", rtl_campaign),
        ("link", link_bench),
        ("link-goodput", link_goodput),
        ("link-reliability", link_reliability),
        ("link-dead-target", link_dead_target),
        ("link-flood", link_flood),
        ("infer", infer_bench),
    ):
        figures = bench.run()
        (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2))
        print(f"{name}:", json.dumps(figures))
    print(f"figures written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
