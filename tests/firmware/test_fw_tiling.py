"""Jobs larger than the scratchpad, run as blocks (ICD 15.6, "Tiling"), on the smallest
build the tests use: N = 4, BANK_WORDS = 256.

The blocks the tests expect come from the ICD's rule, written here from its text; the
cycles each block takes from docs/REGISTERS.md ("Job schedule and cycle count")."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
from fw_harness import (
    FROM_RAM,
    INLINE,
    RAM,
    SPM,
    Harness,
    Reply,
    dump,
    dump_big,
    gemm_tc,
    hk,
    layer_tc,
    load_big,
    operands,
)

from firmware_sim.accel import gemm_reference
from firmware_sim.environment import EnergyModel
from firmware_sim.jobs import gemm_spm_accesses
from protocol.codes import EventId, FailureCode, FaultKind, FunctionId
from protocol.payloads import FaultSiteClass, HkStructure, JobPhase, JobStatus
from testbed.sitemap_builds import Build

N, BANK_WORDS = 4, 256
SMALL = Build(n=N, bank_words=BANK_WORDS, interleave=2)
"""The smallest build with a kept site map (faults need one)."""
BIAS, RELU, OUT_INT32 = 1, 2, 4  # LayerFlags bits (ICD 15.6)


def small() -> Harness:
    return Harness(build=SMALL)


def ceil(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Block:
    row: int
    rows: int
    col: int
    cols: int


def fits(rows: int, k: int, cols: int, bias: bool, w: int) -> bool:
    """A chip job of rows x K x cols in the scratchpad as the ICD places it: A in bank 0,
    B in bank 1, then C and then the bias from the first free word of bank 0 if they fit
    there, else of bank 1."""
    a, b = ceil(rows, N) * k, ceil(cols, N) * k
    if a > BANK_WORDS or b > BANK_WORDS:
        return False
    free = [BANK_WORDS - a, BANK_WORDS - b]
    for size in [rows * ceil(cols, N) * w] + ([4 * ceil(cols, N)] if bias else []):
        bank = next((i for i in (0, 1) if free[i] >= size), None)
        if bank is None:
            return False
        free[bank] -= size
    return True


def expected_blocks(m: int, k: int, ncols: int, bias: bool, w: int) -> list[Block]:
    """ICD 15.6: columns first (all, else the largest multiple of N that fits with
    min(M, N) rows), then rows (all, else the largest multiple of N); every block the size
    cuts the job into must fit; row block by row block, column block by column block."""

    def all_fit(rows: int, cols: int) -> bool:
        return all(
            fits(r, k, c, bias, w)
            for r in (rows, m % rows or rows)
            for c in (cols, ncols % cols or cols)
        )

    def largest(total: int, ok) -> int:
        sizes = [total, *range((total - 1) // N * N, 0, -N)]
        return next(s for s in sizes if ok(s))

    cols = largest(ncols, lambda c: all_fit(min(m, N), c))
    rows = largest(m, lambda r: all_fit(r, cols))
    return [
        Block(r, min(rows, m - r), c, min(cols, ncols - c))
        for r in range(0, m, rows)
        for c in range(0, ncols, cols)
    ]


def chip_cycles(m: int, k: int, ncols: int, bias: bool, w: int) -> int:
    """CYCLES of one chip job (docs/REGISTERS.md)."""
    mb, nb = ceil(m, N), ceil(ncols, N)
    p = max(k + 1, (w + 1) * N + 1)
    v_last = min(N, m - (mb - 1) * N)
    return 2 + 5 * bias * nb + p * mb * nb + N + 1 + w * v_last


def energy_nj(blocks: list[Block], k: int, bias: bool, w: int) -> int:
    """The energy model's figure for the blocks, summed, in nJ."""
    model, joules = EnergyModel(), 0.0
    for blk in blocks:
        cycles = chip_cycles(blk.rows, k, blk.cols, bias, w)
        accesses = gemm_spm_accesses(N, blk.rows, k, blk.cols, bias, w == 4)
        joules += model.job_energy_j(cycles, blk.rows * k * blk.cols, accesses)
    return round(1e9 * joules)


def run(fsw: Harness, data: bytes, seconds: float = 2.0) -> Reply:
    """A job TC and what came of it over the next ``seconds``: one block runs per step."""
    sent = fsw.tc(8, 1, data)
    later = fsw.run_for(seconds)
    return Reply(sent.request_id, sent.tms + later.tms)


