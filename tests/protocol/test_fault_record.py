"""The fault record of service 148 (ICD 15.8): one layout, packed and parsed by the protocol."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.codes import FailureCode, FaultKind
from protocol.errors import PacketError
from protocol.payloads import (
    FAULT_SITES,
    FAULT_WIDTHS,
    NEXT_JOB_KINDS,
    NEXT_JOB_SITES,
    ONE_BIT_SITES,
    POINT_OFFSETS,
    SITE_FIELD_RANGES,
    SITE_FIELDS,
    ClusterShape,
    FaultRecord,
    FaultSiteClass,
    FaultTiming,
    JobPhase,
    Reader,
    fault_refusal,
    read_fault_refusal,
)


def test_header_point_and_site_fields_sit_where_the_icd_says() -> None:
    rec = FaultRecord(FaultKind.SBU, FaultSiteClass.SPM_CELL, 1, (1, 0x0203, 0x0405),
                      FaultTiming.NEXT_JOB, (0x0A0B, JobPhase.WRITE, 0x0C0D))  # fmt: skip
    raw = rec.pack()
    assert raw[:4] == bytes([FaultKind.SBU, FaultSiteClass.SPM_CELL, 1, FaultTiming.NEXT_JOB])
    assert struct.unpack_from("!H", raw, POINT_OFFSETS["tile"])[0] == 0x0A0B
    assert raw[POINT_OFFSETS["phase"]] == JobPhase.WRITE
    assert struct.unpack_from("!H", raw, POINT_OFFSETS["cycle"])[0] == 0x0C0D
    assert raw[rec.site_offset() :] == struct.pack("!BHH", 1, 0x0203, 0x0405)
    now = FaultRecord(FaultKind.SBU, FaultSiteClass.SPM_WORD, 1, (7, 3))
    assert now.pack()[now.site_offset() :] == struct.pack("!HB", 7, 3)


@pytest.mark.parametrize("kind", list(FaultKind), ids=lambda k: k.name)
def test_every_allowed_record_parses_back_to_itself(kind: FaultKind) -> None:
    lo, hi = FAULT_WIDTHS[kind]
    for site in FAULT_SITES[kind]:
        ranges = SITE_FIELD_RANGES.get(site, {})
        fields = tuple(
            "u_seq.u_t.q_q[2]" if f.fmt == "p" else min(i, ranges.get(f.name, (0, i))[1])
            for i, f in enumerate(SITE_FIELDS[site])
        )
        timings = [FaultTiming.NOW]
        if kind in NEXT_JOB_KINDS and site in NEXT_JOB_SITES:
            timings.append(FaultTiming.NEXT_JOB)
        widths = {lo, min(hi, 1)} if site in ONE_BIT_SITES else {lo, hi}
        for width in widths:
            for timing in timings:
                rec = FaultRecord(kind, site, width, fields, timing,
                                  (2, JobPhase.STREAM, 9) if timing else (0, 0, 0))  # fmt: skip
                r = Reader(rec.pack())
                assert FaultRecord.parse(r) == rec
                r.end()


def test_a_ram_cluster_record_is_address_bit_and_shape() -> None:
    rec = FaultRecord(FaultKind.MBU, FaultSiteClass.FW_RAM_CLUSTER, 3,
                      (0x01020304, 7, ClusterShape.BIT_LINE))  # fmt: skip
    raw = rec.pack()
    assert raw[:4] == bytes([FaultKind.MBU, FaultSiteClass.FW_RAM_CLUSTER, 3, FaultTiming.NOW])
    assert raw[rec.site_offset() :] == bytes([1, 2, 3, 4, 7, ClusterShape.BIT_LINE])
    assert (rec.field_offset("bit"), rec.field_offset("shape")) == (8, 9)
    assert FaultRecord.parse(Reader(raw)) == rec


@pytest.mark.parametrize(
    ("site", "fields", "field", "message"),
    [
        (FaultSiteClass.FW_RAM_CLUSTER, (0, 8, 1), "bit", "FW_RAM_CLUSTER bit 8 is outside 0..7"),
        (FaultSiteClass.FW_RAM_CLUSTER, (0, 0, 3), "shape",
         "FW_RAM_CLUSTER shape 3 is outside 0..2"),
        (FaultSiteClass.SPM_CLUSTER, (0, 0, 0, 9), "shape", "SPM_CLUSTER shape 9 is outside 0..2"),
    ],  # fmt: skip
    ids=["ram-bit-8", "ram-shape-3", "spm-shape-9"],
)
def test_a_cluster_field_outside_its_range_is_refused_at_that_field(
    site: FaultSiteClass, fields: tuple[int, ...], field: str, message: str
) -> None:
    rec = FaultRecord(FaultKind.MBU, site, 2, fields)
    with pytest.raises(PacketError, match=message) as err:
        FaultRecord.parse(Reader(rec.pack()))
    assert err.value.code == FailureCode.VALUE_OUT_OF_RANGE
    assert struct.unpack("!H", err.value.data)[0] == rec.field_offset(field)
    # A fault list from the target is read as it comes, unchecked.
    assert FaultRecord.read(Reader(rec.pack())) == rec


def test_a_one_bit_site_refuses_a_width_over_one() -> None:
    rec = FaultRecord(FaultKind.STUCK_AT_1, FaultSiteClass.ACC_BIT, 3, (0, 1, 5))
    with pytest.raises(PacketError, match="STUCK_AT_1 width 3 at ACC_BIT: one bit, width 1"):
        FaultRecord.parse(Reader(rec.pack()))


@given(st.binary(max_size=16))
def test_any_octets_parse_to_a_record_that_packs_back_or_are_refused(data: bytes) -> None:
    r = Reader(data)
    try:
        rec = FaultRecord.parse(r)
    except PacketError as exc:
        assert exc.code in (FailureCode.BAD_APP_DATA, FailureCode.VALUE_OUT_OF_RANGE)
    else:
        assert rec.pack() == data[: r.pos]


def test_site_record_carries_a_length_prefixed_name_then_the_bit() -> None:
    name = "u_array.g_row[0].g_col[1].u_pe.a_q"
    rec = FaultRecord(FaultKind.SET, FaultSiteClass.SITE, 1, (name, 0x0102),
                      FaultTiming.NEXT_JOB, (1, JobPhase.STREAM, 3))  # fmt: skip
    raw = rec.pack()
    at = rec.site_offset()
    assert raw[at] == len(name) and raw[at + 1 : at + 1 + len(name)] == name.encode()
    assert rec.field_offset("name") == at and rec.field_offset("bit") == at + 1 + len(name)
    assert struct.unpack_from("!H", raw, rec.field_offset("bit"))[0] == 0x0102
    assert FaultRecord.parse(Reader(raw)) == rec


@pytest.mark.parametrize("name", [b"", b"u_seq q", b"\xffq_q"], ids=["empty", "space", "8-bit"])
def test_site_name_that_is_not_printable_ascii_is_out_of_range(name: bytes) -> None:
    head = bytes([FaultKind.SBU, FaultSiteClass.SITE, 1, FaultTiming.NOW])
    with pytest.raises(PacketError) as err:
        FaultRecord.parse(Reader(head + bytes([len(name)]) + name + b"\x00\x00"))
    assert err.value.code == FailureCode.VALUE_OUT_OF_RANGE
    assert struct.unpack("!H", err.value.data)[0] == 4  # the name's length octet


def test_refusal_data_round_trips() -> None:
    assert read_fault_refusal(fault_refusal(10, 3)) == (10, 3)
    with pytest.raises(PacketError):
        read_fault_refusal(b"\x00\x01")
