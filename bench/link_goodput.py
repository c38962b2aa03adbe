"""Bulk goodput over a slow link: memory loads through the window, against the line rate.

The flight software runs in TEST mode (hazardous loads signed with the null key, ICD 13)
behind the channel emulator at 115200 baud with 0, 20 and 250 ms round trip. The host
loads ``FIRMWARE_RAM`` in the largest chunks a TC[6,2] can carry (2006 octets), keeping
the window full; goodput is the octets of memory loaded per second over the line's
octets per second (baud / 10). The same with a window of 1 shows what the window buys.

    python -m bench.link_goodput
"""

from __future__ import annotations

import json
import struct
import time

from bench.link_reliability import firmware
from host import Authenticator, Command, Completion, Link
from host.channel import Channel
from host.commands import build_packet
from protocol.auth import TRAILER_LEN
from protocol.codes import MemoryId
from protocol.framing import encode_frame
from protocol.packets import MAX_TC_APP_DATA

LOAD_HEADER = struct.calcsize("!BIH")  # memory id, address, length (ICD 15.5)
CHUNK = MAX_TC_APP_DATA - LOAD_HEADER - TRAILER_LEN
RAM_SIZE = 65536


def loads(total: int) -> list[Command]:
    """TC[6,2] loads of ``total`` octets into FIRMWARE_RAM, in the largest chunks."""
    commands = []
    for i, offset in enumerate(range(0, total, CHUNK)):
        size = min(CHUNK, total - offset)
        address = (i * CHUNK) % (RAM_SIZE - CHUNK)
        data = bytes((offset + k) & 0xFF for k in range(size))
        commands.append(
            Command(6, 2, struct.pack("!BIH", MemoryId.FIRMWARE_RAM, address, size) + data)
        )
    return commands


def frame_octets(command: Command) -> int:
    """Octets a command takes on the line: its frame, delimiter included."""
    packet = build_packet(command, 0, auth=Authenticator())
    return len(encode_frame(packet))


def measure(pty: str, rtt_s: float, window: int, total: int, baud: int) -> dict:
    """Load ``total`` octets at ``baud`` with ``rtt_s`` round trip and ``window``."""
    with (
        Channel(pty, baud=baud, latency_s=rtt_s / 2) as channel,
        Link(channel.host_path, baud, window=window, auth=Authenticator()).open() as link,
    ):
        commands = loads(total)
        start = time.monotonic()
        results = link.send_many(commands)
        elapsed = time.monotonic() - start
        sent = link.stats.bytes_sent
    ok = sum(isinstance(r, Completion) for r in results)
    rate = baud / 10
    return {
        "rtt_ms": round(rtt_s * 1000),
        "window": window,
        "loads": len(commands),
        "completed": ok,
        "octets": total,
        "elapsed_s": round(elapsed, 3),
        "goodput_octets_per_s": round(total / elapsed),
        "goodput_over_line_rate": round(total / elapsed / rate, 4),
        "line_use": round(sent / elapsed / rate, 4),
    }


def run(baud: int = 115_200, total: int = 96 * CHUNK) -> dict:
    """Goodput / line rate with the window at 0, 20, 250 ms round trip, and without it.

    The transfer is long enough (192 kB, 17 s at 115200 baud) that the last round trip,
    which no window can hide, weighs little in the figure, as in a real bulk upload."""
    rows = []
    with firmware() as pty:
        for rtt in (0.0, 0.020, 0.250):
            rows.append(measure(pty, rtt, 8, total, baud))
        for rtt in (0.0, 0.250):
            rows.append(measure(pty, rtt, 1, total // 4, baud))
    return {
        "baud": baud,
        "chunk_octets": CHUNK,
        "best_possible": round(CHUNK / frame_octets(loads(CHUNK)[0]), 4),
        "runs": rows,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