def assert_one_job_with_summed_stats(
    fsw: Harness, reply: Reply, job_id: int, c_raw: bytes, blocks: list[Block],
    k: int, bias: bool, w: int,
) -> None:  # fmt: skip
    assert reply.stages == [1, 3, 5, 5, 7]
    assert [r.step for r in reply.reports if r.subtype == 5] == [0, 1]
    assert len(reply.events(EventId.JOB_STARTED)) == 1
    (done,) = reply.events(EventId.JOB_COMPLETED)
    m = sum(b.rows for b in blocks if b.col == 0)
    ncols = sum(b.cols for b in blocks if b.row == 0)
    cycles = sum(chip_cycles(b.rows, k, b.cols, bias, w) for b in blocks)
    crc = zlib.crc32(c_raw)
    assert struct.unpack("!HIIIHH", done) == (job_id, cycles, m * k * ncols, crc, 0, 0)
    accel = hk(fsw, HkStructure.ACCELERATOR)
    assert (accel["last_job_id"], accel["last_job_status"]) == (job_id, JobStatus.COMPLETED)
    assert (accel["last_job_cycles"], accel["last_job_macs"]) == (cycles, m * k * ncols)
    assert accel["last_job_crc"] == crc
    assert accel["last_job_energy"] == energy_nj(blocks, k, bias, w) > 0


def test_a_conv_layer_larger_than_the_scratchpad_runs_in_row_blocks():
    fsw = small()
    # The int8 net's 3x3 convolution as im2col: batch 32 x 36 positions, K = 9, N = 8.
    m, k, n, shift = 1152, 9, 8, 7
    a, b = operands(31, m, k, n)
    bias = np.arange(-4, 4, dtype=np.int32) * 150
    blocks = expected_blocks(m, k, n, bias=True, w=1)
    assert len(blocks) > 1 and {blk.cols for blk in blocks} == {n}  # row blocks only
    assert not fits(m, k, n, True, 1)
    load_big(fsw, RAM, 0, a.tobytes())
    load_big(fsw, RAM, 12_000, b.tobytes() + bias.astype(">i4").tobytes())
    data = layer_tc(8, FROM_RAM, m, k, n, 0, 12_000, 20_000, 12_000 + k * n,
                    BIAS | RELU, shift)  # fmt: skip
    reply = run(fsw, data)
    raw = dump_big(fsw, RAM, 20_000, m * n)
    c = np.frombuffer(raw, dtype=np.int8).reshape(m, n)
    np.testing.assert_array_equal(c, gemm_reference(a, b, bias, relu=True, shift=shift))
    assert_one_job_with_summed_stats(fsw, reply, 8, raw, blocks, k, bias=True, w=1)


def test_a_gemm_whose_b_does_not_fit_runs_in_row_and_column_blocks():
    fsw = small()
    m, k, n = 22, 100, 30
    a, b = operands(32, m, k, n)
    blocks = expected_blocks(m, k, n, bias=False, w=4)
    # Rows 4, 4, 4, 4, 4, 2 by columns 8, 8, 8, 6: both cuts leave smaller last blocks.
    assert {(blk.rows, blk.cols) for blk in blocks} == {(4, 8), (2, 8), (4, 6), (2, 6)}
    load_big(fsw, RAM, 0, a.tobytes() + b.tobytes())
    reply = run(fsw, gemm_tc(9, FROM_RAM, m, k, n, 0, m * k, 8_000))
    raw = dump_big(fsw, RAM, 8_000, 4 * m * n)
    c = np.frombuffer(raw, dtype=">i4").reshape(m, n)
    np.testing.assert_array_equal(c, gemm_reference(a, b, out_int32=True))
    assert_one_job_with_summed_stats(fsw, reply, 9, raw, blocks, k, bias=False, w=4)


def test_an_inline_layer_larger_than_the_scratchpad_is_tiled_too():
    fsw = small()
    m, k, n = 24, 60, 6
    a, b = operands(33, m, k, n)
    bias = np.array([-70_000, -5, 0, 5, 900, 70_000], dtype=np.int32)
    assert len(expected_blocks(m, k, n, bias=True, w=4)) > 1
    data = layer_tc(10, INLINE, m, k, n, c=100, flags=BIAS | OUT_INT32)
    reply = run(fsw, data + a.tobytes() + b.tobytes() + bias.astype(">i4").tobytes())
    assert reply.stages == [1, 3, 5, 5, 7]
    c = np.frombuffer(dump_big(fsw, RAM, 100, 4 * m * n), dtype=">i4").reshape(m, n)
    np.testing.assert_array_equal(c, gemm_reference(a, b, bias, out_int32=True))


