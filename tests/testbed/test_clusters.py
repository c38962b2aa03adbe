"""Multi-bit upset shapes, and what they do to the scratchpad through its interleaving."""

import random

import pytest

from firmware_sim.accel import Accelerator, EccStatus, Reg, SpmCell
from testbed.clusters import MAX_CLUSTER, Orientation, draw, shape

ORIGIN = SpmCell(0, 5, 12)


def _upset(interleave: int, cluster, origin=ORIGIN):
    chip = Accelerator(n=4, bank_words=64, interleave=interleave)
    cells = chip.layout.cluster(origin, cluster.offsets)
    words = sorted({chip.layout.word_bit_of(c)[0] for c in cells})
    for w in words:
        chip.write_word(w, 0x0BAD_F00D ^ w)
    chip.flip_many(cells)
    return chip, cells, {w: chip.read_word(w) for w in words}


@pytest.mark.parametrize("interleave", [1, 2, 4, 8])
@pytest.mark.parametrize("size", [2, 3])
def test_a_bit_line_cluster_is_one_corrected_bit_in_each_of_several_words(interleave, size):
    chip, cells, read = _upset(interleave, shape(size, Orientation.BIT_LINE))
    assert len(cells) == size and len(read) == size
    assert all(status == EccStatus.CORRECTED for _, status in read.values())
    assert all(data == 0x0BAD_F00D ^ w for w, (data, _) in read.items())
    assert chip.read_reg(Reg.ECC_CORR) == size


def test_a_word_line_pair_without_interleaving_is_a_double_error():
    chip, cells, read = _upset(1, shape(2, Orientation.WORD_LINE))
    assert list(read) == [chip.layout.word_bit_of(cells[0])[0]]
    assert [status for _, status in read.values()] == [EccStatus.UNCORRECTABLE]


@pytest.mark.parametrize("interleave", [2, 4])
def test_interleaving_spreads_a_word_line_cluster_over_words(interleave):
    chip, cells, read = _upset(interleave, shape(interleave, Orientation.WORD_LINE))
    assert len(read) == interleave
    assert all(status == EccStatus.CORRECTED for _, status in read.values())


def test_a_two_by_two_block_is_two_double_errors_without_interleaving():
    cluster = shape(4, Orientation.BLOCK)
    assert (cluster.rows, cluster.cells) == (2, 2)
    _, _, read = _upset(1, cluster)
    assert [status for _, status in read.values()] == [EccStatus.UNCORRECTABLE] * 2


def test_a_cluster_past_the_edge_of_the_bank_is_refused_with_the_range():
    chip = Accelerator(n=4, bank_words=64)
    with pytest.raises(ValueError, match=r"reaches row 64 cell 0: rows 0\.\.63"):
        chip.layout.cluster(SpmCell(1, 62, 0), shape(3, Orientation.BIT_LINE).offsets)


def test_shapes_have_the_size_asked_for_and_no_cell_twice():
    for size in range(1, MAX_CLUSTER + 1):
        for o in Orientation:
            c = shape(size, o)
            assert c.size == size == len(set(c.offsets))
    with pytest.raises(ValueError, match=r"cluster size 10 is outside 1\.\.9"):
        shape(MAX_CLUSTER + 1, Orientation.BLOCK)


def test_draw_follows_the_bit_line_share():
    rng = random.Random(7)
    drawn = [draw(3, rng, bit_line_share=0.25).orientation for _ in range(4000)]
    share = drawn.count(Orientation.BIT_LINE) / len(drawn)
    # Binomial standard error at p = 0.25, n = 4000 is 0.0068: four of them.
    assert abs(share - 0.25) < 0.028
    assert set(drawn) == {Orientation.BIT_LINE, Orientation.WORD_LINE}
    assert draw(5, random.Random(1), bit_line_share=0.0).orientation is Orientation.BLOCK
