"""Bulk goodput over a slow link: memory loads through the window, against the line rate.

The flight software runs in NOMINAL mode with a real key (every hazardous load signed
with HMAC-SHA256 and checked against the anti-replay window, ICD 13) behind the channel
emulator at 115200 baud with 0, 20 and 250 ms round trip, and at 250 ms on a lossy line
(BER 1e-5, 1 % of frames dropped each way). The host loads ``FIRMWARE_RAM`` in the
largest chunks a TC[6,2] can carry (2006 octets), keeping the window full; goodput is
the octets of memory loaded per second over the line's octets per second (baud / 10).
The same with a window of 1 shows what the window buys.

    python -m bench.link_goodput
"""

from __future__ import annotations

import contextlib
import json
import struct
import time
from collections.abc import Iterator

from host import Authenticator, Command, Completion, Link
from host.channel import TO_HOST, TO_TARGET, Channel
from host.commands import build_packet
from host.impairment import Impairment
from host.sim import SIM_KEY, SIM_KEY_ID, SimulatedTarget
from protocol.auth import TRAILER_LEN
from protocol.codes import MemoryId
from protocol.framing import encode_frame
from protocol.packets import MAX_TC_APP_DATA

LOAD_HEADER = struct.calcsize("!BIH")  # memory id, address, length (ICD 15.5)
CHUNK = MAX_TC_APP_DATA - LOAD_HEADER - TRAILER_LEN
RAM_SIZE = 65536


LOSSY_CHUNK = 640
"""Chunk that loads fastest on the lossy line: a frame's 36 octets of headers and auth
trailer against the chance that a bit error (BER 1e-5) spoils it, c / (c + 36) x
(1 - 1e-5)^(8 (c + 36)), is largest near 650 octets, at 0.89 of the line before any frame
dropped on the way."""


def loads(total: int, chunk: int = CHUNK) -> list[Command]:
    """TC[6,2] loads of ``total`` octets into FIRMWARE_RAM, in chunks of ``chunk``."""
    commands = []
    for i, offset in enumerate(range(0, total, chunk)):
        size = min(chunk, total - offset)
        address = (i * chunk) % (RAM_SIZE - chunk)
        data = bytes((offset + k) & 0xFF for k in range(size))
        commands.append(
            Command(6, 2, struct.pack("!BIH", MemoryId.FIRMWARE_RAM, address, size) + data)
        )
    return commands


def frame_octets(command: Command) -> int:
    """Octets a command takes on the line: its frame, delimiter included."""
    packet = build_packet(command, 0, auth=Authenticator(SIM_KEY_ID, SIM_KEY))
    return len(encode_frame(packet))


LOSSY = Impairment(ber=1e-5, frame_drop=0.01)


@contextlib.contextmanager
def keyed_firmware() -> Iterator[str]:
    """The simulated chip in NOMINAL mode with the test key; yields its pty."""
    with SimulatedTarget(mode="nominal", keys={SIM_KEY_ID: SIM_KEY}) as sim:
        yield sim.port


AUTH = Authenticator(SIM_KEY_ID, SIM_KEY)
"""One signer for every run, as a ground station keeps its anti-replay count: a new
session starting at 1 would have its first window refused as replays (ICD 13)."""


def measure(
    pty: str, rtt_s: float, window: int, total: int, baud: int, *,
    impairment: Impairment | None = None, fast_retransmit: bool = False, chunk: int = CHUNK,
) -> dict:  # fmt: skip
    """Load ``total`` octets at ``baud`` with ``rtt_s`` round trip and ``window``."""
    auth = AUTH
    with (
        Channel(pty, baud=baud, latency_s=rtt_s / 2, seed=1) as channel,
        Link(channel.host_path, baud, window=window, auth=auth,
             fast_retransmit=fast_retransmit).open() as link,
    ):  # fmt: skip
        if impairment is not None:
            channel.set_impairment(TO_TARGET, impairment)
            channel.set_impairment(TO_HOST, impairment)
        commands = loads(total, chunk)
        start = time.monotonic()
        results = link.send_many(commands)
        elapsed = time.monotonic() - start
        sent = link.stats.bytes_sent
        retransmissions = link.stats.retransmissions
        downs = link.stats.link_downs
    ok = sum(isinstance(r, Completion) for r in results)
    rate = baud / 10
    return {
        "rtt_ms": round(rtt_s * 1000),
        "line": "lossy (BER 1e-5, 1 % frames dropped each way)" if impairment else "clean",
        "fast_retransmit": fast_retransmit,
        "window": window,
        "chunk_octets": chunk,
        "loads": len(commands),
        "retransmissions": retransmissions,
        "link_downs": downs,
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
    with keyed_firmware() as pty:
        for rtt in (0.0, 0.020, 0.250):
            rows.append(measure(pty, rtt, 8, total, baud))
        for fast in (False, True):
            rows.append(measure(pty, 0.250, 8, total, baud, impairment=LOSSY,
                                fast_retransmit=fast, chunk=LOSSY_CHUNK))  # fmt: skip
        for rtt in (0.0, 0.250):
            rows.append(measure(pty, rtt, 1, total // 4, baud))
    return {
        "baud": baud,
        "chunk_octets": CHUNK,
        "best_possible": round(CHUNK / frame_octets(loads(CHUNK)[0]), 4),
        "key": f"key {SIM_KEY_ID}, HMAC-SHA256 (NOMINAL mode)",
        "runs": rows,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
