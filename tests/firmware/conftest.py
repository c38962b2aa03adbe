"""Fixtures of the flight software tests (the harness is in fw_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fw_harness import HARNESSES, KEY, KEY_ID, FirmwareProcess, Harness, PtyClient

from protocol.codes import Mode


@pytest.fixture(autouse=True)
def no_internal_errors() -> Iterator[None]:
    """Whatever a test does to the core, the flight software must not hit a bug."""
    HARNESSES.clear()
    yield
    for h in HARNESSES:
        bugs = [a.message for a in h.actions if "INTERNAL ERROR" in getattr(a, "message", "")]
        assert not bugs, "\n".join(bugs)
    HARNESSES.clear()


@pytest.fixture
def fsw() -> Harness:
    """Flight software booted in TEST mode at t = 0, in the sun."""
    return Harness()


@pytest.fixture
def nominal() -> Harness:
    return Harness(mode=Mode.NOMINAL)


@pytest.fixture(scope="module")
def firmware_process() -> Iterator[FirmwareProcess]:
    """One firmware process in TEST mode for the tests of a module."""
    fw = FirmwareProcess("--mode", "test", "--key", f"{KEY_ID}:{KEY.hex()}")
    try:
        yield fw
    finally:
        fw.close()


@pytest.fixture
def client(firmware_process: FirmwareProcess) -> PtyClient:
    """The module's firmware, with history cleared for this test."""
    c = firmware_process.client
    c.poll(0)
    c.history.clear()
    return c
