"""Every site-map entry is covered by the bit-exact model bit for bit, or listed as RTL-only;
every covered flop is predicted flipped while idle and stuck at 0 or 1, but the few the model
refuses, each for its reason."""

from __future__ import annotations

from collections import Counter

import pytest

from firmware_sim.accel import Accelerator
from firmware_sim.accel.faults import FaultSite, FlopBit, NotModelled
from firmware_sim.accel.sitemap_sites import (
    RTL_ONLY,
    entry_bit,
    job_path_sites,
    model_entry,
    model_site,
    rtl_only_reason,
)
from testbed.sitemap import MAPS_DIR, SiteMap
from testbed.sitemap_builds import Build

BUILDS = [Build.from_name(p.stem) for p in sorted(MAPS_DIR.glob("*.json"))]


def _model_bits(build: Build, sitemap: SiteMap) -> Counter[str]:
    """How many of the model's fault sites (the analytic sites and the twin's job path)
    fall in each site-map entry."""
    counts: Counter[str] = Counter()
    sites = set(Accelerator(**build.options()).fault_sites()) | set(job_path_sites(build))
    unobservable = {e.name for e in sitemap.unobservable}
    for site in sites:
        if isinstance(site, FlopBit) and site.path in unobservable:
            continue  # the twin holds it; no output depends on it
        entry, _ = entry_bit(site, sitemap)
        counts[entry.name] += 1
    return counts


@pytest.mark.parametrize("build", BUILDS, ids=[b.name for b in BUILDS])
def test_each_entry_is_covered_by_the_model_or_listed_rtl_only(build: Build) -> None:
    sitemap = SiteMap.load(build)
    counts = _model_bits(build, sitemap)
    for entry in sitemap:
        reason = rtl_only_reason(entry, build)
        modelled = counts[entry.name]
        if modelled:
            assert reason is None, (
                f"{entry.name} is covered by the model ({modelled} bits) but listed in "
                "RTL_ONLY of firmware_sim/accel/sitemap_sites.py: remove that row"
            )
            assert modelled == entry.bits, (
                f"{entry.name}: the model has {modelled} sites, the RTL {entry.bits} bits"
            )
        else:
            assert reason is not None, (
                f"{entry.name} ({entry.cls}, {entry.bits} bits) has no model site and no row "
                "in RTL_ONLY of firmware_sim/accel/sitemap_sites.py"
            )


@pytest.mark.parametrize("build", BUILDS, ids=[b.name for b in BUILDS])
def test_covered_entries_map_to_model_sites_and_back(build: Build) -> None:
    sitemap = SiteMap.load(build)
    model = Accelerator(**build.options())
    covered = _model_bits(build, sitemap)
    for entry in sitemap:
        if not covered[entry.name]:
            continue
        assert model_entry(entry) is not None
        for bit in range(entry.bits):
            site = model_site(entry, bit)
            try:
                model.check_site(site)
            except NotModelled:
                # A site of the model whose flip it refuses to predict (a read slot
                # without interleaving): it still names this bit.
                assert isinstance(site, FlopBit) and site.path.endswith(".rslot_q")
            assert entry_bit(site, sitemap) == (entry, bit)


def test_every_rtl_only_row_lists_some_entry() -> None:
    sitemaps = [SiteMap.load(b) for b in BUILDS]
    for row in RTL_ONLY:
        assert any(row.applies(e, m.build) for m in sitemaps for e in m), (
            f"RTL_ONLY row {row.pattern!r} lists no entry of any kept map: remove it"
        )



def _refused(site: FaultSite, value: int | None, build: Build) -> bool:
    """Whether the model refuses to predict ``site`` flipped while idle (``value`` None)
    or stuck at ``value``; these are the only refusals of a covered flop."""
    if not isinstance(site, FlopBit):
        return False
    if site.path.endswith(".rslot_q") and build.interleave == 1:
        return True  # the RTL reads a bit past the row: undefined
    # Off WAIT for good, the scrubber keeps the scratchpad port: bus accesses never end.
    return site.path == "g_scrub.u_scrub.state_q" and value == 1


@pytest.mark.parametrize("build", BUILDS, ids=[b.name for b in BUILDS])
def test_every_covered_flop_is_predicted_flipped_while_idle_and_stuck(build: Build) -> None:
    sitemap = SiteMap.load(build)
    model = Accelerator(**build.options())
    start = model.snapshot()
    for entry in sitemap:
        if entry.kind != "flop" or model_entry(entry) is None:
            continue
        # Every bit of a narrow register; the two end bits of a wide one.
        bits = range(entry.bits) if entry.bits <= 16 else (0, entry.bits - 1)
        for bit in bits:
            site = model_site(entry, bit)
            for value in (None, 0, 1):
                try:
                    if value is None:
                        model.check_scheduled(None, [site])
                    else:
                        model.stick(site, value)
                except NotModelled:
                    assert _refused(site, value, build), f"{site!r} at {value} refused"
                else:
                    assert not _refused(site, value, build), f"{site!r} at {value} taken"
                model.restore(start)
