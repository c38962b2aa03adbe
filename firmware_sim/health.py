"""Health of the flight computer: what survives a reset, watchdogs, anomalies, EDAC totals.

- ``NonVolatile``: boot and watchdog counts, the cause of the next boot, the last
  anti-replay window per key (ICD section 13), the request memory and the next
  sequence count expected (ICD 6); kept across resets.
- ``Watchdog``: kicked by the main loop; when it is not, the flight computer reboots.
- ``AnomalyWindow``: anomalies in a sliding window; enough of them mean SAFE mode.
- ``CounterTotal``: a 32-bit hardware counter that wraps and is cleared by resets, as
  a total that only grows (until CLEAR_COUNTERS).
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from firmware_sim.ordering import InOrder
from firmware_sim.requests import RequestMemory
from protocol.auth import ReplayWindow
from protocol.payloads import ResetCause
from protocol.sequence import MAX_SEQ_COUNT


@dataclass(slots=True)
class NonVolatile:
    """State kept across resets (and, with a file, across runs of the process)."""

    boot_count: int = 0
    watchdog_resets: int = 0
    next_reset_cause: ResetCause = ResetCause.POWER_ON
    auth_replay: dict[int, ReplayWindow] = field(default_factory=dict)
    """Per key id, the anti-replay window (ICD 13)."""
    key_generations: dict[int, int] = field(default_factory=dict)
    """Per key id, the generation of the key derived from the master key (ICD 13)."""
    requests: RequestMemory = field(default_factory=RequestMemory)
    """The requests received lately and their outcomes (ICD 6): a retransmission is
    recognised, and its outcome known, across a reboot."""
    order: InOrder = field(default_factory=InOrder)
    """The next sequence count expected for in-order execution (ICD 6); the TCs waiting
    for it are volatile."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "boot_count": self.boot_count,
                "watchdog_resets": self.watchdog_resets,
                "auth_replay": {str(k): [w.last, w.seen] for k, w in self.auth_replay.items()},
                "key_generations": {str(k): g for k, g in self.key_generations.items()},
                "requests": self.requests.to_json(),
                "expected_seq": self.order.expected,
            }
        )

    @classmethod
    def load(cls, path: Path) -> NonVolatile:
        """Read ``path``; a missing file is a fresh store. The next boot is a power-on."""
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text())
            return cls(
                boot_count=int(raw["boot_count"]),
                watchdog_resets=int(raw["watchdog_resets"]),
                auth_replay=_replay(raw),
                key_generations={int(k): int(g) for k, g in raw.get("key_generations", {}).items()},
                requests=RequestMemory.from_json(raw.get("requests", [])),
                order=InOrder(_expected(raw.get("expected_seq"))),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(
                f"{path}: not a non-volatile store written by firmware_sim ({exc}); "
                "expected JSON with boot_count, watchdog_resets and auth_replay"
            ) from exc

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)


def _expected(raw: object) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, int) or not 0 <= raw <= MAX_SEQ_COUNT:
        raise ValueError(f"expected_seq must be a sequence count 0..{MAX_SEQ_COUNT}, got {raw!r}")
    return raw


def _replay(raw: dict) -> dict[int, ReplayWindow]:
    """The anti-replay windows of a store; one written before windows holds the highest
    number only (``auth_last_seq``), which is all a window starts from."""
    if "auth_replay" in raw:
        return {int(k): ReplayWindow(int(v[0]), int(v[1])) for k, v in raw["auth_replay"].items()}
    return {int(k): ReplayWindow(int(v)) for k, v in raw["auth_last_seq"].items()}


class Watchdog:
    """A timer the healthy main loop restarts; it expires when the loop stops."""

    def __init__(self, now: float) -> None:
        self.last_kick = now

    def kick(self, now: float) -> None:
        self.last_kick = now

    def expired(self, now: float, timeout_s: float) -> bool:
        return now - self.last_kick >= timeout_s


class AnomalyWindow:
    """Times of recent anomalies; ``record`` says when the threshold is reached."""

    def __init__(self) -> None:
        self.times: deque[float] = deque()
        self.total = 0

    def record(self, now: float, threshold: int, window_s: float) -> bool:
        self.total += 1
        self.times.append(now)
        return self.count(now, window_s) >= threshold

    def count(self, now: float, window_s: float) -> int:
        while self.times and now - self.times[0] > window_s:
            self.times.popleft()
        return len(self.times)

    def clear(self) -> None:
        self.times.clear()


class CounterTotal:
    """A wrapping 32-bit counter that resets may clear, as a growing total."""

    def __init__(self) -> None:
        self.last = 0
        self.total = 0

    def update(self, raw: int) -> int:
        """Fold in a new reading; returns the increase since the last one."""
        delta = raw - self.last if raw >= self.last else raw  # a reset, or a wrap
        self.last = raw
        self.total += delta
        return delta

    def rebase(self, raw: int = 0) -> None:
        """The hardware counter was cleared on purpose (or reset): read from ``raw`` on."""
        self.last = raw

    def clear(self) -> None:
        self.last = 0
        self.total = 0
