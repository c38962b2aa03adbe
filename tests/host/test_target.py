"""The Target API and the integration-test API against the simulated chip the plugin starts
(a real process on a real pty), and the payload tables they decode with."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from firmware_sim.accel import gemm_reference
from host.commands import Authenticator
from host.errors import CommandFailed
from host.history import NOW, tm
from host.integration_api import IntegrationApi
from host.link import Link
from host.sim import SIM_KEY, SIM_KEY_ID, SimError, SimulatedTarget
from host.target import Target
from protocol.codes import EventId, FailureCode, FaultKind, MemoryId, Mode
from protocol.payloads import (
    HK_FIELDS,
    SITE_FIELDS,
    FaultRecord,
    FaultSiteClass,
    FaultTiming,
    HkStructure,
    JobPhase,
    ParamId,
    fault_records,
    read_fault_list,
)

RAM = MemoryId.FIRMWARE_RAM


# --- the tables the host decodes with are the firmware's -----------------------------------


@pytest.mark.parametrize("phase", list(JobPhase), ids=lambda p: p.name)
@pytest.mark.parametrize("site", list(FaultSiteClass), ids=lambda s: s.name)
def test_fault_records_round_trip(site: FaultSiteClass, phase: JobPhase) -> None:
    fields = tuple(
        "u_seq.u_t.q_q[1]" if f.fmt == "p" else i for i, f in enumerate(SITE_FIELDS[site], 1)
    )
    for timing, point in ((FaultTiming.NOW, (0, 0, 0)), (FaultTiming.NEXT_JOB, (3, phase, 20))):
        rec = FaultRecord(FaultKind.SBU, site, 1, fields, timing, point)
        count, records = read_fault_list(struct.pack("!HB", 1, 1) + rec.pack())
        assert (count, records) == (1, [rec])
    assert fault_records([rec])[0] == 1


# --- Target -------------------------------------------------------------------------------


def operands(seed: int, m: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.integers(-128, 128, (m, k), dtype=np.int8),
        rng.integers(-128, 128, (k, n), dtype=np.int8),
    )


@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 7, 3), (33, 17, 9), (60, 40, 8)])
def test_gemm_through_the_target_equals_the_reference(hil_target: Target, shape) -> None:
    a, b = operands(sum(shape), *shape)
    np.testing.assert_array_equal(hil_target.run_gemm(a, b), gemm_reference(a, b, out_int32=True))


def test_large_operands_go_through_firmware_ram_with_progress(hil_target: Target) -> None:
    a, b = operands(3, 64, 48, 8)
    calls: list[tuple[int, int]] = []
    c = hil_target.run_gemm(a, b, ram_base=1024, progress=lambda d, t: calls.append((d, t)))
    np.testing.assert_array_equal(c, gemm_reference(a, b, out_int32=True))
    assert calls and calls[-1] == (a.size + b.size, a.size + b.size)


def test_layer_through_the_target_equals_the_reference(hil_target: Target) -> None:
    a, b = operands(4, 9, 30, 7)
    bias = np.arange(-3, 4) * 1000
    for kw in ({"relu": True, "shift": 6}, {"shift": 0, "out_int32": True}, {"shift": 31}):
        c = hil_target.run_layer(a, b, bias, **kw)
        np.testing.assert_array_equal(c, gemm_reference(a, b, bias=bias, **kw))
    np.testing.assert_array_equal(
        hil_target.run_layer(a, b, shift=3), gemm_reference(a, b, shift=3)
    )


def test_operands_that_cannot_be_sent_are_refused_before_sending(hil_target: Target) -> None:
    with pytest.raises(ValueError, match="K differs"):
        hil_target.run_gemm(np.zeros((2, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="int8"):
        hil_target.run_gemm(np.full((2, 2), 300), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="FIRMWARE_RAM"):
        hil_target.run_gemm(np.zeros((200, 200)), np.zeros((200, 200)))


def test_load_dump_round_trip_of_a_few_kb_calls_progress(hil_target: Target) -> None:
    data = np.random.default_rng(1).integers(0, 256, 7000, dtype=np.uint8).tobytes()
    loads: list[tuple[int, int]] = []
    dumps: list[tuple[int, int]] = []
    hil_target.load(RAM, 30_000, data, progress=lambda d, t: loads.append((d, t)), verify=True)
    back = hil_target.dump(RAM, 30_000, len(data), progress=lambda d, t: dumps.append((d, t)))
    assert back == data
    assert loads == [(2000, 7000), (4000, 7000), (6000, 7000), (7000, 7000)]
    assert dumps == [(2016, 7000), (4032, 7000), (6048, 7000), (7000, 7000)]


def test_scratchpad_round_trip(hil_target: Target) -> None:
    n = hil_target.array_n()
    data = bytes(range(256)) * (3 * n)
    hil_target.load(MemoryId.ACCEL_SCRATCHPAD, 64 * n, data)
    assert hil_target.dump(MemoryId.ACCEL_SCRATCHPAD, 64 * n, len(data)) == data


def test_a_refused_chunk_is_named_in_the_error(hil_target: Target) -> None:
    with pytest.raises(CommandFailed) as info:
        hil_target.dump(RAM, 62_000, 5000)
    assert info.value.code == FailureCode.ADDRESS_OUT_OF_RANGE
    assert any("dump chunk 2 of 3" in note for note in info.value.__notes__)


def test_housekeeping_is_decoded_with_units(hil_target: Target) -> None:
    env = hil_target.housekeeping(HkStructure.ENVIRONMENT)
    soc, unit = env.quantity("battery_soc")
    assert unit == "%" and 0 <= soc <= 100
    assert env.units["board_temp"] == "0.01 degC" and env.show("board_temp").endswith("degC")
    system = hil_target.housekeeping()
    assert system["mode"] == Mode.TEST and system.show("mode") == "TEST"
    assert len(system.lines()) == len(HK_FIELDS[HkStructure.SYSTEM])
    assert set(hil_target.housekeeping_many()) == set(HkStructure)


def test_parameters_get_and_set(hil_target: Target) -> None:
    old = hil_target.get_parameter(ParamId.TEMP_HIGH_LIMIT)
    hil_target.set_parameter(ParamId.TEMP_HIGH_LIMIT, old - 1)
    assert hil_target.get_parameter(ParamId.TEMP_HIGH_LIMIT) == old - 1
    changed = hil_target.await_event(
        EventId.PARAMETER_CHANGED, where=lambda e: e.args["parameter"] == ParamId.TEMP_HIGH_LIMIT
    )
    assert changed is not None and changed.args["value"] == old - 1
    hil_target.set_parameter(ParamId.TEMP_HIGH_LIMIT, old)
    with pytest.raises(ValueError, match="does not fit"):
        hil_target.set_parameter(ParamId.JOB_QUEUE_LIMIT, 256)


def test_more_than_32_fault_records_go_in_several_tcs(hil_target: Target) -> None:
    records = [FaultRecord(FaultKind.SBU, FaultSiteClass.FW_RAM, 1, (50_000 + i, 0))
               for i in range(40)]  # fmt: skip
    hil_target.load(RAM, 50_000, bytes(40))
    assert len(hil_target.inject(records)) == 2
    assert hil_target.dump(RAM, 50_000, 40) == b"\x01" * 40
    assert len(hil_target.events(EventId.FAULT_INJECTED, count=40, timeout=2.0)) == 40


def test_events_are_collected_from_now(hil_target: Target) -> None:
    mark = hil_target.link.history.mark()
    hil_target.set_parameter(ParamId.SCRUB_PERIOD, 50_000)
    found = hil_target.events(EventId.PARAMETER_CHANGED, timeout=0.2, start=mark)
    assert [e.args["parameter"] for e in found] == [ParamId.SCRUB_PERIOD]
    assert hil_target.events(EventId.BOOT, timeout=0.1, start=NOW) == []


def test_mode_and_reset(hil_target: Target) -> None:
    assert hil_target.mode(Mode.NOMINAL) == Mode.NOMINAL
    assert hil_target.mode() == Mode.NOMINAL
    hil_target.mode(Mode.TEST)
    boot = hil_target.reset()
    assert boot.event_id == EventId.BOOT and boot.args["mode"] == Mode.TEST
    assert 0 < hil_target.ping() < 5.0


def test_auth_counter_behind_the_target_is_resynchronised() -> None:
    """A second host starts its anti-replay numbers at 1: the target says AUTH_REPLAY with the
    last number it accepted, and the Target sends once more above it."""
    with SimulatedTarget(mode="nominal") as sim:
        for expected_next in (3, 4):
            with Link(sim.port, auth=Authenticator(SIM_KEY_ID, SIM_KEY)) as link:
                target = Target(link)
                target.set_parameter(ParamId.SCRUB_PERIOD, 1000)
                if expected_next == 3:
                    target.set_parameter(ParamId.SCRUB_PERIOD, 1000)
                assert link.auth is not None and link.auth.next_seq == expected_next


# --- the integration-test API --------------------------------------------------------------


def test_send_and_assert_command_with_events(hil: IntegrationApi) -> None:
    done = hil.send_and_assert_command(
        20, 3, bytes.fromhex("01 0010 c350"), events=[EventId.PARAMETER_CHANGED]
    )
    assert done.stage is not None
    hil.assert_event_count(1, EventId.PARAMETER_CHANGED, timeout=0.2)
    hil.assert_event_count(lambda n: n >= 1, EventId.PARAMETER_CHANGED, {"value": 50_000})


def test_assertions_fail_with_what_came_instead(hil: IntegrationApi) -> None:
    with pytest.raises(AssertionError, match="UNKNOWN_SERVICE"):
        hil.send_and_assert_command(99, 1)
    with pytest.raises(AssertionError, match="expected failure BAD_APP_DATA"):
        hil.send_and_assert_failure(17, 1, code=FailureCode.BAD_APP_DATA)
    with pytest.raises(AssertionError, match="expected 2"):
        hil.assert_telemetry_count(tm(17, 2), 2, timeout=0.1)
    assert hil.await_telemetry(tm(6, 6), 0.1) is None
    assert hil.await_event(EventId.WATCHDOG_RESET, timeout=0.1) is None


def test_history_starts_empty_in_each_test(hil: IntegrationApi) -> None:
    assert hil.link.history.items() == []


# --- the simulated target --------------------------------------------------------------------


def test_simulated_target_starts_and_stops() -> None:
    sim = SimulatedTarget(mode="nominal")
    with sim:
        assert sim.running and sim.port.startswith("/dev/")
        with Link(sim.port) as link:
            assert Target(link).mode() == Mode.NOMINAL
    assert not sim.running


def test_simulated_target_that_cannot_start_says_why() -> None:
    with pytest.raises(SimError, match="array-n"):
        SimulatedTarget(array_n=3).start()
