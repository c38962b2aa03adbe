"""The area kept in testbed/area/ is the synthesis of the RTL as it is, and campaigns show
it beside each build's rates without synthesizing anything.

Synthesizing the ten builds takes minutes (``make synth``); these tests only compare the
RTL hash each kept report names with the RTL's, so a change to hdl/rtl without ``make
synth`` fails here. tests/sitemap/test_synth.py synthesizes small builds and checks
what the reports count.
"""

from __future__ import annotations

import json

import pytest

from campaign import analysis
from testbed import sitemap_gen, synth


def test_every_build_make_synth_measures_has_a_kept_report_naming_its_command() -> None:
    for build in synth.DEFAULT_BUILDS:
        path = synth.report_path(build)
        assert path.exists(), f"{path} is missing: run make synth"
        report = synth.AreaReport.from_json(path.read_text(), str(path))
        assert report.build == build
        assert json.loads(path.read_text())["generated_by"] == synth.command(build)


def test_the_kept_area_was_synthesized_from_the_rtl_as_it_is() -> None:
    rtl = sitemap_gen.rtl_hash()
    reports = sorted(synth.AREA_DIR.glob("*.json"))
    assert reports, f"{synth.AREA_DIR} holds no report: run make synth"
    stale = [p.name for p in reports if json.loads(p.read_text())["rtl_sha256"] != rtl]
    assert not stale, (
        f"synthesized from other RTL than hdl/rtl ({rtl[:12]}...): {', '.join(stale)}; "
        "run make synth and commit testbed/area/"
    )


def test_a_campaign_shows_the_kept_area_and_no_area_of_other_rtl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for build in synth.DEFAULT_BUILDS:
        report = synth.AreaReport.from_json(synth.report_path(build).read_text())
        assert analysis.area(build) == {
            "cells": report.cells,
            "flip_flops": report.flops,
            "memory_bits": report.memory_bits,
        }
    # Once the RTL differs from what was synthesized, the kept figures are not shown.
    monkeypatch.setattr(sitemap_gen, "rtl_hash", lambda root=sitemap_gen.ROOT: "0" * 64)
    assert analysis.area(synth.DEFAULT_BUILDS[0]) == {}
