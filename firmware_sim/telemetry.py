"""Outgoing telemetry: packet sequence count, message type counters, time stamps, frames.

ICD section 6: one 14-bit TM sequence count for APID_FSW from 0 at boot, and one u16
message type counter per (service, subtype), also from 0 at boot.
"""

from __future__ import annotations

from collections.abc import Callable

from protocol.framing import encode_frame
from protocol.link import APID_FSW
from protocol.packets import make_tm
from protocol.sequence import SeqCounter
from protocol.timecode import CdsTime


class TmSender:
    """Builds TM packets in order and queues their frames for the serial port."""

    def __init__(self, clock: Callable[[], CdsTime]) -> None:
        self.clock = clock
        self.seq = SeqCounter()
        self.msg_counters: dict[tuple[int, int], int] = {}
        self.outbox = bytearray()
        self.sent = 0

    def send(self, service: int, subtype: int, data: bytes = b"", dest_id: int = 0) -> bytes:
        """Queue one TM[service, subtype]; returns the packet."""
        key = (int(service), int(subtype))
        counter = self.msg_counters.get(key, 0)
        self.msg_counters[key] = (counter + 1) & 0xFFFF
        packet = make_tm(
            service,
            subtype,
            data,
            self.seq.next(),
            time=self.clock(),
            apid=APID_FSW,
            msg_counter=counter,
            dest_id=dest_id,
        )
        self.outbox += encode_frame(packet)
        self.sent += 1
        return packet

    def send_raw(self, data: bytes) -> None:
        """Queue bytes that are not a packet (the 0x00 that resynchronises the receiver)."""
        self.outbox += data

    def take(self) -> bytes:
        """Everything queued since the last call."""
        out = bytes(self.outbox)
        self.outbox.clear()
        return out
