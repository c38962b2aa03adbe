"""Services 3, 5, 6, 8, 20 and 148 on the core: success and failure paths."""

from __future__ import annotations

import struct

import pytest
from fw_harness import RAM, SPM, Harness, dump, dumped, hk, load

from firmware_sim.services.parameters import PARAMETERS
from protocol.codes import EventId, FailureCode, FaultKind, FunctionId, Mode
from protocol.crc import crc16_ccitt_false
from protocol.payloads import EventSelector, HkStructure, ParamId

# --- service 3 ----------------------------------------------------------------------------


def test_periodic_housekeeping_comes_at_its_interval_and_stops_when_disabled(fsw: Harness):
    reports = fsw.run_for(30.5).of(3, 25)
    sids = [struct.unpack_from("!H", t.source_data)[0] for t in reports]
    assert sorted(sids) == sorted([1, 2, 3] * 3)
    assert all(t.dest_id == 0 for t in reports)
    assert fsw.tc(3, 6, struct.pack("!BHH", 2, 1, 3)).ok
    sids = [struct.unpack_from("!H", t.source_data)[0] for t in fsw.run_for(20).of(3, 25)]
    assert sids == [2, 2]
    assert fsw.tc(3, 5, struct.pack("!BH", 1, 1)).ok
    assert len(fsw.run_for(10.5).of(3, 25)) == 2


def test_modify_interval_changes_the_period_and_the_parameter(fsw: Harness):
    assert fsw.tc(3, 6, struct.pack("!BHHH", 3, 1, 2, 3)).ok
    assert fsw.tc(3, 5, struct.pack("!BH", 1, 2)).ok
    assert fsw.tc(3, 31, struct.pack("!BHI", 1, 2, 500)).ok
    assert len(fsw.run_for(5.01).of(3, 25)) == 10
    assert fsw.fsw.params[ParamId.HK_INTERVAL_ENVIRONMENT] == 500


