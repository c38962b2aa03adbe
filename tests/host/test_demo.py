"""`make demo` end to end, small: two simulated chips on ptys, faults, a report."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import numpy as np

from firmware_sim.accel import Accelerator, JobPoint, Phase, RegCopy
from firmware_sim.accel.regs import Reg, Status
from firmware_sim.accel.sitemap_sites import model_site, transient_site
from host.demo import ChipPlan, plans
from protocol.codes import FaultKind
from protocol.payloads import FaultRecord, FaultSiteClass, JobPhase

RUNS, SEED = 2, 2026
#: Rows whose outcome the test takes from the model run directly, not from typed numbers.
MODEL_ROWS = ("SBU in the sequencer state", "SET in a control or sequencer register",
              "SBU in a pipeline register", "SBU in a control register")  # fmt: skip


def model_outcome(plan: ChipPlan, record: FaultRecord) -> str:
    """The outcome class the bit-exact model gives the demo's layer with this one fault,
    on a fresh chip of the plan's build."""
    chip = plan.chip
    model = Accelerator(4, ecc=chip.ecc, scrub=chip.ecc, tmr=chip.tmr)
    golden, _ = model.run_gemm(**plan.layer)
    if record.site_class == FaultSiteClass.SITE:
        entry, bit = chip.sitemap.entry(str(record.site[0])), int(record.site[1])
        site = (transient_site(entry, bit, chip.tmr) if record.kind == FaultKind.SET
                else model_site(entry, bit))  # fmt: skip
    else:
        offset, copy, bit = record.site
        site = RegCopy(Reg(offset).name, copy, bit)
    tile, phase, cycle = record.point
    when = JobPoint(tile, Phase[JobPhase(phase).name], cycle)
    model = Accelerator(4, ecc=chip.ecc, scrub=chip.ecc, tmr=chip.tmr)
    c, _ = model.run_gemm(**plan.layer, faults=[(when, site)])
    if model.hung:
        return "hang"
    status = model.read_reg(Reg.STATUS)
    if status & Status.ERROR or not status & Status.DONE:
        return "detected"
    if not np.array_equal(c, golden):
        return "sdc"
    acted = model.read_reg(Reg.TMR_MISMATCH) or model.read_reg(Reg.ECC_CORR)
    return "corrected" if acted else "masked"


def test_demo_classifies_faults_on_protected_and_unprotected_chips(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "host.demo", "--runs", str(RUNS), "--seed", str(SEED),
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((tmp_path / "demo.json").read_text())
    outcomes = Counter((r["fault"], r["outcome"]) for r in data["runs"])
    # SECDED corrects one flipped bit and refuses to deliver a result with two.
    assert outcomes[("SBU in an operand word [SECDED, protected build]", "corrected")] == 2
    assert outcomes[("2-bit MBU in an operand word [SECDED, protected build]", "detected")] == 2
    # TMR outvotes a flipped copy of a register the job uses, inside the job.
    assert outcomes[("SBU in a control register [TMR, protected build]", "corrected")] == 2
    # Nothing protects the PE registers, on either build.
    assert sum(n for (f, _), n in outcomes.items()
               if f == "SBU in an accumulator [none, protected build]") == 2  # fmt: skip
    # Without ECC the same two-bit upset reaches the result unnoticed (or is masked).
    unprotected = {
        o for (f, o) in outcomes if f == "2-bit MBU in an operand word [none, unprotected build]"
    }
    assert unprotected <= {"sdc", "masked"} and "detected" not in unprotected
    # Rows the model decides: control registers inside the job (predicted on both builds
    # now), the sequencer state, a SET before the TMR copies, a pipeline register.
    faults = [(p, f, r) for p in plans(SEED, RUNS) for f, r in p.faults]
    assert len(faults) == len(data["runs"])
    checked = Counter()
    for (plan, fault, record), run in zip(faults, data["runs"], strict=True):
        if fault in MODEL_ROWS:
            assert run["outcome"] == model_outcome(plan, record), (run, record)
            checked[fault] += 1
    assert checked == Counter({row: 2 * RUNS for row in MODEL_ROWS})
    labels = {r["fault"] for r in data["runs"]}
    assert "SET in a control or sequencer register [TMR (not against SET), protected build]" \
        in labels  # fmt: skip
    assert "SBU in the sequencer state [TMR, protected build]" in labels
    assert "SBU in a pipeline register [none, protected build]" in labels
    assert "SBU in a control register [none, unprotected build]" in labels
    # A hung accelerator is found by the job watchdog.
    assert outcomes[("SEFI of the accelerator [none, protected build]", "hang")] == 2
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "demo.md").read_text()
    assert "| SBU in an operand word [SECDED, protected build] | 2 |" in md
    assert "| not injected |" in md and "never counted as masked" in md
