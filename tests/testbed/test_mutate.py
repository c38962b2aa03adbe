"""Mutation testing's parts that need no simulator (``make mutate``): reading ``mutate
-list`` output, sharing the count among modules, the score, the equivalents file, and
turning a module's netlist into a stand-in for its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed import mutate
from testbed.mutate import Design, MutateError, Mutation, Score, parse_list, score_of, shares

LISTED = (
    "mutate -mode cnot0 -module $paramod$fce7\\scc_seq -cell $add$hdl/rtl/scc_seq.v:133$8200 "
    "-port Y -portbit 22 -ctrlbit 10 -src hdl/rtl/scc_seq.v:133.23-133.30\n"
    "mutate -mode const1 -module $paramod$fce7\\scc_seq -cell $procdff$11178 -port Q "
    "-portbit 16 -wire bias0_q -wirebit 16 -src hdl/rtl/scc_seq.v:183.18-183.25 "
    "-src hdl/rtl/scc_seq.v:223.3-231.6\n"
    "\n"
    "mutate -mode inv -module scc_pe -cell $mul$hdl/rtl/scc_pe.v:41$77 -port A -portbit 7 "
    "-src hdl/rtl/scc_pe.v:41.20-41.27\n"
)


def test_a_listed_mutation_keeps_its_cell_port_bit_mode_and_source_lines() -> None:
    first, second, third = parse_list(LISTED)
    assert (first.module, first.base, first.cell) == (
        "$paramod$fce7\\scc_seq", "scc_seq", "$add$hdl/rtl/scc_seq.v:133$8200")
    assert (first.port, first.portbit, first.mode, first.ctrlbit) == ("Y", 22, "cnot0", 10)
    assert first.line == "hdl/rtl/scc_seq.v:133"
    assert second.wire == "bias0_q" and second.ctrlbit is None
    assert second.src == ("hdl/rtl/scc_seq.v:183.18-183.25", "hdl/rtl/scc_seq.v:223.3-231.6")
    assert second.line == "hdl/rtl/scc_seq.v:223"  # the process, not the declaration
    assert third.base == "scc_pe" and third.mode == "inv"


def test_applying_a_mutation_drops_the_notes_and_quotes_nothing_plain() -> None:
    mutation = parse_list(LISTED)[0]
    assert mutation.apply == ("mutate -mode cnot0 -module $paramod$fce7\\scc_seq -cell "
                              "$add$hdl/rtl/scc_seq.v:133$8200 -port Y -portbit 22 -ctrlbit 10")


def test_identity_leaves_out_yosys_running_numbers_so_it_outlives_unrelated_edits() -> None:
    mutation = parse_list(LISTED)[0]
    assert mutation.identity == "scc_seq|$add$hdl/rtl/scc_seq.v:133|Y[22]|cnot0|ctrl10"
    again = parse_list(LISTED.replace("$8200", "$9999").replace("$fce7", "$abcd"))[0]
    assert again.identity == mutation.identity


@pytest.mark.parametrize("line", [
    "mutate -mode flip -module m -cell c -port Y -portbit 0",
    "mutate -mode inv -module m -cell c -port Y",
    "mutate -mode inv -module m -cell c -port Y -portbit x",
    "read_verilog x.v",
])
def test_a_malformed_list_line_is_an_error_naming_the_line(line: str) -> None:
    with pytest.raises(MutateError, match="line 1"):
        parse_list(line)


def test_the_count_is_shared_by_size_with_a_floor_and_adds_up() -> None:
    got = shares({"big": 300, "mid": 100, "tiny": 1}, 100, least=8)
    assert sum(got.values()) == 100
    assert got["tiny"] >= 8 and got["big"] > got["mid"] > got["tiny"]
    assert shares({"a": 1, "b": 1, "c": 1}, 7, least=0) in (
        {"a": 3, "b": 2, "c": 2}, {"a": 2, "b": 3, "c": 2}, {"a": 2, "b": 2, "c": 3})
    assert sum(shares({"a": 5, "b": 5}, 3, least=8).values()) == 3


def test_a_sample_is_spread_over_the_list_and_is_the_same_each_time() -> None:
    items = [Mutation(f"c{k}", "m", f"c{k}", "Y", 0, "inv") for k in range(10)]
    assert [m.cell for m in mutate.sample(items, 3)] == ["c0", "c3", "c6"]
    assert mutate.sample(items, 20) == items


def test_the_score_counts_timeouts_as_killed_and_leaves_out_equivalents_and_errors() -> None:
    score = score_of(["killed"] * 90 + ["timeout"] * 5 + ["survived"] * 5
                     + ["equivalent"] * 7 + ["error"] * 3)
    assert score == Score(killed=90, timeout=5, survived=5, equivalent=7, errors=3)
    assert (score.tried, score.scored) == (110, 100)
    assert score.score == pytest.approx(0.95)
    assert score_of([]).score is None
    assert score_of(["equivalent"]).score is None
    with pytest.raises(ValueError, match="unknown outcome"):
        score_of(["maybe"])


def test_the_equivalents_file_needs_a_reason_for_each_mutation(tmp_path: Path) -> None:
    path = tmp_path / "eq.yaml"
    path.write_text("equivalent:\n  - mutation: scc_pe|x|Y[0]|inv\n    reason: dead bit\n")
    assert mutate.load_equivalent(path) == {"scc_pe|x|Y[0]|inv": "dead bit"}
    path.write_text("equivalent:\n  - mutation: scc_pe|x|Y[0]|inv\n    reason: ''\n")
    with pytest.raises(MutateError, match="entry 1 needs"):
        mutate.load_equivalent(path)
    assert mutate.load_equivalent(tmp_path / "missing.yaml") == {}


def test_the_committed_equivalents_file_reads() -> None:
    for identity, reason in mutate.load_equivalent().items():
        assert identity.split("|")[0].startswith("scc_") and reason


NETLIST = """module \\$paramod$ab\\scc_tmr_reg (clk_i, q_o);
  input clk_i;
  output [2:0] q_o;
  reg [2:0] \\q_q[0] ;
  reg [2:0] \\q_q[1] ;
  always @(posedge clk_i)
    \\q_q[0]  <= \\q_q[1] ;
  assign q_o = \\q_q[0] ;
  \\$paramod\\scc_scrub\\SPM_WORDS=s32'00000000000000000000001000000000  \\g_scrub.u_scrub  (
    .clk_i(clk_i)
  );
