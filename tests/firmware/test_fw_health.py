"""Health: job watchdog and SEFI, the flight software watchdog, safe mode, latch-up, EDAC."""

from __future__ import annotations

import struct

from fw_harness import (
    BANK1,
    FROM_SPM,
    KEY_ID,
    PING,
    SPM,
    Harness,
    dump,
    gemm_tc,
    hk,
    load,
    small_job,
)

from protocol.codes import EventId, FailureCode, FaultKind, FunctionId, Mode
from protocol.payloads import AccelState, HkStructure, ParamId, ResetCause

SEFI_NEXT_JOB = struct.pack("!BBBBBHBH", 1, FaultKind.SEFI, 6, 0, 1, 0, 0, 0)
SEFI_NOW = struct.pack("!BBBBB", 1, FaultKind.SEFI, 6, 0, 0)
SEL_NOW = struct.pack("!BBBBB", 1, FaultKind.SEL, 6, 0, 0)
FSW_HANG = struct.pack("!BBBBB", 1, FaultKind.SEFI, 7, 0, 0)


def test_a_hung_job_is_ended_by_the_job_watchdog_and_the_chip_reset(fsw: Harness):
    assert fsw.tc(148, 1, SEFI_NEXT_JOB).ok
    started = small_job(fsw, 5)
    assert started.stages == [1, 3, 5]
    assert hk(fsw, HkStructure.ACCELERATOR)["accel_state"] == AccelState.RUNNING
    assert dump(fsw, SPM, 0, 4).failure == (4, FailureCode.BUSY, b"")
    scrub = fsw.tc(8, 1, struct.pack("!H", FunctionId.SCRUB_NOW))
    assert scrub.failure == (4, FailureCode.BUSY, b"")
    later = fsw.run_for(2.5)  # JOB_TIMEOUT is 2 s
    (end,) = [r for r in later.reports if r.request_id == started.request_id and r.subtype == 8]
    assert end.failure_code == FailureCode.TIMEOUT
    assert later.events(EventId.SEFI_DETECTED) == [struct.pack("!HI", 5, 1)]
    # The SEFI is the upset of two sequencer registers at the job's START: both placed.
    timed_out = struct.pack("!HHBHH", 5, FailureCode.TIMEOUT, 0, 2, 0)
    assert later.events(EventId.JOB_FAILED) == [timed_out]
    accel = hk(fsw, HkStructure.ACCELERATOR)
    assert (accel["accel_resets"], accel["accel_state"]) == (1, AccelState.IDLE)
    assert small_job(fsw, 6).ok


def test_a_chip_hung_while_idle_is_found_by_the_monitor(fsw: Harness):
    assert fsw.tc(148, 1, SEFI_NOW).ok
    assert hk(fsw, HkStructure.ACCELERATOR)["accel_state"] == AccelState.HUNG
    assert fsw.run_for(1.1).events(EventId.SEFI_DETECTED) == [struct.pack("!HI", 0xFFFF, 1)]
    assert small_job(fsw).ok


def test_repeated_failures_within_the_window_enter_safe_mode(fsw: Harness):
    bad = gemm_tc(1, FROM_SPM, 4, 4, 4, a=BANK1, b=BANK1)  # the chip refuses the descriptor
    assert fsw.tc(8, 1, bad).failure[1] == FailureCode.JOB_FAILED
    assert fsw.tc(8, 1, bad).failure[1] == FailureCode.JOB_FAILED
    third = fsw.tc(8, 1, bad)
    assert third.events(EventId.SAFE_MODE_ENTERED) == [struct.pack("!BHH", 3, 600, 0x22)]
    assert third.events(EventId.MODE_CHANGED) == [bytes([Mode.TEST, Mode.SAFE, 1])]
    assert fsw.fsw.mode == Mode.SAFE
    assert small_job(fsw).failure == (4, FailureCode.WRONG_MODE, bytes([Mode.SAFE]))
    assert fsw.tc(*PING).ok  # still answering
    assert hk(fsw, HkStructure.SYSTEM)["safe_mode_entries"] == 1
    # Out of TEST, the null key no longer works: recovery takes an authenticated command.
    back = struct.pack("!HB", FunctionId.SET_MODE, Mode.NOMINAL)
    assert fsw.tc(8, 1, back).failure == (2, FailureCode.AUTH_REQUIRED, b"")
    assert fsw.tc(8, 1, back, key_id=KEY_ID, auth_seq=1).ok
    assert small_job(fsw).ok


def test_failures_further_apart_than_the_window_do_not_add_up(fsw: Harness):
    assert fsw.tc(20, 3, struct.pack("!BHH", 1, ParamId.SAFE_MODE_WINDOW, 1)).ok
    bad = gemm_tc(1, FROM_SPM, 4, 4, 4, a=BANK1, b=BANK1)
    for _ in range(4):
        assert not fsw.tc(8, 1, bad).events(EventId.SAFE_MODE_ENTERED)
        fsw.run_for(1.5)
    assert fsw.fsw.mode == Mode.TEST


def test_entering_safe_mode_aborts_queued_jobs(fsw: Harness):
    assert fsw.tc(148, 1, SEFI_NEXT_JOB).ok
    running = small_job(fsw, 1)
    queued = small_job(fsw, 2, c=64)
    reply = fsw.tc(8, 1, struct.pack("!HB", FunctionId.SET_MODE, Mode.SAFE))
    ends = {
        r.request_id: r.failure_code
        for r in reply.__class__(None, reply.tms).reports
        if r.subtype == 8
    }
    assert ends == {
        running.request_id: FailureCode.JOB_ABORTED,
        queued.request_id: FailureCode.JOB_ABORTED,
    }


