"""im2col and the flatten order: one GEMM per conv2d, its C the next layer's A as it lies."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_sim.accel import gemm_reference
from workload import layout

SEED = 20240607


def direct_conv(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Valid, stride-1 NHWC convolution by nested loops, in int64."""
    batch, height, width, c_in = x.shape
    kh, kw, _, c_out = w.shape
    out = np.zeros((batch, height - kh + 1, width - kw + 1, c_out), dtype=np.int64)
    for b in range(batch):
        for y in range(height - kh + 1):
            for x0 in range(width - kw + 1):
                for co in range(c_out):
                    total = 0
                    for ky in range(kh):
                        for kx in range(kw):
                            for ci in range(c_in):
                                total += int(x[b, y + ky, x0 + kx, ci]) * int(w[ky, kx, ci, co])
                    out[b, y, x0, co] = total
    return out


@pytest.mark.parametrize(
    ("shape", "kernel", "c_out"),
    [((2, 6, 5, 3), (3, 2), 4), ((3, 8, 8, 1), (3, 3), 8), ((1, 4, 7, 2), (1, 1), 5)],
)
def test_im2col_gemm_equals_a_direct_convolution(shape, kernel, c_out) -> None:
    rng = np.random.default_rng(SEED)
    x = rng.integers(-128, 128, shape, dtype=np.int8)
    w = rng.integers(-128, 128, (*kernel, shape[3], c_out), dtype=np.int8)
    a = layout.im2col(x, kernel)
    oh, ow = layout.conv_output_hw(shape[1], shape[2], kernel)
    assert a.shape == (shape[0] * oh * ow, kernel[0] * kernel[1] * shape[3])
    c = gemm_reference(a, layout.conv_b(w), out_int32=True)
    want = direct_conv(x, w)
    np.testing.assert_array_equal(layout.as_images(c, shape[0], (oh, ow, c_out)), want)


def test_im2col_columns_run_ky_then_kx_then_channel() -> None:
    x = np.arange(2 * 4 * 4 * 2).reshape(2, 4, 4, 2)
    a = layout.im2col(x, (2, 3))
    # 3 x 2 outputs per image: row 1 is image 0, output (0, 1); row 4 is output (2, 0).
    np.testing.assert_array_equal(a[1], x[0, 0:2, 1:4, :].reshape(-1))
    np.testing.assert_array_equal(a[4], x[0, 2:4, 0:3, :].reshape(-1))
    assert a[6].tolist() == x[1, 0:2, 0:3, :].reshape(-1).tolist()  # image 1 starts at row 6


def test_conv_c_as_rows_is_the_nhwc_flatten_of_each_image() -> None:
    rng = np.random.default_rng(SEED + 1)
    x = rng.integers(-128, 128, (3, 5, 5, 2), dtype=np.int8)
    w = rng.integers(-128, 128, (3, 3, 2, 4), dtype=np.int8)
    c = gemm_reference(layout.im2col(x, (3, 3)), layout.conv_b(w), shift=9)
    rows = layout.as_rows(c, 3)
    assert rows.shape == (3, 3 * 3 * 4) and np.shares_memory(rows, c)
    nhwc = np.clip(np.floor_divide(direct_conv(x, w) + 256, 512), -128, 127)
    np.testing.assert_array_equal(rows, nhwc.reshape(3, -1))


def test_col2im_is_the_adjoint_of_im2col() -> None:
    rng = np.random.default_rng(SEED + 2)
    x = rng.normal(size=(2, 5, 6, 3))
    a = layout.im2col(x, (2, 3))
    y = rng.normal(size=a.shape)
    back = layout.col2im(y, x.shape, (2, 3))
    assert np.isclose(np.sum(a * y), np.sum(x * back))


def test_im2col_refuses_a_kernel_larger_than_the_image() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        layout.im2col(np.zeros((1, 2, 2, 1), np.int8), (3, 3))
