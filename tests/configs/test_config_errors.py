"""A config file that cannot be used gives one line naming the file, the line and the key,
what was wrong and what is allowed. The texts are the contract, so they are asserted whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from testbed.config import ConfigError, load_environment, load_target
from testbed.config.target import PORT_FORMAT

REPO = Path(__file__).resolve().parents[2]
SIM = """\
kind: sim
description: a test chip
n: 4
bank_words: 1024
interleave: 1
ecc: true
scrub: true
tmr: true
"""
LEO = (REPO / "configs/environments/leo-iss.yaml").read_text()


def error(tmp_path: Path, text: str, load: Callable = load_target, name: str = "x.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    message = str(caught.value)
    assert "\n" not in message
    return message.replace(str(tmp_path), "DIR")


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_a_misspelt_key_is_named_with_the_key_it_looks_like(tmp_path: Path) -> None:
    text = edit(SIM, "scrub: true", "scrub_perod: true")
    assert (
        error(tmp_path, text) == "DIR/x.yaml:7: 'scrub_perod': unknown key; did you mean 'scrub'?"
    )


def test_an_unknown_key_like_no_other_lists_the_allowed_ones(tmp_path: Path) -> None:
    assert error(tmp_path, SIM + "colour: blue\n") == (
        "DIR/x.yaml:9: 'colour': unknown key; allowed: kind, description, n, bank_words, "
        "interleave, ecc, scrub, tmr, backend, mode, key"
    )


def test_a_value_of_the_wrong_type_says_what_is_allowed(tmp_path: Path) -> None:
    text = edit(SIM, "n: 4", "n: four")
    assert error(tmp_path, text) == "DIR/x.yaml:3: 'n' must be a power of two 2..16, got 'four'"


def test_a_number_out_of_range_says_what_is_allowed(tmp_path: Path) -> None:
    text = edit(SIM, "n: 4", "n: 32")
    assert error(tmp_path, text) == "DIR/x.yaml:3: 'n' must be a power of two 2..16, got 32"


def test_a_quoted_number_is_not_a_number(tmp_path: Path) -> None:
    text = edit(SIM, "bank_words: 1024", 'bank_words: "1024"')
    assert error(tmp_path, text) == (
        "DIR/x.yaml:4: 'bank_words' must be a power of two 1..32768 (words in each scratchpad "
        "bank), got '1024'"
    )


def test_a_backend_that_does_not_exist_lists_those_that_do(tmp_path: Path) -> None:
    assert error(tmp_path, SIM + "backend: verilog\n") == (
        "DIR/x.yaml:9: 'backend' must be one of: model, rtl, got 'verilog'"
    )


def test_a_missing_key_is_named_with_what_it_takes(tmp_path: Path) -> None:
    message = error(tmp_path, "kind: board\nbaud: 9600\n")
    assert message == f"DIR/x.yaml: missing key 'port': {PORT_FORMAT}"
    assert "/dev/ttyUSB0" in message and "socket://" in message


def test_a_port_that_is_not_a_pyserial_url_is_refused(tmp_path: Path) -> None:
    assert error(tmp_path, "kind: board\nport: ttyUSB0\n") == (
        f"DIR/x.yaml:2: 'port' must be {PORT_FORMAT}, got 'ttyUSB0'"
    )


def test_bad_yaml_gives_its_line(tmp_path: Path) -> None:
    text = "kind: sim\nn: 4\n  bank_words: 1024\n"
    assert error(tmp_path, text) == "DIR/x.yaml:3: bad YAML: mapping values are not allowed here"


def test_an_unclosed_list_is_bad_yaml_at_the_line_it_is_noticed(tmp_path: Path) -> None:
    text = edit(LEO, "sizes: [2, 3, 4, 5, 6, 7, 8, 9]", "sizes: [2, 3, 4")
    # The parser notices at the colon of the next key.
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "probabilities:" in t)
    assert error(tmp_path, text, load_environment) == (
        f"DIR/x.yaml:{line}: bad YAML: expected ',' or ']', but got ':'"
    )


def test_a_key_given_twice_names_both_lines(tmp_path: Path) -> None:
    assert error(tmp_path, SIM + "n: 8\n") == ("DIR/x.yaml:9: 'n': duplicate key (first at line 3)")


def test_a_file_that_is_not_a_mapping_says_so(tmp_path: Path) -> None:
    assert error(tmp_path, "- kind: sim\n") == (
        "DIR/x.yaml: expected a mapping of keys at the top, got list [{'kind': 'sim'}]"
    )
    assert error(tmp_path, "# nothing\n") == (
        "DIR/x.yaml: expected a mapping of keys at the top, got an empty file"
    )


def test_a_missing_file_says_it_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_target(tmp_path / "none.yaml")
    assert str(caught.value) == f"{tmp_path}/none.yaml: cannot read: No such file or directory"


def test_an_unknown_kind_lists_the_kinds(tmp_path: Path) -> None:
    assert error(tmp_path, edit(SIM, "kind: sim", "kind: simulated")) == (
        "DIR/x.yaml:1: 'kind' must be one of: sim (a simulated chip), board (a board on a "
        "serial port), got 'simulated'"
    )
    assert error(tmp_path, "port: /dev/ttyUSB0\n") == (
        "DIR/x.yaml: missing key 'kind' (sim (a simulated chip), board (a board on a serial port))"
    )


def test_a_scrubber_without_ecc_is_refused_at_the_scrub_line(tmp_path: Path) -> None:
    text = edit(SIM, "ecc: true", "ecc: false")
    assert error(tmp_path, text) == (
        "DIR/x.yaml:7: 'scrub' true needs 'ecc' true (the scrubber rewrites ECC words)"
    )


def test_a_bank_that_is_no_multiple_of_the_interleave_is_refused(tmp_path: Path) -> None:
    text = edit(edit(SIM, "bank_words: 1024", "bank_words: 4"), "interleave: 1", "interleave: 8")
    assert error(tmp_path, text) == (
        "DIR/x.yaml:4: 'bank_words' (4) must be a multiple of 'interleave' (8)"
    )


def test_a_bad_key_says_what_a_key_looks_like(tmp_path: Path) -> None:
    assert error(tmp_path, SIM + "key: '1:00'\n") == (
        "DIR/x.yaml:9: 'key' must be ID:HEX, a key id 1..65535 and a key of at least 16 "
        "octets, got '1:00'"
    )


def test_an_unreadable_key_file_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("kind: board\nport: loop://\nkey_file: none.key\n")
    board = load_target(tmp_path / "b.yaml")
    with pytest.raises(ConfigError) as caught:
        board.key_pair()
    assert str(caught.value) == (
        f"{tmp_path}/b.yaml:3: 'key_file': cannot read {tmp_path}/none.key: "
        "No such file or directory"
    )


def test_a_key_file_is_read_relative_to_the_board_file(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("kind: board\nport: loop://\nkey_file: k.key\n")
    (tmp_path / "k.key").write_text("7:" + "ab" * 16 + "\n")
    (tmp_path / "k.key").chmod(0o600)
    assert load_target(tmp_path / "b.yaml").key_pair() == (7, bytes([0xAB] * 16))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    (tmp_path / "b.yaml").write_text("kind: board\nport: loop://\nkey_file: k.key\n")
    key = tmp_path / "k.key"
    key.write_text("7:" + "ab" * 16 + "\n")
    key.chmod(mode)
    with pytest.raises(ConfigError) as caught:
        load_target(tmp_path / "b.yaml").key_pair()
    assert str(caught.value) == (
        f"{tmp_path}/b.yaml:3: 'key_file': {key} can be read by others (mode {mode:o}): "
        f"a key must be its owner's alone; run chmod 600 {key}"
    )
    assert "ab" * 16 not in str(caught.value)


def test_a_nested_value_is_named_by_its_path(tmp_path: Path) -> None:
    text = edit(LEO, "    value: 0.9\n", "    value: 1.5\n")
    line = text.splitlines().index("    value: 1.5") + 1
    assert error(tmp_path, text, load_environment) == (
        f"DIR/x.yaml:{line}: 'saa.f_u.value' must be a share 0..1, got 1.5"
    )


def test_a_nested_misspelt_key_is_named_by_its_path(tmp_path: Path) -> None:
    text = edit(LEO, "    sizes:", "    size:")
    line = text.splitlines().index("    size: [2, 3, 4, 5, 6, 7, 8, 9]") + 1
    assert error(tmp_path, text, load_environment) == (
        f"DIR/x.yaml:{line}: 'multi_bit.clusters.size': unknown key; did you mean 'sizes'?"
    )


def test_a_bare_number_needs_its_source(tmp_path: Path) -> None:
    text = edit(LEO, "flipflop_upsets_per_bit_day:\n  value: 3.0e-8\n  source: estimate\n"
                "  note: taken equal to the SRAM rate of the same process\n",
                "flipflop_upsets_per_bit_day: 3e-8\n")  # fmt: skip
    line = text.splitlines().index("flipflop_upsets_per_bit_day: 3e-8") + 1
    assert error(tmp_path, text, load_environment) == (
        f"DIR/x.yaml:{line}: 'flipflop_upsets_per_bit_day' must be a mapping of value, source, "
        "note, got 3e-08"
    )


def test_an_estimate_is_marked_by_the_word_alone(tmp_path: Path) -> None:
    text = edit(LEO, "    note: 5-10 % of the time assumed in the anomaly\n", "")
    text = edit(text, "    value: 0.07\n    source: estimate\n",
                "    value: 0.07\n    source: Estimate, roughly\n")  # fmt: skip
    line = text.splitlines().index("    source: Estimate, roughly") + 1
    assert error(tmp_path, text, load_environment) == (
        f"DIR/x.yaml:{line}: 'saa.f_t.source' must be a citation (authors, venue, year or "
        "identifier) or the word estimate, got 'Estimate, roughly'"
    )


def test_cluster_probabilities_must_sum_to_one(tmp_path: Path) -> None:
    text = edit(LEO, "[0.5, 0.25, 0.12, 0.06, 0.04, 0.02, 0.007, 0.003]",
                "[0.5, 0.25, 0.12, 0.06, 0.04, 0.02, 0.007, 0.3]")  # fmt: skip
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "0.007, 0.3]" in t)
    assert error(tmp_path, text, load_environment) == (
        f"DIR/x.yaml:{line}: 'probabilities' must sum to 1, got 1.297"
    )


def test_an_anomaly_pass_longer_than_an_orbit_is_refused(tmp_path: Path) -> None:
    text = edit(LEO, "    value: 0.07\n", "    value: 0.7\n")
    line = text.splitlines().index("    value: 0.7")  # 1-based, the f_t key just above
    assert error(tmp_path, text, load_environment) == (
        f"DIR/x.yaml:{line}: one pass (f_t x 1 day / passes_per_day = 6720 s) must fit in an "
        "orbit of 5554 s"
    )


def test_several_errors_report_the_first_and_count_the_rest(tmp_path: Path) -> None:
    text = edit(edit(SIM, "n: 4", "n: 3"), "tmr: true", "tmr: 1")
    assert error(tmp_path, text) == (
        "DIR/x.yaml:3: 'n' must be a power of two 2..16, got 3 (and 1 more)"
    )


def test_a_bank_the_bus_window_cannot_reach_is_refused_at_the_bank_words_line(
    tmp_path: Path,
) -> None:
    text = edit(edit(SIM, "n: 4", "n: 16"), "bank_words: 1024", "bank_words: 32768")
    assert error(tmp_path, text) == (
        "DIR/x.yaml:4: 'bank_words' must be at most 16384 with 'n' 16 (2 * bank_words * 4 bus "
        "words in the 131072 of the scratchpad window), got 32768"
    )
