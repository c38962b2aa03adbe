"""Conformance, services (docs/ICD.md section 15): every TC's success path, and what its
TM, events and housekeeping say afterwards."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from firmware_sim.accel import gemm_reference
from host.history import tm
from host.integration_api import IntegrationApi, hk_field
from host.target import Target
from protocol.codes import (
    AckFlags,
    EventId,
    FaultKind,
    FunctionId,
    MemoryId,
    Mode,
    NotInjectedReason,
    Service,
)
from protocol.crc import crc16_ccitt_false
from protocol.payloads import (
    HK_FIELDS,
    PARAM_SPECS,
    EventSelector,
    FaultRecord,
    FaultSiteClass,
    FaultTiming,
    HkStructure,
    JobPhase,
    JobStatus,
    OperandSource,
    ParamId,
    ResetCause,
    hk_structures,
    job,
)

HK_LEN = {HkStructure.SYSTEM: 65, HkStructure.ENVIRONMENT: 54, HkStructure.ACCELERATOR: 63}


def operands(seed: int, m: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.integers(-128, 128, (m, k), dtype=np.int8),
        rng.integers(-128, 128, (k, n), dtype=np.int8),
    )


def test_ping_answers(hil: IntegrationApi) -> None:
    done = hil.send_and_assert_command(Service.TEST, 1)
    assert [(t.service, t.subtype) for t in done.reports] == [(17, 2)]


@pytest.mark.parametrize("sid", list(HkStructure), ids=lambda s: s.name)
def test_one_shot_housekeeping_has_the_icd_layout(hil: IntegrationApi, sid: HkStructure) -> None:
    done = hil.send_and_assert_command(Service.HOUSEKEEPING, 27, hk_structures([sid]))
    (report,) = done.reports
    assert (report.service, report.subtype) == (3, 25)
    assert len(report.source_data) == HK_LEN[sid]
    assert struct.unpack_from("!H", report.source_data)[0] == sid
    assert report.dest_id != 0, "a one-shot report carries the TC's source id"
    assert list(hil.housekeeping(sid)) == [f.name for f in HK_FIELDS[sid]]


def test_one_shot_reports_come_in_the_order_asked(hil: IntegrationApi) -> None:
    order = [HkStructure.ACCELERATOR, HkStructure.SYSTEM, HkStructure.ENVIRONMENT]
    done = hil.send_and_assert_command(Service.HOUSEKEEPING, 27, hk_structures(order))
    assert [struct.unpack_from("!H", t.source_data)[0] for t in done.reports] == order


def test_accelerator_housekeeping_describes_the_build(hil: IntegrationApi) -> None:
    hk = hil.housekeeping(HkStructure.ACCELERATOR)
    assert hk["array_n"] in (2, 4, 8, 16)
    assert hk["spm_words"] > 0 and hk["spm_words"] % 2 == 0


def test_periodic_housekeeping_interval_disable_and_enable(hil: IntegrationApi) -> None:
    target = hil.target
    periodic = tm(3, 25, where=lambda r: r.tm.dest_id == 0 and r.source_data[:2] == b"\x00\x01")
    interval = target.get_parameter(ParamId.HK_INTERVAL_SYSTEM)
    try:
        target.set_interval(HkStructure.SYSTEM, 200)
        assert target.get_parameter(ParamId.HK_INTERVAL_SYSTEM) == 200
        hil.assert_telemetry_count(periodic, lambda n: n >= 2, timeout=2.0)
        target.set_periodic([HkStructure.SYSTEM], False)
        quiet = hil.mark()
        assert hil.await_telemetry(periodic, 0.6, start=quiet) is None
        target.set_periodic([HkStructure.SYSTEM], True)
        hil.assert_telemetry(periodic, 1.0, start=quiet)
    finally:
        target.set_periodic([HkStructure.SYSTEM], True)
        target.set_interval(HkStructure.SYSTEM, interval)


def test_disabled_events_are_counted_but_not_reported(hil: IntegrationApi) -> None:
    target = hil.target
    value = target.get_parameter(ParamId.JOB_QUEUE_LIMIT)
    try:
        target.set_events(False, EventSelector.LISTED, [EventId.PARAMETER_CHANGED])
        raised = hil.housekeeping()["events_raised"]
        target.set_parameter(ParamId.JOB_QUEUE_LIMIT, value)
        assert hil.housekeeping()["events_raised"] == raised + 1
        hil.assert_event_count(0, EventId.PARAMETER_CHANGED, timeout=0.3)
        target.set_events(True, EventSelector.ALL)
        target.set_parameter(ParamId.JOB_QUEUE_LIMIT, value)
        hil.assert_event(EventId.PARAMETER_CHANGED, {"parameter": ParamId.JOB_QUEUE_LIMIT})
    finally:
        target.set_events(True, EventSelector.ALL)


def test_firmware_ram_load_dump_and_check(hil: IntegrationApi) -> None:
    data = np.random.default_rng(5).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    target = hil.target
    target.load(MemoryId.FIRMWARE_RAM, 40_000, data)
    assert target.dump(MemoryId.FIRMWARE_RAM, 40_000, len(data)) == data
    report = target.check(MemoryId.FIRMWARE_RAM, 40_000, len(data))
    assert (report.checksum, report.uncorrectable) == (crc16_ccitt_false(data), 0)


def test_scratchpad_load_dump_and_check_in_whole_words(hil: IntegrationApi) -> None:
    target = hil.target
    n = target.array_n()
    data = np.random.default_rng(6).integers(0, 256, 64 * n, dtype=np.uint8).tobytes()
    target.load(MemoryId.ACCEL_SCRATCHPAD, 100 * n, data)
    report = target.dump_report(MemoryId.ACCEL_SCRATCHPAD, 100 * n, len(data))
    assert (report.data, report.uncorrectable) == (data, 0)
    assert target.check(MemoryId.ACCEL_SCRATCHPAD, 100 * n, len(data)).checksum == (
        crc16_ccitt_false(data)
    )


@pytest.mark.parametrize("shape", [(6, 9, 5), (48, 40, 8)], ids=["inline", "firmware_ram"])
def test_gemm_result_matches_the_reference(hil: IntegrationApi, shape) -> None:
    a, b = operands(sum(shape), *shape)
    c = hil.target.run_gemm(a, b)
    np.testing.assert_array_equal(c, gemm_reference(a, b, out_int32=True))


@pytest.mark.parametrize("out_int32", [False, True], ids=["int8", "int32"])
def test_layer_with_bias_relu_and_shift_matches_the_reference(
    hil: IntegrationApi, out_int32: bool
) -> None:
    a, b = operands(7, 12, 20, 10)
    bias = np.random.default_rng(8).integers(-5000, 5000, 10)
    c = hil.target.run_layer(a, b, bias, relu=True, shift=7, out_int32=out_int32)
    expected = gemm_reference(a, b, bias=bias, relu=True, shift=7, out_int32=out_int32)
    np.testing.assert_array_equal(c, expected)


def test_job_events_progress_and_housekeeping(hil: IntegrationApi) -> None:
    a, b = operands(9, 8, 8, 8)
    job_id = 4242
    app = job(FunctionId.RUN_GEMM, job_id, OperandSource.INLINE, 8, 8, 8, c=1000,
              inline=a.tobytes() + b.tobytes())  # fmt: skip
    completed_before = hil.housekeeping()["jobs_completed"]
    done = hil.send_and_assert_command(Service.FUNCTION_MANAGEMENT, 1, app, ack=AckFlags.ALL)
    assert hil.housekeeping()["jobs_completed"] == completed_before + 1
    steps = [r.step for r in done.verification if int(r.subtype) == 5]
    assert steps[:2] == [0, 1], f"progress steps {steps}"
    started = hil.assert_event(EventId.JOB_STARTED, {"job_id": job_id})
    assert (started.args["m"], started.args["k"], started.args["n"]) == (8, 8, 8)
    assert started.args["function"] == FunctionId.RUN_GEMM
    completed = hil.assert_event(EventId.JOB_COMPLETED, {"job_id": job_id})
    c = gemm_reference(a, b, out_int32=True).astype(">i4").tobytes()
    assert completed.args["result_crc"] == zlib.crc32(c)
    hk = hil.housekeeping(HkStructure.ACCELERATOR)
    assert (hk["last_job_id"], hk["last_job_status"]) == (job_id, JobStatus.COMPLETED)
    assert hk["last_job_crc"] == zlib.crc32(c) and hk["last_job_macs"] == 8 * 8 * 8


def test_every_parameter_reads_within_its_range(hil: IntegrationApi) -> None:
    values = hil.target.get_parameters(list(ParamId))
    assert set(values) == set(ParamId)
    for pid, value in values.items():
        spec = PARAM_SPECS[pid]
        assert spec.lo <= value <= spec.hi, f"{pid.name} = {value}"


def test_parameter_set_is_read_back_and_raises_an_event(hil: IntegrationApi) -> None:
    target = hil.target
    old = target.get_parameters([ParamId.SCRUB_PERIOD, ParamId.TEMP_LOW_LIMIT])
    try:
        target.set_parameters({ParamId.SCRUB_PERIOD: 777, ParamId.TEMP_LOW_LIMIT: -3000})
        assert target.get_parameter(ParamId.TEMP_LOW_LIMIT) == -3000
        assert target.get_parameter(ParamId.SCRUB_PERIOD) == 777
        hil.assert_event(EventId.PARAMETER_CHANGED, {"parameter": ParamId.TEMP_LOW_LIMIT,
                                                     "value": -3000})  # fmt: skip
        assert hil.housekeeping(HkStructure.ACCELERATOR)["scrub_period"] == 777
    finally:
        target.set_parameters(old)


def test_mode_change_raises_mode_changed(hil: IntegrationApi, nominal: Target) -> None:
    hil.assert_event(EventId.MODE_CHANGED, {"from_mode": Mode.TEST, "to_mode": Mode.NOMINAL,
                                            "autonomous": 0})  # fmt: skip
    assert nominal.housekeeping()["mode"] == Mode.NOMINAL
    hil.assert_telemetry(hk_field(HkStructure.SYSTEM, "mode", Mode.NOMINAL))


def test_reset_reboots_counting_the_boot(hil: IntegrationApi) -> None:
    before = hil.housekeeping()["boot_count"]
    boot = hil.target.reset()
    assert boot.args["boot_count"] == before + 1
    assert boot.args["reset_cause"] == ResetCause.COMMAND
    assert boot.received is not None and boot.received.seq_count == 0
    hk = hil.housekeeping()
    assert (hk["boot_count"], hk["reset_cause"]) == (before + 1, ResetCause.COMMAND)


def test_reset_accel_scrub_and_clear_counters(hil: IntegrationApi) -> None:
    target = hil.target
    target.reset_accelerator()
    target.scrub_now()
    hil.assert_event(EventId.SCRUB_PASS_DONE, {"commanded": 1})
    target.clear_counters()
    hk = hil.housekeeping(HkStructure.ACCELERATOR)
    assert (hk["ecc_corrected"], hk["ecc_uncorrectable"], hk["scrub_passes"]) == (0, 0, 0)
    assert hil.housekeeping()["frames_rejected"] == 0


def test_abort_with_no_job_completes(hil: IntegrationApi) -> None:
    hil.send_and_assert_command(Service.FUNCTION_MANAGEMENT, 1, struct.pack("!H", 3))


def test_stuck_bit_is_listed_and_cleared(hil: IntegrationApi, clean_faults: Target) -> None:
    target = clean_faults
    target.inject([FaultRecord(FaultKind.STUCK_AT_1, FaultSiteClass.FW_RAM, 1, (60_000, 3))])
    hil.assert_event(EventId.FAULT_INJECTED, {"kind": FaultKind.STUCK_AT_1,
                                              "site": FaultSiteClass.FW_RAM})  # fmt: skip
    target.load(MemoryId.FIRMWARE_RAM, 60_000, b"\x00")
    assert target.dump(MemoryId.FIRMWARE_RAM, 60_000, 1) == b"\x08"
    active, records = target.list_faults()
    assert active == 1 and records[0].site_class == FaultSiteClass.FW_RAM
    target.clear_faults()
    hil.assert_event(EventId.FAULTS_CLEARED, {"cleared": 1})
    assert target.list_faults() == (0, [])


def test_a_named_site_waiting_for_a_job_is_listed_as_itself_and_cleared(
    hil: IntegrationApi, clean_faults: Target
) -> None:
    target = clean_faults
    # The sequencer's step counter exists in every build (docs/REGISTERS.md, "Fault sites").
    record = FaultRecord(FaultKind.SBU, FaultSiteClass.SITE, 1, ("u_seq.u_t.q_q[0]", 1),
                         FaultTiming.NEXT_JOB, (0, JobPhase.STREAM, 1))  # fmt: skip
    target.inject([record])
    hil.assert_event(EventId.FAULT_INJECTED, {"kind": FaultKind.SBU, "site": FaultSiteClass.SITE})
    assert target.list_faults() == (1, [record])
    target.clear_faults()
    hil.assert_event(EventId.FAULTS_CLEARED, {"cleared": 1})
    assert target.list_faults() == (0, [])


def test_a_fault_whose_point_the_job_lacks_is_reported_not_injected(
    hil: IntegrationApi, clean_faults: Target
) -> None:
    target = clean_faults
    before = hil.housekeeping(HkStructure.ACCELERATOR)["faults_not_injected"]
    # A RUN_GEMM has no bias, so no BIAS point: the fault must be reported, not dropped.
    target.inject([FaultRecord(FaultKind.SBU, FaultSiteClass.SPM_WORD, 1, (0, 0),
                               FaultTiming.NEXT_JOB, (0, JobPhase.BIAS, 0))])  # fmt: skip
    mark = hil.mark()
    app = job(1, 41, OperandSource.INLINE, 1, 1, 1, inline=b"\x02\x03")
    hil.send_and_assert_command(Service.FUNCTION_MANAGEMENT, 1, app)
    hil.assert_event(EventId.FAULT_NOT_INJECTED, {
        "job_id": 41, "reason": NotInjectedReason.NO_SUCH_POINT, "count": 1, "scheduled": 1,
    }, start=mark)  # fmt: skip
    hil.assert_event(EventId.JOB_COMPLETED, {"job_id": 41, "faults": 1, "not_injected": 1},
                     start=mark)  # fmt: skip
    hk = hil.housekeeping(HkStructure.ACCELERATOR)
    assert (hk["faults_not_injected"], hk["last_job_faults"], hk["last_job_not_injected"]) == (
        before + 1, 1, 1)
    assert target.list_faults() == (0, [])


def test_single_bit_upset_in_the_scratchpad_is_corrected(
    hil: IntegrationApi, clean_faults: Target
) -> None:
    target = clean_faults
    n = target.array_n()
    word = 300
    data = bytes(range(1, n + 1))
    # The background scrubber would also correct (and count) the word if it reached it
    # between the dump and the housekeeping: stopped here, the dump's read is the only one.
    period = target.get_parameter(ParamId.SCRUB_PERIOD)
    target.set_parameter(ParamId.SCRUB_PERIOD, 0)
    try:
        target.load(MemoryId.ACCEL_SCRATCHPAD, word * n, data)
        before = hil.housekeeping(HkStructure.ACCELERATOR)["ecc_corrected"]
        target.inject([FaultRecord(FaultKind.SBU, FaultSiteClass.SPM_WORD, 1, (word, 2))])
        report = target.dump_report(MemoryId.ACCEL_SCRATCHPAD, word * n, n)
        assert (report.data, report.uncorrectable) == (data, 0)
        assert hil.housekeeping(HkStructure.ACCELERATOR)["ecc_corrected"] == before + 1
    finally:
        target.set_parameter(ParamId.SCRUB_PERIOD, period)


def test_double_bit_upset_is_reported_uncorrectable(
    hil: IntegrationApi, clean_faults: Target
) -> None:
    target = clean_faults
    n = target.array_n()
    target.load(MemoryId.ACCEL_SCRATCHPAD, 310 * n, bytes(n))
    target.inject([FaultRecord(FaultKind.MBU, FaultSiteClass.SPM_WORD, 2, (310, 0))])
    report = target.dump_report(MemoryId.ACCEL_SCRATCHPAD, 310 * n, n)
    assert report.uncorrectable == 1
    hil.assert_event(EventId.EDAC_UNCORRECTABLE, {"memory": MemoryId.ACCEL_SCRATCHPAD,
                                                  "address": 310 * n})  # fmt: skip
    target.load(MemoryId.ACCEL_SCRATCHPAD, 310 * n, bytes(n))
