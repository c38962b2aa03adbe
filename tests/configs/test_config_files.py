"""Every shipped config file loads, cites a source for each number, and describes a build
the chip model accepts; the schema's ranges are the model's."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_sim.accel import Accelerator
from testbed.config import (
    ARRAY_SIZES,
    ESTIMATE,
    INTERLEAVES,
    MAX_BANK_WORDS,
    BoardTarget,
    SimTarget,
    load_environment,
    load_target,
)

REPO = Path(__file__).resolve().parents[2]
TARGETS = sorted((REPO / "configs" / "targets").glob("*.yaml"))
ENVIRONMENTS = sorted((REPO / "configs" / "environments").glob("*.yaml"))


def test_the_shipped_set_is_complete() -> None:
    names = {p.stem for p in TARGETS} | {p.stem for p in ENVIRONMENTS}
    assert {"sim-protected", "sim-unprotected", "sim-n8", "board"} <= names
    assert {"leo-iss", "leo-sso", "geo", "spe-worst-week", "leo-iss-finfet", "geo-finfet"} <= names


@pytest.mark.parametrize("path", TARGETS, ids=lambda p: p.name)
def test_every_target_loads(path: Path) -> None:
    target = load_target(path)
    assert target.description
    if isinstance(target, SimTarget):
        chip = Accelerator(target.n, target.bank_words, target.interleave, target.ecc,
                           target.scrub, target.tmr)  # fmt: skip
        assert chip.spm_words == 2 * target.bank_words
    else:
        assert isinstance(target, BoardTarget) and target.port


def test_the_protected_and_unprotected_targets_differ_in_every_mitigation() -> None:
    on = load_target(REPO / "configs/targets/sim-protected.yaml")
    off = load_target(REPO / "configs/targets/sim-unprotected.yaml")
    assert isinstance(on, SimTarget) and isinstance(off, SimTarget)
    assert (on.ecc, on.scrub, on.tmr) == (True, True, True)
    assert (off.ecc, off.scrub, off.tmr) == (False, False, False)
    assert load_target(REPO / "configs/targets/sim-n8.yaml").n == 8


@pytest.mark.parametrize("path", ENVIRONMENTS, ids=lambda p: p.name)
def test_every_environment_number_has_a_source(path: Path) -> None:
    env = load_environment(path)
    numbers = env.numbers()
    assert len(numbers) >= 6
    for key, number in numbers.items():
        assert number.source.strip(), key
        # An estimate says so with the marker alone; anything else must read as a citation.
        assert number.source == ESTIMATE or len(number.source) > len(ESTIMATE), key
    assert env.multi_bit.clusters.source


FINFET = [p for p in ENVIRONMENTS if p.stem.endswith("-finfet")]


@pytest.mark.parametrize("path", FINFET, ids=lambda p: p.name)
def test_finfet_clusters_stay_within_three_bits_along_the_bit_line(path: Path) -> None:
    # Sakamoto et al., IEEE TNS 2025: at most 3 bits, along the bit line, in 16/12 nm FinFET.
    multi_bit = load_environment(path).multi_bit
    assert max(multi_bit.clusters.sizes) <= 3
    assert multi_bit.bit_line_share.value == 1.0
    assert "10.1109/TNS.2025.3544154" in multi_bit.bit_line_share.source
    assert "10.1109/TNS.2025.3544154" in multi_bit.clusters.note


def test_finfet_presets_see_fewer_upsets_than_planar_in_the_same_orbit() -> None:
    for orbit in ("leo-iss", "geo"):
        planar = load_environment(REPO / f"configs/environments/{orbit}.yaml")
        finfet = load_environment(REPO / f"configs/environments/{orbit}-finfet.yaml")
        assert finfet.sram_upsets_per_bit_day.value < planar.sram_upsets_per_bit_day.value
        assert finfet.saa == planar.saa


def test_low_earth_orbits_are_shaped_by_the_anomaly() -> None:
    for name in ("leo-iss", "leo-sso", "leo-iss-finfet"):
        saa = load_environment(REPO / f"configs/environments/{name}.yaml").saa
        assert saa is not None
        # The daily total equals the orbit average: f_t * inside + (1 - f_t) * outside = 1.
        f_t = saa.f_t.value
        assert f_t * saa.inside_factor + (1 - f_t) * saa.outside_factor == pytest.approx(1.0)
    for name in ("geo", "spe-worst-week", "geo-finfet"):
        assert load_environment(REPO / f"configs/environments/{name}.yaml").saa is None


@pytest.mark.parametrize("n", [1, 3, *ARRAY_SIZES, 32])
def test_array_sizes_are_those_the_model_builds(n: int) -> None:
    try:
        Accelerator(n=n)
        builds = True
    except ValueError:
        builds = False
    assert builds == (n in ARRAY_SIZES)


@pytest.mark.parametrize("interleave", [0, 3, *INTERLEAVES, 16])
def test_interleaves_are_those_the_model_builds(interleave: int) -> None:
    try:
        Accelerator(interleave=interleave)
        builds = True
    except ValueError:
        builds = False
    assert builds == (interleave in INTERLEAVES)


def test_the_largest_bank_is_the_models() -> None:
    Accelerator(n=2, bank_words=MAX_BANK_WORDS)
    with pytest.raises(ValueError):
        Accelerator(n=2, bank_words=2 * MAX_BANK_WORDS)
