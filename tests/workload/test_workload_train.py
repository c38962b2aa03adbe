"""``python -m workload.train digits`` makes a workload that loads and keeps its accuracy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workload import float_model
from workload.format import load_workload
from workload.reference import int8_accuracy

ROOT = Path(__file__).resolve().parents[2]


def test_training_writes_a_workload_whose_int8_accuracy_is_within_a_point(tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="workload.train needs scikit-learn (the dev extra)")
    out = tmp_path / "digits"
    run = subprocess.run(
        [sys.executable, "-m", "workload.train", "digits", "--out", str(out), "--seed", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "float accuracy" in run.stdout and str(out) in run.stdout
    made = load_workload(out)
    assert made.recorded is not None and made.recorded.seed == 3
    assert round(int8_accuracy(made), 4) == made.recorded.int8_accuracy
    assert round(float_model.float_accuracy(made), 4) == made.recorded.float_accuracy
    assert abs(made.recorded.int8_accuracy - made.recorded.float_accuracy) <= 0.01
    assert made.recorded.float_accuracy >= 0.95


def test_an_unknown_workload_name_is_refused(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "workload.train", "cifar", "--out", str(tmp_path / "x")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "invalid choice: 'cifar'" in run.stderr and "digits" in run.stderr
    assert not (tmp_path / "x").exists()
