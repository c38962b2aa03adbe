"""A workload that cannot be used gives one ConfigError line: the file, the key, what is allowed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from testbed.config.errors import ConfigError
from workload.format import load_workload


@pytest.fixture
def copy(tmp_path: Path, digits_dir: Path) -> Path:
    """A copy of the digits workload to spoil."""
    out = tmp_path / "digits"
    shutil.copytree(digits_dir, out)
    return out


def edit(directory: Path, old: str, new: str) -> None:
    path = directory / "workload.yaml"
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def error(directory: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_workload(directory)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(str(directory / "workload.yaml"))
    return caught.value


def line_of(directory: Path, text: str) -> int:
    lines = (directory / "workload.yaml").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_the_workload_loads_from_its_directory_or_its_yaml(copy: Path) -> None:
    assert load_workload(copy / "workload.yaml").layers[1].name == "fc1"


def test_float_weights_are_refused_naming_the_file_dtype_and_range(copy: Path) -> None:
    w = np.load(copy / "fc1_w.npy")
    np.save(copy / "fc1_w.npy", w.astype(np.float64))
    err = error(copy)
    assert err.message == "'layers[1].weights': fc1_w.npy holds float64, want int8 (-128..127)"
    assert err.line == line_of(copy, "weights: fc1_w.npy")


def test_a_weight_file_that_does_not_chain_names_the_shape_wanted(copy: Path) -> None:
    np.save(copy / "fc1_w.npy", np.zeros((300, 32), np.int8))
    err = error(copy)
    want = "'layers[1].weights': fc1_w.npy has shape (300, 32), want (288, 32)"
    assert err.message.startswith(want)
    assert err.message.endswith("(in_features, out_features; 288 = its 6 x 6 x 8 input flattened)")


def test_a_layer_whose_outputs_do_not_match_the_next_weights(copy: Path) -> None:
    edit(copy, "out_features: 32", "out_features: 30")
    assert "fc1_w.npy has shape (288, 32), want (288, 30)" in error(copy).message


def test_a_conv2d_after_a_dense_layer_is_refused(copy: Path) -> None:
    conv = "  - name: fc2\n    kind: conv2d\n    kernel: [1, 1]\n    out_channels: 10"
    edit(copy, "  - name: fc2\n    kind: dense\n    out_features: 10", conv)
    err = error(copy)
    assert err.message == "'layers[2].kind': a conv2d takes an image: it cannot follow a dense"


def test_a_shift_above_31_names_the_range(copy: Path) -> None:
    edit(copy, "shift: 8", "shift: 40")
    err = error(copy)
    assert err.message == (
        "'layers[0].shift' must be 0..31, the accelerator's requantize right shift, got 40"
    )
    assert err.line == line_of(copy, "shift: 40")


def test_a_missing_file_is_named(copy: Path) -> None:
    (copy / "conv1_b.npy").unlink()
    err = error(copy)
    assert err.message == f"'layers[0].bias': conv1_b.npy not found in {copy}"


def test_an_unknown_key_names_the_one_meant(copy: Path) -> None:
    edit(copy, "    out_channels: 8\n", "    out_channels: 8\n    strides: 1\n")
    err = error(copy)
    assert err.message == "'layers[0].strides': unknown key; did you mean 'stride'?"
    assert err.line == line_of(copy, "strides: 1")


def test_a_stride_other_than_1_is_refused(copy: Path) -> None:
    edit(copy, "    out_channels: 8\n", "    out_channels: 8\n    stride: 2\n")
    assert error(copy).message.startswith("'layers[0].stride' must be 1, the only stride")


def test_a_middle_layer_with_int32_output_is_refused(copy: Path) -> None:
    edit(copy, "    shift: 10\n    relu: true\n    out_int32: false", "    out_int32: true")
    err = error(copy)
    assert err.message.startswith("'layers[1].out_int32': must be false")


def test_a_label_outside_the_classes_is_refused(copy: Path) -> None:
    labels = np.load(copy / "test_y.npy")
    labels[3] = 10
    np.save(copy / "test_y.npy", labels)
    assert error(copy).message == (
        "'test.labels': test_y.npy holds label 10, want 0..9 (the last layer's outputs)"
    )


def test_a_test_set_of_another_count_is_refused(copy: Path) -> None:
    edit(copy, "count: 360", "count: 300")
    assert "test_x.npy has shape (360, 8, 8, 1), want (300, 8, 8, 1)" in error(copy).message


def test_a_dense_layer_without_out_features_is_refused(copy: Path) -> None:
    edit(copy, "    out_features: 10\n", "")
    assert error(copy).message == "'layers[2].out_features': missing: a dense layer needs it"


def test_a_pickled_array_is_not_loaded(copy: Path) -> None:
    np.save(copy / "fc2_b.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    assert error(copy).message.startswith("'layers[2].bias': cannot read fc2_b.npy as .npy")
