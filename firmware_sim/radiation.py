"""Upsets that arrive from an orbit, and where they land.

``ArrivalProcess`` is sans-I/O: built from an environment (``configs/environments``), the
bits exposed in each memory class, an acceleration factor and a seed, ``advance(t0, t1)``
returns what arrives in that span of mission time (seconds). Arrivals are Poisson. In
low Earth orbit the upset rate is shaped by the South Atlantic Anomaly: f_u / f_t times
the orbit average inside a pass, (1 - f_u) / (1 - f_t) times it outside, so that a day
holds the published average. SEFI and SEL arrive at their flat per-device rates.

The draws do not depend on how time is cut into spans: each stream keeps its next
arrival, so one call over a day and 86,400 calls of a second give the same events.

What is exposed comes from the build's site map (``testbed.sitemap``): its operand
memory is SRAM, every other class of storage element flip-flops, and the firmware's own
RAM is SRAM too (``Exposure``). ``UpsetLander`` is the flight software's collaborator
that lands the arrivals: a flip-flop upset on a bit drawn uniformly over the map's
flip-flop bits, an SRAM upset as a cluster of cells (``testbed.clusters``) placed
uniformly where it fits its scratchpad bank or the rows of the firmware RAM
(``firmware_sim.ram.RamLayout``), a SEFI as the sequencer upset that stands for it
(``firmware_sim.chip.sefi_faults``), an SEL as a latch-up. An upset the chip cannot
apply is counted as not landed, with the reason in the log, and never as landed.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from firmware_sim.accel.layout import Cell
from firmware_sim.chip import (
    Act,
    Chip,
    FaultRefused,
    SiteFault,
    cell_fault,
    sefi_faults,
    spm_layout,
)
from firmware_sim.environment import Environment as Power
from firmware_sim.ram import FirmwareRam
from protocol.codes import FaultKind
from testbed.clusters import Cluster
from testbed.clusters import draw as draw_cluster
from testbed.config.environment import SECONDS_PER_DAY, Environment
from testbed.sitemap import SiteClass, SiteMap
from testbed.sitemap_builds import Build

MEMORY_CLASSES = ("sram", "flipflop")
"""Memory classes with an upset rate in an environment file."""
MULTI_BIT_CLASSES = frozenset({"sram"})
"""Classes whose upsets may hit several adjacent cells (memory arrays, not flip-flops)."""
SRAM_SITES = frozenset({SiteClass.OPERAND_MEMORY})
"""Site-map classes that are SRAM cells; every other class of the map is flip-flops."""
UPSET_TARGETS = ("spm", "flipflop", "fw_ram")
"""Where an upset lands: scratchpad cells, the chip's flip-flops, the firmware RAM."""


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

    def next_arrival(self) -> float:
        """Mission time of the next upset, SEFI or SEL not yet returned (inf if none), so
        that a caller can step time from arrival to arrival."""
        upset = math.inf if self._next_upset is None else self._next_upset[1].time
        device = math.inf if self._next_device is None else self._next_device.time
        return min(upset, device)

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


@dataclass(frozen=True)
class Exposure:
    """What radiation can flip: the build's site map, split into its SRAM cells (operand
    memory) and its flip-flops (every other class), and the firmware RAM's bits."""

    spm: SiteMap
    flipflops: SiteMap
    ram_bits: int

    @classmethod
    def of(cls, build: Build, ram: FirmwareRam) -> Exposure:
        """The exposure of ``build``'s chip (its kept site map; ``SiteMapError`` if there
        is none) and of ``ram``."""
        sitemap = SiteMap.load(build)
        flops = [c for c in SiteClass if c not in SRAM_SITES]
        return cls(sitemap.select(*SRAM_SITES), sitemap.select(*flops), 8 * ram.size)

    def bits(self) -> dict[str, int]:
        """Bits per memory class of an environment file: SRAM (scratchpad and firmware
        RAM) and flip-flops."""
        return {"sram": self.spm.total_bits + self.ram_bits,
                "flipflop": self.flipflops.total_bits}  # fmt: skip


def exposed_bits(chip: Chip, ram: FirmwareRam) -> dict[str, int]:
    """Bits per memory class of the chip's build (from its site map) and of ``ram``."""
    return Exposure.of(chip.build, ram).bits()


