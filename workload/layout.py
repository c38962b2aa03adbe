"""How a layer's activations become one GEMM's operands, and the GEMM's C the next input.

Activations are NHWC: an image is ``height x width x channels``, a batch stacks images
first. A conv2d (valid padding, stride 1) runs as ONE GEMM:

* A = ``im2col(x, kernel)``: one row per (image, output row, output column), image-major
  and then row-major over output positions; one column per (ky, kx, c_in) in that order.
* B = the weights ``(kh, kw, c_in, c_out)`` reshaped to ``(kh*kw*c_in) x c_out``.

C then has one row per (image, position) and one column per output channel, so its
row-major bytes are the NHWC output of each image in turn: ``as_images`` and ``as_rows``
are views of C (no copy), the latter the A of a dense layer that follows (M = batch,
K = positions x channels).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def conv_output_hw(height: int, width: int, kernel: tuple[int, int]) -> tuple[int, int]:
    """Output rows and columns of a valid, stride-1 convolution."""
    kh, kw = kernel
    return height - kh + 1, width - kw + 1


def im2col(x: np.ndarray, kernel: tuple[int, int]) -> np.ndarray:
    """The A of a valid, stride-1 conv2d over NHWC ``x``: (batch*oh*ow) x (kh*kw*c_in)."""
    if x.ndim != 4:
        raise ValueError(f"im2col takes a batch of NHWC images, got shape {x.shape}")
    batch, height, width, channels = x.shape
    kh, kw = kernel
    oh, ow = conv_output_hw(height, width, kernel)
    if oh < 1 or ow < 1:
        raise ValueError(f"a {kh} x {kw} kernel does not fit a {height} x {width} image")
    # (batch, oh, ow, c, kh, kw): the window axes come last; move them before the channel.
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(batch * oh * ow, kh * kw * channels)


def col2im(cols: np.ndarray, shape: tuple[int, int, int, int], kernel: tuple[int, int]):
    """The adjoint of ``im2col``: each window's values added back to the NHWC ``shape``."""
    batch, height, width, channels = shape
    kh, kw = kernel
    oh, ow = conv_output_hw(height, width, kernel)
    windows = cols.reshape(batch, oh, ow, kh, kw, channels)
    out = np.zeros(shape, dtype=cols.dtype)
    for ky in range(kh):
        for kx in range(kw):
            out[:, ky : ky + oh, kx : kx + ow, :] += windows[:, :, :, ky, kx, :]
    return out


def conv_b(weights: np.ndarray) -> np.ndarray:
    """The B of a conv2d: weights ``(kh, kw, c_in, c_out)`` as ``(kh*kw*c_in) x c_out``."""
    return weights.reshape(-1, weights.shape[-1])


def as_images(c: np.ndarray, batch: int, shape: tuple[int, ...]) -> np.ndarray:
    """A conv2d's C viewed as ``batch`` NHWC images of ``shape`` (h, w, c); no copy."""
    return c.reshape(batch, *shape)


def as_rows(c: np.ndarray, batch: int) -> np.ndarray:
    """Any layer's output viewed as one row per image (the A of a dense layer); no copy."""
    return c.reshape(batch, -1)
