"""The committed digits workload: it loads, and its figures are what it measures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from workload import float_model
from workload.format import Workload
from workload.reference import forward, gemm_jobs, int8_accuracy


def test_digits_loads_with_its_shapes(digits: Workload) -> None:
    assert digits.name == "digits"
    assert digits.input_shape == (8, 8, 1)
    assert [layer.kind for layer in digits.layers] == ["conv2d", "dense", "dense"]
    assert [layer.output_shape for layer in digits.layers] == [(6, 6, 8), (32,), (10,)]
    assert digits.classes == 10
    assert digits.test_inputs.shape == (360, 8, 8, 1)
    assert digits.test_inputs.dtype == np.int8
    assert 0 <= digits.test_inputs.min() and digits.test_inputs.max() <= 112
    assert np.bincount(digits.test_labels).min() >= 35  # stratified: about 36 per class


def test_int8_accuracy_is_the_recorded_figure(digits: Workload) -> None:
    assert digits.recorded is not None
    assert round(int8_accuracy(digits), 4) == digits.recorded.int8_accuracy


def test_float_accuracy_is_recorded_and_int8_within_one_point(digits: Workload) -> None:
    assert digits.recorded is not None
    recomputed = float_model.float_accuracy(digits)
    assert round(recomputed, 4) == digits.recorded.float_accuracy
    assert abs(int8_accuracy(digits) - recomputed) <= 0.01


def test_logits_are_int32_and_predictions_their_argmax(digits: Workload) -> None:
    logits, predicted = forward(digits, digits.test_inputs[:5])
    assert logits.dtype == np.int32 and logits.shape == (5, 10)
    np.testing.assert_array_equal(predicted, logits.argmax(axis=1))


def test_gemm_jobs_of_a_batch_of_32(digits: Workload) -> None:
    jobs = gemm_jobs(digits, 32)
    shapes = [(j.layer, j.m, j.k, j.n, j.relu, j.shift, j.out_int32) for j in jobs]
    assert shapes == [
        ("conv1", 32 * 36, 9, 8, True, digits.layers[0].shift, False),
        ("fc1", 32, 288, 32, True, digits.layers[1].shift, False),
        ("fc2", 32, 32, 10, False, 0, True),
    ]
    for job, layer in zip(jobs, digits.layers, strict=True):
        assert job.b.shape == (job.k, job.n) and job.b.dtype == np.int8
        assert job.bias is not None and job.bias.dtype == np.int32 and job.bias.shape == (job.n,)
        np.testing.assert_array_equal(job.b, layer.weights.reshape(job.k, job.n))


def test_the_runtime_does_not_need_scikit_learn() -> None:
    code = (
        "import sys, workload.format, workload.layout, workload.reference, workload.float_model;"
        "print('sklearn' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == "False"
