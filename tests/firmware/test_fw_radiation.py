"""Upsets that arrive from an orbit: the arrival process against the rates of its
environment file, and the flight software landing them on the chip, its RAM and power.

Statistical bounds: a Poisson count with mean m is accepted within m +- 5 sqrt(m), a
binomial share of n draws with probability p within p +- 5 sqrt(p (1 - p) / n). Five
standard deviations: a correct process fails one of them about once in 1.7 million runs,
while a rate wrong by 5 % is caught at the sizes used here (about 30,000 upsets).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from firmware_sim.backend import Build, ModelBackend
from firmware_sim.core import FlightSoftware, FswConfig
from firmware_sim.radiation import ArrivalProcess, DeviceEvent, Upset, exposed_bits
from firmware_sim.ram import FirmwareRam
from protocol.codes import FaultKind, Mode
from testbed.config import Environment, load_environment
from testbed.config.environment import ESTIMATE, SECONDS_PER_DAY, Share

REPO = Path(__file__).resolve().parents[2]
SIGMAS = 5.0
DAY = SECONDS_PER_DAY
LEO = load_environment(REPO / "configs/environments/leo-iss.yaml")
GEO = load_environment(REPO / "configs/environments/geo.yaml")
BITS = {"sram": 1_000_000, "flipflop": 200_000}


def assert_poisson(observed: int, mean: float) -> None:
    assert abs(observed - mean) <= SIGMAS * math.sqrt(mean), (observed, mean)


def assert_binomial(hits: int, n: int, p: float) -> None:
    assert abs(hits / n - p) <= SIGMAS * math.sqrt(p * (1 - p) / n), (hits, n, p)


def environment(sram=0.0, flipflop=0.0, mbu=0.0, sizes=(2,), sefi=0.0, sel=0.0) -> Environment:
    """An environment with only the given rates (per bit-day or device-day)."""

    def n(value: float) -> dict:
        return {"value": value, "source": "estimate"}

    return Environment.model_validate({
        "name": "test", "description": "rates chosen by the test",
        "sram_upsets_per_bit_day": n(sram), "flipflop_upsets_per_bit_day": n(flipflop),
        "multi_bit": {"share": n(mbu), "clusters": {
            "sizes": list(sizes), "probabilities": [1 / len(sizes)] * len(sizes),
            "source": "estimate"}},
        "sefi_per_device_day": n(sefi), "sel_per_device_day": n(sel),
        "dose_krad_per_year": n(0.0),
    })  # fmt: skip


def upsets(arrivals: list) -> list[Upset]:
    return [a for a in arrivals if isinstance(a, Upset)]


# --- the arrival process -------------------------------------------------------------------


@pytest.mark.parametrize("env", [LEO, GEO], ids=["leo-iss", "geo"])
def test_upsets_over_a_day_match_rate_times_bits(env: Environment) -> None:
    acceleration = 1e6 if env is LEO else 6e6
    process = ArrivalProcess(env, BITS, acceleration, seed=11)
    counts = Counter(u.memory for u in upsets(process.advance(0.0, DAY)))
    rates = {"sram": env.sram_upsets_per_bit_day, "flipflop": env.flipflop_upsets_per_bit_day}
    for memory, bits in BITS.items():
        assert_poisson(counts[memory], rates[memory].value * bits * acceleration)


def test_the_anomaly_holds_its_share_of_upsets_and_of_time() -> None:
    saa = LEO.saa
    assert saa is not None
    process = ArrivalProcess(LEO, BITS, 1e6, seed=12)
    day = upsets(process.advance(0.0, DAY))
    inside = sum(process.in_saa(u.time) for u in day)
    assert_binomial(inside, len(day), saa.f_u.value)
    # A day holds a whole number of passes: its share of time is f_t within one pass.
    time_share = sum(process.in_saa(t + 0.5) for t in range(int(DAY))) / DAY
    assert abs(time_share - saa.f_t.value) <= saa.pass_s / DAY
    # So the rate inside is f_u / f_t times the orbit average, outside (1-f_u) / (1-f_t).
    average = len(day) / DAY
    inside_rate = inside / (time_share * DAY)
    assert inside_rate / average == pytest.approx(saa.inside_factor, rel=0.05)


def test_passes_come_at_the_files_rate() -> None:
    saa = LEO.saa
    assert saa is not None
    process = ArrivalProcess(LEO, BITS, 1.0, seed=0)
    inside = [process.in_saa(float(t)) for t in range(0, int(10 * DAY), 10)]
    entries = sum(1 for a, b in zip(inside, inside[1:], strict=False) if b and not a)
    assert abs(entries - 10 * saa.passes_per_day.value) <= 1


@pytest.mark.parametrize("f_u", [0.0, 1.0])
def test_an_anomaly_can_hold_every_upset_or_none(f_u: float) -> None:
    assert LEO.saa is not None
    saa = LEO.saa.model_copy(update={"f_u": Share(value=f_u, source=ESTIMATE)})
    process = ArrivalProcess(LEO.model_copy(update={"saa": saa}), BITS, 1e5, seed=19)
    day = upsets(process.advance(0.0, DAY))
    assert len(day) > 1000
    assert all(process.in_saa(u.time) == (f_u == 1.0) for u in day)


def test_an_orbit_without_the_anomaly_is_never_in_it() -> None:
    process = ArrivalProcess(GEO, BITS, 1.0)
    assert not any(process.in_saa(float(t)) for t in range(0, int(DAY), 60))


def test_multi_bit_share_and_cluster_sizes_follow_the_file() -> None:
    process = ArrivalProcess(LEO, BITS, 1e6, seed=13)
    day = upsets(process.advance(0.0, DAY))
    sram = [u for u in day if u.memory == "sram"]
    mbus = [u for u in sram if u.kind == FaultKind.MBU]
    assert_binomial(len(mbus), len(sram), LEO.multi_bit.share.value)
    assert all(u.kind == FaultKind.SBU and u.size == 1 for u in day if u.memory == "flipflop")
    sizes = Counter(u.size for u in mbus)
    clusters = LEO.multi_bit.clusters
    assert set(sizes) <= set(clusters.sizes)
    for size, p in zip(clusters.sizes, clusters.probabilities, strict=True):
        assert_binomial(sizes[size], len(mbus), p)


def test_functional_interrupts_and_latch_ups_come_at_their_per_device_rates() -> None:
    env = environment(sefi=40.0, sel=10.0)
    process = ArrivalProcess(env, {"sram": 0}, acceleration=50.0, seed=14, devices=3)
    events = Counter(a.kind for a in process.advance(0.0, DAY) if isinstance(a, DeviceEvent))
    assert_poisson(events[FaultKind.SEFI], 40.0 * 50 * 3)
    assert_poisson(events[FaultKind.SEL], 10.0 * 50 * 3)


def test_the_draws_do_not_depend_on_how_time_is_cut() -> None:
    whole = ArrivalProcess(LEO, BITS, 1e5, seed=15).advance(0.0, DAY / 4)
    cut = ArrivalProcess(LEO, BITS, 1e5, seed=15)
    pieces: list = []
    for start in range(0, int(DAY / 4), 37):
        pieces += cut.advance(float(start), min(start + 37.0, DAY / 4))
    assert len(whole) > 100 and pieces == whole
    assert ArrivalProcess(LEO, BITS, 1e5, seed=16).advance(0.0, DAY / 4) != whole


def test_arrivals_are_in_order_inside_their_span() -> None:
    process = ArrivalProcess(LEO, BITS, 1e5, seed=17)
    for start in (0.0, 1000.0, 5000.0):
        got = process.advance(start, start + 500.0)
        times = [a.time for a in got]
        assert times == sorted(times) and all(start <= t < start + 500.0 for t in times)


def test_a_gap_between_spans_is_not_flown() -> None:
    process = ArrivalProcess(GEO, BITS, 1e8, seed=18)
    process.advance(0.0, 100.0)
    later = process.advance(200.0, 300.0)
    assert later and all(200.0 <= a.time < 300.0 for a in later)


@pytest.mark.parametrize(
    ("bits", "acceleration", "message"),
    [
        ({"dram": 5}, 1.0, "memory classes \\['dram'\\] have no rate: use sram, flipflop"),
        ({"sram": -1}, 1.0, "bit counts must be integers >= 0"),
        ({"sram": 1}, 0.0, "acceleration must be a positive number, got 0.0"),
    ],
)
def test_bad_arguments_are_refused(bits: dict, acceleration: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ArrivalProcess(GEO, bits, acceleration)


def test_a_span_that_runs_backwards_is_refused() -> None:
    with pytest.raises(ValueError, match="span must not run backwards"):
        ArrivalProcess(GEO, BITS).advance(10.0, 5.0)


# --- landing them: the flight software in orbit ---------------------------------------------

BARE = Build(n=4, bank_words=32768, interleave=1, ecc=False, scrub=False, tmr=False)


def fly(build: Build, env: Environment, acceleration: float, seconds: float,
        step: float = 0.5) -> tuple[FlightSoftware, Counter[str]]:  # fmt: skip
    """The core in TEST mode flying ``env`` for ``seconds``, stepped every ``step``; the
    events it reported, counted by name."""
    backend = ModelBackend(build)
    config = FswConfig(mode=Mode.TEST)
    process = ArrivalProcess(env, exposed_bits(backend, FirmwareRam(config.ram_bytes)),
                             acceleration, seed=21)  # fmt: skip
    fsw = FlightSoftware(backend, config, now=0.0, radiation=process)
    events: Counter[str] = Counter()
    t = 0.0
    while t < seconds:
        t = min(seconds, t + step)
        for action in fsw.step(t).actions:
            message = getattr(action, "message", "")
            if message.startswith("event "):
                events[message.split()[1]] += 1
    assert fsw.internal_errors == 0
    return fsw, events


def spm_changes(fsw: FlightSoftware) -> dict[int, int]:
    """Scratchpad words that are no longer zero, with the bits that changed."""
    chip = fsw.backend.chip
    return {w: d for w in range(chip.spm_words) if (d := chip.peek(w)[0])}


def ram_ones(fsw: FlightSoftware) -> int:
    return sum(bin(b).count("1") for b in fsw.ram.data)


def test_sram_upsets_land_on_uniformly_chosen_scratchpad_and_ram_bits() -> None:
    fsw, events = fly(BARE, environment(sram=4.0), acceleration=1.0, seconds=10.0)
    assert fsw.radiation is not None
    landed = fsw.radiation.landed
    spm, ram = landed["spm"], landed["fw_ram"]
    assert spm + ram > 200
    changed = spm_changes(fsw)
    # Each upset flips one bit; only two landing on one bit (rare) would undo each other.
    flipped = sum(bin(d).count("1") for d in changed.values())
    assert flipped % 2 == spm % 2 and 0 <= spm - flipped <= 2
    assert ram_ones(fsw) % 2 == ram % 2 and 0 <= ram - ram_ones(fsw) <= 2
    bits = exposed_bits(fsw.backend, fsw.ram)
    assert_binomial(spm, spm + ram, (bits["sram"] - 8 * fsw.ram.size) / bits["sram"])


def test_a_multi_bit_upset_flips_adjacent_bits_of_one_word_without_interleaving() -> None:
    fsw, events = fly(
        BARE, environment(sram=0.1, mbu=1.0, sizes=(3,)), acceleration=1.0, seconds=10.0
    )
    assert fsw.radiation is not None
    changed = spm_changes(fsw)
    assert len(changed) == fsw.radiation.landed["spm"] > 5
    for word, bits in changed.items():
        low = (bits & -bits).bit_length() - 1
        run = bits >> low
        # Three adjacent cells, or fewer where the row (here: the 32-bit word) ends.
        assert run & (run + 1) == 0, f"word {word}: {bits:#x} is not one run of bits"
        assert run == 0b111 or low + run.bit_length() == 32, f"word {word}: {bits:#x}"


def test_bit_interleaving_spreads_a_multi_bit_upset_over_words() -> None:
    build = Build(n=4, bank_words=32768, interleave=4, ecc=False, scrub=False, tmr=False)
    fsw, events = fly(
        build, environment(sram=0.1, mbu=1.0, sizes=(3,)), acceleration=1.0, seconds=10.0
    )
    assert fsw.radiation is not None
    landed = fsw.radiation.landed["spm"]
    changed = spm_changes(fsw)
    assert landed > 5 and landed <= len(changed) <= 3 * landed
    assert all(bin(bits).count("1") == 1 for bits in changed.values())


def test_flip_flop_upsets_land_on_the_models_flip_flop_sites() -> None:
    build = Build(n=4, bank_words=1024, interleave=1, ecc=True, scrub=True, tmr=True)
    fsw, events = fly(build, environment(flipflop=200.0), acceleration=3.0, seconds=10.0)
    assert fsw.radiation is not None
    landed, missed = fsw.radiation.landed["flipflop"], fsw.radiation.not_landed
    assert landed + missed > 50 and landed > 0
    assert fsw.radiation.landed["spm"] == fsw.radiation.landed["fw_ram"] == 0
    # Flips of configuration-register copies are voted out by TMR and counted.
    assert fsw.edac.tmr.total > 0


def test_a_functional_interrupt_hangs_the_chip_until_the_flight_software_resets_it() -> None:
    fsw, events = fly(BARE, environment(sefi=4320.0), acceleration=1.0, seconds=60.0, step=0.1)
    assert fsw.radiation is not None
    sefis = fsw.radiation.landed["sefi"]
    assert sefis >= 1 and 1 <= fsw.accel_resets <= sefis
    assert events["SEFI_DETECTED"] == fsw.accel_resets


def test_a_latch_up_is_power_cycled_by_the_flight_software() -> None:
    fsw, events = fly(BARE, environment(sel=4320.0), acceleration=1.0, seconds=60.0, step=0.1)
    assert fsw.radiation is not None
    sels = fsw.radiation.landed["sel"]
    assert sels >= 1 and 1 <= fsw.latchups <= sels
    assert fsw.backend.power_cycles == fsw.latchups
    assert events["LATCHUP_DETECTED"] == fsw.latchups
