"""The request memory (ICD 6, 15.10): outcomes kept, interrupted requests said, and the
memory carried through a reboot and a non-volatile file."""

from __future__ import annotations

import struct

from fw_harness import Harness

from firmware_sim.health import NonVolatile
from firmware_sim.requests import RequestMemory
from firmware_sim.services.verification import Request
from protocol.codes import FailureCode, FunctionId
from protocol.packets import make_tc, parse_tc
from protocol.payloads import Outcome, outcome_query, read_outcomes


def _request(fsw: Harness, seq: int) -> Request:
    return Request(parse_tc(make_tc(17, 1, b"", seq)), fsw.fsw.tm, 0.0)


def _outcomes(fsw: Harness, *rids) -> list[Outcome]:
    reply = fsw.tc(149, 1, outcome_query(list(rids)))
    (report,) = [t for t in reply.tms if (t.service, t.subtype) == (149, 2)]
    return read_outcomes(report.source_data)


def test_a_request_running_at_a_reboot_is_remembered_as_interrupted(fsw: Harness) -> None:
    memory = RequestMemory(4)
    started, accepted, done = (_request(fsw, s) for s in (1, 2, 3))
    for req in (started, accepted, done):
        req.accept(0.0)
        memory.remember(req)
    started.start(0.0)
    done.start(0.0)
    done.complete(0.0)
    assert memory.reboot() == 2
    assert memory.outcome(started.request_id) == Outcome(
        started.request_id, 8, FailureCode.INTERRUPTED
    )
    assert memory.outcome(accepted.request_id).stage == 4  # it had not started
    assert memory.outcome(done.request_id) == Outcome(done.request_id, 7)
    started.complete(1.0)  # the old boot's object can no longer change what is remembered
    assert memory.outcome(started.request_id).code == FailureCode.INTERRUPTED
    assert memory.duplicate_of(started.tc).duplicate_data() == struct.pack(
        "!BH", 8, FailureCode.INTERRUPTED
    )


def test_the_memory_keeps_the_last_requests_only(fsw: Harness) -> None:
    memory = RequestMemory(2)
    reqs = [_request(fsw, s) for s in (1, 2, 3)]
    for req in reqs:
        req.accept(0.0)
        memory.remember(req)
    assert [memory.outcome(r.request_id).stage for r in reqs] == [0, 1, 1]


def test_the_memory_survives_a_reboot_and_the_non_volatile_file(fsw: Harness, tmp_path) -> None:
    reset = fsw.tc(8, 1, struct.pack("!H", FunctionId.RESET))
    assert reset.ok
    fsw.run_for(1.0)  # the reboot
    ping = fsw.tc(17, 1)
    assert _outcomes(fsw, reset.request_id, ping.request_id) == [
        Outcome(reset.request_id, 7),  # it completed before the target rebooted
        Outcome(ping.request_id, 7),
    ]
    path = tmp_path / "nv.json"
    fsw.fsw.nv.save(path)
    again = NonVolatile.load(path)
    assert again.requests.outcome(ping.request_id) == Outcome(ping.request_id, 7)
    assert len(again.requests) == len(fsw.fsw.nv.requests)