def test_a_hung_flight_software_is_rebooted_by_its_watchdog(fsw: Harness):
    assert fsw.tc(148, 1, FSW_HANG).ok
    assert not fsw.tc(*PING).tms  # nobody home
    reply = fsw.run_for(5.5)  # WATCHDOG_TIMEOUT is 5 s
    (boot,) = reply.events(EventId.BOOT)
    assert struct.unpack("!IBB", boot) == (2, ResetCause.WATCHDOG, Mode.TEST)
    assert reply.events(EventId.WATCHDOG_RESET) == [struct.pack("!I", 1)]
    assert reply.tms[0].seq_count == 0
    system = hk(fsw, HkStructure.SYSTEM)
    assert (system["boot_count"], system["reset_cause"], system["watchdog_resets"]) == (
        2,
        ResetCause.WATCHDOG,
        1,
    )
    assert fsw.tc(*PING).ok


def test_a_latch_up_is_detected_by_its_current_and_the_chip_power_cycled(fsw: Harness):
    assert load(fsw, SPM, 0, b"\x11\x22\x33\x44").ok
    assert fsw.tc(148, 1, SEL_NOW).ok
    env = hk(fsw, HkStructure.ENVIRONMENT)
    assert env["accel_current"] > fsw.fsw.params[ParamId.LATCHUP_CURRENT_LIMIT]
    (aux,) = fsw.run_for(1.1).events(EventId.LATCHUP_DETECTED)
    current, count = struct.unpack("!HH", aux)
    assert current > 300 and count == 1
    assert hk(fsw, HkStructure.ENVIRONMENT)["accel_current"] < 300
    assert fsw.chip.chip.peek(0)[0] == 0  # memory lost in the power cycle
    assert hk(fsw, HkStructure.ACCELERATOR)["latchups"] == 1
    assert small_job(fsw).ok


def test_the_scrubber_corrects_upsets_in_the_background_and_it_is_reported(fsw: Harness):
    chip = fsw.chip.chip
    chip.flip_many([chip.layout.cell_of(700, 9)])
    reply = fsw.run_for(2.5)
    (corrected,) = reply.events(EventId.EDAC_CORRECTED)
    assert struct.unpack("!BII", corrected) == (SPM, 1, 1)
    assert reply.events(EventId.SCRUB_PASS_DONE)
    assert 700 not in chip.spm.dirty
    accel = hk(fsw, HkStructure.ACCELERATOR)
    assert accel["ecc_corrected"] == 1 and accel["scrub_passes"] >= 1


def test_a_flipped_tmr_copy_is_outvoted_and_reported(fsw: Harness):
    record = struct.pack("!BBBBBBBB", 1, FaultKind.SBU, 4, 1, 0, 0x18, 1, 3)  # DIM_M copy 1
    assert fsw.tc(148, 1, record).ok
    (aux,) = fsw.run_for(1.1).events(EventId.TMR_MISMATCH)
    assert struct.unpack("!II", aux) == (1, 1)
    assert hk(fsw, HkStructure.ACCELERATOR)["tmr_mismatches"] == 1


def test_rate_limited_events_count_every_occurrence(fsw: Harness):
    reports = []
    for _ in range(12):
        reports += fsw.send_bytes(b"\x07\x00", dt=0.5).events(EventId.LINK_PACKET_REJECTED)
    reports += fsw.run_for(6).events(EventId.LINK_PACKET_REJECTED)
    assert 2 <= len(reports) <= 3  # 6.5 s of rejections at most once per 5 s, then the rest
    assert sum(struct.unpack("!BII", r)[1] for r in reports) == 12
    assert struct.unpack("!BII", reports[-1])[2] == 12


def test_clearing_faults_leaves_a_hung_job_to_its_watchdog_and_the_chip_configured(
    fsw: Harness,
) -> None:
    assert fsw.tc(148, 1, SEFI_NEXT_JOB).ok
    hung = small_job(fsw, 3)
    reply = fsw.tc(148, 2)
    # The SEFI's upset was placed at START: no fault is left to clear, and the chip runs
    # on, BUSY, until the job's watchdog resets it.
    assert reply.ok and reply.events(EventId.FAULTS_CLEARED) == [struct.pack("!H", 0)]
    later = fsw.run_for(2.5)
    ends = [r for r in later.reports if r.request_id == hung.request_id and r.subtype == 8]
    assert [r.failure_code for r in ends] == [FailureCode.TIMEOUT]
    assert fsw.chip.chip.config("SCRUB_PERIOD") == 50_000
    assert small_job(fsw, 4).ok


def test_clearing_faults_resets_a_chip_a_sefi_left_busy_between_jobs(fsw: Harness) -> None:
    assert fsw.tc(148, 1, SEFI_NOW).ok
    assert hk(fsw, HkStructure.ACCELERATOR)["accel_state"] == AccelState.HUNG
    assert fsw.tc(148, 2).ok
    assert hk(fsw, HkStructure.ACCELERATOR)["accel_state"] == AccelState.IDLE
    assert small_job(fsw, 4).ok
