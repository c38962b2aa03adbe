"""Rate-limited events never lose a count (docs/ICD.md 15.4): a count past what the
``since`` field holds is carried into the next report, and totals saturate, never wrap."""

from __future__ import annotations

import struct

from fw_harness import Harness, hk

from protocol.codes import EventId
from protocol.payloads import HkStructure, ParamId

U32_MAX = 0xFFFF_FFFF


def _rate_limit_s(fsw: Harness) -> float:
    return fsw.fsw.params[ParamId.EVENT_RATE_LIMIT] / 1000


def test_rejection_count_past_65535_is_reported_whole(fsw: Harness) -> None:
    n = 70_000
    bad_frame = b"\x02\x41\x00"  # one octet: TOO_SHORT, too short to be answered
    first = fsw.send_bytes(bad_frame * n)
    later = fsw.run_for(_rate_limit_s(fsw) + 1.5)
    reports = [
        struct.unpack("!BII", aux)
        for aux in first.events(EventId.LINK_PACKET_REJECTED)
        + later.events(EventId.LINK_PACKET_REJECTED)
    ]
    assert len(reports) == 2, reports
    assert sum(since for _, since, _ in reports) == n
    assert reports[-1][2] == n
    assert hk(fsw, HkStructure.SYSTEM)["frames_rejected"] == n


def test_held_count_beyond_its_field_is_carried_to_the_next_report(fsw: Harness) -> None:
    n = U32_MAX + 6
    fsw.fsw.events.limited(EventId.TMR_MISMATCH, n, lambda since: (since, n))
    first = fsw.run_for(0.01).events(EventId.TMR_MISMATCH)
    later = fsw.run_for(_rate_limit_s(fsw) + 1.5).events(EventId.TMR_MISMATCH)
    reports = [struct.unpack("!II", aux) for aux in first + later]
    assert reports == [(U32_MAX, U32_MAX), (6, U32_MAX)]
