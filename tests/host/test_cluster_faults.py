"""Multi-bit upsets named by cluster shape (site classes SPM_CLUSTER and FW_RAM_CLUSTER,
ICD 15.8) on a real pty: in the scratchpad a cluster down the bit line is one corrected bit
in each word it crosses, the same cells side by side in a row are a double error in one
word without interleaving; in the firmware RAM a cluster flips the bits the RAM's
organisation puts under it, and a result kept there is refused by its CRC."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from firmware_sim.accel import Accelerator, EccStatus, SpmCell
from firmware_sim.ram import FirmwareRam
from host.errors import CommandFailed
from protocol.codes import EventId, FailureCode, FaultKind, MemoryId
from protocol.payloads import ClusterShape, FaultRecord, FaultSiteClass, HkStructure
from testbed.clusters import Orientation, shape

N = 4
WORD_BYTES = N
RAM = MemoryId.FIRMWARE_RAM
RAM_LAYOUT = FirmwareRam().layout
"""The flight software's RAM organisation (docs/FAULTS.md), as the simulated target has it."""


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
    assert refused.value.code == FailureCode.VALUE_OUT_OF_RANGE
    assert refused.value.data == struct.pack("!H", 1 + cluster(0, 0, 0, 7, 2).field_offset("shape"))


# --- in the firmware RAM -----------------------------------------------------------------------


def ram_cluster(address: int, bit: int, shape_code: ClusterShape | int, size: int) -> FaultRecord:
    return FaultRecord(FaultKind.MBU, FaultSiteClass.FW_RAM_CLUSTER, size,
                       (address, bit, int(shape_code)))  # fmt: skip


def flipped(before: bytes, after: bytes, base: int) -> set[tuple[int, int]]:
    """(octet address, bit) of every bit that differs, octets counted from ``base``."""
    return {(base + i, b) for i, (x, y) in enumerate(zip(before, after, strict=True))
            for b in range(8) if (x ^ y) >> b & 1}  # fmt: skip


@pytest.mark.parametrize(
    ("code", "orientation", "size"),
    [(ClusterShape.BIT_LINE, Orientation.BIT_LINE, 3),
     (ClusterShape.WORD_LINE, Orientation.WORD_LINE, 5),
     (ClusterShape.BLOCK, Orientation.BLOCK, 6)],  # fmt: skip
    ids=["bit-line", "word-line", "block"],
)
def test_a_ram_cluster_flips_the_bits_the_organisation_says(start_chip, code, orientation, size):
    target = start_chip()
    rows = RAM_LAYOUT.row_octets
    base = 10 * rows
    data = random.Random(41).randbytes(6 * rows)
    target.load(RAM, base, data)
    first, bit = base + rows + 29, 6
    target.inject([ram_cluster(first, bit, code, size)])
    got = flipped(data, target.dump(RAM, base, len(data)), base)
    assert got == set(RAM_LAYOUT.cluster(first, bit, shape(size, orientation).offsets))
    assert len(got) == size
    if orientation is Orientation.BIT_LINE:
        # Absolute: down the bit line is the same bit of the octet one row on, and the next.
        assert got == {(first + k * rows, bit) for k in range(size)}


def test_a_result_kept_in_ram_across_a_bit_line_cluster_is_refused_by_its_crc(start_chip):
    target = start_chip()
    rng = np.random.default_rng(42)
    a = rng.integers(-128, 128, (8, 16), dtype=np.int8)
    b = rng.integers(-128, 128, (16, 8), dtype=np.int8)
    c_addr = 0x2000
    c = target.run_gemm(a, b, ram_base=c_addr, inline=True)  # C kept in RAM with its CRC-32
    np.testing.assert_array_equal(c, a.astype(np.int32) @ b.astype(np.int32))
    c_len = c.size * 4
    assert target.dump(RAM, c_addr, c_len) == c.astype(">i4").tobytes()
    before = target.housekeeping(HkStructure.ACCELERATOR)["ram_errors"]
    mark = target.link.history.mark()
    first = c_addr + 3 * RAM_LAYOUT.row_octets // 2
    hit = RAM_LAYOUT.cluster(first, 2, shape(3, Orientation.BIT_LINE).offsets)
    assert all(c_addr <= address < c_addr + c_len for address, _ in hit)
    target.inject([ram_cluster(first, 2, ClusterShape.BIT_LINE, 3)])
    with pytest.raises(CommandFailed) as refused:
        target.dump(RAM, c_addr, c_len)
    assert (refused.value.code, refused.value.data) == (FailureCode.JOB_FAILED, b"\x01")
    after = target.housekeeping(HkStructure.ACCELERATOR)["ram_errors"]
    assert after == before + 1
    event = target.await_event(EventId.EDAC_UNCORRECTABLE, timeout=5.0, start=mark)
    assert event is not None
    assert (event.args["memory"], event.args["address"]) == (RAM, c_addr)


def test_a_ram_cluster_that_leaves_the_ram_is_refused_naming_the_field(start_chip) -> None:
    target = start_chip()
    last = FirmwareRam().size - 1
    past_row = ram_cluster(last, 7, ClusterShape.BIT_LINE, 2)
    with pytest.raises(CommandFailed) as refused:
        target.inject([ram_cluster(0, 0, ClusterShape.WORD_LINE, 2), past_row])
    assert refused.value.code == FailureCode.FAULT_SITE_ABSENT
    second = 1 + len(ram_cluster(0, 0, ClusterShape.WORD_LINE, 2).pack())
    at = second + past_row.field_offset("address")
    assert refused.value.data == struct.pack("!HB", at, 1)
    assert "record 1 (MBU at FW_RAM_CLUSTER)" in str(refused.value)
    with pytest.raises(CommandFailed) as refused:
        target.inject([ram_cluster(last + 1, 0, ClusterShape.BIT_LINE, 2)])
    assert refused.value.code == FailureCode.ADDRESS_OUT_OF_RANGE
    assert refused.value.data == struct.pack("!II", last + 1, 1)
    # Nothing of a refused TC is injected: the first record's bits did not flip.
    assert target.dump(RAM, 0, 1) == b"\x00"
