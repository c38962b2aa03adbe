"""Accelerator jobs through service 8: results, queue, deferral, and detected faults."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from fw_harness import (
    BANK1,
    FROM_RAM,
    FROM_SPM,
    INLINE,
    RAM,
    SPM,
    Harness,
    N,
    Reply,
    dump,
    dump_big,
    dumped,
    gemm_tc,
    hk,
    layer_tc,
    load,
    load_big,
    operands,
)

from firmware_sim.accel import (
    Accelerator,
    JobPoint,
    OutBit,
    Phase,
    ScheduledFault,
    gemm_reference,
    pack_a,
    pack_b,
    unpack_c,
)
from firmware_sim.environment import EnvironmentConfig
from protocol.codes import AckFlags, EventId, FailureCode, FaultKind, FunctionId
from protocol.payloads import FaultSiteClass, HkStructure, JobPhase, JobStatus, ParamId
from testbed.sitemap_builds import Build


def test_gemm_from_firmware_ram_equals_the_reference(fsw: Harness):
    m, k, n = 10, 13, 9
    a, b = operands(1, m, k, n)
    load_big(fsw, RAM, 0, a.tobytes())
    load_big(fsw, RAM, 1000, b.tobytes())
    reply = fsw.tc(8, 1, gemm_tc(42, FROM_RAM, m, k, n, 0, 1000, 4000))
    assert reply.stages == [1, 3, 5, 5, 7]
    assert [r.step for r in reply.reports if r.subtype == 5] == [0, 1]
    raw = dump_big(fsw, RAM, 4000, m * n * 4)
    c = np.frombuffer(raw, dtype=">i4").reshape(m, n)
    np.testing.assert_array_equal(c, gemm_reference(a, b, out_int32=True))
    (done,) = reply.events(EventId.JOB_COMPLETED)
    job_id, cycles, macs, crc, faults, missed = struct.unpack("!HIIIHH", done)
    assert (job_id, macs, crc, faults, missed) == (42, m * k * n, zlib.crc32(raw), 0, 0)
    accel = hk(fsw, HkStructure.ACCELERATOR)
    assert (accel["last_job_id"], accel["last_job_status"], accel["last_job_cycles"]) == (
        42,
        JobStatus.COMPLETED,
        cycles,
    )


def test_layer_with_inline_operands_applies_bias_relu_and_shift(fsw: Harness):
    m, k, n = 5, 6, 7
    a, b = operands(2, m, k, n)
    bias = np.arange(-3000, -3000 + 1000 * n, 1000, dtype=np.int32)
    data = a.tobytes() + b.tobytes() + bias.astype(">i4").tobytes()
    reply = fsw.tc(8, 1, layer_tc(7, INLINE, m, k, n, c=500, flags=0b011, shift=6) + data)
    assert reply.ok
    got = np.frombuffer(dump_big(fsw, RAM, 500, m * n), dtype=np.int8).reshape(m, n)
    np.testing.assert_array_equal(got, gemm_reference(a, b, bias, relu=True, shift=6))


def load_scratchpad_operands(fsw: Harness, a: np.ndarray, b: np.ndarray) -> None:
    load_big(fsw, SPM, 0, pack_a(a, N).tobytes())
    load_big(fsw, SPM, BANK1, pack_b(b, N).tobytes())


def test_job_on_operands_already_in_the_scratchpad_leaves_c_there(fsw: Harness):
    m, k, n = 8, 20, 6
    a, b = operands(3, m, k, n)
    load_scratchpad_operands(fsw, a, b)
    c_addr = 1500 * N
    assert fsw.tc(8, 1, gemm_tc(1, FROM_SPM, m, k, n, 0, BANK1, c_addr)).ok
    words = 4 * m * 2
    raw = dump_big(fsw, SPM, c_addr, words * N)
    c = unpack_c(np.frombuffer(raw, dtype=np.uint8).reshape(words, N), m, n, int32=True)
    np.testing.assert_array_equal(c, gemm_reference(a, b, out_int32=True))


def test_double_bit_error_in_an_operand_ends_the_job_detected_and_delivers_nothing(fsw: Harness):
    m, k, n = 8, 8, 8
    a, b = operands(4, m, k, n)
    load_scratchpad_operands(fsw, a, b)
    # MBU of two adjacent cells in A word 3: a double-bit error (no interleaving).
    assert fsw.tc(148, 1, struct.pack("!BBBBBHB", 1, FaultKind.MBU, 2, 2, 0, 3, 4)).ok
    c_addr = 1800 * N
    reply = fsw.tc(8, 1, gemm_tc(9, FROM_SPM, m, k, n, 0, BANK1, c_addr))
    assert reply.failure == (8, FailureCode.JOB_FAILED, b"\x01")  # ERR_CODE ECC
    assert struct.unpack("!HHBHH", reply.events(EventId.JOB_FAILED)[0]) == (9, 0x200, 1, 0, 0)
    assert reply.events(EventId.EDAC_UNCORRECTABLE)
    refused = dump(fsw, SPM, c_addr, 4 * N)
    assert refused.failure == (4, FailureCode.JOB_FAILED, b"\x01")
    assert not refused.of(6, 6)
    accel = hk(fsw, HkStructure.ACCELERATOR)
    assert accel["last_job_status"] == JobStatus.FAILED and accel["ecc_uncorrectable"] >= 1


def test_single_bit_error_during_a_job_is_corrected_and_reported(fsw: Harness):
    m, k, n = 4, 4, 4
    a, b = operands(5, m, k, n)
    load_big(fsw, RAM, 0, a.tobytes() + b.tobytes())
    # SBU in A word 1 (SPM_WORD site) at cycle 0 of tile 0's STREAM.
    sbu = struct.pack("!BBBBBHBHHB", 1, FaultKind.SBU, 2, 1, 1, 0, 2, 0, 1, 3)
    assert fsw.tc(148, 1, sbu).ok
    reply = fsw.tc(8, 1, gemm_tc(3, FROM_RAM, m, k, n, 0, m * k, 100))
    assert reply.ok
    c = np.frombuffer(dump_big(fsw, RAM, 100, 64), dtype=">i4").reshape(m, n)
    np.testing.assert_array_equal(c, gemm_reference(a, b, out_int32=True))
    assert hk(fsw, HkStructure.ACCELERATOR)["ecc_corrected"] == 1


def out_bit_sbu(when: JobPoint, site: OutBit) -> bytes:
    """TC[148,1] data: one SBU of a PE's result register at a point of the next job."""
    head = struct.pack("!BBBBB", 1, FaultKind.SBU, FaultSiteClass.OUT_BIT, 1, 1)
    point = struct.pack("!HBH", when.tile, JobPhase[when.phase.name], when.cycle)
    return head + point + struct.pack("!BBB", site.i, site.j, site.bit)


