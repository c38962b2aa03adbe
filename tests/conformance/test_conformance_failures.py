"""Conformance, failures (docs/ICD.md sections 10, 13, 15): every failure code a target can
be driven to from outside, at the stage and with the failure data the ICD gives."""

from __future__ import annotations

import struct
from concurrent.futures import Future

import pytest

from host.errors import CommandFailed
from host.integration_api import IntegrationApi
from host.stage import Stage
from host.target import Target
from protocol.auth import ANTI_REPLAY_WINDOW, sign_tc
from protocol.codes import EventId, FailureCode, FaultKind, FunctionId, MemoryId, Mode, Service
from protocol.packets import make_tc
from protocol.payloads import (
    ClusterShape,
    EventSelector,
    FaultRecord,
    FaultSiteClass,
    FaultTiming,
    HkStructure,
    JobPhase,
    OperandSource,
    ParamId,
    job,
    memory_dump,
    memory_load,
)

F = FailureCode
RAM, SPM = MemoryId.FIRMWARE_RAM, MemoryId.ACCEL_SCRATCHPAD


def u16(*values: int) -> bytes:
    return struct.pack(f"!{len(values)}H", *values)


def ram_cluster(address: int, bit: int, shape: int) -> FaultRecord:
    """A two-cell multi-bit upset of the firmware RAM by shape (ICD 15.8)."""
    return FaultRecord(FaultKind.MBU, FaultSiteClass.FW_RAM_CLUSTER, 2, (address, bit, shape))


