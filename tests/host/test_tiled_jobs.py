"""A layer larger than the chip's scratchpad, end to end over a real pty: the host sends
one job, the flight software runs it in blocks (ICD 15.6, "Tiling")."""

from __future__ import annotations

import numpy as np

from firmware_sim.accel import gemm_reference
from protocol.payloads import HkStructure, JobStatus

N, BANK_WORDS = 4, 256


def test_a_conv_layer_larger_than_the_scratchpad_equals_the_reference(start_chip) -> None:
    target = start_chip("--bank-words", str(BANK_WORDS), "--interleave", "2")
    accel = target.housekeeping(HkStructure.ACCELERATOR)
    assert (accel["array_n"], accel["spm_words"]) == (N, 2 * BANK_WORDS)
    # 3x3 convolution of 8 images of 6 x 6 as im2col: A alone (72 blocks of 4 rows x 9
    # words) is more than a bank holds.
    m, k, n = 8 * 36, 9, 8
    assert -(-m // N) * k > BANK_WORDS
    rng = np.random.default_rng(41)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    bias = np.arange(-4, 4) * 250
    c = target.run_layer(a, b, bias, relu=True, shift=7, job_id=77)
    np.testing.assert_array_equal(c, gemm_reference(a, b, bias, relu=True, shift=7))
    accel = target.housekeeping(HkStructure.ACCELERATOR)
    assert (accel["last_job_id"], accel["last_job_status"]) == (77, JobStatus.COMPLETED)
    assert accel["last_job_macs"] == m * k * n
    assert accel["last_job_energy"] > 0
