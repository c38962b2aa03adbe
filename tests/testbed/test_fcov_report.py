"""The functional coverage report of the cocotb regression: merging the databases of the
simulator runs, naming every bin never hit, and failing on one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cocotb_tests import fcov


def database(path: Path, hit: dict[str, list[str]]) -> Path:
    """A coverage database as a simulator run exports it, with ``hit`` bins hit once."""
    db = {
        name: {"bins:_hits": {b: int(b in hit.get(name, [])) for b in bins}}
        for name, bins in fcov.declared().items()
    }
    db[fcov.TOP] = {"coverage": 0, "size": 0}  # a group, as export_to_yaml writes it
    path.write_text(yaml.safe_dump(db))
    return path


def halves() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Every declared bin, split in two: the first bin of each item, and the rest."""
    decl = fcov.declared()
    return ({name: bins[:1] for name, bins in decl.items()},
            {name: bins[1:] for name, bins in decl.items()})  # fmt: skip


def test_the_model_declares_bins_from_the_model_tables() -> None:
    decl = fcov.declared()
    assert decl["scc.csr.read"] == [reg.name for reg in fcov.Reg]
    assert len(decl["scc.tmr.mismatch"]) == 16
    assert len(decl["scc.job.epilogue"]) == 8
    # The cross leaves out the one pair no bus write can reach.
    assert len(decl["scc.reset.cross"]) == 2 * 6 - 1


def test_two_partial_databases_merge_to_every_bin(tmp_path: Path) -> None:
    first, rest = halves()
    runs = tmp_path / "fcov"
    runs.mkdir()
    database(runs / "a.yml", first)
    database(runs / "b.yml", rest)
    database(runs / "c.yml", first)
    assert fcov.report(runs, tmp_path) == 0
    merged = yaml.safe_load((tmp_path / "functional-coverage.yml").read_text())
    name = "scc.csr.read"
    assert merged[name]["ID"] == 2 and merged[name]["PARAMS"] == 1
    text = (tmp_path / "functional-coverage.md").read_text()
    total = sum(len(b) for b in fcov.declared().values())
    assert f"{total} of {total} declared bins hit" in text and "merged from 3" in text


def test_a_bin_never_hit_is_named_and_fails_the_report(tmp_path: Path, capsys) -> None:
    first, rest = halves()
    rest["scc.irq.drop"].remove("hard_reset")
    runs = tmp_path / "fcov"
    runs.mkdir()
    database(runs / "a.yml", first)
    database(runs / "b.yml", rest)
    assert fcov.report(runs, tmp_path) == 1
    assert "scc.irq.drop: never hit: hard_reset" in capsys.readouterr().err
    row = next(line for line in (tmp_path / "functional-coverage.md").read_text().splitlines()
               if "`scc.irq.drop`" in line)  # fmt: skip
    assert "4 / 5" in row and "hard_reset" in row


def test_no_database_fails_the_report(tmp_path: Path, capsys) -> None:
    assert fcov.main(["report", "--dir", str(tmp_path / "none"), "--out", str(tmp_path)]) == 1
    assert "no coverage database" in capsys.readouterr().err


def test_a_database_of_another_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.yml"
    path.write_text(yaml.safe_dump({"scc.csr.peek": {"bins:_hits": {"ID": 1}}}))
    with pytest.raises(ValueError, match="scc.csr.peek"):
        fcov.merge([path])


def test_an_exported_database_merges(tmp_path: Path) -> None:
    fcov.sample_irq(False, "hard_reset")
    fcov.export(tmp_path / "run.yml")
    hits = fcov.merge([tmp_path / "run.yml"])
    assert hits["scc.irq.drop"]["hard_reset"] >= 1
    assert set(hits) == set(fcov.declared())


def test_dimensions_are_classed_against_the_array_size() -> None:
    n = 4
    classes = [fcov.dim_class(v, n) for v in (1, 3, 4, 8, 9, fcov.DIM_LARGEST)]
    assert classes == ["one", "below_n", "equal_n", "multiple_of_n", "not_multiple_of_n",
                       "largest"]  # fmt: skip
