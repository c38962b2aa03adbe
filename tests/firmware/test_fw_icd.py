"""docs/ICD.md section 15 is the contract: its tables must say what the code does."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from fw_harness import Harness

from firmware_sim.services.events import RATE_LIMITED, RATE_LIMITED_FROM_SCRUBBER
from firmware_sim.services.housekeeping import HK_STRUCTURES
from firmware_sim.services.parameters import PARAMETERS
from protocol.codes import FailureCode, NotInjectedReason
from protocol.packets import Telemetry, parse_tm
from protocol.payloads import (
    EVENT_FIELDS,
    FAULT_SITES,
    FAULT_WIDTHS,
    SITE_FIELDS,
    AccelState,
    EventSelector,
    FaultSiteClass,
    FaultTiming,
    HkStructure,
    JobPhase,
    JobStatus,
    LayerFlags,
    OperandSource,
    ParamId,
    ResetCause,
)

ICD = Path(__file__).resolve().parents[2] / "docs" / "ICD.md"
TYPE = {"B": "u8", "H": "u16", "I": "u32", "h": "i16", "p": "name8", "": "(see 15.7)"}


def hk_rows(sid: HkStructure) -> list[str]:
    rows, offset = [], 2
    for f in HK_STRUCTURES[sid]:
        rows.append(f"| {offset} | `{f.name}` | {TYPE[f.fmt]} | {f.unit} | {f.meaning} |")
        offset += struct.calcsize("!" + f.fmt)
    return rows


def parameter_rows() -> list[str]:
    return [
        f"| `{int(d.id):#06x}` | `{d.id.name}` | {d.type.name.lower()} | {d.unit} | "
        f"{d.lo}..{d.hi} | {d.default} | {d.meaning} |"
        for d in PARAMETERS.values()
    ]


def event_rows() -> list[str]:
    rows = []
    for eid, fields in EVENT_FIELDS.items():
        text = ", ".join(f"{f.name} {TYPE[f.fmt]}" for f in fields)
        limited = (
            "yes" if eid in RATE_LIMITED
            else "scrubber only" if eid in RATE_LIMITED_FROM_SCRUBBER
            else "no"
        )  # fmt: skip
        rows.append(f"| `{eid.name}` | {text} | {limited} |")
    return rows


def fault_rows() -> list[str]:
    rows = []
    for kind, sites in FAULT_SITES.items():
        lo, hi = FAULT_WIDTHS[kind]
        names = ", ".join(f"`{s.name}`" for s in sorted(sites))
        rows.append(f"| `{kind.name}` | {names} | {lo}..{hi} |")
    return rows


def site_rows() -> list[tuple[str, list[str]]]:
    """Each site class's row start and its fields in order, from the protocol's table."""
    rows = []
    for s in FaultSiteClass:
        fields = [f"{f.name} {TYPE[f.fmt]}" for f in SITE_FIELDS[s]] or ["none"]
        rows.append((f"| {int(s)} | `{s.name}` | ", fields))
    return rows


def phase_rows() -> list[str]:
    return [f"(`JobPhase`: {', '.join(f'`{p.name}` {int(p)}' for p in JobPhase)})"]


TABLES = {
    **{f"HK {sid.name}": hk_rows(sid) for sid in HkStructure},
    "parameters": parameter_rows(),
    "events": event_rows(),
    "fault kinds": fault_rows(),
    "job phases": phase_rows(),
}


@pytest.mark.parametrize("name", list(TABLES))
def test_icd_tables_match_the_code(name: str) -> None:
    text = ICD.read_text()
    missing = [row for row in TABLES[name] if row not in text]
    assert not missing, f"docs/ICD.md section 15, {name} table lacks or differs in:\n" + "\n".join(
        missing
    )


@pytest.mark.parametrize(("start", "fields"), site_rows(), ids=[s.name for s in FaultSiteClass])
def test_icd_site_class_table_matches_the_code(start: str, fields: list[str]) -> None:
    (row,) = [line for line in ICD.read_text().splitlines() if line.startswith(start)]
    at = len(start)
    for text in fields:
        found = row.find(text, at)
        assert found >= 0, f"docs/ICD.md 15.8 row {row!r} lacks {text!r} (in this order)"
        at = found + len(text)


@pytest.mark.parametrize(
    "enum_type",
    [
        HkStructure,
        EventSelector,
        OperandSource,
        LayerFlags,
        FaultSiteClass,
        FaultTiming,
        JobPhase,
        ResetCause,
        JobStatus,
        AccelState,
        ParamId,
        NotInjectedReason,
        FailureCode,
    ],
    ids=lambda e: e.__name__,
)
def test_every_payload_code_is_in_the_icd(enum_type) -> None:
    text = ICD.read_text()
    missing = [m.name for m in enum_type if m.name != "NONE" and f"`{m.name}`" not in text]
    assert not missing, f"docs/ICD.md does not name {enum_type.__name__} members {missing}"


def test_the_flight_software_answers_the_icd_ping_as_its_example_shows() -> None:
    """ICD 4.6: the four TM of the example, in their order and, but for the TM sequence
    count, the time and the CRC, octet for octet."""
    fsw = Harness()
    text = ICD.read_text()
    tc = bytes.fromhex(re.search(r"source id 1:\n\n`([0-9a-f ]+)`", text)[1])
    shown = re.findall(r"^\| `TM\[\d+,\d+\]`, count \d \| `([0-9a-f ]+)` \|$", text, re.M)
    examples = [parse_tm(bytes.fromhex(octets)) for octets in shown]
    answer = [t for t in fsw.raw_tc(tc).tms if t.dest_id != 0]
    first = answer[0].seq_count

    def essence(t: Telemetry) -> tuple:
        return (t.apid, t.service, t.subtype, t.msg_counter, t.dest_id, t.source_data)

    assert [essence(t) for t in answer] == [essence(t) for t in examples]
    assert [t.seq_count - first for t in answer] == [t.seq_count for t in examples]