@pytest.mark.parametrize(
    ("function", "m", "n", "flags", "k_max"),
    [
        # K_max = BANK_WORDS - max(w*min(M, N), 4 with BIAS): the ICD's formula.
        (FunctionId.RUN_GEMM, 8, 8, 0, 256 - 4 * 4),
        (FunctionId.RUN_LAYER, 2, 8, BIAS, 256 - 4),
        (FunctionId.RUN_LAYER, 1, 1, 0, 256 - 1),
        (FunctionId.RUN_LAYER, 6, 3, BIAS | OUT_INT32, 256 - 4 * 4),
    ],
)
def test_k_is_never_split_the_largest_that_fits_runs_and_one_more_is_refused(
    function: FunctionId, m: int, n: int, flags: int, k_max: int
):
    fsw = small()
    w = 4 if function == FunctionId.RUN_GEMM or flags & OUT_INT32 else 1
    has_bias = bool(flags & BIAS)
    bias = np.arange(n, dtype=np.int32) * 1000 - 2000
    c_addr = 8192

    def job(job_id: int, k: int) -> tuple[bytes, np.ndarray]:
        """Operands of K = ``k`` loaded from address 0; the job's TC and its C expected."""
        a, b = operands(job_id, m, k, n)
        load_big(fsw, RAM, 0, a.tobytes() + b.tobytes() + bias.astype(">i4").tobytes())
        b_addr, bias_addr = m * k, m * k + k * n
        if function == FunctionId.RUN_GEMM:
            tc = gemm_tc(job_id, FROM_RAM, m, k, n, 0, b_addr, c_addr)
            return tc, gemm_reference(a, b, out_int32=True)
        tc = layer_tc(job_id, FROM_RAM, m, k, n, 0, b_addr, c_addr, bias_addr, flags, 3)
        return tc, gemm_reference(a, b, bias if has_bias else None, shift=3, out_int32=w == 4)

    # Too large: refused at acceptance, naming K (offset 7), and nothing of it happens.
    assert not fits(min(m, N), k_max + 1, min(n, N), has_bias, w)
    too_large, _ = job(1, k_max + 1)
    scratchpad = dump_big(fsw, SPM, 0, 2 * BANK_WORDS * N)
    ram = dump_big(fsw, RAM, 0, c_addr + m * n * w)
    before = hk(fsw, HkStructure.ACCELERATOR), hk(fsw, HkStructure.SYSTEM)
    refused = run(fsw, too_large)
    assert refused.failure == (2, FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x07")
    assert not refused.events(EventId.JOB_STARTED)
    assert dump_big(fsw, SPM, 0, 2 * BANK_WORDS * N) == scratchpad
    assert dump_big(fsw, RAM, 0, c_addr + m * n * w) == ram
    after = hk(fsw, HkStructure.ACCELERATOR), hk(fsw, HkStructure.SYSTEM)
    for key in ("last_job_id", "last_job_status", "last_job_cycles", "last_job_energy"):
        assert after[0][key] == before[0][key]
    for key in ("jobs_completed", "jobs_failed", "jobs_aborted", "jobs_pending"):
        assert after[1][key] == before[1][key]
    # The largest K runs, in blocks of N rows (or all M) and N columns (or all N).
    largest, expected = job(2, k_max)
    assert run(fsw, largest).stages == [1, 3, 5, 5, 7]
    raw = dump_big(fsw, RAM, c_addr, m * n * w)
    c = np.frombuffer(raw, dtype=">i4" if w == 4 else np.int8).reshape(m, n)
    np.testing.assert_array_equal(c, expected)


def next_job_double_bit_error() -> bytes:
    """TC[148,1]: SBUs of bits 0 and 1 of scratchpad word 0 (the block's first A word: a
    double-bit error) at cycle 0 of tile 0's STREAM of the next chip job."""
    records = b"".join(
        struct.pack(
            "!BBBBHBHHB", FaultKind.SBU, FaultSiteClass.SPM_WORD, 1, 1, 0, JobPhase.STREAM,
            0, 0, bit,
        )
        for bit in (0, 1)
    )  # fmt: skip
    return b"\x02" + records


GEMM_M, GEMM_K, GEMM_N, GEMM_C = 40, 100, 8, 10_000
"""A GEMM that runs in blocks of 4 rows on the small build, C at GEMM_C in firmware RAM."""
GEMM_BLOCKS = expected_blocks(GEMM_M, GEMM_K, GEMM_N, bias=False, w=4)
ECC_AT_TILE_0 = 2 + max(GEMM_K + 1, 5 * N + 1)
"""CYCLES of a block the chip ends with ECC in tile 0 (docs/REGISTERS.md: 2 + P*(T + 1))."""


def tiled_gemm(fsw: Harness, job_id: int) -> bytes:
    """The GEMM's operands loaded into firmware RAM; its TC."""
    a, b = operands(job_id, GEMM_M, GEMM_K, GEMM_N)
    load_big(fsw, RAM, 0, a.tobytes() + b.tobytes())
    return gemm_tc(job_id, FROM_RAM, GEMM_M, GEMM_K, GEMM_N, 0, GEMM_M * GEMM_K, GEMM_C)


def test_an_ecc_error_in_the_first_block_fails_the_whole_job():
    fsw = small()
    data = tiled_gemm(fsw, 11)
    assert len(GEMM_BLOCKS) == 10
    # NEXT_JOB: the next chip job is the job's first block.
    assert fsw.tc(148, 1, next_job_double_bit_error()).ok
    reply = run(fsw, data)
    assert reply.failure == (8, FailureCode.JOB_FAILED, b"\x01")  # ERR_CODE ECC
    assert len(reply.events(EventId.JOB_STARTED)) == 1
    assert not reply.events(EventId.JOB_COMPLETED)
    (failed,) = reply.events(EventId.JOB_FAILED)
    assert struct.unpack("!HHBHH", failed) == (11, FailureCode.JOB_FAILED, 1, 2, 0)
    refused = dump(fsw, RAM, GEMM_C, 16)
    assert refused.failure == (4, FailureCode.JOB_FAILED, b"\x01")
    accel = hk(fsw, HkStructure.ACCELERATOR)
    assert (accel["last_job_status"], accel["last_job_err_code"]) == (JobStatus.FAILED, 1)
    assert (accel["last_job_cycles"], accel["last_job_macs"]) == (ECC_AT_TILE_0, 0)
    assert (accel["last_job_faults"], accel["last_job_not_injected"]) == (2, 0)


def test_an_ecc_error_in_a_later_block_fails_the_whole_job_and_guards_all_of_c():
    fsw = small()
    started = fsw.tc(8, 1, tiled_gemm(fsw, 12))
    assert started.stages == [1, 3, 5]  # the first block ran; the job goes on
    # Armed while the job runs: it waits for the job's next chip job, a later block.
    armed = fsw.tc(148, 1, next_job_double_bit_error())
    assert armed.ok
    reply = Reply(started.request_id, started.tms + armed.tms + fsw.run_for(2).tms)
    assert reply.failure == (8, FailureCode.JOB_FAILED, b"\x01")
    assert not reply.events(EventId.JOB_COMPLETED)
    (failed,) = reply.events(EventId.JOB_FAILED)
    assert struct.unpack("!HHBHH", failed) == (12, FailureCode.JOB_FAILED, 1, 2, 0)
    # The first blocks' C was written, but the whole range is refused.
    for address in (GEMM_C, GEMM_C + 4 * GEMM_M * GEMM_N - 16):
        assert dump(fsw, RAM, address, 16).failure == (4, FailureCode.JOB_FAILED, b"\x01")
    # Blocks of the same shape ran whole before the one that failed, and count.
    accel = hk(fsw, HkStructure.ACCELERATOR)
    block = GEMM_BLOCKS[0]
    ended, rest = divmod(accel["last_job_macs"], block.rows * GEMM_K * block.cols)
    assert rest == 0 and 1 <= ended < len(GEMM_BLOCKS)
    whole = chip_cycles(block.rows, GEMM_K, block.cols, False, 4)
    assert accel["last_job_cycles"] == ended * whole + ECC_AT_TILE_0
    assert accel["last_job_status"] == JobStatus.FAILED


def test_the_link_is_served_between_blocks_and_abort_stops_a_tiled_job():
    fsw = small()
    started = fsw.tc(8, 1, tiled_gemm(fsw, 13))
    ping = fsw.tc(17, 1)
    assert ping.of(17, 2) and ping.ok  # answered while the job still runs
    assert hk(fsw, HkStructure.ACCELERATOR)["accel_state"] == 1  # RUNNING
    abort = fsw.tc(8, 1, struct.pack("!H", FunctionId.ABORT_JOB))
    assert abort.ok
    ends = [r for r in Reply(None, abort.tms).reports if r.request_id == started.request_id]
    assert [(r.subtype, r.failure_code) for r in ends] == [(8, FailureCode.JOB_ABORTED)]
    assert not fsw.run_for(1).events(EventId.JOB_COMPLETED)
    # C holds part of the job's result: refused as a job that never finished.
    assert dump(fsw, RAM, GEMM_C, 16).failure == (4, FailureCode.JOB_FAILED, b"\x0f")
    assert hk(fsw, HkStructure.SYSTEM)["jobs_aborted"] == 1
