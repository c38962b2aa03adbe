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

import numpy as np
import pytest

from firmware_sim.accel.layout import Cell, Layout
from firmware_sim.chip import Act, FaultRefused, ModelChip, SiteFault, spm_layout
from firmware_sim.core import FlightSoftware, FswConfig
from firmware_sim.environment import Environment as Power
from firmware_sim.environment import EnvironmentConfig
from firmware_sim.radiation import (
    ArrivalProcess,
    DeviceEvent,
    Upset,
    UpsetLander,
    exposed_bits,
)
from firmware_sim.ram import FirmwareRam, RamLayout
from firmware_sim.services.housekeeping import HK_STRUCTURES
from protocol.codes import FaultKind, Mode
from protocol.payloads import HkStructure, ResetCause
from testbed.clusters import Orientation, shape
from testbed.config import Environment, load_environment
from testbed.config.environment import ESTIMATE, SECONDS_PER_DAY, Share
from testbed.sitemap import MAPS_DIR, SiteClass, SiteMap
from testbed.sitemap_builds import Build
from testbed.sitemap_builds import Build as MapBuild

REPO = Path(__file__).resolve().parents[2]
SIGMAS = 5.0
DAY = SECONDS_PER_DAY
LEO = load_environment(REPO / "configs/environments/leo-iss.yaml")
GEO = load_environment(REPO / "configs/environments/geo.yaml")
FINFET = load_environment(REPO / "configs/environments/leo-iss-finfet.yaml")
BITS = {"sram": 1_000_000, "flipflop": 200_000}


def assert_poisson(observed: int, mean: float) -> None:
    assert abs(observed - mean) <= SIGMAS * math.sqrt(mean), (observed, mean)


def assert_binomial(hits: int, n: int, p: float) -> None:
    assert abs(hits / n - p) <= SIGMAS * math.sqrt(p * (1 - p) / n), (hits, n, p)


