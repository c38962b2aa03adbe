"""The committed digits workload, shared by the workload tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from workload.format import Workload, load_workload

DIGITS = Path(__file__).resolve().parents[2] / "configs" / "workloads" / "digits"


@pytest.fixture(scope="session")
def digits_dir() -> Path:
    """The committed digits workload's directory."""
    return DIGITS


@pytest.fixture(scope="session")
def digits() -> Workload:
    """The committed digits workload, loaded once."""
    return load_workload(DIGITS)
