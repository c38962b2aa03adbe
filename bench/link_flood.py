"""A flood: two clients write TCs at the target as fast as the line takes them for a
minute, while a third pings it through the link and measures.

The simulated chip runs in TEST mode on a pseudo-terminal. Two flooder threads open the
same pty (as two programs on one serial adapter would) and write frames back to back:
pings that ask for every report, and one-shot housekeeping requests, each flooder with
counts of its own; where their writes meet mid-frame the target sees damaged frames,
which is part of the flood. The measuring client is an ordinary ``Link`` that sends one
ping every ``PING_EVERY_S`` and reads everything the target sends.

``run()`` reports, and checks:

- the target's memory stayed bounded (its RSS, sampled every second);
- its output toward the host stayed bounded: what did not fit was dropped and said by
  ``TM_OVERFLOW`` events, whose last ``total`` covers every ``since`` received (an
  overflow event can itself be pushed out while the flood lasts; the total is not);
- every ping of the measuring client ended with its outcome known, and how long they took;
  half at least within the acceptance timeout (3.86 s at 115200 baud: the flood comes
  over a pty with no baud limit, several times what a serial line would carry, so the
  target's output queue, not the line, sets the worst case);
- nothing accepted was lost: the target's counters add up (received = accepted + refused)
  and its count of frames (TCs received plus frames rejected) is at least every frame the
  flooders wrote whole;
- afterwards it answers a ping at once.

    python -m bench.link_flood [seconds]
"""

from __future__ import annotations

import json
import os
import statistics
import struct
import sys
import threading
import time
from pathlib import Path

from host import Completion, Link
from host.commands import Authenticator
from host.history import event
from host.sim import SimulatedTarget
from host.target import Target
from protocol.codes import EventId
from protocol.framing import encode_frame
from protocol.packets import make_tc
from protocol.payloads import HkStructure, hk_structures

PING_EVERY_S = 0.25
EVENT_RATE_LIMIT_S = 5.0
"""The target's EVENT_RATE_LIMIT at boot (ICD 15.7)."""
BATCH = 64
"""Frames a flooder writes in one call."""


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Flooder(threading.Thread):
    """Writes pings and housekeeping requests to ``path`` until ``stop``; counts frames."""

    def __init__(self, path: str, first_seq: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_NOCTTY)
        self.seq = first_seq
        self.stop = stop
        self.frames = 0
        self.octets = 0

    def run(self) -> None:
        hk = hk_structures([HkStructure.SYSTEM])
        try:
            while not self.stop.is_set():
                frames = []
                for i in range(BATCH):
                    self.seq = (self.seq + 1) % 16384
                    packet = (
                        make_tc(3, 27, hk, self.seq)
                        if i % 8 == 0
                        else make_tc(17, 1, b"", self.seq)
                    )
                    frames.append(encode_frame(packet))
                data = b"".join(frames)
                os.write(self.fd, data)
                self.frames += len(frames)
                self.octets += len(data)
        finally:
            os.close(self.fd)


def run(seconds: float = 60.0) -> dict:
    """Flood the target for ``seconds``; see the module docstring."""
    stop = threading.Event()
    with SimulatedTarget(mode="test", keys={}) as sim:
        assert sim.proc is not None
        pid = sim.proc.pid
        with Link(sim.port, auth=Authenticator()).open() as link:
            target = Target(link)
            before = target.housekeeping(HkStructure.SYSTEM)
            mark = link.history.mark()
            flooders = [Flooder(sim.port, start, stop) for start in (2000, 9000)]
            rss = [_rss_kb(pid)]
            results: list = []
            start = time.monotonic()
            for f in flooders:
                f.start()
            next_sample = start + 1.0
            while (now := time.monotonic()) < start + seconds:
                results.append(link.submit(17, 1))
                if now >= next_sample:
                    rss.append(_rss_kb(pid))
                    next_sample += 1.0
                time.sleep(PING_EVERY_S)
            stop.set()
            for f in flooders:
                f.join(10)
            ended = [r.exception() or r.result() for r in results]
            # What is in flight drains, and a held-back TM_OVERFLOW goes out once its rate
            # limit has passed (ICD 11).
            time.sleep(EVENT_RATE_LIMIT_S + 2.0)
            overflows = link.history.items(mark)
            overflows = [r for r in overflows if event(EventId.TM_OVERFLOW)(r)]
            after = target.housekeeping(HkStructure.SYSTEM)
            ping_after = target.ping()
            rss.append(_rss_kb(pid))
            stats = link.stats
            acceptance_s = link.timing.acceptance_s
    rtts = sorted(r.elapsed for r in ended if isinstance(r, Completion))
    since = [struct.unpack_from("!I", o.source_data, 2)[0] for o in overflows]
    totals = [struct.unpack_from("!I", o.source_data, 6)[0] for o in overflows]
    received = after["tc_received"] - before["tc_received"]
    rejected = after["frames_rejected"] - before["frames_rejected"]
    written = sum(f.frames for f in flooders)
    checks = {
        "memory bounded (RSS grew < 50 MB)": max(rss) - rss[0] < 50_000,
        "every ping's outcome known": all(isinstance(r, Completion) for r in ended),
        "median ping within the acceptance timeout": bool(rtts)
        and statistics.median(rtts) < acceptance_s,
        "overflow said, the last total covering every since": (not since)
        or sum(since) <= totals[-1],
        "counters add up": after["tc_received"] == after["tc_accepted"] + after["tc_refused"],
        "every frame written counted": received + rejected >= written,
        "answers a ping after": ping_after < 1.0,
    }
    return {
        "seconds": seconds,
        "flooders": len(flooders),
        "frames_written": written,
        "octets_written": sum(f.octets for f in flooders),
        "frames_per_s": round(written / seconds),
        "target": {
            "tc_received": received,
            "tc_accepted": after["tc_accepted"] - before["tc_accepted"],
            "tc_refused": after["tc_refused"] - before["tc_refused"],
            "frames_rejected": rejected,
        },
        "tm_overflow": {
            "events": len(overflows),
            "since_sum": sum(since),
            "last_total": totals[-1] if totals else 0,
        },
        "pings": len(ended),
        "ping_round_trip_s": {
            "median": round(statistics.median(rtts), 4) if rtts else None,
            "p90": round(rtts[int(0.9 * (len(rtts) - 1))], 4) if rtts else None,
            "max": round(rtts[-1], 4) if rtts else None,
            "acceptance_timeout": round(acceptance_s, 3),
        },
        "ping_after_s": round(ping_after, 4),
        "outcome_queries": stats.outcome_queries,
        "rss_kb": {"first": rss[0], "max": max(rss), "last": rss[-1]},
        "checks": checks,
        "pass": all(checks.values()),
    }


if __name__ == "__main__":
    figures = run(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
    print(json.dumps(figures, indent=2))
    sys.exit(0 if figures["pass"] else 1)
