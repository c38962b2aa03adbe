"""Functional coverage databases belong to one pytest session: the main process clears
``results/fcov/`` when the session starts (not an xdist worker, which starts later and
would delete what the other workers' runs already wrote)."""

from __future__ import annotations

import shutil

import pytest

from cocotb_tests.fcov import FCOV_DIR


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):
        shutil.rmtree(FCOV_DIR, ignore_errors=True)