@pytest.mark.parametrize(
    ("subtype", "data", "failure"),
    [
        (27, struct.pack("!BH", 1, 9), (FailureCode.UNKNOWN_HK_STRUCTURE, b"\x00\x09")),
        (27, struct.pack("!B", 0), (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x00")),
        (27, struct.pack("!BH", 2, 1), (FailureCode.BAD_APP_DATA, b"\x00\x03")),
        (5, struct.pack("!BHB", 1, 1, 0), (FailureCode.BAD_APP_DATA, b"\x00\x03")),
        (31, struct.pack("!BHI", 1, 1, 50), (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x03")),
    ],
)
def test_bad_housekeeping_requests_fail_acceptance(fsw: Harness, subtype, data, failure):
    assert fsw.tc(3, subtype, data).failure == (2, *failure)


def test_one_shot_reports_every_structure_asked_for_between_start_and_completion(fsw: Harness):
    reply = fsw.tc(3, 27, struct.pack("!BHHH", 3, 3, 1, 2))
    kinds = [(t.service, t.subtype) for t in reply.tms]
    assert kinds == [(1, 1), (1, 3), (3, 25), (3, 25), (3, 25), (1, 7)]
    assert [struct.unpack_from("!H", t.source_data)[0] for t in reply.of(3, 25)] == [3, 1, 2]
    accel = hk(fsw, HkStructure.ACCELERATOR)
    assert (accel["array_n"], accel["spm_words"]) == (4, 2048)
    env = hk(fsw, HkStructure.ENVIRONMENT)
    assert 0 < env["battery_soc"] <= 1000 and env["eclipse"] == 0


# --- service 5 ----------------------------------------------------------------------------


def test_events_are_disabled_by_id_or_severity_and_enabled_again(fsw: Harness):
    param = struct.pack("!BHI", 1, ParamId.JOB_TIMEOUT, 999)
    disable = struct.pack("!BBH", EventSelector.LISTED, 1, EventId.PARAMETER_CHANGED)
    assert fsw.tc(5, 6, disable).ok
    assert not fsw.tc(20, 3, param).events(EventId.PARAMETER_CHANGED)
    assert fsw.tc(5, 5, bytes([EventSelector.INFO])).ok
    assert fsw.tc(20, 3, param).events(EventId.PARAMETER_CHANGED)
    assert fsw.tc(5, 6, bytes([EventSelector.ALL])).ok
    assert not fsw.tc(20, 3, param).events(EventId.PARAMETER_CHANGED)
    assert fsw.tc(5, 5, bytes([EventSelector.ALL])).ok


def test_event_reports_carry_the_severity_as_subtype(fsw: Harness):
    reply = fsw.tc(148, 1, struct.pack("!BBBBBHB", 1, FaultKind.SBU, 2, 1, 0, 0, 0))
    (tm,) = [t for t in reply.tms if t.service == 5]
    assert tm.subtype == 1 and struct.unpack("!HBBBB", tm.source_data) == (0x60, 1, 2, 1, 0)


@pytest.mark.parametrize(
    ("data", "failure"),
    [
        (struct.pack("!BBH", 0, 1, 0x7777), (FailureCode.UNKNOWN_EVENT, b"\x77\x77")),
        (bytes([9]), (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x00")),
        (bytes([0, 0]), (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x01")),
        (bytes([4, 4]), (FailureCode.BAD_APP_DATA, b"\x00\x01")),
    ],
)
def test_bad_event_requests_fail_acceptance(fsw: Harness, data, failure):
    assert fsw.tc(5, 6, data).failure == (2, *failure)


# --- service 6 ----------------------------------------------------------------------------


@pytest.mark.parametrize("memory", [RAM, SPM])
def test_load_dump_and_check_round_trip(fsw: Harness, memory):
    data = bytes(range(7, 7 + 64))
    assert load(fsw, memory, 128, data).ok
    header, got = dumped(dump(fsw, memory, 128, 64))
    assert header == (memory, 128, 64, 0) and got == data
    (tm,) = fsw.tc(6, 9, struct.pack("!BII", memory, 128, 64)).of(6, 10)
    assert struct.unpack("!BIIHH", tm.source_data) == (memory, 128, 64, crc16_ccitt_false(data), 0)


def test_scratchpad_loads_go_through_the_bus_window_as_words(fsw: Harness):
    assert load(fsw, SPM, 4 * 10, bytes([1, 2, 3, 4])).ok
    assert fsw.chip.chip.peek(10)[0] == 0x04030201


@pytest.mark.parametrize(
    ("subtype", "data", "failure"),
    [
        (5, struct.pack("!BIH", 9, 0, 4), (FailureCode.UNKNOWN_MEMORY, b"\x09")),
        (5, struct.pack("!BIH", RAM, 65530, 16),
         (FailureCode.ADDRESS_OUT_OF_RANGE, struct.pack("!II", 65530, 16))),
        (5, struct.pack("!BIH", SPM, 6, 4),
         (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x01")),
        (5, struct.pack("!BIH", SPM, 0, 6), (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x05")),
        (5, struct.pack("!BIH", RAM, 0, 0), (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x05")),
        (5, struct.pack("!BIH", RAM, 0, 2017), (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x05")),
        (5, struct.pack("!BI", RAM, 0), (FailureCode.BAD_APP_DATA, b"\x00\x05")),
        (9, struct.pack("!BII", SPM, 0, 8196),
         (FailureCode.ADDRESS_OUT_OF_RANGE, struct.pack("!II", 0, 8196))),
        (2, struct.pack("!BIH", RAM, 0, 4) + b"\x01\x02",
         (FailureCode.BAD_APP_DATA, b"\x00\x09")),
        (2, struct.pack("!BIH", RAM, 0, 1) + b"\x01\x02",
         (FailureCode.BAD_APP_DATA, b"\x00\x08")),
    ],
)  # fmt: skip
def test_bad_memory_requests_fail_acceptance(fsw: Harness, subtype, data, failure):
    assert fsw.tc(6, subtype, data).failure == (2, *failure)


def test_a_dump_reports_uncorrectable_words_and_raises_the_event(fsw: Harness):
    assert load(fsw, SPM, 0, bytes(range(16))).ok
    chip = fsw.chip.chip
    chip.flip_many([chip.layout.cell_of(2, 0), chip.layout.cell_of(2, 1)])
    reply = dump(fsw, SPM, 0, 16)
    header, _ = dumped(reply)
    assert header[3] == 1
    (aux,) = reply.events(EventId.EDAC_UNCORRECTABLE)
    assert struct.unpack("!BII", aux)[:2] == (SPM, 8)


# --- service 20 ---------------------------------------------------------------------------


def test_parameters_report_their_defaults_and_take_new_values(fsw: Harness):
    ids = [ParamId.SCRUB_PERIOD, ParamId.TEMP_LOW_LIMIT, ParamId.JOB_QUEUE_LIMIT]
    (tm,) = fsw.tc(20, 1, struct.pack("!B3H", 3, *ids)).of(20, 2)
    assert tm.source_data == struct.pack("!BHHHhHB", 3, ids[0], 50_000, ids[1], -2000, ids[2], 8)
    reply = fsw.tc(20, 3, struct.pack("!BHHHh", 2, ids[0], 1000, ids[1], -3000))
    assert reply.ok
    assert [struct.unpack_from("!H", e)[0] for e in reply.events(EventId.PARAMETER_CHANGED)] == ids[
        :2
    ]
    assert fsw.chip.chip.config("SCRUB_PERIOD") == 1000
    assert fsw.fsw.params[ParamId.TEMP_LOW_LIMIT] == -3000


@pytest.mark.parametrize(
    ("subtype", "data", "failure"),
    [
        (1, struct.pack("!BH", 1, 0x0999), (FailureCode.UNKNOWN_PARAMETER, b"\x09\x99")),
        (3, struct.pack("!BHH", 1, ParamId.SCRUB_PERIOD, 7) + b"\x00",
         (FailureCode.BAD_APP_DATA, b"\x00\x05")),
        (3, struct.pack("!BHI", 1, ParamId.JOB_TIMEOUT, 5),
         (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x03")),
        (3, struct.pack("!BHhHh", 2, ParamId.TEMP_HIGH_LIMIT, 0, ParamId.TEMP_LOW_LIMIT, 100),
         (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x07")),
    ],
)  # fmt: skip
def test_bad_parameter_requests_change_nothing(fsw: Harness, subtype, data, failure):
    before = dict(fsw.fsw.params.values)
    assert fsw.tc(20, subtype, data).failure == (2, *failure)
    assert fsw.fsw.params.values == before


def test_every_parameter_default_is_in_its_range():
    for d in PARAMETERS.values():
        assert d.lo <= d.default <= d.hi, d
        assert d.type.bounds[0] <= d.lo and d.hi <= d.type.bounds[1], d


# --- service 8 ----------------------------------------------------------------------------


def test_set_mode_changes_mode_and_reports_it(fsw: Harness):
    reply = fsw.tc(8, 1, struct.pack("!HB", FunctionId.SET_MODE, Mode.NOMINAL))
    assert reply.ok
    assert reply.events(EventId.MODE_CHANGED) == [bytes([Mode.TEST, Mode.NOMINAL, 0])]
    assert fsw.fsw.mode == Mode.NOMINAL


@pytest.mark.parametrize(
    ("data", "failure"),
    [
        (struct.pack("!H", 0x0099), (FailureCode.UNKNOWN_FUNCTION, b"\x00\x99")),
        (struct.pack("!HB", FunctionId.SET_MODE, 7), (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x02")),
        (struct.pack("!HB", FunctionId.ABORT_JOB, 0), (FailureCode.BAD_APP_DATA, b"\x00\x02")),
        (b"\x00", (FailureCode.BAD_APP_DATA, b"\x00\x01")),
    ],
)
def test_bad_function_requests_fail_acceptance(fsw: Harness, data, failure):
    assert fsw.tc(8, 1, data).failure == (2, *failure)


def test_reset_reboots_with_a_new_boot_count_and_tm_counts_from_zero(fsw: Harness):
    reply = fsw.tc(8, 1, struct.pack("!H", FunctionId.RESET))
    assert reply.ok
    (boot,) = reply.events(EventId.BOOT)
    assert struct.unpack("!IBB", boot) == (2, 1, Mode.TEST)
    boot_tm = [t for t in reply.tms if t.service == 5][-1]
    assert boot_tm.seq_count == 0
    assert hk(fsw, HkStructure.SYSTEM)["boot_count"] == 2


LINK_COUNTERS = (
    "tc_received", "tc_accepted", "tc_refused", "tc_duplicates", "auth_failures",
    "frames_rejected",
)  # fmt: skip


def test_clear_counters_clears_edac_and_link_counters(fsw: Harness):
    fsw.send_bytes(b"\x05\x00")
    chip = fsw.chip.chip
    chip.flip(chip.layout.cell_of(5, 3))
    dump(fsw, SPM, 20, 4)
    assert hk(fsw, HkStructure.ACCELERATOR)["ecc_corrected"] == 1
    assert fsw.tc(20, 1, b"\x00").failure[1] == FailureCode.VALUE_OUT_OF_RANGE
    before = hk(fsw, HkStructure.SYSTEM)
    assert fsw.tc(8, 1, struct.pack("!H", FunctionId.CLEAR_COUNTERS)).ok
    assert hk(fsw, HkStructure.ACCELERATOR)["ecc_corrected"] == 0
    after = hk(fsw, HkStructure.SYSTEM)
    # ICD 15.6: the link counters are cleared (the two HK TCs since are counted) ...
    assert {name: after[name] for name in LINK_COUNTERS} == {
        "tc_received": 2, "tc_accepted": 2, "tc_refused": 0, "tc_duplicates": 0,
        "auth_failures": 0, "frames_rejected": 0,
    }  # fmt: skip
    # ... and nothing else of SYSTEM.
    assert after["tm_sent"] > before["tm_sent"]
    assert after["events_raised"] >= before["events_raised"]
    assert after["boot_count"] == before["boot_count"]


def test_scrub_now_repairs_single_errors_and_reports_a_pass(fsw: Harness):
    chip = fsw.chip.chip
    chip.flip(chip.layout.cell_of(100, 5))
    passes = hk(fsw, HkStructure.ACCELERATOR)["scrub_passes"]
    reply = fsw.tc(8, 1, struct.pack("!H", FunctionId.SCRUB_NOW))
    assert reply.ok
    assert struct.unpack("!IB", reply.events(EventId.SCRUB_PASS_DONE)[0]) == (passes, 1)
    assert 100 not in chip.spm.dirty
    # ICD 15.6: the event precedes the completion report; the pass is not a chip pass.
    kinds = [(t.service, t.subtype) for t in reply.tms]
    done = next(i for i, t in enumerate(reply.tms) if t.service == 5 and
                struct.unpack_from("!H", t.source_data)[0] == EventId.SCRUB_PASS_DONE)
    assert done < kinds.index((1, 7))
    assert hk(fsw, HkStructure.ACCELERATOR)["scrub_passes"] == passes


# --- service 148 --------------------------------------------------------------------------


def test_fault_injection_is_refused_outside_test_mode(nominal: Harness):
    assert nominal.tc(148, 3).failure == (4, FailureCode.NOT_IN_TEST_MODE, bytes([Mode.NOMINAL]))
    inject = struct.pack("!BBBBBHB", 1, FaultKind.SBU, 2, 1, 0, 0, 0)
    assert nominal.tc(148, 1, inject).failure == (2, FailureCode.AUTH_REQUIRED, b"")


def test_stuck_cells_are_listed_and_cleared(fsw: Harness):
    stuck = struct.pack("!BBBBBHB", 1, FaultKind.STUCK_AT_1, 2, 2, 0, 40, 0)
    ram = struct.pack("!BBBBBIB", 1, FaultKind.STUCK_AT_0, 5, 1, 0, 1000, 7)
    assert fsw.tc(148, 1, stuck).ok and fsw.tc(148, 1, ram).ok
    assert load(fsw, SPM, 40 * 4, bytes(4)).ok
    assert fsw.chip.chip.peek(40)[0] & 0b11 == 0b11  # still stuck after the write
    assert load(fsw, RAM, 1000, b"\xff").ok
    assert fsw.fsw.ram.data[1000] == 0x7F
    (tm,) = fsw.tc(148, 3).of(148, 4)
    assert tm.source_data[:3] == struct.pack("!HB", 3, 3)
    reply = fsw.tc(148, 2)
    assert reply.ok and reply.events(EventId.FAULTS_CLEARED) == [struct.pack("!H", 3)]
    (tm,) = fsw.tc(148, 3).of(148, 4)
    assert tm.source_data == struct.pack("!HB", 0, 0)


@pytest.mark.parametrize(
    ("record", "failure"),
    [
        (struct.pack("!BBBBBHB", 1, 9, 2, 1, 0, 0, 0),
         (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x01")),
        (struct.pack("!BBBBBHB", 1, FaultKind.SEL, 2, 1, 0, 0, 0),
         (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x02")),
        (struct.pack("!BBBBBHB", 1, FaultKind.MBU, 2, 1, 0, 0, 0),
         (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x03")),
        (struct.pack("!BBBBBHB", 1, FaultKind.SBU, 2, 1, 0, 5000, 0),
         (FailureCode.FAULT_SITE_ABSENT, b"\x00\x05\x00")),
        (struct.pack("!BBBBBBBB", 1, FaultKind.SBU, 4, 1, 0, 0x40, 0, 0),
         (FailureCode.FAULT_SITE_ABSENT, b"\x00\x05\x00")),
        (struct.pack("!BBBBBIB", 1, FaultKind.SBU, 5, 1, 0, 70000, 0),
         (FailureCode.ADDRESS_OUT_OF_RANGE, struct.pack("!II", 70000, 1))),
        (struct.pack("!BBBBB", 1, FaultKind.SEL, 6, 0, 1) + bytes(5),
         (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x04")),
        (struct.pack("!BBBBBHBHBBB", 1, FaultKind.SBU, 8, 1, 1, 0, 5, 0, 0, 0, 0),
         (FailureCode.VALUE_OUT_OF_RANGE, b"\x00\x07")),
        (struct.pack("!BBBBBHBHBBB", 1, FaultKind.SBU, 8, 1, 1, 0, 1, 5, 0, 0, 0),
         (FailureCode.FAULT_POINT_UNREACHABLE, b"\x00\x08\x00")),
        (struct.pack("!BBBBBHBHBBB", 1, FaultKind.SBU, 8, 1, 1, 0, 4, 0, 4, 0, 0),
         (FailureCode.FAULT_SITE_ABSENT, b"\x00\x0a\x00")),
    ],
)  # fmt: skip
def test_bad_fault_records_fail_acceptance_and_inject_nothing(fsw: Harness, record, failure):
    assert fsw.tc(148, 1, record).failure == (2, *failure)
    assert not fsw.chip.chip.spm.dirty
