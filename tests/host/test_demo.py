"""`make demo` end to end, small: two simulated chips on ptys, faults, a report."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter


def test_demo_classifies_faults_on_protected_and_unprotected_chips(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "host.demo", "--runs", "2", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((tmp_path / "demo.json").read_text())
    outcomes = Counter((r["fault"], r["outcome"]) for r in data["runs"])
    # SECDED corrects one flipped bit and refuses to deliver a result with two.
    assert outcomes[("SBU in an operand word (protected)", "corrected")] == 2
    assert outcomes[("2-bit MBU in an operand word (protected)", "detected")] == 2
    # TMR outvotes a flipped copy of a register the job uses.
    assert outcomes[("SBU in a control register (protected)", "corrected")] == 2
    # Without ECC the same two-bit upset reaches the result unnoticed (or is masked).
    unprotected = {
        o for (f, o) in outcomes if f == "2-bit MBU in an operand word (unprotected)"
    }
    assert unprotected <= {"sdc", "masked"} and "detected" not in unprotected
    # A hung accelerator is found by the job watchdog.
    assert outcomes[("SEFI of the accelerator (protected)", "hang")] == 2
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG"
    assert "| SBU in an operand word (protected) | 2 |" in (tmp_path / "demo.md").read_text()
