"""A dead target behind a live port: how long the host takes to say so, what it logs, and
what it costs while it waits.

A pseudo-terminal stands in for a USB-UART cable on a board that died: the port opens and
takes every write (a thread reads and discards it), nothing ever answers. The link is
opened without a link start (as if the target had just been answering) at 115200 baud
with the ICD's acceptance timeout, and ``commands`` pings are submitted at once. ``run()``
reports when the first ``down`` event came, when every command had ended, how many log
lines the link wrote, and the CPU the whole process used per second of wall time, both
until every command ended and over ``idle_s`` more seconds of retrying.

    python -m bench.link_dead_target
"""

from __future__ import annotations

import json
import logging
import os
import select
import threading
import time
import tty
from concurrent.futures import wait

from host import Link


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _discard(master: int, stop: threading.Event) -> None:
    while not stop.is_set():
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                os.read(master, 65536)
            except OSError:
                return


def run(commands: int = 20, baud: int = 115_200, idle_s: float = 10.0) -> dict:
    """Submit ``commands`` pings to a target that never answers; see the module docstring."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    path = os.ttyname(slave)
    stop = threading.Event()
    reader = threading.Thread(target=_discard, args=(master, stop), daemon=True)
    reader.start()
    counter = _Count()
    logger = logging.getLogger("host.link")
    logger.addHandler(counter)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with Link(path, baud).open(start=False) as link:
            cpu0, wall0 = time.process_time(), time.monotonic()
            futures = [link.submit(17, 1) for _ in range(commands)]
            down = link.await_link_event("down", timeout=600.0)
            wait(futures, timeout=600.0)
            ended = time.monotonic()
            cpu_ended = time.process_time()
            time.sleep(idle_s)  # retrying: the CPU the link uses while nobody answers
            cpu_idle = time.process_time() - cpu_ended
            acceptance_s = link.timing.acceptance_s
            lines = list(counter.lines)
            kinds = [e.kind for e in link.link_events]
    finally:
        logger.removeHandler(counter)
        logger.setLevel(old_level)
        stop.set()
        reader.join(timeout=2.0)
        os.close(master)
        os.close(slave)
    down_s = down.time - wall0 if down is not None else None
    return {
        "commands": commands,
        "baud": baud,
        "acceptance_timeout_s": round(acceptance_s, 3),
        "down_after_s": round(down_s, 3) if down_s is not None else None,
        "down_within_two_timeouts": down_s is not None and down_s <= 2 * acceptance_s + 0.5,
        "all_ended_after_s": round(ended - wall0, 3),
        "log_lines": len(lines),
        "link_events": kinds,
        "cpu_per_wall_s_until_ended": round((cpu_ended - cpu0) / (ended - wall0), 4),
        "cpu_per_wall_s_retrying": round(cpu_idle / idle_s, 4),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
