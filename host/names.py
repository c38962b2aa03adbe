"""Readable names of packets for messages and logs, from the codes in protocol.codes."""

from __future__ import annotations

import struct

from protocol.codes import SUBTYPES, EventId, FunctionId, Service


def type_name(service: int, subtype: int) -> str:
    """``TEST/PING`` for (17, 1); numbers the ICD does not name are marked unknown."""
    try:
        svc = Service(service)
    except ValueError:
        return "unknown service"
    try:
        sub = SUBTYPES[svc](subtype).name
    except ValueError:
        sub = "unknown subtype"
    return f"{svc.name}/{sub}"


def tc_name(service: int, subtype: int, app_data: bytes = b"") -> str:
    """``TC[17,1] TEST/PING``; a TC[8,1] also names its function."""
    name = f"TC[{service},{subtype}] {type_name(service, subtype)}"
    if (service, subtype) == (Service.FUNCTION_MANAGEMENT, 1) and len(app_data) >= 2:
        (fid,) = struct.unpack_from("!H", app_data)
        try:
            name += f" {FunctionId(fid).name}"
        except ValueError:
            name += f" function {fid:#06x}"
    return name


def tm_name(service: int, subtype: int, source_data: bytes = b"") -> str:
    """``TM[1,1] REQUEST_VERIFICATION/ACCEPTANCE_SUCCESS``; an event report names its event."""
    name = f"TM[{service},{subtype}] {type_name(service, subtype)}"
    if service == Service.EVENT_REPORTING and 1 <= subtype <= 4 and len(source_data) >= 2:
        (eid,) = struct.unpack_from("!H", source_data)
        try:
            name += f" {EventId(eid).name}"
        except ValueError:
            name += f" event {eid:#06x}"
    return name
