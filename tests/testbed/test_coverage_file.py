"""Verilator's coverage files read and summed per module (``make coverage``)."""

from __future__ import annotations

from pathlib import Path

from testbed.coverage import merge, summary, table


def point(kind: str, module: str, line: int, what: str, count: int) -> str:
    fields = {"f": "hdl/rtl/x.v", "l": str(line), "page": f"v_{kind}/{module}", "o": what}
    body = "".join(f"\x01{k}\x02{v}" for k, v in fields.items())
    return f"C '{body}' {count}\n"


def test_runs_add_up_point_by_point_and_modules_of_several_widths_are_one(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a.dat", tmp_path / "b.dat"
    a.write_text(
        "# SystemC::Coverage-3\n"
        + point("line", "scc_seq", 10, "block", 0)
        + point("line", "scc_seq", 12, "if", 3)
        + point("toggle", "scc_tmr_reg__W8", 5, "q[0]:0->1", 0)
    )
    b.write_text(
        point("line", "scc_seq", 10, "block", 2)
        + point("toggle", "scc_tmr_reg__Wc", 5, "q[0]:0->1", 0)
        + point("toggle", "scc_tmr_reg__Wc", 5, "q[11]:0->1", 1)
    )
    report = summary(merge([a, b]))
    assert report["scc_seq"]["line"] == {"points": 2, "reached": 2, "share": 1.0, "missed": []}
    toggle = report["scc_tmr_reg"]["toggle"]
    assert (toggle["points"], toggle["reached"]) == (2, 1)
    assert toggle["missed"] == ["x.v:5 q[0]:0->1"]
    text = table(report)
    assert "| `scc_seq` | 2 | 2 (100.0 %) | - | - |" in text
    assert "| `scc_tmr_reg` | - | - | 2 | 1 (50.0 %) |" in text
