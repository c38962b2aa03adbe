"""Area from Yosys synthesis agrees with the site map, TMR and ECC cost what they must,
and a kept report is reused only while the RTL is unchanged."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from firmware_sim.accel.secded import check_bits_for
from testbed import sitemap_gen, synth
from testbed.sitemap import SiteMap
from testbed.sitemap_builds import Build

#: The smallest array with every protection; few words keep Yosys's elaboration short.
BASE = Build(n=2, bank_words=64)
NOTMR = dataclasses.replace(BASE, tmr=False)
BARE = dataclasses.replace(BASE, ecc=False, scrub=False, tmr=False)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synth")


@pytest.fixture(scope="module")
def site_map() -> SiteMap:
    """BASE's site map, generated from the RTL now (no map of so small a build is kept)."""
    return SiteMap.from_text(sitemap_gen.generate(BASE))


@pytest.fixture(scope="module")
def stale_mtime(cache: Path) -> int:
    """A report of BASE kept from other RTL (another hash): area() must not trust it."""
    stale = synth.AreaReport(BASE, "0" * 64, "Yosys", (synth.ModuleArea("scc_top", 1, 1, 1, 0),))
    path = synth.report_path(BASE, cache)
    path.write_text(stale.to_json())
    return path.stat().st_mtime_ns


@pytest.fixture(scope="module")
def synthesized(cache: Path, stale_mtime: int) -> tuple[dict[Build, synth.AreaReport], int]:
    """The three builds' reports, and how many Yosys runs making them took."""
    before = synth.synthesis_runs()
    reports = {b: synth.area(b, cache_dir=cache) for b in (BASE, NOTMR, BARE)}
    return reports, synth.synthesis_runs() - before


@pytest.fixture(scope="module")
def reports(
    synthesized: tuple[dict[Build, synth.AreaReport], int],
) -> dict[Build, synth.AreaReport]:
    return synthesized[0]


def _bits_yosys_removes(build: Build) -> int:
    """Flip-flop bits of the RTL that Yosys removes inside their module, and why.

    Constants: the bus read latch is 32 bits per bus part, S = ceil(8N / 32) parts, and
    holds zeros above the word's 8N bits; with one part a word (S = 1) the staging
    register is a one-bit constant; without interleaving each bank's slot register is 0.
    Duplicates (opt_merge): skew row i delays the valid and first tags by i stages, and
    its first j stages equal those of every other row, so the rows share N - 1 stages
    of the two tags instead of 1 + 2 + ... + (N - 1).
    """
    dw = 8 * build.n
    parts = math.ceil(dw / 32)
    latch = 32 * parts - dw
    stage = 1 if parts == 1 else 0
    slots = 2 if build.interleave == 1 else 0
    shared_tags = 2 * (sum(range(1, build.n)) - (build.n - 1))
    return latch + stage + slots + shared_tags


def _map_flop_bits(site_map: SiteMap, prefix: str = "") -> int:
    """Flip-flop bits of the map, observable or not, of the entries below ``prefix``."""
    entries = [*site_map.entries, *site_map.unobservable]
    return sum(e.bits for e in entries if e.kind == "flop" and e.name.startswith(prefix))


def _flip_flops_are_the_site_maps_registers_less_those_yosys_removes(
    reports: dict[Build, synth.AreaReport], site_map: SiteMap
) -> None:
    # Synthesis keeps the hierarchy, so a register that no output needs only across
    # module boundaries (the map's "unobservable" list) is still built and counted.
    expected = _map_flop_bits(site_map) - _bits_yosys_removes(BASE)
    assert reports[BASE].flops == expected


def _each_pe_is_built_with_the_flip_flops_the_map_lists_for_it(
    reports: dict[Build, synth.AreaReport], site_map: SiteMap
) -> None:
    pe = reports[BASE].module("scc_pe")
    assert pe.instances == BASE.n**2
    assert pe.flops == _map_flop_bits(site_map, "u_array.g_row[")


def _tmr_adds_two_copies_of_every_tmr_register(
    reports: dict[Build, synth.AreaReport], site_map: SiteMap
) -> None:
    copies = [e for e in site_map if e.copy is not None]
    voted_bits = sum(e.bits for e in copies if e.copy == 0)
    assert voted_bits > 0
    assert sum(e.bits for e in copies if e.copy != 0) == 2 * voted_bits
    assert reports[BASE].flops - reports[NOTMR].flops == 2 * voted_bits
    single = reports[NOTMR].module("scc_tmr_reg").flops
    assert reports[BASE].module("scc_tmr_reg").flops == 3 * single


def _ecc_memory_is_check_bits_wider_than_the_bare_memory(
    reports: dict[Build, synth.AreaReport], site_map: SiteMap
) -> None:
    data_bits = 8 * BASE.n
    with_ecc, bare = reports[BASE].memory_bits, reports[BARE].memory_bits
    assert bare == 2 * BASE.bank_words * data_bits
    assert with_ecc * data_bits == bare * (data_bits + check_bits_for(data_bits))
    memories = [e for e in site_map if e.kind == "memory"]
    assert with_ecc == sum(e.bits for e in memories)
    assert reports[BASE].module("scc_spm_bank").memory_bits == with_ecc


def _a_report_from_other_rtl_is_made_again_and_an_unchanged_one_is_reused(
    cache: Path, stale_mtime: int, synthesized: tuple[dict[Build, synth.AreaReport], int]
) -> None:
    reports, runs = synthesized
    assert runs == 3  # the stale report of BASE did not count
    path = synth.report_path(BASE, cache)
    made = path.stat().st_mtime_ns
    assert made != stale_mtime
    assert json.loads(path.read_text())["rtl_sha256"] == sitemap_gen.rtl_hash()
    before = synth.synthesis_runs()
    again = {b: synth.area(b, cache_dir=cache) for b in reports}
    assert synth.synthesis_runs() == before
    assert again == reports
    assert path.stat().st_mtime_ns == made


def _a_report_reads_back_from_its_json(reports: dict[Build, synth.AreaReport]) -> None:
    report = reports[BASE]
    assert synth.AreaReport.from_json(report.to_json()) == report
    assert report.cells == sum(report.cell_types.values())
    assert report.flops == sum(
        n for kind, n in report.cell_types.items() if synth.FLOP_CELL.fullmatch(kind)
    )


def test_three_small_builds_agree_with_the_site_map_and_with_each_other(
    reports: dict[Build, synth.AreaReport],
    site_map: SiteMap,
    cache: Path,
    stale_mtime: int,
    synthesized: tuple[dict[Build, synth.AreaReport], int],
) -> None:
    # One test uses the synthesized builds, so that parallel workers never make them twice.
    _flip_flops_are_the_site_maps_registers_less_those_yosys_removes(reports, site_map)
    _each_pe_is_built_with_the_flip_flops_the_map_lists_for_it(reports, site_map)
    _tmr_adds_two_copies_of_every_tmr_register(reports, site_map)
    _ecc_memory_is_check_bits_wider_than_the_bare_memory(reports, site_map)
    _a_report_from_other_rtl_is_made_again_and_an_unchanged_one_is_reused(
        cache, stale_mtime, synthesized
    )
    _a_report_reads_back_from_its_json(reports)


def test_a_malformed_build_name_is_one_line_naming_the_form(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = synth.synthesis_runs()
    assert synth.main(["--build", "n4-bw64"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "n4-bw64" in err and "n<N>-bw<BANK_WORDS>" in err
    assert synth.synthesis_runs() == before
