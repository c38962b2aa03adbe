"""Multi-bit upsets named by cluster shape (site class SPM_CLUSTER, ICD 15.8) on a real pty:
a cluster down the bit line is one corrected bit in each word it crosses, the same cells
side by side in a row are a double error in one word without interleaving."""

from __future__ import annotations

import pytest

from firmware_sim.accel import Accelerator, EccStatus, SpmCell
from host.errors import CommandFailed
from protocol.codes import FailureCode, FaultKind, MemoryId
from protocol.payloads import ClusterShape, FaultRecord, FaultSiteClass, HkStructure
from testbed.clusters import Orientation, shape

N = 4
WORD_BYTES = N


def cluster(bank: int, row: int, cell: int, shape_code: ClusterShape, size: int) -> FaultRecord:
    return FaultRecord(FaultKind.MBU, FaultSiteClass.SPM_CLUSTER, size,
                       (bank, row, cell, int(shape_code)))  # fmt: skip


def words_hit(origin: SpmCell, orientation: Orientation, size: int) -> dict[int, EccStatus]:
    """What the model says each word the cluster reaches reads as afterwards."""
    chip = Accelerator(N)
    cells = chip.layout.cluster(origin, shape(size, orientation).offsets)
    words = {chip.layout.word_bit_of(c)[0] for c in cells}
    chip.flip_many(cells)
    return {w: chip.read_word(w)[1] for w in sorted(words)}


@pytest.mark.parametrize(
    ("code", "orientation", "size"),
    [(ClusterShape.BIT_LINE, Orientation.BIT_LINE, 3),
     (ClusterShape.WORD_LINE, Orientation.WORD_LINE, 2),
     (ClusterShape.BLOCK, Orientation.BLOCK, 4)],  # fmt: skip
    ids=["bit-line", "word-line", "block"],
)
def test_a_cluster_lands_on_the_words_its_shape_reaches(start_chip, code, orientation, size):
    target = start_chip()
    data = bytes(range(1, 1 + 16 * WORD_BYTES))
    target.load(MemoryId.ACCEL_SCRATCHPAD, 0, data)
    before = target.housekeeping(HkStructure.ACCELERATOR)
    target.inject([cluster(0, 2, 5, code, size)])
    expected = words_hit(SpmCell(0, 2, 5), orientation, size)
    corrected = sum(s == EccStatus.CORRECTED for s in expected.values())
    broken = [w for w, s in expected.items() if s == EccStatus.UNCORRECTABLE]
    for word in expected:
        got = target.dump(MemoryId.ACCEL_SCRATCHPAD, word * WORD_BYTES, WORD_BYTES)
        if word not in broken:
            assert got == data[word * WORD_BYTES : (word + 1) * WORD_BYTES]
    after = target.housekeeping(HkStructure.ACCELERATOR)
    assert after["ecc_corrected"] - before["ecc_corrected"] == corrected
    assert after["ecc_uncorrectable"] - before["ecc_uncorrectable"] == len(broken)
    # Absolute: down the bit line, every word is a corrected single; side by side, one
    # word takes both bits; a 2 x 2 block breaks two words.
    assert (corrected, len(broken)) == {3: (3, 0), 2: (0, 1), 4: (0, 2)}[size]


def test_a_cluster_past_the_bank_is_refused_as_absent(start_chip) -> None:
    target = start_chip()
    rows = Accelerator(N).layout.rows
    with pytest.raises(CommandFailed) as refused:
        target.inject([cluster(0, rows - 1, 0, ClusterShape.BIT_LINE, 2)])
    assert refused.value.code == FailureCode.FAULT_SITE_ABSENT
    with pytest.raises(CommandFailed) as refused:
        target.inject([cluster(0, 0, 0, 7, 2)])  # no such shape
    assert refused.value.code == FailureCode.FAULT_SITE_ABSENT
