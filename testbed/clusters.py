"""Shapes of multi-bit upsets: which physically adjacent memory cells one particle flips.

A cluster is a set of offsets ``(drow, dcell)`` from its first cell: rows run along the
bit line (the same cell index in neighbouring rows), cells along the word line (side by
side in one row). Which codeword bits of which words a cluster reaches is the memory
layout's business (``firmware_sim.accel.layout.Layout.cluster``): with bit interleaving,
cells side by side in a row belong to different words.

Measured shapes (``../shared/RADIATION.md``, "Multi-bit upsets"): FinFET 16/12 nm clusters
have at most 3 bits and lie along the bit line (Sakamoto et al., IEEE TNS 2025, doi
10.1109/TNS.2025.3544154); 20 nm planar SRAM shows up to 7 bits (same source); 28 nm
configuration memory under heavy ions up to 9 adjacent cells (Gao et al., Nucl. Sci. Tech.
2022). How larger clusters spread over both directions is not given there: the compact
blocks below are an estimate.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import StrEnum

MAX_CLUSTER = 9
"""Largest cluster in the measurements cited above (28 nm, heavy ions)."""


class Orientation(StrEnum):
    """The direction a cluster of cells runs in."""

    BIT_LINE = "bit_line"
    """Down a column: the same cell of neighbouring rows."""
    WORD_LINE = "word_line"
    """Along a row: cells side by side."""
    BLOCK = "block"
    """A compact block over both (an estimate for clusters of 4 cells and more)."""


@dataclass(frozen=True, slots=True)
class Cluster:
    """The cells one particle flips, as offsets from the cluster's first cell."""

    offsets: tuple[tuple[int, int], ...]
    orientation: Orientation

    @property
    def size(self) -> int:
        return len(self.offsets)

    @property
    def rows(self) -> int:
        return 1 + max(r for r, _ in self.offsets)

    @property
    def cells(self) -> int:
        return 1 + max(c for _, c in self.offsets)


def shape(size: int, orientation: Orientation | str) -> Cluster:
    """The cluster of ``size`` cells (1..MAX_CLUSTER) running in ``orientation``."""
    if not 1 <= size <= MAX_CLUSTER:
        raise ValueError(f"cluster size {size} is outside 1..{MAX_CLUSTER}")
    o = Orientation(orientation)
    if o is Orientation.BIT_LINE:
        offsets = tuple((r, 0) for r in range(size))
    elif o is Orientation.WORD_LINE:
        offsets = tuple((0, c) for c in range(size))
    else:
        # Fill a near-square block row by row: 4 -> 2x2, 6 -> 2x3, 9 -> 3x3, 5 -> 2x2 + 1.
        width = math.ceil(math.sqrt(size))
        offsets = tuple(divmod(k, width) for k in range(size))
    return Cluster(offsets, o)


def draw(
    size: int, rng: random.Random, bit_line_share: float = 1.0, block_from: int = 4
) -> Cluster:
    """A cluster of ``size`` cells: along the bit line with probability ``bit_line_share``,
    else along the word line, or a block once it has ``block_from`` cells or more."""
    if not 0.0 <= bit_line_share <= 1.0:
        raise ValueError(f"bit_line_share must be within 0..1, got {bit_line_share}")
    if size == 1 or rng.random() < bit_line_share:
        return shape(size, Orientation.BIT_LINE)
    if size >= block_from:
        return shape(size, Orientation.BLOCK)
    return shape(size, Orientation.WORD_LINE)
