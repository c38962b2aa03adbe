"""`make demo` end to end, small: a campaign on the model, the link check, the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hil_process import REPO

from testbed.config.campaign import load_campaign

DEMO = REPO / "configs" / "campaigns" / "demo.yaml"
NETWORK = REPO / "configs" / "campaigns" / "digits.yaml"


def test_demo_campaign_file_is_the_bare_and_the_protected_chip_in_orbit() -> None:
    c = load_campaign(DEMO)
    builds = c.build_list()
    assert [b.ecc or b.scrub or b.tmr for b in builds] == [False, True]
    assert builds[1].ecc and builds[1].scrub and builds[1].tmr and builds[1].interleave == 4
    assert c.environment_config is not None and c.precision is not None


def test_demo_runs_a_campaign_and_checks_it_over_the_link(tmp_path: Path) -> None:
    doc = load_campaign(DEMO).model_dump(mode="json")
    doc.update(target=str(REPO / "configs" / "targets" / "sim-protected.yaml"),
               environment=str(REPO / "configs" / "environments" / "leo-iss.yaml"),
               sites=["operand_memory", "accumulator", "configuration_register"],
               precision=None, injections=4,
               soak={"days": 10, "acceleration": 100, "scrub_periods": [50000]})  # fmt: skip
    small = tmp_path / "demo.yaml"
    small.write_text(json.dumps({k: v for k, v in doc.items() if v is not None}))
    net = load_campaign(NETWORK).model_dump(mode="json")
    net.update(target=doc["target"], environment=doc["environment"],
               workload={"kind": "network", "path": str(REPO / "configs" / "workloads" / "digits"),
                         "images": 1},
               builds=net["builds"][::2], sites=["accumulator"], precision=None, injections=8,
               soak={"days": 0.003, "acceleration": 4e7, "duty": 1e-4})  # fmt: skip
    small_net = tmp_path / "digits.yaml"
    small_net.write_text(json.dumps({k: v for k, v in net.items() if v is not None}))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "host.demo", "--campaign", str(small), "--out", str(out),
         "--workers", "2", "--over-link", "2", "--network", str(small_net)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    # The first sentence printed, and the report's, is the two chips' silent-error rates.
    first = proc.stdout.strip().splitlines()[0]
    assert first.startswith("In ISS-like LEO")
    assert "silent data corruptions per device-year" in first
    assert "bare chip" in first and "SECDED + scrub + TMR, interleave 4:" in first
    report = json.loads((out / "report.json").read_text())
    check = report["link_check"]
    # 2 builds: 3 classes under SBU, operand memory under MBU, 2 register classes under SET.
    assert check["runs"] == 2 * 2 * 6 and check["differ"] == []
    md = (out / "report.md").read_text()
    assert md.split("\n\n")[1].startswith("In ISS-like LEO")
    html = (out / "report.html").read_text()
    assert html.count("<svg") >= 2 and "ended as on the model in 24 of 24 runs" in html
    assert (out / "report-outcomes.png").read_bytes()[:4] == b"\x89PNG"
    # Each build flew the orbit too: rates over mission time.
    assert [s["build"] for s in report["soaks"]] == [b["build"] for b in report["builds"]]
    assert "report-soak.png" in md and "Flown 10 days in leo-iss" in md
    # Then the classifier: its SDCs by whether a class changed, its accuracy over the mission.
    printed = proc.stdout
    assert "the ones that changed a predicted class, per device-year: bare:" in printed
    assert "bare classified digits test images with" in printed
    assert "SECDED + scrub + TMR, interleave 4 classified digits test images with" in printed
    net_report = json.loads((out / "digits" / "report.json").read_text())
    assert [s["network"]["name"] for s in net_report["soaks"]] == ["digits", "digits"]
    assert (out / "digits" / "report-accuracy.png").read_bytes()[:4] == b"\x89PNG"
