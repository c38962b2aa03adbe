"""The kept site maps are what Yosys finds in the RTL now, for every build the tests use."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cocotb_tests.builds import SCC as COCOTB_BUILDS
from testbed import sitemap_gen
from testbed.sitemap import MAPS_DIR, SiteMapError
from testbed.sitemap_builds import STANDARD_BUILDS, Build

KEPT = sorted(MAPS_DIR.glob("*.json"))


def test_every_standard_and_cocotb_build_has_a_kept_map() -> None:
    kept = {path.stem for path in KEPT}
    wanted = {b.name for b in STANDARD_BUILDS}
    wanted |= {Build.from_hdl_parameters(p).name for p in COCOTB_BUILDS.values()}
    missing = sorted(wanted - kept)
    assert not missing, "no map for " + ", ".join(
        f"{name} (run python -m testbed.sitemap generate --build {name})" for name in missing
    )


@pytest.mark.parametrize("path", KEPT, ids=[p.stem for p in KEPT])
def test_kept_map_regenerates_from_the_rtl(path: Path) -> None:
    build = Build.from_name(path.stem)
    fresh = sitemap_gen.generate(build)
    assert path.read_text() == fresh, (
        f"{path.name} differs from the RTL: run {sitemap_gen.command(build)} (or make sitemap)"
    )


def _rtl_copy(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the repository's RTL with one edit of scc_top.v."""
    shutil.copytree(sitemap_gen.ROOT / sitemap_gen.RTL_DIR, tmp_path / sitemap_gen.RTL_DIR)
    top = tmp_path / sitemap_gen.RTL_DIR / "scc_top.v"
    text = top.read_text()
    assert old in text
    top.write_text(text.replace(old, new))
    return tmp_path


IRQ = "  assign irq_o = irq_en & done;\n"


def test_a_register_no_pattern_classifies_stops_the_generator(tmp_path: Path) -> None:
    spare = ("  reg spare_q;\n  always @(posedge clk_i) spare_q <= s_axil_wdata[0];\n"
             "  assign irq_o = irq_en & done & spare_q;\n")  # fmt: skip
    root = _rtl_copy(tmp_path, IRQ, spare)
    with pytest.raises(SiteMapError, match=r"spare_q .*matches no pattern .*CLASSES"):
        sitemap_gen.generate(Build(n=2, bank_words=64), root)


def test_an_observable_flop_without_a_q_name_stops_the_generator(tmp_path: Path) -> None:
    spare = ("  reg spare;\n  always @(posedge clk_i) spare <= s_axil_wdata[0];\n"
             "  assign irq_o = irq_en & done & spare;\n")  # fmt: skip
    root = _rtl_copy(tmp_path, IRQ, spare)
    with pytest.raises(SiteMapError, match=r"holds no signal named <name>_q"):
        sitemap_gen.generate(Build(n=2, bank_words=64), root)


def test_rtl_hash_changes_with_the_rtl(tmp_path: Path) -> None:
    root = _rtl_copy(tmp_path, IRQ, IRQ + "  // a comment\n")
    assert sitemap_gen.rtl_hash(root) != sitemap_gen.rtl_hash()
