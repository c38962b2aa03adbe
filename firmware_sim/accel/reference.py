"""Golden GEMM with the SCC epilogue, straight from docs/REGISTERS.md "Arithmetic".

Written independently of the model's own arithmetic so tests can use it as a second
opinion: no memory, no tiling, no faults.
"""

from __future__ import annotations

import numpy as np


def gemm_reference(
    a: np.ndarray,
    b: np.ndarray,
    bias: np.ndarray | None = None,
    relu: bool = False,
    shift: int = 0,
    out_int32: bool = False,
) -> np.ndarray:
    """C = epilogue(A @ B): int8 (M x Ncols), or int32 with ``out_int32``."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"A {a.shape} and B {b.shape} do not chain")
    if not 0 <= shift <= 31:
        raise ValueError(f"shift must be 0 .. 31, got {shift}")
    # int8 x int8 products summed in int32 with wrap-around: numpy's cast does the wrap.
    x = (a @ b).astype(np.int32)
    if bias is not None:
        x = (x.astype(np.int64) + np.asarray(bias, dtype=np.int64)[None, :]).astype(np.int32)
    if relu:
        x = np.where(x < 0, 0, x).astype(np.int32)
    if out_int32:
        return x
    wide = x.astype(np.int64)
    if shift:
        wide = np.floor_divide(wide + 2 ** (shift - 1), 2**shift)
    return np.clip(wide, -128, 127).astype(np.int8)