def environment(sram=0.0, flipflop=0.0, mbu=0.0, sizes=(2,), sefi=0.0, sel=0.0,
                bit_line=0.5, probabilities=None) -> Environment:  # fmt: skip
    """An environment with only the given rates (per bit-day or device-day); cluster
    sizes equally likely unless ``probabilities`` are given."""
    if probabilities is None:
        probabilities = [1 / len(sizes)] * len(sizes)

    def n(value: float) -> dict:
        return {"value": value, "source": "estimate"}

    return Environment.model_validate({
        "name": "test", "description": "rates chosen by the test",
        "sram_upsets_per_bit_day": n(sram), "flipflop_upsets_per_bit_day": n(flipflop),
        "multi_bit": {"share": n(mbu), "clusters": {
            "sizes": list(sizes), "probabilities": list(probabilities),
            "source": "estimate"}, "bit_line_share": n(bit_line)},
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


# --- what is exposed: the build's site map -------------------------------------------------

KEPT = [MapBuild.from_name(p.stem) for p in sorted(MAPS_DIR.glob("*.json"))]


def backend_of(build: MapBuild) -> ModelChip:
    return ModelChip(Build(**build.options()))


@pytest.mark.parametrize("build", KEPT, ids=[b.name for b in KEPT])
def test_exposed_bits_are_the_site_maps_bits(build: MapBuild) -> None:
    by_class = SiteMap.load(build).bits_by_class()
    ram = FirmwareRam(4096)
    bits = exposed_bits(backend_of(build), ram)
    spm = by_class.pop(SiteClass.OPERAND_MEMORY)
    assert bits == {"sram": spm + 8 * 4096, "flipflop": sum(by_class.values())}
    # The arrival rates are the preset's per-bit rates times those counts.
    rates = ArrivalProcess(LEO, bits, acceleration=7.0).upset_rates
    per_bit = {"sram": LEO.sram_upsets_per_bit_day, "flipflop": LEO.flipflop_upsets_per_bit_day}
    for memory, n in bits.items():
        assert rates[memory] == pytest.approx(per_bit[memory].value * n * 7 / DAY)


# --- landing them -----------------------------------------------------------------------------


def lander(build: Build, env: Environment, acceleration: float, seed: int = 21,
           ram_bytes: int = 64 * 1024) -> UpsetLander:  # fmt: skip
    """The chip model, a firmware RAM and the power model with ``env``'s upsets to land."""
    backend, ram = ModelChip(build), FirmwareRam(ram_bytes)
    process = ArrivalProcess(env, exposed_bits(backend, ram), acceleration, seed)
    return UpsetLander(process, backend, ram, Power(EnvironmentConfig()))


def fly_lander(land: UpsetLander, seconds: float, step: float) -> list[str]:
    """Land what arrives over ``seconds`` of mission time in steps; the log lines."""
    lines, t = [], 0.0
    while t < seconds:
        t = min(seconds, t + step)
        lines += land.advance(t)
    return lines


@pytest.fixture(scope="module")
def leo_day() -> UpsetLander:
    """A day of ISS-like LEO on the default build, a million times the rates."""
    land = lander(Build(), LEO, acceleration=1e6, seed=31)
    fly_lander(land, DAY, step=600.0)
    return land


def test_a_day_of_leo_lands_upsets_where_the_bits_are(leo_day: UpsetLander) -> None:
    ex = leo_day.exposure
    rates = {"sram": LEO.sram_upsets_per_bit_day.value,
             "flipflop": LEO.flipflop_upsets_per_bit_day.value}  # fmt: skip
    weight = {"spm": rates["sram"] * ex.spm.total_bits, "fw_ram": rates["sram"] * ex.ram_bits,
              "flipflop": rates["flipflop"] * ex.flipflops.total_bits}  # fmt: skip
    arrived = {k: leo_day.landed[k] + leo_day.not_landed[k] for k in weight}
    total = sum(arrived.values())
    assert_poisson(total, sum(weight.values()) * 1e6)
    assert total > 10_000 and arrived["flipflop"] > 30
    for where, w in weight.items():
        assert_binomial(arrived[where], total, w / sum(weight.values()))
    # Every SRAM upset lands; of flip-flop upsets only those the model has no site for
    # are not landed, and they are never counted as landed.
    assert leo_day.not_landed["spm"] == leo_day.not_landed["fw_ram"] == 0
    assert 0 < leo_day.not_landed["flipflop"] < arrived["flipflop"]


def test_the_anomaly_holds_its_share_of_the_landed_upsets(leo_day: UpsetLander) -> None:
    assert LEO.saa is not None
    landed = sum(leo_day.landed[k] for k in ("spm", "flipflop", "fw_ram"))
    inside = sum(leo_day.landed_in_saa.values())
    assert_binomial(inside, landed, LEO.saa.f_u.value)


def test_flip_flop_upsets_are_drawn_uniformly_over_the_maps_flip_flop_bits() -> None:
    build = Build()
    land = lander(build, environment(flipflop=2.0), acceleration=1.0, seed=32)
    lines = fly_lander(land, 1.0 * DAY, step=DAY / 8)
    drawn = land.flipflop_classes
    n = sum(drawn.values())
    assert n == land.landed["flipflop"] + land.not_landed["flipflop"] > 3000
    bits = SiteMap.load(MapBuild()).bits_by_class()
    bits.pop(SiteClass.OPERAND_MEMORY)
    assert set(drawn) <= set(bits)
    for cls, b in bits.items():
        assert_binomial(drawn[cls], n, b / sum(bits.values()))
    # Each upset not landed says where and why, and the model indeed cannot flip that bit.
    missed = [line for line in lines if " not landed: " in line]
    assert len(missed) == land.not_landed["flipflop"] > 0
    sitemap = land.exposure.flipflops
    for line in missed[:50]:
        name, _, rest = line.split(" not landed: ")[1].partition(" bit ")
        bit = int(rest.split()[0].rstrip(":"))
        with pytest.raises(FaultRefused):
            ModelChip(build).check([SiteFault(Act.FLIP, sitemap.entry(name).name, bit)])


def test_flip_flop_upsets_reach_tmr_copies_which_are_voted_out() -> None:
    fsw, events = fly(Build(), environment(flipflop=200.0), acceleration=3.0, seconds=10.0)
    assert fsw.radiation is not None
    assert fsw.radiation.landed["flipflop"] > 20
    assert fsw.radiation.landed["spm"] == fsw.radiation.landed["fw_ram"] == 0
    assert fsw.radiation.flipflop_classes[SiteClass.CONFIGURATION] > 0
    assert fsw.edac.tmr.total > 0


# --- multi-bit upsets in the scratchpad ------------------------------------------------------


def changed_cells(backend: ModelChip) -> set[Cell]:
    """Every scratchpad cell that no longer holds 0 (the memory starts all zero)."""
    chip, lay = backend.chip, spm_layout(backend.build)
    dw = 8 * backend.build.n
    cells = set()
    for word in range(chip.spm_words):
        data, check = chip.peek(word)
        code = data | (check or 0) << dw
        cells |= {lay.cell_of(word, b) for b in range(lay.codeword_bits) if code >> b & 1}
    return cells


def landings(land: UpsetLander, count: int) -> list[set[Cell]]:
    """The cells that each of ``count`` scratchpad upsets flipped, stepping time finely so
    that a step lands one upset (a step that lands two is not counted)."""
    step = DAY / land.process.upset_rates["sram"] / land.process.acceleration / DAY / 20
    before, out, t = changed_cells(land.chip), [], 0.0
    while len(out) < count and t < 1000 * count * step:
        n = land.landed["spm"]
        t += step
        land.advance(t)
        if land.landed["spm"] > n:
            after = changed_cells(land.chip)
            if land.landed["spm"] == n + 1:
                out.append(before ^ after)  # a flip toggles: the cells this upset flipped
            before = after
    return out


def offsets(cells: set[Cell]) -> tuple[tuple[int, int], ...]:
    """Cells as sorted offsets from the corner of their bounding box."""
    r0, c0 = min(c.row for c in cells), min(c.cell for c in cells)
    return tuple(sorted((c.row - r0, c.cell - c0) for c in cells))


NOECC = Build(n=4, bank_words=1024, interleave=1, ecc=False, scrub=False, tmr=False)
IL2 = Build(n=4, bank_words=256, interleave=2)
IL4 = Build(n=4, bank_words=1024, interleave=4)


@pytest.mark.parametrize(
    ("build", "bit_line", "size", "orientation"),
    [
        (NOECC, 1.0, 3, Orientation.BIT_LINE),
        (NOECC, 0.0, 3, Orientation.WORD_LINE),
        (NOECC, 0.0, 6, Orientation.BLOCK),
        (IL2, 1.0, 9, Orientation.BIT_LINE),
        (IL4, 0.0, 4, Orientation.BLOCK),
        (IL4, 0.0, 2, Orientation.WORD_LINE),
    ],
)
def test_a_multi_bit_upset_flips_the_cells_of_its_cluster_shape(
    build: Build, bit_line: float, size: int, orientation: Orientation
) -> None:
    env = environment(sram=1.0, mbu=1.0, sizes=(size,), bit_line=bit_line)
    land = lander(build, env, acceleration=1.0, seed=33, ram_bytes=0)
    found = landings(land, 12)
    assert len(found) == 12 and land.not_landed.total() == 0 and land.landed["fw_ram"] == 0
    want = tuple(sorted(shape(size, orientation).offsets))
    for cells in found:
        assert len({c.bank for c in cells}) == 1 and offsets(cells) == want, (cells, want)


def test_bit_interleaving_puts_the_cells_of_a_word_line_cluster_in_different_words() -> None:
    env = environment(sram=1.0, mbu=1.0, sizes=(3,), bit_line=0.0)
    land = lander(IL4, env, acceleration=1.0, seed=34, ram_bytes=0)
    lay: Layout = spm_layout(land.chip.build)
    for cells in landings(land, 8):
        words = [lay.word_bit_of(c)[0] for c in cells]
        # Three cells side by side, one bit in each of three words: SECDED corrects each.
        assert len(words) == 3 and len(set(words)) == 3


# --- multi-bit upsets in the firmware RAM ------------------------------------------------------


def flipped_bits(before: bytes, after: bytes) -> set[tuple[int, int]]:
    """The (octet, bit) pairs that differ between two images of the RAM."""
    diff = np.frombuffer(before, np.uint8) ^ np.frombuffer(after, np.uint8)
    return {(int(a), b) for a in np.flatnonzero(diff) for b in range(8) if diff[a] >> b & 1}


def ram_landings(land: UpsetLander, seconds: float) -> list[set[tuple[int, int]]]:
    """The bits that each firmware RAM upset flipped over ``seconds`` of mission time,
    stepping finely so that a step lands one RAM upset (a step that lands two is not
    counted: which bits belong to which is not known)."""
    per_s = land.process.upset_rates["sram"] * land.exposure.ram_bits
    per_s /= land.exposure.spm.total_bits + land.exposure.ram_bits
    step = 1 / per_s / 20
    before, out, t = bytes(land.ram.data), [], 0.0
    while t < seconds:
        n = land.landed["fw_ram"]
        t = min(seconds, t + step)
        land.advance(t)
        if land.landed["fw_ram"] > n:
            after = bytes(land.ram.data)
            if land.landed["fw_ram"] == n + 1:
                out.append(flipped_bits(before, after))
            before = after
    return out


def ram_shape(layout: RamLayout, bits: set[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Flipped RAM bits as their cells' sorted offsets from their bounding box's corner."""
    return offsets({Cell(0, *layout.cell_of(a, b)) for a, b in bits})


RAM_SIZES = (2, 3, 4, 6)
RAM_PROBABILITIES = (0.4, 0.3, 0.2, 0.1)


@pytest.fixture(scope="module")
def ram_day() -> tuple[UpsetLander, list[set[tuple[int, int]]]]:
    """A day in which about 4,000 SRAM upsets land in the firmware RAM, 60 % of them
    clusters of the sizes above, 30 % of the clusters down the bit line."""
    env = environment(sram=0.008, mbu=0.6, sizes=RAM_SIZES, probabilities=RAM_PROBABILITIES,
                      bit_line=0.3)  # fmt: skip
    land = lander(Build(), env, acceleration=1.0, seed=35)
    return land, ram_landings(land, DAY)


def test_a_day_lands_ram_clusters_with_the_files_sizes(ram_day) -> None:
    land, found = ram_day
    assert land.not_landed["fw_ram"] == 0 and len(found) > 0.9 * land.landed["fw_ram"] > 3000
    sizes = Counter(len(bits) for bits in found)
    assert set(sizes) <= {1, *RAM_SIZES}
    assert_binomial(sizes[1], len(found), 1 - 0.6)
    mbus = len(found) - sizes[1]
    for size, p in zip(RAM_SIZES, RAM_PROBABILITIES, strict=True):
        assert_binomial(sizes[size], mbus, p)


def test_a_day_lands_ram_clusters_in_the_shapes_and_shares_of_the_file(ram_day) -> None:
    land, found = ram_day
    layout = land.ram.layout
    orientations: Counter[Orientation] = Counter()
    for bits in found:
        if len(bits) == 1:
            continue
        got = ram_shape(layout, bits)
        across = Orientation.WORD_LINE if len(bits) < 4 else Orientation.BLOCK
        for o in (Orientation.BIT_LINE, across):
            if got == tuple(sorted(shape(len(bits), o).offsets)):
                orientations[o] += 1
                break
        else:
            raise AssertionError(f"{sorted(bits)} is no cluster shape of {len(bits)} cells")
    n = orientations.total()
    assert n > 2000
    assert_binomial(orientations[Orientation.BIT_LINE], n, 0.3)
    # Down the bit line is the same bit of octets one row apart (no interleaving).
    down = [b for b in found if len(b) > 1 and len({bit for _, bit in b}) == 1
            and len({a % layout.row_octets for a, _ in b}) == 1]  # fmt: skip
    assert len(down) == orientations[Orientation.BIT_LINE]


def test_a_finfet_day_lands_only_bit_line_clusters_of_at_most_three_bits_in_ram() -> None:
    land = lander(Build(), FINFET, acceleration=2e6, seed=37)
    found = ram_landings(land, DAY)
    clusters = [bits for bits in found if len(bits) > 1]
    assert len(clusters) > 100
    sizes = Counter(len(bits) for bits in clusters)
    assert set(sizes) == {2, 3}
    for bits in clusters:
        want = tuple(sorted(shape(len(bits), Orientation.BIT_LINE).offsets))
        assert ram_shape(land.ram.layout, bits) == want


def test_a_ram_cluster_that_cannot_fit_is_not_landed_and_says_why() -> None:
    env = environment(sram=50.0, mbu=1.0, sizes=(3,), bit_line=1.0)
    land = lander(Build(), env, acceleration=1.0, seed=36, ram_bytes=64)  # two rows
    lines = fly_lander(land, 60.0, step=1.0)
    assert land.not_landed["fw_ram"] > 0 and land.landed["fw_ram"] == 0
    assert bytes(land.ram.data) == bytes(64)
    missed = [line for line in lines if "does not fit the firmware RAM" in line]
    assert len(missed) == land.not_landed["fw_ram"]
    assert "a bit_line cluster of 3 cells (3 x 1) does not fit the firmware RAM (2 rows of " \
        "256 cells)" in missed[0]


# --- the flight software in orbit -------------------------------------------------------------


def fly(build: Build, env: Environment, acceleration: float, seconds: float,
        step: float = 0.5) -> tuple[FlightSoftware, Counter[str]]:  # fmt: skip
    """The core in TEST mode flying ``env`` for ``seconds``, stepped every ``step``; the
    events it reported, counted by name."""
    backend = ModelChip(build)
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


def environment_hk(fsw: FlightSoftware) -> dict[str, float]:
    """The ENVIRONMENT report's values as the flight software would send them now."""
    return {f.name: f.get(fsw) for f in HK_STRUCTURES[HkStructure.ENVIRONMENT]}


RADIATION_HK = ("in_saa", "upsets_spm", "upsets_flipflop", "upsets_fw_ram", "upsets_not_landed")


def test_housekeeping_counts_upsets_since_boot() -> None:
    fsw, _ = fly(Build(), environment(sram=20.0, flipflop=2000.0), acceleration=1.0,
                 seconds=5.0)  # fmt: skip
    land = fsw.radiation
    assert land is not None
    hk = environment_hk(fsw)
    assert hk["upsets_spm"] == land.landed["spm"] > 0
    assert hk["upsets_fw_ram"] == land.landed["fw_ram"] > 0
    assert hk["upsets_flipflop"] == land.landed["flipflop"] > 0
    assert hk["upsets_not_landed"] == land.not_landed.total() > 0
    fsw.request_reboot(ResetCause.COMMAND)
    fsw.step(5.0)
    assert all(environment_hk(fsw)[name] == 0 for name in RADIATION_HK[1:])
    assert land.landed["spm"] == hk["upsets_spm"]  # the chip's upsets stay where they landed
    fsw.step(6.0)
    assert environment_hk(fsw)["upsets_fw_ram"] == land.landed["fw_ram"] - hk["upsets_fw_ram"]


def test_housekeeping_shows_no_upsets_and_no_anomaly_without_an_environment() -> None:
    fsw = FlightSoftware(ModelChip(), FswConfig(mode=Mode.TEST), now=0.0)
    fsw.step(10.0)
    assert all(not environment_hk(fsw)[name] for name in RADIATION_HK)


def test_a_functional_interrupt_hangs_the_chip_until_the_flight_software_resets_it() -> None:
    fsw, events = fly(NOECC, environment(sefi=4320.0), acceleration=1.0, seconds=60.0, step=0.1)
    assert fsw.radiation is not None
    sefis = fsw.radiation.landed["sefi"]
    assert sefis >= 1 and 1 <= fsw.accel_resets <= sefis
    assert events["SEFI_DETECTED"] == fsw.accel_resets


def test_a_latch_up_is_power_cycled_by_the_flight_software() -> None:
    fsw, events = fly(NOECC, environment(sel=4320.0), acceleration=1.0, seconds=60.0, step=0.1)
    assert fsw.radiation is not None
    sels = fsw.radiation.landed["sel"]
    assert sels >= 1 and 1 <= fsw.latchups <= sels
    assert fsw.chip.power_cycles == fsw.latchups
    assert events["LATCHUP_DETECTED"] == fsw.latchups
