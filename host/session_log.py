"""A session log a person can read: one line per frame each way, and the link's events.

Each frame line carries the monotonic time, the direction (``->`` to the target, ``<-``
from it), what the packet is (type names, sequence count, request id, data length) or
why it was rejected, then the frame's octets in hex, delimiter included::

    1234.567890 -> TC[17,1] TEST/PING seq 4711 req 0x18c8d267 ack ALL app 0 | 04 18 c8 ...
    1234.571234 <- TM[1,1] REQUEST_VERIFICATION/ACCEPTANCE_SUCCESS seq 12 req 0x18c8d267 ...
    1234.600000 <- REJECTED bad_crc: TM: CRC mismatch: computed 0x1234 ... | 0a 08 ...
    1234.700000 == disconnected: read failed: [Errno 5] Input/output error
"""

from __future__ import annotations

import struct
import threading
import time
from pathlib import Path
from typing import TextIO

from host.errors import describe_code
from host.names import tc_name, tm_name
from protocol.codes import AckFlags, Service
from protocol.framing import FrameRejected
from protocol.packets import Telemetry
from protocol.request_id import RequestId


def _hex(data: bytes, limit: int | None) -> str:
    if limit is not None and len(data) > limit:
        return f"{data[:limit].hex(' ')} ... ({len(data)} octets)"
    return data.hex(" ")


def _ack_name(ack: int) -> str:
    flags = AckFlags(ack)
    if flags == AckFlags.ALL:
        return "ALL"
    if flags == AckFlags.NONE:
        return "NONE"
    return "|".join(f.name for f in AckFlags if f.name and f in flags and f != AckFlags.ALL)


def describe_tc(packet: bytes) -> str:
    """``TC[17,1] TEST/PING seq 4711 req 0x18c8d267 ack ALL app 0`` for a TC's octets."""
    if len(packet) < 13:
        return f"TC of {len(packet)} octets"
    rid = RequestId.unpack(packet)
    service, subtype = packet[7], packet[8]
    app = packet[11:-2]
    return (
        f"{tc_name(service, subtype, app)} seq {rid.seq_count} req {rid.as_u32():#010x} "
        f"ack {_ack_name(packet[6] & 0x0F)} app {len(app)}"
    )


def describe_tm(tm: Telemetry) -> str:
    """``TM[1,2] ... seq 12 req 0x18c8d267 UNKNOWN_SERVICE (0x0010) data 5`` for a TM."""
    text = f"{tm_name(tm.service, tm.subtype, tm.source_data)} seq {tm.seq_count}"
    data = tm.source_data
    if tm.service == Service.REQUEST_VERIFICATION and len(data) >= 4:
        text += f" req {RequestId.unpack(data).as_u32():#010x}"
        pos = 4 + (2 if tm.subtype in (5, 6) else 0)
        if tm.subtype in (5, 6) and len(data) >= 6:
            text += f" step {struct.unpack_from('!H', data, 4)[0]}"
        if tm.subtype % 2 == 0 and len(data) >= pos + 2:
            text += f" {describe_code(struct.unpack_from('!H', data, pos)[0])}"
    text += f" dest {tm.dest_id} data {len(data)}"
    return text


class SessionLog:
    """Writes the log of one link session to ``path`` (appending), line by line."""

    def __init__(self, path: str | Path, *, hex_limit: int | None = None) -> None:
        self.path = Path(path)
        self.hex_limit = hex_limit
        self._lock = threading.Lock()
        self._file: TextIO | None = self.path.open("a", encoding="utf-8", buffering=1)

    def header(self, port: str, baud: int) -> None:
        """First lines of a session: where, when, and what the times are."""
        wall = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._write(
            f"# orbit-hil link session on {port} at {baud} baud, opened {wall}, "
            f"monotonic {time.monotonic():.6f}\n"
            "# time (monotonic s), direction (-> to target, <- from target, == link event), "
            "packet | frame octets (hex, 00 delimiter included)\n"
        )

    def tx(self, at: float, frame: bytes, packet: bytes, note: str = "") -> None:
        """A frame written to the port."""
        extra = f" ({note})" if note else ""
        self._write(f"{at:.6f} -> {describe_tc(packet)}{extra} | {_hex(frame, self.hex_limit)}\n")

    def rx(self, at: float, raw: bytes, tm: Telemetry) -> None:
        """A frame received and decoded (``raw`` is the frame as it came, with delimiter)."""
        self._write(f"{at:.6f} <- {describe_tm(tm)} | {_hex(raw, self.hex_limit)}\n")

    def rejected(self, at: float, raw: bytes, rejection: FrameRejected) -> None:
        """A frame dropped on receipt, and why."""
        self._write(
            f"{at:.6f} <- REJECTED {rejection.reason.value}: {rejection.detail} "
            f"| {_hex(raw, self.hex_limit)}\n"
        )

    def event(self, at: float, kind: str, detail: str = "") -> None:
        """A link event: opened, disconnected, reconnected, down, closed..."""
        self._write(f"{at:.6f} == {kind}{': ' + detail if detail else ''}\n")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _write(self, line: str) -> None:
        with self._lock:
            if self._file is not None:
                self._file.write(line)