def ram_gemm_with(fsw: Harness, seed: int, m: int, k: int, n: int, fault: ScheduledFault):
    """C (int32) of a GEMM from firmware RAM with ``fault`` injected for it over TC[148,1],
    the model's C with the same fault, and A . B."""
    a, b = operands(seed, m, k, n)
    load_big(fsw, RAM, 0, a.tobytes() + b.tobytes())
    assert fsw.tc(148, 1, out_bit_sbu(*fault)).ok
    (listed,) = fsw.tc(148, 3).of(148, 4)  # the active faults: this record, as sent
    assert listed.source_data == struct.pack("!HB", 1, 1) + out_bit_sbu(*fault)[1:]
    assert fsw.tc(8, 1, gemm_tc(seed, FROM_RAM, m, k, n, 0, m * k, 400)).ok
    c = np.frombuffer(dump_big(fsw, RAM, 400, 4 * m * n), dtype=">i4").reshape(m, n)
    model, _ = Accelerator(n=N).run_gemm(a, b, out_int32=True, faults=[fault])
    return c, model, gemm_reference(a, b, out_int32=True)


def flipped(c: np.ndarray, row: int, col: int, bit: int) -> np.ndarray:
    out = c.astype(np.int64)
    out[row, col] ^= 1 << bit
    return ((out + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)


def test_result_register_upset_at_a_write_point_changes_the_predicted_element(fsw: Harness):
    # M = 8: tiles 0 and 1 in one column block, int32 (w = 4). WRITE cycle 3 of tile 0 is
    # cycle N + 1 + 3 of tile 1's STREAM, after tile 1's FIRST captured tile 0's sums
    # (PE (1, 2) in cycle 1 + 1 + 2); PE (1, 2) holds C[1, 2], word 4*1 + 2 = 6 >= 3,
    # written later in that period: C[1, 2] alone changes.
    fault = ScheduledFault(JobPoint(0, Phase.WRITE, 3), OutBit(1, 2, 30))
    c, model, clean = ram_gemm_with(fsw, 21, 8, 5, 4, fault)
    np.testing.assert_array_equal(c, model)
    np.testing.assert_array_equal(c, flipped(clean, 1, 2, 30))


def test_a_flush_point_is_accepted_and_a_cycle_no_flush_has_refused(fsw: Harness):
    # FLUSH has N + 1 + w*V_last cycles, at most 5N + 1 (int32, full last tile).
    longest = JobPoint(0, Phase.FLUSH, 5 * N + 1)
    assert fsw.tc(148, 1, out_bit_sbu(longest, OutBit(3, 3, 7))).failure == (
        2,
        FailureCode.FAULT_POINT_UNREACHABLE,
        # The cycle's offset (after count, kind, site, width, timing, tile, phase), record 0.
        b"\x00\x08\x00",
    )
    assert fsw.tc(148, 3).of(148, 4)[0].source_data == struct.pack("!HB", 0, 0)
    # One 4x5x4 tile: FLUSH cycle 5N = 20 writes word 15, C[3, 3], from PE (3, 3)'s
    # result register (FLUSH's FIRST reached it in cycle 1 + 3 + 3).
    fault = ScheduledFault(JobPoint(0, Phase.FLUSH, 5 * N), OutBit(3, 3, 7))
    c, model, clean = ram_gemm_with(fsw, 22, 4, 5, 4, fault)
    np.testing.assert_array_equal(c, model)
    np.testing.assert_array_equal(c, flipped(clean, 3, 3, 7))


def test_double_bit_error_during_a_ram_job_fails_it_and_guards_the_result_range(fsw: Harness):
    m, k, n = 4, 4, 4
    a, b = operands(6, m, k, n)
    load_big(fsw, RAM, 0, a.tobytes() + b.tobytes())
    mbu = struct.pack("!BBBBBHBHHB", 1, FaultKind.MBU, 2, 2, 1, 0, 2, 0, 0, 0)
    assert fsw.tc(148, 1, mbu).ok
    (tm,) = fsw.tc(148, 3).of(148, 4)
    assert struct.unpack_from("!HB", tm.source_data) == (2, 2)  # two cells, next job
    assert fsw.tc(8, 1, gemm_tc(4, FROM_RAM, m, k, n, 0, m * k, 100)).failure == (
        8,
        FailureCode.JOB_FAILED,
        b"\x01",
    )
    assert dump(fsw, RAM, 96, 16).failure == (4, FailureCode.JOB_FAILED, b"\x01")
    assert dump(fsw, RAM, 0, 16).ok  # the operands are not a result


def test_a_result_corrupted_in_ram_is_detected_before_delivery(fsw: Harness):
    m, k, n = 4, 4, 4
    a, b = operands(7, m, k, n)
    assert fsw.tc(8, 1, gemm_tc(5, INLINE, m, k, n, c=300) + a.tobytes() + b.tobytes()).ok
    assert dump(fsw, RAM, 300, 64).ok
    flip = struct.pack("!BBBBBIB", 1, FaultKind.SBU, 5, 1, 0, 310, 2)
    assert fsw.tc(148, 1, flip).ok
    refused = dump(fsw, RAM, 300, 64)
    assert refused.failure == (4, FailureCode.JOB_FAILED, b"\x01")
    (aux,) = refused.events(EventId.EDAC_UNCORRECTABLE)
    assert struct.unpack("!BII", aux) == (RAM, 300, 1)
    assert hk(fsw, HkStructure.ACCELERATOR)["ram_errors"] == 1


def test_the_software_scrub_finds_a_corrupted_result_without_a_dump(fsw: Harness):
    a, b = operands(8, 4, 4, 4)
    assert fsw.tc(8, 1, gemm_tc(6, INLINE, 4, 4, 4, c=0) + a.tobytes() + b.tobytes()).ok
    fsw.fsw.ram.flip(5, 0)
    events = fsw.run_for(1.5).events(EventId.EDAC_UNCORRECTABLE)
    assert [struct.unpack("!BII", e) for e in events] == [(RAM, 0, 1)]


@pytest.mark.parametrize(
    ("data", "failure"),
    [
        (gemm_tc(1, FROM_RAM, 0, 4, 4), (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x05")),
        (gemm_tc(1, FROM_RAM, 4, 5000, 4), (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x07")),
        # One block of N rows and columns takes K words of A and K of B, and C its 16:
        # at BANK_WORDS = 1024, K = 1009 leaves C no room (ICD 15.6, tiling).
        (gemm_tc(1, FROM_RAM, 4, 1009, 4), (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x07")),
        (gemm_tc(1, 7, 4, 4, 4), (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x04")),
        (gemm_tc(1, FROM_RAM, 4, 4, 4, a=65530),
         (FailureCode.ADDRESS_OUT_OF_RANGE, struct.pack("!II", 65530, 16))),
        (gemm_tc(1, FROM_RAM, 4, 4, 4, c=65500),
         (FailureCode.ADDRESS_OUT_OF_RANGE, struct.pack("!II", 65500, 64))),
        (gemm_tc(1, FROM_SPM, 4, 4, 4, a=2, b=BANK1),
         (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x0b")),
        (gemm_tc(1, INLINE, 2, 2, 2) + bytes(7), (FailureCode.BAD_APP_DATA, b"\x00\x1e")),
        (gemm_tc(1, INLINE, 2, 2, 2) + bytes(9), (FailureCode.BAD_APP_DATA, b"\x00\x1f")),
        (gemm_tc(1, INLINE, 2, 2, 2, a=4) + bytes(8),
         (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x0b")),
        (layer_tc(1, FROM_RAM, 4, 4, 4, flags=8), (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x1b")),
        (layer_tc(1, FROM_RAM, 4, 4, 4, shift=32), (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x1c")),
        (gemm_tc(1, FROM_RAM, 4, 4, 4)[:-1], (FailureCode.BAD_APP_DATA, b"\x00\x16")),
    ],
)  # fmt: skip
def test_bad_job_requests_fail_acceptance(fsw: Harness, data, failure):
    reply = fsw.tc(8, 1, data)
    assert reply.failure == (2, *failure)
    assert not reply.events(EventId.JOB_STARTED)


def test_a_descriptor_the_chip_refuses_fails_the_job_with_its_err_code(fsw: Harness):
    # A in bank 1 breaks a descriptor rule (docs/REGISTERS.md): the chip says DESCRIPTOR.
    reply = fsw.tc(8, 1, gemm_tc(2, FROM_SPM, 4, 4, 4, a=BANK1, b=BANK1, c=0))
    assert reply.failure == (8, FailureCode.JOB_FAILED, b"\x02")


def eclipse_harness(**kw) -> Harness:
    fsw = Harness(env=EnvironmentConfig(phase0=0.9), **kw)
    data = struct.pack("!BHH", 1, ParamId.ECLIPSE_DEFER_SOC, 1000)  # always defer in eclipse
    assert fsw.tc(20, 3, data).ok
    return fsw


def test_jobs_wait_in_eclipse_with_a_low_battery_with_progress_and_busy_when_full():
    fsw = eclipse_harness(time_scale=100.0)
    assert fsw.tc(20, 3, struct.pack("!BHB", 1, ParamId.JOB_QUEUE_LIMIT, 2)).ok
    a, b = operands(9, 4, 4, 4)
    job = gemm_tc(11, INLINE, 4, 4, 4, c=0) + a.tobytes() + b.tobytes()
    first = fsw.tc(8, 1, job)
    assert first.stages == [1, 3]
    assert fsw.tc(8, 1, gemm_tc(12, INLINE, 4, 4, 4, c=64) + a.tobytes() + b.tobytes()).stages == [
        1,
        3,
    ]
    assert fsw.tc(8, 1, job[:2] + b"\x00\x0d" + job[4:]).failure == (4, FailureCode.BUSY, b"")
    assert hk(fsw, HkStructure.SYSTEM)["jobs_deferred"] == 1
    waiting = fsw.run_for(2.5)
    steps = [r.step for r in waiting.reports if r.request_id == first.request_id]
    assert steps == [0, 1]  # a heartbeat every second while it waits
    # 0.1 orbit at 100x is 5.7 s of on-board time: the eclipse ends, the jobs run.
    later = fsw.run_for(60)
    exit_at = [
        i for i, t in enumerate(later.tms) if t.service == 5 and t.source_data[:2] == b"\x00\x53"
    ]
    started = [
        i for i, t in enumerate(later.tms) if t.service == 5 and t.source_data[:2] == b"\x00\x20"
    ]
    assert exit_at and len(started) == 2 and exit_at[0] < started[0]
    done = [r for r in later.reports if r.request_id == first.request_id and r.subtype == 7]
    assert done


def test_abort_job_ends_queued_jobs_with_job_aborted():
    fsw = eclipse_harness()
    a, b = operands(10, 4, 4, 4)
    queued = fsw.tc(8, 1, gemm_tc(1, INLINE, 4, 4, 4) + a.tobytes() + b.tobytes())
    reply = fsw.tc(8, 1, struct.pack("!H", FunctionId.ABORT_JOB))
    assert reply.ok
    ends = [r for r in Reply(None, reply.tms).reports if r.request_id == queued.request_id]
    assert [(r.subtype, r.failure_code) for r in ends] == [(8, FailureCode.JOB_ABORTED)]
    assert hk(fsw, HkStructure.SYSTEM)["jobs_aborted"] == 1


def test_jobs_without_the_progress_flag_get_no_heartbeat():
    fsw = eclipse_harness()
    a, b = operands(11, 4, 4, 4)
    flags = AckFlags.ACCEPTANCE | AckFlags.COMPLETION
    fsw.tc(8, 1, gemm_tc(1, INLINE, 4, 4, 4) + a.tobytes() + b.tobytes(), flags=flags)
    assert not fsw.run_for(3).reports


@pytest.mark.parametrize("array_n", [2, 8, 16])
def test_the_driver_handles_every_word_width(array_n: int):
    """N = 8 and 16 make words of 2 and 4 bus parts: staging, parts order, latching."""
    fsw = Harness(build=Build(n=array_n))
    m, k, n = 7, 11, 5
    a, b = operands(12, m, k, n)
    load_big(fsw, RAM, 0, a.tobytes() + b.tobytes())
    assert fsw.tc(8, 1, gemm_tc(1, FROM_RAM, m, k, n, 0, m * k, 1000)).ok
    c = np.frombuffer(dump_big(fsw, RAM, 1000, m * n * 4), dtype=">i4").reshape(m, n)
    np.testing.assert_array_equal(c, gemm_reference(a, b, out_int32=True))
    words = bytes(range(3 * array_n))
    assert load(fsw, SPM, 5 * array_n, words).ok
    assert dumped(dump(fsw, SPM, 5 * array_n, len(words)))[1] == words
    assert hk(fsw, HkStructure.ACCELERATOR)["array_n"] == array_n


def test_a_bug_in_a_job_fails_that_job_not_the_flight_software(fsw: Harness, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("injected bug")

    monkeypatch.setattr(fsw.fsw.driver, "read_matrix_words", broken)
    a, b = operands(13, 4, 4, 4)
    reply = fsw.tc(8, 1, gemm_tc(1, INLINE, 4, 4, 4) + a.tobytes() + b.tobytes())
    assert reply.failure == (8, FailureCode.INTERNAL_ERROR, b"")
    assert any("injected bug" in str(x) for x in fsw.actions)
    fsw.actions.clear()  # seen: the autouse check looks for unexpected internal errors
    monkeypatch.undo()
    assert fsw.tc(8, 1, gemm_tc(2, INLINE, 4, 4, 4) + a.tobytes() + b.tobytes()).ok