endmodule
"""


def test_a_netlist_stands_in_for_its_source() -> None:
    design = Design(il=Path("design.il"), rtl_sha256="0", params={
        "$paramod$ab\\scc_tmr_reg": {"W": "3", "RESET": "3'000"},
        "$paramod\\scc_scrub\\SPM_WORDS=s32'00000000000000000000001000000000": {
            "SPM_WORDS": "512"},
    })
    text = mutate.fix_netlist(NETLIST, "$paramod$ab\\scc_tmr_reg", "scc_tmr_reg__mutant", design)
    assert text.startswith("module scc_tmr_reg__mutant (clk_i, q_o);")
    assert "parameter W = 3;" in text and "parameter RESET = 3'b000;" in text
    assert "reg [2:0] q_q [0:1];" in text and "q_q[0] <= q_q[1];" in text
    assert "\\q_q" not in text
    assert "if (1) begin : g_scrub\n  scc_scrub #(.SPM_WORDS(512)) u_scrub (" in text


def test_the_parents_instance_is_pointed_at_the_mutant_and_no_other() -> None:
    source = ("  scc_tmr_reg #(.W(1), .TMR_EN(TMR_EN)) u_irq_en (.clk_i(clk_i));\n"
              "  scc_tmr_reg #(.W(12), .TMR_EN(TMR_EN)) u_dim_m (.clk_i(clk_i));\n")
    got = mutate.retarget(source, "scc_tmr_reg", "u_dim_m", "scc_tmr_reg__mutant")
    assert got.splitlines()[0] == source.splitlines()[0]
    assert got.splitlines()[1].startswith("  scc_tmr_reg__mutant #(.W(12)")
    with pytest.raises(MutateError, match="no instance u_nope"):
        mutate.retarget(source, "scc_tmr_reg", "u_nope", "x")


def test_an_unknown_module_is_a_one_line_error_with_exit_status_2(capsys) -> None:
    assert mutate.main(["--module", "scc_nope", "--count", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no module scc_nope" in err and "\n" not in err


def test_a_count_that_is_not_positive_is_refused(capsys) -> None:
    assert mutate.main(["--count", "0"]) == 2
    assert "--count must be positive" in capsys.readouterr().err
