"""Upsets that arrive from an orbit, and where they land.

``ArrivalProcess`` is sans-I/O: built from an environment (``configs/environments``), the
bits exposed in each memory class, an acceleration factor and a seed, ``advance(t0, t1)``
returns what arrives in that span of mission time (seconds). Arrivals are Poisson. In
low Earth orbit the upset rate is shaped by the South Atlantic Anomaly: f_u / f_t times
the orbit average inside a pass, (1 - f_u) / (1 - f_t) times it outside, so that a day
holds the published average. SEFI and SEL arrive at their flat per-device rates.

The draws do not depend on how time is cut into spans: each stream keeps its next
arrival, so one call over a day and 86,400 calls of a second give the same events.

``UpsetLander`` is the flight software's collaborator that lands them: scratchpad and
flip-flop upsets on uniformly chosen fault sites of the accelerator model, SRAM upsets
also in the firmware's own RAM, a SEFI as a hung sequencer, an SEL as a latch-up.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from firmware_sim.accel import NotModelled, SpmCell
from firmware_sim.backend import ModelBackend
from firmware_sim.environment import Environment as Power
from firmware_sim.ram import FirmwareRam
from protocol.codes import FaultKind
from testbed.config.environment import SECONDS_PER_DAY, Environment

MEMORY_CLASSES = ("sram", "flipflop")
"""Memory classes with an upset rate in an environment file."""
MULTI_BIT_CLASSES = frozenset({"sram"})
"""Classes whose upsets may hit several adjacent cells (memory arrays, not flip-flops)."""


@dataclass(frozen=True, slots=True)
class Upset:
    """One upset: when (mission seconds), in which memory class, SBU or MBU and its bits."""

    time: float
    memory: str
    kind: FaultKind
    size: int


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """A functional interrupt (SEFI) or a latch-up (SEL) of the device, at ``time``."""

    time: float
    kind: FaultKind


Arrival = Upset | DeviceEvent


class _SaaClock:
    """"Shaped" time, in which upsets arrive at their orbit-average rate, to mission time.

    Orbit k (period P) crosses the anomaly when floor((k+1) r) > floor(k r), with
    r = passes per day x P / 1 day, so the crossings spread evenly; a pass of length
    d = f_t x 1 day / passes per day sits in the middle of its orbit.
    """

    def __init__(self, period_s: float, pass_s: float, passes_per_day: float,
                 inside: float, outside: float) -> None:  # fmt: skip
        self.p, self.d = period_s, pass_s
        self.r = passes_per_day * period_s / SECONDS_PER_DAY
        self.a, self.b = inside, outside
        self.offset = (period_s - pass_s) / 2

    def crossing(self, k: int) -> bool:
        return math.floor((k + 1) * self.r) > math.floor(k * self.r)

    def in_pass(self, t: float) -> bool:
        k = math.floor(t / self.p)
        x = t - k * self.p
        return self.crossing(k) and self.offset <= x < self.offset + self.d

    def _orbit_start(self, k: int) -> float:
        return self.b * k * self.p + (self.a - self.b) * self.d * math.floor(k * self.r)

    def mission(self, s: float) -> float:
        """Mission time at shaped time ``s``: where the integral of the rate factor (1 on
        average) from 0 reaches ``s``."""
        mean = self.b * self.p + (self.a - self.b) * self.d * self.r
        k = max(math.floor(s / mean), 0)
        while k > 0 and self._orbit_start(k) > s:
            k -= 1
        while self._orbit_start(k + 1) <= s:
            k += 1
        y = s - self._orbit_start(k)
        if not self.crossing(k) or y < self.b * self.offset:
            return k * self.p + y / self.b
        pass_start = k * self.p + self.offset
        if y < self.b * self.offset + self.a * self.d or self.b == 0:
            # With no upsets outside (f_u = 1) rounding may put y at the pass's very end.
            return pass_start + min((y - self.b * self.offset) / self.a, self.d)
        return pass_start + self.d + (y - self.b * self.offset - self.a * self.d) / self.b


class ArrivalProcess:
    """Poisson arrivals of upsets, SEFIs and SELs for ``bits`` exposed in ``environment``.

    ``bits`` maps a memory class (``sram``, ``flipflop``) to its bit count;
    ``acceleration`` multiplies every rate (mission time itself is not compressed);
    ``devices`` is how many devices the SEFI and SEL rates apply to.
    """

    def __init__(
        self,
        environment: Environment,
        bits: Mapping[str, int],
        acceleration: float = 1.0,
        seed: int = 0,
        devices: int = 1,
    ) -> None:
        unknown = set(bits) - set(MEMORY_CLASSES)
        if unknown:
            raise ValueError(
                f"memory classes {sorted(unknown)} have no rate: use {', '.join(MEMORY_CLASSES)}"
            )
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in bits.values()):
            raise ValueError(f"bit counts must be integers >= 0, got {dict(bits)}")
        if not (math.isfinite(acceleration) and acceleration > 0):
            raise ValueError(f"acceleration must be a positive number, got {acceleration}")
        if devices < 0:
            raise ValueError(f"devices must be >= 0, got {devices}")
        self.environment = environment
        self.bits = dict(bits)
        self.acceleration = acceleration
        self.seed = seed
        env = environment
        per_s = acceleration / SECONDS_PER_DAY
        per_bit = {
            "sram": env.sram_upsets_per_bit_day.value,
            "flipflop": env.flipflop_upsets_per_bit_day.value,
        }
        self.upset_rates = {c: per_bit[c] * n * per_s for c, n in self.bits.items()}
        """Orbit-average upsets per mission second, by memory class."""
        self.device_rates = {
            FaultKind.SEFI: env.sefi_per_device_day.value * devices * per_s,
            FaultKind.SEL: env.sel_per_device_day.value * devices * per_s,
        }
        """SEFIs and SELs per mission second."""
        saa = env.saa
        self._clock = None if saa is None else _SaaClock(
            saa.orbit_period_s, saa.pass_s, saa.passes_per_day.value,
            saa.inside_factor, saa.outside_factor,
        )  # fmt: skip
        clusters = env.multi_bit.clusters
        self._mbu_share = env.multi_bit.share.value
        self._sizes = list(clusters.sizes)
        self._size_cdf = np.cumsum(clusters.probabilities)
        self._classes = [c for c, r in self.upset_rates.items() if r > 0]
        self._class_cdf = np.cumsum([self.upset_rates[c] for c in self._classes])
        self._device_kinds = [k for k, r in self.device_rates.items() if r > 0]
        self._device_cdf = np.cumsum([self.device_rates[k] for k in self._device_kinds])
        upset_seq, device_seq = np.random.SeedSequence(seed).spawn(2)
        self._upset_rng = np.random.default_rng(upset_seq)
        self._device_rng = np.random.default_rng(device_seq)
        self._next_upset = self._draw_upset(0.0)
        self._next_device = self._draw_device(0.0)

    # --- time in and out of the anomaly ------------------------------------------------

    def in_saa(self, t: float) -> bool:
        """Is mission time ``t`` inside a pass through the South Atlantic Anomaly?"""
        return self._clock is not None and self._clock.in_pass(t)

    def _mission(self, s: float) -> float:
        return s if self._clock is None else self._clock.mission(s)

    # --- the two streams ---------------------------------------------------------------

    def _draw_upset(self, after_s: float) -> tuple[float, Upset] | None:
        """The next upset after shaped time ``after_s``, with its shaped time; None if no
        class has a rate."""
        if not self._classes:
            return None
        u = self._upset_rng.random(4)  # always four draws: results do not depend on spans
        s = after_s - math.log1p(-u[0]) / float(self._class_cdf[-1])
        memory = self._classes[int(np.searchsorted(self._class_cdf, u[1] * self._class_cdf[-1]))]
        kind, size = FaultKind.SBU, 1
        if memory in MULTI_BIT_CLASSES and u[2] < self._mbu_share:
            kind = FaultKind.MBU
            i = min(
                int(np.searchsorted(self._size_cdf, u[3] * self._size_cdf[-1])),
                len(self._sizes) - 1,
            )
            size = self._sizes[i]
        return s, Upset(self._mission(s), memory, kind, size)

    def _draw_device(self, after: float) -> DeviceEvent | None:
        if not self._device_kinds:
            return None
        u = self._device_rng.random(2)
        t = after - math.log1p(-u[0]) / float(self._device_cdf[-1])
        kind = self._device_kinds[
            int(np.searchsorted(self._device_cdf, u[1] * self._device_cdf[-1]))
        ]
        return DeviceEvent(t, kind)

    def advance(self, t0: float, t1: float) -> list[Arrival]:
        """What arrives in mission time [t0, t1), in time order.

        Spans follow each other; arrivals before ``t0`` that an earlier call did not ask
        for (a gap between spans) are dropped, as if that time was not flown.
        """
        if t1 < t0:
            raise ValueError(f"span must not run backwards: t0 {t0}, t1 {t1}")
        out: list[Arrival] = []
        while self._next_upset is not None and self._next_upset[1].time < t1:
            s, upset = self._next_upset
            if upset.time >= t0:
                out.append(upset)
            self._next_upset = self._draw_upset(s)
        while self._next_device is not None and self._next_device.time < t1:
            if self._next_device.time >= t0:
                out.append(self._next_device)
            self._next_device = self._draw_device(self._next_device.time)
        out.sort(key=lambda a: a.time)
        return out


def exposed_bits(backend: ModelBackend, ram: FirmwareRam) -> dict[str, int]:
    """Bits per memory class: scratchpad cells and firmware RAM are SRAM, the rest flip-flops."""
    counts = backend.chip.fault_site_counts()
    spm = counts[SpmCell]
    return {"sram": spm + 8 * ram.size, "flipflop": sum(counts.values()) - spm}


class UpsetLander:
    """Lands the arrivals of ``process`` on the chip, the firmware RAM and the power model.

    SRAM upsets hit a uniformly chosen bit among the scratchpad cells and the firmware
    RAM; a multi-bit upset flips that many adjacent cells of the row (cut short at the
    row's end), or adjacent bits of RAM. Flip-flop upsets hit a uniformly chosen
    flip-flop fault site of the model. ``landed`` counts what landed where;
    ``not_landed`` what the model could not apply (never counted as landed).
    """

    def __init__(self, process: ArrivalProcess, backend: ModelBackend, ram: FirmwareRam,
                 power: Power) -> None:  # fmt: skip
        self.process = process
        self.backend = backend
        self.ram = ram
        self.power = power
        self.rng = np.random.default_rng((process.seed, 1))
        self.t = 0.0
        self.landed: Counter[str] = Counter()
        self.not_landed = 0

    def advance(self, t: float) -> list[str]:
        """Land what arrives up to mission time ``t``; log lines of what happened."""
        if t <= self.t:
            return []
        arrivals = self.process.advance(self.t, t)
        self.t = t
        before = Counter(self.landed)
        lines = []
        for a in arrivals:
            if isinstance(a, DeviceEvent):
                if a.kind == FaultKind.SEFI:
                    self.backend.hang()
                    self.landed["sefi"] += 1
                    lines.append(f"radiation: SEFI at {a.time:.1f} s, the sequencer hangs")
                else:
                    self.power.latchup = True
                    self.landed["sel"] += 1
                    lines.append(f"radiation: SEL at {a.time:.1f} s, the accelerator latches up")
            elif a.memory == "sram":
                self._sram(a.size)
            else:
                self._flipflop()
        upsets = {
            k: n - before[k] for k, n in self.landed.items() if k in ("spm", "fw_ram", "flipflop")
        }
        if any(upsets.values()):
            where = ", ".join(f"{k} {n}" for k, n in upsets.items() if n)
            lines.append(f"radiation: upsets landed up to {t:.1f} s: {where}")
        return lines

    def _sram(self, size: int) -> None:
        chip = self.backend.chip
        spm = chip.fault_site_counts()[SpmCell]
        index = int(self.rng.integers(spm + 8 * self.ram.size))
        if index < spm:
            cell = chip.fault_site(index)
            assert isinstance(cell, SpmCell)
            width = min(size, self.backend.layout.row_cells - cell.cell)
            self.backend.flip(self.backend.layout.adjacent(cell, width))
            self.landed["spm"] += 1
            return
        first = index - spm
        for bit in range(first, min(first + size, 8 * self.ram.size)):
            self.ram.flip(*divmod(bit, 8))
        self.landed["fw_ram"] += 1

    def _flipflop(self) -> None:
        chip = self.backend.chip
        spm = chip.fault_site_counts()[SpmCell]
        site = chip.fault_site(spm + int(self.rng.integers(chip.fault_site_count() - spm)))
        try:
            self.backend.flip([site])
        except (ValueError, NotModelled):
            self.not_landed += 1
            return
        self.landed["flipflop"] += 1
