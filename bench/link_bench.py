"""Link benchmark: the frame decoder's throughput, and ping round trips to the firmware.

``run()`` returns a dict of numbers; ``python -m bench.link_bench`` prints it as JSON.
The round trip is measured against ``python -m firmware_sim`` started as a subprocess on
a real pseudo-terminal: from writing a TC[17,1] to having decoded its TM[17,2].
"""

from __future__ import annotations

import json
import random
import statistics
import time

import serial
from spacepackets.ccsds.spacepacket import PacketType

from host.sim import SimulatedTarget
from protocol.codes import AckFlags
from protocol.framing import NEED_DATA, Frame, FrameDecoder, encode_frame
from protocol.packets import MAX_TM_SOURCE_DATA, PacketValidator, make_tc, make_tm, parse_tm
from protocol.timecode import CdsTime

CHUNK = 4096


def _stream(total_bytes: int, seed: int = 1) -> tuple[bytes, int]:
    """Encoded TM frames of random sizes (up to the largest), about ``total_bytes`` long."""
    rng = random.Random(seed)
    time_ = CdsTime.from_unix(0)
    frames = []
    size = 0
    seq = 0
    while size < total_bytes:
        data = rng.randbytes(rng.randint(0, MAX_TM_SOURCE_DATA))
        frame = encode_frame(make_tm(3, 25, data, seq, time=time_))
        frames.append(frame)
        size += len(frame)
        seq = (seq + 1) % 16384
    return b"".join(frames), len(frames)


def decoder_throughput(total_bytes: int = 8_000_000, validate: bool = False) -> float:
    """MB/s (10^6 octets per second of encoded stream) through ``FrameDecoder``."""
    stream, count = _stream(total_bytes)
    decoder = FrameDecoder(validator=PacketValidator(PacketType.TM) if validate else None)
    got = 0
    start = time.perf_counter()
    for pos in range(0, len(stream), CHUNK):
        decoder.receive_data(stream[pos : pos + CHUNK])
        while (event := decoder.next_event()) is not NEED_DATA:
            got += isinstance(event, Frame)
    elapsed = time.perf_counter() - start
    if got != count:
        raise RuntimeError(f"decoder returned {got} frames of {count}")
    return len(stream) / elapsed / 1e6


def ping_round_trips(count: int = 500, warmup: int = 20, timeout: float = 5.0) -> list[float]:
    """Seconds from writing each ping to decoding its TM[17,2], over a real pty."""
    with (
        SimulatedTarget(mode="nominal", keys={}) as sim,
        serial.Serial(sim.port, 115200, timeout=1.0) as port,
    ):
        decoder = FrameDecoder()
        port.write(b"\x00")
        times = []
        for i in range(warmup + count):
            packet = make_tc(17, 1, b"", i % 16384, ack_flags=AckFlags.ALL)
            start = time.perf_counter()
            port.write(encode_frame(packet))
            deadline = time.monotonic() + timeout
            answered = False
            while not answered:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ping {i} not answered within {timeout} s")
                decoder.receive_data(port.read(max(1, port.in_waiting)))
                while (event := decoder.next_event()) is not NEED_DATA:
                    if isinstance(event, Frame):
                        tm = parse_tm(event.payload)
                        answered |= (tm.service, tm.subtype) == (17, 2)
            if i >= warmup:
                times.append(time.perf_counter() - start)
        return times


def run() -> dict:
    """Every measurement, as plain numbers."""
    rtt = sorted(ping_round_trips())
    p99 = rtt[min(len(rtt) - 1, round(0.99 * (len(rtt) - 1)))]
    return {
        "decoder_mb_per_s": round(decoder_throughput(), 2),
        "decoder_validated_mb_per_s": round(decoder_throughput(validate=True), 2),
        "ping_count": len(rtt),
        "ping_rtt_median_ms": round(1e3 * statistics.median(rtt), 3),
        "ping_rtt_p99_ms": round(1e3 * p99, 3),
        "ping_rtt_max_ms": round(1e3 * rtt[-1], 3),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