class UpsetLander:
    """Lands the arrivals of ``process`` on the chip, the firmware RAM and the power model.

    An SRAM upset hits the scratchpad or the firmware RAM in proportion to their bits, as
    a cluster (``testbed.clusters.draw``: down the bit line with the environment's
    ``bit_line_share``, else along the word line or a block), its first cell drawn
    uniformly among those from which it fits its scratchpad bank (mapped to words by the
    build's layout) or the RAM's rows (mapped to octets by ``RamLayout``). A flip-flop
    upset hits a bit drawn uniformly over the site map's flip-flop bits. ``landed``
    counts what landed where (and SEFIs and SELs), ``landed_in_saa`` those that landed
    inside the anomaly, ``not_landed`` where the model could not apply one,
    ``flipflop_classes`` the site classes flip-flop upsets were drawn in (landed or not).
    ``exposure`` replaces the build's kept site map (``Exposure.of``) where a build has
    none.
    """

    def __init__(self, process: ArrivalProcess, chip: Chip, ram: FirmwareRam,
                 power: Power, exposure: Exposure | None = None) -> None:  # fmt: skip
        self.process = process
        self.chip = chip
        self.ram = ram
        self.power = power
        self.exposure = exposure or Exposure.of(chip.build, ram)
        self.bit_line_share = process.environment.multi_bit.bit_line_share.value
        self.rng = np.random.default_rng((process.seed, 1))
        # testbed.clusters draws with the standard library's generator, seeded from ours.
        self.cluster_rng = random.Random(int(self.rng.integers(2**63)))
        self.t = 0.0
        self.landed: Counter[str] = Counter()
        self.landed_in_saa: Counter[str] = Counter()
        self.not_landed: Counter[str] = Counter()
        self.flipflop_classes: Counter[SiteClass] = Counter()
        self._boot_landed: Counter[str] = Counter()
        self._boot_not_landed = 0

    @property
    def in_saa(self) -> bool:
        """Is the mission time last landed up to inside the South Atlantic Anomaly?"""
        return self.process.in_saa(self.t)

    def mark_boot(self) -> None:
        """The flight software booted: counts ``since_boot`` start again from here."""
        self._boot_landed = Counter(self.landed)
        self._boot_not_landed = self.not_landed.total()

    def since_boot(self, where: str) -> int:
        """Upsets landed in ``where`` (one of ``UPSET_TARGETS``) since the last boot."""
        return self.landed[where] - self._boot_landed[where]

    def not_landed_since_boot(self) -> int:
        """Upsets the model could not apply, wherever they were to land, since the last boot."""
        return self.not_landed.total() - self._boot_not_landed

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
                    self.chip.place(sefi_faults(None))
                    self.landed["sefi"] += 1
                    lines.append(f"radiation: SEFI at {a.time:.1f} s, the sequencer hangs")
                else:
                    self.power.latchup = True
                    self.landed["sel"] += 1
                    lines.append(f"radiation: SEL at {a.time:.1f} s, the accelerator latches up")
                continue
            where, why = self._sram(a.size) if a.memory == "sram" else self._flipflop()
            if why is None:
                self.landed[where] += 1
                self.landed_in_saa[where] += int(self.process.in_saa(a.time))
            else:
                self.not_landed[where] += 1
                lines.append(f"radiation: {a.kind.name} at {a.time:.1f} s not landed: {why}")
        upsets = {k: self.landed[k] - before[k] for k in UPSET_TARGETS}
        if any(upsets.values()):
            where = ", ".join(f"{k} {n}" for k, n in upsets.items() if n)
            lines.append(f"radiation: upsets landed up to {t:.1f} s: {where}")
        return lines

    def _sram(self, size: int) -> tuple[str, str | None]:
        """Land an SRAM upset of ``size`` cells: (where, why it did not land or None)."""
        spm, ram_bits = self.exposure.spm, self.exposure.ram_bits
        index = int(self.rng.integers(spm.total_bits + ram_bits))
        cluster = draw_cluster(size, self.cluster_rng, self.bit_line_share)
        if index >= spm.total_bits:
            return "fw_ram", self._ram_cluster(cluster)
        bank, _ = spm.site(index)
        rows, cells = bank.depth, bank.width  # a bank's physical rows and cells per row
        if cluster.rows > rows or cluster.cells > cells:
            return "spm", (
                f"a {cluster.orientation} cluster of {size} cells ({cluster.rows} x "
                f"{cluster.cells}) does not fit {bank.name} ({rows} rows of {cells} cells)"
            )
        row = int(self.rng.integers(rows - cluster.rows + 1))
        cell = int(self.rng.integers(cells - cluster.cells + 1))
        layout = spm_layout(self.chip.build)
        origin = Cell(int(bank.name.split("u_bank")[1][0]), row, cell)
        kind = FaultKind.MBU if size > 1 else FaultKind.SBU
        cells = layout.cluster(origin, cluster.offsets)
        faults = [cell_fault(Act.FLIP, c, layout, kind=kind) for c in cells]
        why = self._land(faults)
        return "spm", None if why is None else f"{bank.name} row {row} cell {cell}: {why}"

    def _ram_cluster(self, cluster: Cluster) -> str | None:
        """Land ``cluster`` in the firmware RAM, its first cell drawn uniformly among those
        from which it fits the RAM's rows (``RamLayout``); why it did not land, or None."""
        layout = self.ram.layout
        if cluster.rows > layout.rows or cluster.cells > layout.row_cells:
            return (
                f"a {cluster.orientation} cluster of {cluster.size} cells ({cluster.rows} x "
                f"{cluster.cells}) does not fit the firmware RAM ({layout.rows} rows of "
                f"{layout.row_cells} cells)"
            )
        row = int(self.rng.integers(layout.rows - cluster.rows + 1))
        cell = int(self.rng.integers(layout.row_cells - cluster.cells + 1))
        for address, bit in layout.cluster(*layout.bit_of(row, cell), cluster.offsets):
            self.ram.flip(address, bit)
        return None

    def _flipflop(self) -> tuple[str, str | None]:
        """Land a flip-flop upset: ("flipflop", why it did not land or None)."""
        flops = self.exposure.flipflops
        if not flops.total_bits:
            return "flipflop", f"build {flops.build.name} has no flip-flops in its site map"
        entry, bit = flops.site(int(self.rng.integers(flops.total_bits)))
        self.flipflop_classes[entry.cls] += 1
        if entry.depth != 1:
            return "flipflop", f"{entry.name} ({entry.cls}) is a memory, not a register"
        why = self._land([SiteFault(Act.FLIP, entry.name, bit)])
        return "flipflop", None if why is None else f"{entry.name} bit {bit}: {why}"

    def _land(self, faults: list[SiteFault]) -> str | None:
        """Flip bits of the chip now; why the chip could not, or None."""
        try:
            self.chip.check(faults)
        except FaultRefused as exc:
            return str(exc)
        self.chip.place(faults)
        return None
