"""Where each scratchpad codeword bit sits physically: the one map for RTL, model and campaigns.

A bank is ``bank_words / interleave`` rows of ``interleave * codeword_bits`` cells.
Cell ``x`` of row ``p`` holds bit ``x // interleave`` of word ``p * interleave + x % interleave``
(see docs/REGISTERS.md, "Physical layout"); ``scc_spm_bank.v`` uses the same formula.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cell:
    """A physical memory cell: bank, row and cell index within the row."""

    bank: int
    row: int
    cell: int


@dataclass(frozen=True)
class Layout:
    """The scratchpad's geometry for one build of the chip."""

    bank_words: int
    codeword_bits: int
    interleave: int = 1

    def __post_init__(self) -> None:
        if self.interleave not in (1, 2, 4, 8):
            raise ValueError(f"interleave must be 1, 2, 4 or 8, got {self.interleave}")
        if self.bank_words % self.interleave:
            raise ValueError(
                f"bank_words ({self.bank_words}) must be a multiple of interleave "
                f"({self.interleave})"
            )

    @property
    def rows(self) -> int:
        return self.bank_words // self.interleave

    @property
    def row_cells(self) -> int:
        return self.interleave * self.codeword_bits

    def cell_of(self, word: int, bit: int) -> Cell:
        """The cell that holds codeword bit ``bit`` of scratchpad word ``word``."""
        bank, w = divmod(word, self.bank_words)
        row, slot = divmod(w, self.interleave)
        return Cell(bank, row, bit * self.interleave + slot)

    def word_bit_of(self, cell: Cell) -> tuple[int, int]:
        """The (scratchpad word, codeword bit) a cell holds."""
        bit, slot = divmod(cell.cell, self.interleave)
        return cell.bank * self.bank_words + cell.row * self.interleave + slot, bit

    def adjacent(self, cell: Cell, count: int) -> list[Cell]:
        """``count`` cells side by side in one row starting at ``cell`` (a multi-bit upset)."""
        if cell.cell + count > self.row_cells:
            raise ValueError(
                f"{count} adjacent cells from cell {cell.cell} run past the row end "
                f"({self.row_cells} cells)"
            )
        return [Cell(cell.bank, cell.row, cell.cell + k) for k in range(count)]

    def cluster(self, origin: Cell, offsets: Iterable[tuple[int, int]]) -> list[Cell]:
        """The cells of a multi-bit upset: ``origin`` moved by each ``(drow, dcell)``.

        Rows of one bank are neighbours along the bit line; a cluster never crosses into
        the other bank.
        """
        cells = [Cell(origin.bank, origin.row + dr, origin.cell + dc) for dr, dc in offsets]
        for c in cells:
            if not (0 <= c.row < self.rows and 0 <= c.cell < self.row_cells):
                raise ValueError(
                    f"cluster from bank {origin.bank} row {origin.row} cell {origin.cell} "
                    f"reaches row {c.row} cell {c.cell}: rows 0..{self.rows - 1}, "
                    f"cells 0..{self.row_cells - 1}"
                )
        return cells
