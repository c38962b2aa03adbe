"""The site map's names are the simulator's: run cocotb_paths.py on the RTL under Icarus."""

from __future__ import annotations

import pytest

from cocotb_tests.sim import run
from testbed.sitemap_builds import Build

#: A build with interleaving 2 and every protection, which no other RTL test builds (so its
#: simulation directory is its own).
PATHS_BUILD = Build(n=4, bank_words=256, interleave=2)


@pytest.mark.rtl
def test_site_map_names_resolve_in_the_simulator_with_their_widths() -> None:
    run("scc_top", "tests.sitemap.cocotb_paths", PATHS_BUILD.hdl_parameters())
