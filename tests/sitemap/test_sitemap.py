"""Loading a build's site map, looking entries up and indexing its bits uniformly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from testbed.sitemap import SiteClass, SiteMap, SiteMapError, path_parts
from testbed.sitemap_builds import STANDARD_BUILDS, Build, BuildError, build_name


def test_build_names_spell_every_option_and_parse_back() -> None:
    assert build_name() == "n4-bw1024-il1-ecc-scrub-tmr"
    bare = build_name(n=8, bank_words=512, interleave=4, ecc=False, scrub=False, tmr=False)
    assert bare == "n8-bw512-il4-noecc-noscrub-notmr"
    for build in STANDARD_BUILDS:
        assert Build.from_name(build.name) == build
        assert Build.from_hdl_parameters(build.hdl_parameters()) == build


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n": 3}, r"'n' must be a power of two 2\.\.16, got 3"),
        ({"bank_words": 1000}, r"'bank_words' must be a power of two 1\.\.32768 .*, got 1000"),
        ({"interleave": 3}, r"'interleave' must be one of 1, 2, 4, 8, got 3"),
        ({"n": 16, "bank_words": 32768},
         r"'bank_words' must be at most 16384 with 'n' 16 \(2 \* bank_words \* 4 bus words "
         r"in the 131072 of the scratchpad window\), got 32768"),
        ({"ecc": False}, r"'scrub' true needs 'ecc' true"),
    ],
)
def test_impossible_builds_are_refused_with_the_allowed_range(options, message) -> None:
    with pytest.raises(BuildError, match=message):
        Build(**options)
    with pytest.raises(SiteMapError, match=message):
        SiteMap.for_build(**options)


def test_a_malformed_build_name_names_the_form() -> None:
    with pytest.raises(BuildError, match=r"not of the form n<N>-bw<BANK_WORDS>"):
        Build.from_name("n4-default")


def test_a_build_without_a_kept_map_names_the_generate_command() -> None:
    with pytest.raises(SiteMapError) as info:
        SiteMap.for_build(n=16, bank_words=256)
    assert str(info.value) == (
        "no site map for build n16-bw256-il1-ecc-scrub-tmr: generate it with "
        "python -m testbed.sitemap generate --build n16-bw256-il1-ecc-scrub-tmr"
    )


def test_the_default_map_holds_the_documented_storage() -> None:
    sitemap = SiteMap.for_build()
    cells = sitemap.entry("u_spm.u_bank0.mem_q")
    assert (cells.kind, cells.cls, cells.depth, cells.width) == ("memory",
            SiteClass.OPERAND_MEMORY, 1024, 39)  # fmt: skip
    acc = sitemap.entry("u_array.g_row[3].g_col[2].u_pe.acc_q")
    assert (acc.cls, acc.bits, acc.copy) == (SiteClass.ACCUMULATOR, 32, None)
    copies = [sitemap.entry(f"u_regs.u_epilogue.q_q[{k}]") for k in range(3)]
    assert [(c.copy, c.width, c.cls) for c in copies] == [
        (k, 8, SiteClass.CONFIGURATION) for k in range(3)
    ]
    assert sitemap.entry("u_seq.u_state.q_q[1]").cls == SiteClass.SEQUENCER
    with pytest.raises(SiteMapError, match="has no storage element u_seq.nothing_q"):
        sitemap.entry("u_seq.nothing_q")


def test_protections_left_out_leave_their_storage_out() -> None:
    full = SiteMap.for_build(n=4)
    bare = SiteMap.for_build(n=4, ecc=False, scrub=False, tmr=False)
    assert "u_regs.u_dim_k.q_q[2]" in full and "u_regs.u_dim_k.q_q[2]" not in bare
    assert "u_regs.u_dim_k.q_q[0]" in bare
    assert not any(e.name.startswith("g_scrub.") for e in bare)
    # Without ECC a word is stored bare: 32 data bits instead of a 39-bit codeword.
    assert bare.entry("u_spm.u_bank1.mem_q").width == 32


def test_bits_by_class_add_up_to_the_total() -> None:
    for build in STANDARD_BUILDS:
        sitemap = SiteMap.load(build)
        by_class = sitemap.bits_by_class()
        assert sum(by_class.values()) == sitemap.total_bits == sum(e.bits for e in sitemap)
        assert all(bits > 0 for bits in by_class.values())


def test_site_index_walks_every_bit_once_in_entry_order() -> None:
    sitemap = SiteMap.for_build(n=2, bank_words=2048)
    index = 0
    for entry in sitemap:
        assert sitemap.site(index) == (entry, 0)
        assert sitemap.site(index + entry.bits - 1) == (entry, entry.bits - 1)
        index += entry.bits
    assert index == sitemap.total_bits
    for bad in (-1, sitemap.total_bits):
        with pytest.raises(SiteMapError, match=rf"site {bad} outside 0 .. "):
            sitemap.site(bad)


def test_a_memory_bit_locates_its_word_and_cell() -> None:
    cells = SiteMap.for_build(n=8, bank_words=512, interleave=4).entry("u_spm.u_bank0.mem_q")
    assert (cells.depth, cells.width) == (128, 4 * 72)
    assert cells.locate(0) == (0, 0)
    assert cells.locate(cells.width * 5 + 7) == (5, 7)
    with pytest.raises(SiteMapError, match="outside"):
        cells.locate(cells.bits)


def test_select_narrows_sampling_to_classes() -> None:
    sitemap = SiteMap.for_build(n=4)
    pes = sitemap.select(SiteClass.ACCUMULATOR, "result_register")
    assert pes.total_bits == 2 * 16 * 32
    assert {pes.site(i)[0].cls for i in range(0, pes.total_bits, 31)} == {
        SiteClass.ACCUMULATOR, SiteClass.RESULT}  # fmt: skip
    with pytest.raises(SiteMapError, match="unknown site class"):
        sitemap.select("flux_capacitor")


def test_unobservable_storage_holds_no_sites() -> None:
    sitemap = SiteMap.for_build(n=4)
    # The right column's operand a and the bottom row's b leave the array unused.
    names = {e.name for e in sitemap.unobservable}
    assert "u_array.g_row[0].g_col[3].u_pe.a_q" in names
    assert "u_array.g_row[3].g_col[0].u_pe.b_q" in names
    assert not names & {e.name for e in sitemap}


def test_command_line_refuses_a_bad_build_in_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "testbed.sitemap", "generate", "--build", "n5-bw1024-il1-ecc"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "not of the form n<N>-bw<BANK_WORDS>" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_path_parts_are_the_steps_of_a_simulator_handle() -> None:
    assert path_parts("u_array.g_row[0].g_col[12].u_pe.acc_q") == [
        ("u_array", None), ("g_row", 0), ("g_col", 12), ("u_pe", None), ("acc_q", None),
    ]
    assert path_parts("u_regs.u_dim_m.q_q[2]")[-1] == ("q_q", 2)
    with pytest.raises(SiteMapError, match=r"'g_row\[x\]' is not a scope or signal name"):
        path_parts("u_array.g_row[x].u_pe")


@pytest.mark.parametrize("build", STANDARD_BUILDS, ids=[b.name for b in STANDARD_BUILDS])
def test_the_array_tags_are_the_nets_that_several_registers_load(build: Build) -> None:
    # The sequencer's valid and first tags feed PE (0, 0) and the first stage of every
    # skew chain (bits 8 and 9 of its A word) at one edge: the only such nets besides
    # the TMR copies, which share their next value by rule and are not listed.
    sitemap = SiteMap.load(build)
    assert [net.name for net in sitemap.nets] == ["arr_first[0]", "arr_valid[0]"]
    skews = [f"u_array.g_skew[{i}].g_delay.a_sr_q" for i in range(1, build.n)]
    for net, pe, bit in zip(sitemap.nets, ("first_q", "valid_q"), (9, 8), strict=True):
        head = (f"u_array.g_row[0].g_col[0].u_pe.{pe}", 0)
        assert net.loads == (head, *((name, bit) for name in skews))
        for name, b in net.loads:
            assert sitemap.loads(name, b) == net.loads  # any load names the whole net
            assert sitemap.net_head(name, b) == ((name, b) == head)
    # A bit of no listed net is its own net.
    other = ("u_array.g_row[0].g_col[1].u_pe.valid_q", 0)
    assert sitemap.loads(*other) == (other,) and sitemap.net_head(*other)
