"""The firmware RAM's physical organisation (docs/FAULTS.md, "Firmware RAM organisation"):
every bit has one cell, clusters reach the bits their shape says and never leave the array."""

from __future__ import annotations

import pytest

from firmware_sim.ram import DEFAULT_RAM_BYTES, FirmwareRam, RamLayout
from testbed.clusters import Orientation, shape

SMALL = 4 * 32  # four rows of the default organisation


@pytest.mark.parametrize("interleave", [1, 2, 4, 8])
def test_every_bit_has_its_own_cell_and_back(interleave: int) -> None:
    lay = RamLayout(SMALL, interleave=interleave)
    cells = {lay.cell_of(a, b) for a in range(SMALL) for b in range(8)}
    assert len(cells) == 8 * SMALL == lay.rows * lay.row_cells
    for row, cell in cells:
        assert lay.cell_of(*lay.bit_of(row, cell)) == (row, cell)


def test_the_flown_ram_is_2048_rows_in_plain_order() -> None:
    lay = FirmwareRam().layout
    assert (lay.rows, lay.row_cells, lay.interleave) == (2048, 256, 1)
    assert DEFAULT_RAM_BYTES == lay.rows * lay.row_octets
    # Without interleaving, cell order is address order: bit b of octet a, as FAULTS.md says.
    for address, bit in [(0, 0), (31, 7), (32, 0), (1000, 5), (DEFAULT_RAM_BYTES - 1, 7)]:
        assert lay.cell_of(address, bit) == (address // 32, 8 * (address % 32) + bit)


def test_a_word_line_cluster_is_consecutive_bits_and_a_bit_line_one_the_same_bit_a_row_on() -> None:
    lay = FirmwareRam().layout
    along = lay.cluster(100, 6, shape(4, Orientation.WORD_LINE).offsets)
    assert along == [(100, 6), (100, 7), (101, 0), (101, 1)]
    down = lay.cluster(100, 6, shape(3, Orientation.BIT_LINE).offsets)
    assert down == [(100 + k * lay.row_octets, 6) for k in range(3)]
    block = lay.cluster(100, 6, shape(4, Orientation.BLOCK).offsets)
    assert block == [(100, 6), (100, 7), (100 + lay.row_octets, 6), (100 + lay.row_octets, 7)]


def test_with_interleaving_a_word_line_cluster_hits_one_bit_of_each_word() -> None:
    lay = RamLayout(SMALL, interleave=4)
    bits = lay.cluster(0, 0, shape(4, Orientation.WORD_LINE).offsets)
    words = [a // 4 for a, _ in bits]
    assert len(set(words)) == 4 and {b for _, b in bits} == {0}


@pytest.mark.parametrize(
    ("address", "bit", "orientation", "size", "reaches"),
    [
        (SMALL - 1, 7, Orientation.BIT_LINE, 2, "reaches row 4 cell 255"),
        (31, 6, Orientation.WORD_LINE, 3, "reaches row 0 cell 256"),
        (2 * 32 + 31, 7, Orientation.BLOCK, 4, "reaches row 2 cell 256"),
    ],
    ids=["past-the-last-row", "past-the-row-end", "block-past-the-row-end"],
)
def test_a_cluster_that_leaves_the_array_is_refused(
    address: int, bit: int, orientation: Orientation, size: int, reaches: str
) -> None:
    with pytest.raises(ValueError, match=reaches):
        RamLayout(SMALL).cluster(address, bit, shape(size, orientation).offsets)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 100}, "a whole number of 32-octet rows"),
        ({"size": SMALL, "interleave": 3}, "interleave must be 1, 2, 4 or 8"),
        ({"size": SMALL, "row_cells": 96, "interleave": 2}, "does not hold whole groups"),
    ],
)
def test_an_organisation_that_cannot_be_built_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RamLayout(**kwargs)


def test_a_first_bit_outside_the_ram_is_refused() -> None:
    with pytest.raises(ValueError, match="octets 0..127, bits 0..7"):
        RamLayout(SMALL).cell_of(SMALL, 0)
