"""What the conformance suite needs beyond the plugin's fixtures: each test starts with the
target in TEST mode, and tests that leave TEST mode need a key (ICD section 13)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from host.target import Target
from protocol.codes import Mode
from protocol.payloads import HkStructure, ParamId

CALM_THRESHOLD = 255
"""SAFE_MODE_THRESHOLD while tests cause anomalies on purpose: no autonomous SAFE."""


@pytest.fixture(autouse=True)
def target_in_test_mode(hil_target: Target, hil_key: tuple[int, bytes] | None) -> None:
    """Before each test (and before ``hil`` clears the history): mode TEST, and the
    anomalies earlier tests caused on purpose kept from sending the target to SAFE."""
    hk = hil_target.housekeeping(HkStructure.SYSTEM)
    if hk["mode"] != Mode.TEST:
        if hil_key is None:
            pytest.skip(f"target in mode {hk.show('mode')}: TEST needs a key (--hil-key)")
        hil_target.mode(Mode.TEST)
    if hk["anomalies"] and hil_target.get_parameter(ParamId.SAFE_MODE_THRESHOLD) < CALM_THRESHOLD:
        hil_target.set_parameter(ParamId.SAFE_MODE_THRESHOLD, CALM_THRESHOLD)


@pytest.fixture
def needs_key(hil_key: tuple[int, bytes] | None) -> tuple[int, bytes]:
    """The key that signs hazardous TCs; skips the test without one (mode changes need it)."""
    if hil_key is None:
        pytest.skip("leaving TEST mode needs a key to come back: give --hil-key ID:HEX")
    return hil_key


@pytest.fixture
def nominal(hil_target: Target, needs_key: tuple[int, bytes]) -> Iterator[Target]:
    """The target in NOMINAL for the test, back in TEST after it."""
    hil_target.mode(Mode.NOMINAL)
    try:
        yield hil_target
    finally:
        hil_target.mode(Mode.TEST)


@pytest.fixture
def clean_faults(hil_target: Target) -> Iterator[Target]:
    """Every active fault cleared after the test, whatever it injected."""
    try:
        yield hil_target
    finally:
        if hil_target.mode() != Mode.TEST:
            hil_target.mode(Mode.TEST)
        hil_target.clear_faults()
