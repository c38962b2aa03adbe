"""The host reference equals the accelerator model bit for bit, layer by layer."""

from __future__ import annotations

import numpy as np

from firmware_sim.accel import Accelerator, ErrCode
from workload.format import Workload
from workload.reference import GemmJob, forward, layer_outputs


def test_reference_equals_the_chip_model_layer_by_layer(digits: Workload) -> None:
    # fc1's B (288 x 32) takes 8 x 288 words at N = 4: more than the default bank holds.
    chip = Accelerator(n=4, bank_words=4096)
    jobs: list[GemmJob] = []

    def on_chip(job: GemmJob, a: np.ndarray) -> np.ndarray:
        assert a.shape == (job.m, job.k) and a.dtype == np.int8
        c, err = chip.run_gemm(
            a, job.b, job.bias, relu=job.relu, shift=job.shift, out_int32=job.out_int32
        )
        assert err == ErrCode.NONE, f"{job.layer}: {err!r}"
        jobs.append(job)
        return c

    x = digits.test_inputs[:6]
    expected = layer_outputs(digits, x)
    got = layer_outputs(digits, x, engine=on_chip)
    assert [j.layer for j in jobs] == ["conv1", "fc1", "fc2"]
    for job, want, have in zip(jobs, expected, got, strict=True):
        assert have.dtype == want.dtype and have.shape == (job.m, job.n), job.layer
        np.testing.assert_array_equal(have, want, err_msg=job.layer)
    logits, _ = forward(digits, x)
    np.testing.assert_array_equal(got[-1], logits)
    # Not a trivial agreement: the int8 layers use their range, the logits differ by image.
    assert expected[0].max() > 63 and len({tuple(row) for row in logits}) == len(x)
