"""The conformance suite, whole, against the flight software on the chip's RTL.

The suite's pytest plugin starts one target per session, so the RTL's run is a session
of its own: ``pytest tests/conformance --hil-backend rtl`` in a child process, whose
outcome and report are this test's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "results"


def test_the_conformance_suite_passes_against_the_rtl_chip() -> None:
    RESULTS.mkdir(exist_ok=True)
    report = RESULTS / "conformance-rtl.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/conformance", "--hil-backend", "rtl",
         "-q", "-p", "no:cacheprovider", "-p", "no:xdist", f"--junitxml={report}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    tail = "\n".join((run.stdout + run.stderr).strip().splitlines()[-40:])
    assert run.returncode == 0, f"conformance on the RTL chip failed:\n{tail}"
    assert " passed" in tail and " failed" not in tail, tail
