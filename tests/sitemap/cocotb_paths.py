"""cocotb: every site-map entry of the running build is a signal of its width, by its name.

Run by ``test_sitemap_paths.py``. No clock runs, so a value deposited into a register or a
memory row stays there to be read back.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import Timer

from cocotb_tests.sim import hdl_parameters
from firmware_sim.rtl.handles import resolve
from testbed.sitemap import SiteClass, SiteMap
from testbed.sitemap_builds import Build


@cocotb.test()
async def every_entry_is_a_signal_of_its_width(dut):
    """Each entry resolves by name, has its width (and depth), and takes a deposit."""
    sitemap = SiteMap.load(Build.from_hdl_parameters(hdl_parameters()))
    dut.clk_i.value = 0
    dut.rst_ni.value = 0
    await Timer(1, "ns")
    dut.rst_ni.value = 1
    await Timer(1, "ns")
    entries = (*sitemap.entries, *sitemap.unobservable)
    targets = []
    for entry in entries:
        handle = resolve(dut, entry.name)
        if entry.kind == "memory":
            assert len(handle) == entry.depth, f"{entry.name}: {len(handle)} rows"
            handle = handle[entry.depth - 1]
        assert len(handle) == entry.width, f"{entry.name}: {len(handle)} bits, map {entry.width}"
        if entry.cls == SiteClass.RESET:
            continue  # set, it would reset every other register (its name and width count)
        # The top and the bottom bit: both exist only if the width is right.
        pattern = (1 << (entry.width - 1)) | 1
        handle.value = pattern
        targets.append((entry, handle, pattern))
    await Timer(1, "ns")
    for entry, handle, pattern in targets:
        assert int(handle.value) == pattern, f"{entry.name}: deposit not kept"
    dut._log.info("%d entries of %s resolved and deposited", len(entries), sitemap.build.name)