ACCEPTANCE_FAILURES = [
    # name, service, subtype, application data, code, failure data
    ("unknown service", 99, 1, b"", F.UNKNOWN_SERVICE, bytes([99])),
    ("unknown subtype", 17, 9, b"", F.UNKNOWN_SUBTYPE, bytes([17, 9])),
    ("tm subtype as a tc", 17, 2, b"", F.UNKNOWN_SUBTYPE, bytes([17, 2])),
    ("ping with data", 17, 1, b"\x01", F.BAD_APP_DATA, u16(0)),
    ("hk count 0", 3, 27, b"\x00", F.VALUE_OUT_OF_RANGE, u16(0)),
    ("hk short", 3, 27, b"\x02\x00\x01", F.BAD_APP_DATA, u16(3)),
    ("hk unknown sid", 3, 27, b"\x01\x00\x09", F.UNKNOWN_HK_STRUCTURE, u16(9)),
    ("hk interval too short", 3, 31, struct.pack("!BHI", 1, 1, 50), F.VALUE_OUT_OF_RANGE, u16(3)),
    ("event selector", 5, 6, b"\x07", F.VALUE_OUT_OF_RANGE, u16(0)),
    ("event count 0", 5, 6, b"\x00\x00", F.VALUE_OUT_OF_RANGE, u16(1)),
    ("unknown event", 5, 6, b"\x00\x01\x09\x99", F.UNKNOWN_EVENT, u16(0x0999)),
    ("event extra octets", 5, 5, b"\xff\x00", F.BAD_APP_DATA, u16(1)),
    ("unknown memory", 6, 5, memory_dump(7, 0, 4), F.UNKNOWN_MEMORY, bytes([7])),
    ("dump length 0", 6, 5, memory_dump(RAM, 0, 0), F.VALUE_OUT_OF_RANGE, u16(5)),
    ("dump too long", 6, 5, memory_dump(RAM, 0, 2017), F.VALUE_OUT_OF_RANGE, u16(5)),
    ("dump past the end", 6, 5, memory_dump(RAM, 65000, 1000), F.ADDRESS_OUT_OF_RANGE,
     struct.pack("!II", 65000, 1000)),
    ("load shorter than its length", 6, 2, memory_load(RAM, 0, bytes(8))[:-2],
     F.BAD_APP_DATA, u16(13)),
    ("check past the end", 6, 9, struct.pack("!BII", RAM, 1, 65536), F.ADDRESS_OUT_OF_RANGE,
     struct.pack("!II", 1, 65536)),
    ("unknown function", 8, 1, u16(0x0999), F.UNKNOWN_FUNCTION, u16(0x0999)),
    ("function extra octets", 8, 1, u16(FunctionId.SCRUB_NOW) + b"\x00", F.BAD_APP_DATA, u16(2)),
    ("set mode 9", 8, 1, struct.pack("!HB", FunctionId.SET_MODE, 9), F.VALUE_OUT_OF_RANGE, u16(2)),
    ("job with M = 0", 8, 1, job(1, 1, OperandSource.INLINE, 0, 1, 1), F.VALUE_OUT_OF_RANGE,
     u16(5)),
    ("job source 5", 8, 1, job(1, 1, 5, 1, 1, 1), F.VALUE_OUT_OF_RANGE, u16(4)),
    ("inline job short of operands", 8, 1, job(1, 1, OperandSource.INLINE, 2, 2, 2, inline=b"x"),
     F.BAD_APP_DATA, u16(24)),
    ("layer shift 32", 8, 1, job(2, 1, OperandSource.INLINE, 1, 1, 1, shift=32, inline=b"\x01\x01"),
     F.VALUE_OUT_OF_RANGE, u16(28)),
    ("job result past the ram", 8, 1, job(1, 1, OperandSource.INLINE, 1, 1, 1, c=65534,
     inline=b"\x01\x01"), F.ADDRESS_OUT_OF_RANGE, struct.pack("!II", 65534, 4)),
    ("unknown parameter", 20, 1, b"\x01\x09\x99", F.UNKNOWN_PARAMETER, u16(0x0999)),
    ("parameter count 0", 20, 1, b"\x00", F.VALUE_OUT_OF_RANGE, u16(0)),
    ("parameter out of range", 20, 3, struct.pack("!BHB", 1, ParamId.JOB_QUEUE_LIMIT, 17),
     F.VALUE_OUT_OF_RANGE, u16(3)),
    ("fault count 0", 148, 1, b"\x00", F.VALUE_OUT_OF_RANGE, u16(0)),
    ("fault kind 9", 148, 1, bytes([1, 9, 2, 1, 0]) + b"\x00\x00\x00", F.VALUE_OUT_OF_RANGE,
     u16(1)),
    ("sefi on a ram bit", 148, 1, bytes([1, FaultKind.SEFI, FaultSiteClass.FW_RAM, 0, 0])
     + struct.pack("!IB", 0, 0), F.VALUE_OUT_OF_RANGE, u16(2)),
    ("ram bit past the end", 148, 1, b"\x01" + FaultRecord(FaultKind.SBU, FaultSiteClass.FW_RAM, 1,
     (70_000, 0)).pack(), F.ADDRESS_OUT_OF_RANGE, None),
    ("ram cluster past the end", 148, 1, b"\x01" + ram_cluster(70_000, 0, ClusterShape.BIT_LINE)
     .pack(), F.ADDRESS_OUT_OF_RANGE, struct.pack("!II", 70_000, 1)),
    ("ram cluster past the last row", 148, 1, b"\x01" + ram_cluster(65_535, 7,
     ClusterShape.BIT_LINE).pack(), F.FAULT_SITE_ABSENT, b"\x00\x05\x00"),
    ("ram cluster bit 8", 148, 1, b"\x01" + ram_cluster(0, 8, ClusterShape.BIT_LINE).pack(),
     F.VALUE_OUT_OF_RANGE, u16(9)),
    ("ram cluster shape 3", 148, 1, b"\x01" + ram_cluster(0, 0, 3).pack(), F.VALUE_OUT_OF_RANGE,
     u16(10)),
    ("sbu on a ram cluster", 148, 1, b"\x01" + FaultRecord(FaultKind.SBU,
     FaultSiteClass.FW_RAM_CLUSTER, 1, (0, 0, 0)).pack(), F.VALUE_OUT_OF_RANGE, u16(2)),
    ("scratchpad cluster shape 7", 148, 1, b"\x01" + FaultRecord(FaultKind.MBU,
     FaultSiteClass.SPM_CLUSTER, 2, (0, 0, 0, 7)).pack(), F.VALUE_OUT_OF_RANGE, u16(10)),
    ("scratchpad word past the build", 148, 1, b"\x01" + FaultRecord(FaultKind.SBU,
     FaultSiteClass.SPM_WORD, 1, (0xFFFF, 0)).pack(), F.FAULT_SITE_ABSENT, b"\x00\x05\x00"),
    ("fault at a cycle no job has", 148, 1, b"\x01" + FaultRecord(FaultKind.SBU,
     FaultSiteClass.OUT_BIT, 1, (0, 0, 0), FaultTiming.NEXT_JOB, (0, JobPhase.WRITE, 0xFFFF))
     .pack(), F.FAULT_POINT_UNREACHABLE, b"\x00\x08\x00"),
    ("site name the build lacks", 148, 1, b"\x01" + FaultRecord(FaultKind.SBU,
     FaultSiteClass.SITE, 1, ("u_seq.no_such_q", 0)).pack(), F.FAULT_SITE_ABSENT, b"\x00\x05\x00"),
    ("site bit past the entry", 148, 1, b"\x01" + FaultRecord(FaultKind.SBU, FaultSiteClass.SITE,
     1, ("u_seq.u_state.q_q[0]", 3)).pack(), F.FAULT_SITE_ABSENT, b"\x00\x1a\x00"),
    ("site name with a space", 148, 1, bytes([1, FaultKind.SBU, FaultSiteClass.SITE, 1, 0, 3])
     + b"a b\x00\x00", F.VALUE_OUT_OF_RANGE, u16(5)),
    ("site name of no octets", 148, 1, bytes([1, FaultKind.SBU, FaultSiteClass.SITE, 1, 0, 0])
     + b"\x00\x00", F.VALUE_OUT_OF_RANGE, u16(5)),
    ("set on a scratchpad cell by name", 148, 1, b"\x01" + FaultRecord(FaultKind.SET,
     FaultSiteClass.SITE, 1, ("u_spm.u_bank0.mem_q", 0)).pack(), F.FAULT_SITE_ABSENT,
     b"\x00\x05\x00"),
    ("mbu on a named site", 148, 1, b"\x01" + FaultRecord(FaultKind.MBU, FaultSiteClass.SITE, 2,
     ("u_seq.u_t.q_q[0]", 0)).pack(), F.VALUE_OUT_OF_RANGE, u16(2)),
    ("list with data", 148, 3, b"\x00", F.BAD_APP_DATA, u16(0)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("service", "subtype", "data", "code", "failure_data"),
    [case[1:] for case in ACCEPTANCE_FAILURES],
    ids=[case[0] for case in ACCEPTANCE_FAILURES],
)
def test_refused_at_acceptance_with_the_icd_failure_data(
    hil: IntegrationApi, service: int, subtype: int, data: bytes, code: F, failure_data: bytes
) -> None:
    hil.send_and_assert_failure(
        service, subtype, data, code=code, stage=Stage.ACCEPTANCE, data=failure_data
    )


def test_scratchpad_address_not_a_whole_word(hil: IntegrationApi) -> None:
    if hil.target.array_n() == 1:
        pytest.skip("every address is a whole word when N = 1")
    hil.send_and_assert_failure(6, 5, memory_dump(SPM, 1, 4), code=F.VALUE_OUT_OF_RANGE,
                                data=u16(1))  # fmt: skip


def test_fault_injection_outside_test_mode(hil: IntegrationApi, nominal: Target) -> None:
    hil.send_and_assert_failure(148, 3, code=F.NOT_IN_TEST_MODE, stage=Stage.START,
                                data=bytes([Mode.NOMINAL]))  # fmt: skip


def test_null_key_outside_test_mode_is_auth_required(hil: IntegrationApi, nominal: Target) -> None:
    link = hil.link
    saved = link.auth
    link.auth = type(saved)()  # the null key
    try:
        mark = hil.mark()
        hil.send_and_assert_failure(6, 2, memory_load(RAM, 0, b"\x01"), code=F.AUTH_REQUIRED,
                                    stage=Stage.ACCEPTANCE, data=b"")  # fmt: skip
        hil.assert_event(EventId.AUTH_FAILURE, {"failure_code": F.AUTH_REQUIRED, "key_id": 0},
                         start=mark)  # fmt: skip
    finally:
        link.auth = saved


def _signed(
    hil: IntegrationApi, key_id: int, key: bytes | None, auth_seq: int, data: bytes
) -> tuple[int, bytes]:
    packet = sign_tc(6, 2, data, hil.fresh_seq(), key_id=key_id, auth_seq=auth_seq,
                     key=key)  # fmt: skip
    rid = hil.send_packet(packet)
    report = hil.await_report(rid, {1, 2})
    assert report is not None and report.subtype == 2, f"not refused: {report}"
    (code,) = struct.unpack_from("!H", report.source_data, 4)
    return code, report.source_data[6:]


def test_authentication_failures(hil: IntegrationApi, needs_key: tuple[int, bytes]) -> None:
    key_id, key = needs_key
    load = memory_load(RAM, 0, b"\x01")
    hil.target.load(RAM, 0, b"\x01")  # signed by the link: the target has accepted seq >= 1
    before = hil.housekeeping()["auth_failures"]
    unknown = (key_id % 0xFFFF) + 1
    assert _signed(hil, unknown, bytes(32), 1 << 30, load) == (F.AUTH_FAILED, u16(unknown))
    wrong_tag = bytes(b ^ 0x55 for b in key)
    assert _signed(hil, key_id, wrong_tag, 1 << 30, load) == (F.AUTH_FAILED, u16(key_id))
    code, data = _signed(hil, key_id, key, 1, load)
    assert code == F.AUTH_REPLAY and data[:2] == u16(key_id)
    assert struct.unpack("!I", data[2:])[0] >= 1
    short = hil.send_packet(make_short_hazardous(hil.fresh_seq()))
    report = hil.await_report(short, {2})
    assert report is not None and report.source_data[4:] == u16(F.AUTH_FAILED, 0xFFFF)
    assert hil.housekeeping()["auth_failures"] == before + 4
    hil.assert_event_count(lambda n: n >= 4, EventId.AUTH_FAILURE, timeout=2.0)


def make_short_hazardous(seq: int) -> bytes:
    """A TC[20,3] whose application data cannot hold an auth trailer."""
    return make_tc(20, 3, b"\x01\x00\x10\x00\x01", seq)


def test_jobs_refused_in_safe_mode(hil: IntegrationApi, needs_key: tuple[int, bytes]) -> None:
    target = hil.target
    target.mode(Mode.SAFE)
    try:
        hil.send_and_assert_failure(
            8, 1, job(1, 5, OperandSource.INLINE, 1, 1, 1, inline=b"\x01\x01"),
            code=F.WRONG_MODE, stage=Stage.START, data=bytes([Mode.SAFE]),
        )  # fmt: skip
    finally:
        target.mode(Mode.TEST)


def _descriptor_breaking_job(target: Target, job_id: int) -> tuple[bytes, int]:
    """A scratchpad job with A in bank 1: the chip refuses its descriptor."""
    n = target.array_n()
    bank1 = target.housekeeping(HkStructure.ACCELERATOR)["spm_words"] // 2
    a, b, c = bank1 * n, (bank1 + n) * n, (bank1 + 2 * n) * n
    return job(1, job_id, OperandSource.ACCEL_SCRATCHPAD, n, n, n, a=a, b=b, c=c), c


def test_descriptor_error_fails_the_job_and_its_result_is_never_dumped(
    hil: IntegrationApi,
) -> None:
    target = hil.target
    app, c = _descriptor_breaking_job(target, 31)
    n = target.array_n()
    failed_before = hil.housekeeping()["jobs_failed"]
    failed = hil.send_and_assert_failure(8, 1, app, code=F.JOB_FAILED, data=b"\x02")
    assert hil.housekeeping()["jobs_failed"] == failed_before + 1
    assert failed.stage in (Stage.PROGRESS, Stage.COMPLETION)
    hil.assert_event(EventId.JOB_FAILED, {"job_id": 31, "failure_code": F.JOB_FAILED,
                                          "err_code": 2})  # fmt: skip
    hil.send_and_assert_failure(6, 5, memory_dump(SPM, c, n), code=F.JOB_FAILED,
                                stage=Stage.START, data=b"\x02")  # fmt: skip
    target.load(SPM, c, bytes(n))  # something else written there: dumps allowed again
    assert target.dump(SPM, c, n) == bytes(n)


def test_hung_accelerator_makes_the_scratchpad_busy(
    hil: IntegrationApi, clean_faults: Target
) -> None:
    target = clean_faults
    dump = memory_dump(SPM, 0, target.array_n())
    for _ in range(3):  # the health check recovers a hung chip within a second: be quicker
        target.inject([FaultRecord(FaultKind.SEFI, FaultSiteClass.ACCEL, 0)])
        result = hil.send_command(6, 5, dump)
        if not (isinstance(result, CommandFailed) and result.code == F.BUSY):
            continue
        hil.assert_failure(result, code=F.BUSY, stage=Stage.START, data=b"")
        return
    pytest.fail(f"a dump of the scratchpad of a hung chip was not refused BUSY: {result}")


def test_job_on_a_hung_accelerator_times_out(hil: IntegrationApi, clean_faults: Target) -> None:
    target = clean_faults
    old = target.get_parameter(ParamId.JOB_TIMEOUT)
    target.set_parameter(ParamId.JOB_TIMEOUT, 100)
    try:
        target.inject([FaultRecord(FaultKind.SEFI, FaultSiteClass.ACCEL, 0,
                                   timing=FaultTiming.NEXT_JOB)])  # fmt: skip
        app = job(1, 32, OperandSource.INLINE, 1, 1, 1, inline=b"\x01\x01")
        failed = hil.send_and_assert_failure(8, 1, app, code=F.TIMEOUT)
        assert failed.stage in (Stage.PROGRESS, Stage.COMPLETION)
        hil.assert_event(EventId.SEFI_DETECTED, {"job_id": 32})
        hil.assert_event(EventId.JOB_FAILED, {"job_id": 32, "failure_code": F.TIMEOUT})
    finally:
        target.set_parameter(ParamId.JOB_TIMEOUT, old)


def test_abort_ends_a_running_job(hil: IntegrationApi, clean_faults: Target) -> None:
    target = clean_faults
    target.inject([FaultRecord(FaultKind.SEFI, FaultSiteClass.ACCEL, 0,
                               timing=FaultTiming.NEXT_JOB)])  # fmt: skip
    app = job(1, 33, OperandSource.INLINE, 1, 1, 1, inline=b"\x01\x01")
    aborted_before = hil.housekeeping()["jobs_aborted"]
    # The hung job must still be running when the abort arrives, however slow the target
    # (a simulated RTL on a loaded machine): its watchdog waits longer than the test does.
    timeout_ms = target.get_parameter(ParamId.JOB_TIMEOUT)
    target.set_parameter(ParamId.JOB_TIMEOUT, 60_000)
    try:
        running: Future = hil.link.submit(Service.FUNCTION_MANAGEMENT, 1, app)
        hil.assert_event(EventId.JOB_STARTED, {"job_id": 33})
        target.abort_job()
        error = running.exception(timeout=30)
    finally:
        target.set_parameter(ParamId.JOB_TIMEOUT, timeout_ms)
    assert isinstance(error, CommandFailed)
    hil.assert_failure(error, code=F.JOB_ABORTED)
    assert hil.housekeeping()["jobs_aborted"] == aborted_before + 1


def test_anomalies_past_the_threshold_enter_safe_mode(
    hil: IntegrationApi, needs_key: tuple[int, bytes]
) -> None:
    target = hil.target
    target.set_parameter(ParamId.SAFE_MODE_THRESHOLD, 1)
    try:
        app, _ = _descriptor_breaking_job(target, 34)
        hil.send_and_assert_failure(8, 1, app, code=F.JOB_FAILED)
        entered = {"anomalies": lambda n: n >= 1, "last_event": EventId.JOB_FAILED}
        hil.assert_event(EventId.SAFE_MODE_ENTERED, entered)
        hil.assert_event(EventId.MODE_CHANGED, {"to_mode": Mode.SAFE, "autonomous": 1})
        assert hil.housekeeping()["mode"] == Mode.SAFE
    finally:
        target.mode(Mode.TEST)
        target.set_parameter(ParamId.SAFE_MODE_THRESHOLD, 255)


def test_event_selection_by_severity_is_accepted(hil: IntegrationApi) -> None:
    for selector in EventSelector:
        if selector != EventSelector.LISTED:
            hil.target.set_events(False, selector)
    hil.target.set_events(True, EventSelector.ALL)


def test_a_lost_hazardous_tc_is_accepted_once_inside_the_anti_replay_window(
    hil: IntegrationApi, needs_key: tuple[int, bytes]
) -> None:
    key_id, key = needs_key
    hil.target.load(RAM, 0, b"\x01")  # signed by the link: the target's number is known low
    base = (hil.link.auth.next_seq if hil.link.auth else 1) + 1000

    def load(seq: int, octet: int) -> bytes:
        return sign_tc(6, 2, memory_load(RAM, 0, bytes([octet])), hil.fresh_seq(),
                       key_id=key_id, auth_seq=seq, key=key)  # fmt: skip

    def stage(packet: bytes) -> tuple[int, bytes]:
        mark = hil.mark()
        rid = hil.send_packet(packet)
        report = hil.await_report(rid, {2, 7}, start=mark)
        assert report is not None, f"no answer about {rid}"
        return report.subtype, report.source_data[4:]

    late = load(base, 2)
    assert stage(load(base + 1, 3)) == (7, b"")  # the later one arrives first
    assert stage(late) == (7, b""), "inside the window: accepted, without signing anew"
    assert hil.target.dump(RAM, 0, 1) == b"\x02"
    again = stage(late)[1]
    assert again[:2] == u16(F.DUPLICATE)  # the same octets again: a retransmission, not run
    other = stage(load(base, 4))[1]  # another TC with that number: it is spent
    assert other[:2] == u16(F.AUTH_REPLAY) and other[2:4] == u16(key_id)
    too_old = stage(load(base + 1 - ANTI_REPLAY_WINDOW, 5))[1]
    assert too_old[:2] == u16(F.AUTH_REPLAY)
    assert struct.unpack("!I", too_old[4:8])[0] == base + 1  # the highest accepted
    assert hil.target.dump(RAM, 0, 1) == b"\x02"
    if hil.link.auth is not None:
        hil.link.auth.next_seq = max(hil.link.auth.next_seq, base + 2)
