"""The mission soak: the chip model flown through an orbit for a span of simulated time.

Upsets arrive as the environment's Poisson process (``firmware_sim.radiation``: SAA
shaping, multi-bit clusters, SEFIs and latch-ups), every rate multiplied by the
acceleration; they land on the model between jobs. The scrubber runs at its period,
jobs run at a duty cycle, and the soak acts as the flight software: it compares each
result with the golden one, resets and reloads the chip after a hang or a SEFI, power
cycles it after a latch-up, and repairs the words the scrubber finds uncorrectable.

Time advances from event to event (an arrival, the end of a recovery), never cycle by
cycle: an idle stretch is one ``idle(cycles)`` call, and jobs that must repeat the last
outcome (nothing landed, no recovery, no reload and no scrub step on a damaged word of
the operands since the last two ran and agreed) are counted without being run, their
scrub steps taken in one call.

Counts are per outcome class (``campaign.outcome``, the rules of every campaign
backend) for jobs, and per incident for rates: an SDC or detected incident is a run of
consecutive jobs of that class (one flipped weight in an unprotected memory makes every
later job wrong until it is reloaded: one incident, many SDC jobs). Rates per simulated
device-day (mission time, outages included) carry exact 95 % Poisson intervals. FIT
(failures per 1e9 device-hours) takes them back to the environment's own rates by
dividing by the acceleration: exact for effects of single upsets, while effects of two
upsets in one scrub period grow with the square of the rate and are overstated by the
acceleration factor (``analytic_uncorrectable_per_day`` gives their expected rate at
any rate).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from campaign.outcome import CLASSES, MITIGATION_COUNTERS, Observation, Outcome, classify
from campaign.stats import per_day_to_fit, quantile
from firmware_sim.accel import EccStatus, SpmCell, gemm_reference
from firmware_sim.accel.regs import ERR_CODE_SHIFT, FIELD_MASKS, SEQ_WIDTHS, Ctrl, Reg, Resp, Status
from firmware_sim.accel.sitemap_sites import MODEL_ENTRIES
from firmware_sim.chip import ACCEL_CLOCK_HZ, ModelChip, spm_layout
from firmware_sim.core import MONITOR_PERIOD_S
from firmware_sim.environment import Environment as Power
from firmware_sim.environment import EnvironmentConfig
from firmware_sim.radiation import ArrivalProcess, Exposure, UpsetLander
from firmware_sim.ram import FirmwareRam
from firmware_sim.services.parameters import PARAMETERS
from protocol.payloads import ParamId
from testbed.config.environment import SECONDS_PER_DAY, Environment
from testbed.sitemap import Entry, SiteClass, SiteMap, SiteMapError
from testbed.sitemap_builds import Build

CONFIDENCE = 0.95
MASK32 = 0xFFFFFFFF
JOB_REGS = (Reg.DIM_M, Reg.DIM_K, Reg.DIM_N, Reg.A_ADDR, Reg.B_ADDR, Reg.BIAS_ADDR,
            Reg.C_ADDR, Reg.EPILOGUE)  # fmt: skip
"""The registers the flight software writes for every job."""
RATE_KINDS = ("sdc", "detected", "hang", "sefi", "sel", "uncorrectable")
"""Events a soak gives a rate for: incidents of job outcomes, device events, and words
the scrubber found uncorrectable."""
LANDED_BY_SITEMAP = "site map"
LANDED_ON_CELLS = "scratchpad cells (the build has no kept site map: flip-flops not exposed)"


@dataclass(frozen=True)
class SoakSpec:
    """What to fly: a build in an environment for ``days`` of simulated time.

    ``acceleration`` multiplies every rate of the environment (upsets, SEFI, SEL);
    ``scrub_period`` is the SCRUB_PERIOD register (idle cycles between scrub steps, 0
    stops the scrubber) and ``clock_hz`` the chip clock that maps cycles to seconds.
    ``duty_cycle`` is the share of time the chip computes the ``workload`` GEMM
    (M, K, N of int8 operands drawn from ``seed``); 0 runs no job. B stays resident in
    the scratchpad as weights do; A is loaded for every job. ``reset_s`` is how long a
    hang or a SEFI keeps the chip from serving jobs (noticed within one monitor period,
    then soft reset, reconfiguration and reload: an estimate), ``power_cycle_s`` the same
    for a latch-up (noticed, power off and on, reload: an estimate). ``samples`` is the
    number of points of the time series. ``run_every_job`` runs every job in the model
    instead of counting the ones that must repeat the last outcome (slow: to check that
    shortcut). ``network``: a network of configs/workloads flown instead of the GEMM,
    its weights resident and its test images classified in turn
    (``campaign.network_soak``).
    """

    build: Build
    environment: Environment
    days: float
    acceleration: float = 1.0
    scrub_period: int = PARAMETERS[ParamId.SCRUB_PERIOD].default
    clock_hz: float = ACCEL_CLOCK_HZ
    duty_cycle: float = 1e-3
    workload: tuple[int, int, int] = (16, 16, 16)
    seed: int = 0
    reset_s: float = MONITOR_PERIOD_S + 1.0
    power_cycle_s: float = MONITOR_PERIOD_S + 10.0
    samples: int = 100
    run_every_job: bool = False
    network: Path | None = None

    def check(self) -> None:
        """Raise ValueError (one line, naming the field and its range) for a spec that
        cannot be flown."""

        def positive(name: str, value: float) -> None:
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"soak: {name} must be a number above 0, got {value}")

        positive("days", self.days)
        positive("acceleration", self.acceleration)
        positive("clock_hz", self.clock_hz)
        if not 0 <= self.scrub_period <= FIELD_MASKS["SCRUB_PERIOD"]:
            raise ValueError(f"soak: scrub_period must be 0 .. {FIELD_MASKS['SCRUB_PERIOD']} "
                             f"cycles, got {self.scrub_period}")  # fmt: skip
        if not 0 <= self.duty_cycle < 1:
            raise ValueError(f"soak: duty_cycle must be at least 0 and below 1, "
                             f"got {self.duty_cycle}")  # fmt: skip
        dims = len(self.workload) == 3 and all(1 <= d <= 0xFFF for d in self.workload)
        if self.network is None and not dims:
            raise ValueError(f"soak: workload must be (M, K, N), each 1 .. 4095, "
                             f"got {self.workload}")  # fmt: skip
        for name in ("reset_s", "power_cycle_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"soak: {name} must be a number of seconds >= 0, got {value}")
        if not 1 <= self.samples <= 100_000:
            raise ValueError(f"soak: samples must be 1 .. 100000, got {self.samples}")

    @property
    def scrub_pass_s(self) -> float:
        """Seconds the idle scrubber takes to visit every word once (inf if it is off)."""
        if not (self.build.scrub and self.scrub_period):
            return math.inf
        return 2 * self.build.bank_words * (self.scrub_period + 2) / self.clock_hz


@dataclass(frozen=True)
class Rate:
    """A count of events over the soak: per simulated device-day (at the accelerated
    rates) and FIT at the environment's own rates, each (value, low, high) at 95 %."""

    count: int
    per_day: tuple[float, float, float]
    fit: tuple[float, float, float]


@dataclass
class SoakResult:
    """What a soak counted, its rates, availability and time series.

    ``jobs``: jobs by outcome class (``campaign.outcome.Outcome`` values) and
    ``missed`` (due while the chip was down); ``simulated_jobs`` how many of them the model ran.
    ``incidents``: SDC and detected incidents (runs of such jobs), hangs, SEFIs, SELs,
    uncorrectable words found by the scrubber, and ``upsets`` landed. ``landed`` and
    ``not_landed``: upsets by where they were to land (``UPSET_TARGETS`` of
    ``firmware_sim.radiation``, ``sefi``, ``sel``); one the model cannot take is counted
    in ``not_landed`` only, with its reasons in ``not_landed_reasons``. ``availability``
    is the share of time the chip could serve jobs. ``series`` holds (day, cumulative
    counts by kind) at ``spec.samples`` points.
    """

    build: str
    environment: str
    days: float
    acceleration: float
    landing: str
    scrub_pass_s: float
    job_period_s: float | None
    jobs: dict[str, int]
    simulated_jobs: int
    incidents: dict[str, int]
    rates: dict[str, Rate]
    landed: dict[str, int]
    not_landed: dict[str, int]
    not_landed_reasons: dict[str, int]
    downtime_s: float
    availability: float
    series: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    wall_s: float = 0.0
    #: A network soak's accuracy over mission time (``campaign.network_soak``), else None.
    network: dict | None = None

    def to_json(self) -> str:
        """The result as a JSON document."""
        data: dict[str, Any] = asdict(self)
        if math.isinf(self.scrub_pass_s):
            data["scrub_pass_s"] = None  # no scrubber: JSON has no infinity
        data["series"] = [{"day": d, **counts} for d, counts in self.series]
        return json.dumps(data, indent=2, default=_json_number)

    @property
    def title(self) -> str:
        """Build, environment, acceleration and span, as the plot is titled."""
        return (f"soak: {self.build} in {self.environment}, x{self.acceleration:g} rates, "
                f"{self.days:g} days")  # fmt: skip

    def plot(self, ax: Any) -> None:
        """Draw the cumulative counts against simulated days on a matplotlib ``ax``."""
        days = [d for d, _ in self.series]
        for kind in (*RATE_KINDS, "upsets"):
            counts = [c[kind] for _, c in self.series]
            if any(counts):
                ax.step(days, counts, where="post", label=kind)
        ax.set_xlabel("simulated days")
        ax.set_ylabel("cumulative count")
        ax.set_title(self.title, fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)


def _json_number(value: object) -> object:
    if isinstance(value, np.integer | np.floating):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


# --- the analysis ------------------------------------------------------------------------


def analytic_uncorrectable_per_day(
    words: int, bits_per_word: int, rate_per_bit_day: float, scrub_days: float,
    double_share: float = 0.0,
) -> float:  # fmt: skip
    """Expected uncorrectable SECDED words per day for ``words`` words of
    ``bits_per_word`` bits (data and check), ``rate_per_bit_day`` upsets per bit-day
    (L), each word scrubbed every ``scrub_days`` (T), a share ``double_share`` (f) of
    upsets flipping two bits of one word.

    W n (n - 1) L1^2 T / 2 + f W n L, with L1 = (1 - f) L the rate of single upsets:
    two single upsets in different bits of one word within a scrub period, plus the
    double upsets themselves (../shared/RADIATION.md, "Scrubbing and SECDED", derived
    for independent single upsets; first order in n L T, good while n L T << 1).
    """
    w, n, lam, t, f = words, bits_per_word, rate_per_bit_day, scrub_days, double_share
    single = (1.0 - f) * lam
    return w * n * (n - 1) * single * single * t / 2.0 + f * w * n * lam


def _poisson_cdf(k: int, mean: float) -> float:
    """P(X <= k) for X Poisson with ``mean``."""
    if mean <= 0:
        return 1.0
    log_term = -mean
    total = math.exp(log_term)
    for i in range(1, k + 1):
        log_term += math.log(mean / i)
        total += math.exp(log_term)
    return min(total, 1.0)


def _solve(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """x in [lo, hi] with f(x) = target, f decreasing, by bisection."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


def poisson_interval(k: int, exposure: float, confidence: float = CONFIDENCE
                     ) -> tuple[float, float, float]:  # fmt: skip
    """(rate, low, high) of ``k`` events in ``exposure`` (device-days, hours ...): the
    exact (Garwood) interval, each tail at most (1 - confidence) / 2."""
    if k < 0:
        raise ValueError(f"k must be a count >= 0, got {k}")
    if not (math.isfinite(exposure) and exposure > 0):
        raise ValueError(f"exposure must be above 0, got {exposure}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be within 0 .. 1 (exclusive), got {confidence}")
    tail = (1.0 - confidence) / 2.0
    if k > 1000:
        # Wilson and Hilferty's cube-root approximation: within 1e-4 of exact from here on.
        z = quantile(confidence)
        lo = k * (1 - 1 / (9 * k) - z / (3 * math.sqrt(k))) ** 3
        k1 = k + 1
        hi = k1 * (1 - 1 / (9 * k1) + z / (3 * math.sqrt(k1))) ** 3
        return k / exposure, lo / exposure, hi / exposure
    top = k + 10.0 * math.sqrt(k + 1) + 10.0
    lo = 0.0 if k == 0 else _solve(lambda m: _poisson_cdf(k - 1, m), 1 - tail, 0.0, top)
    hi = _solve(lambda m: _poisson_cdf(k, m), tail, 0.0, top)
    return k / exposure, lo / exposure, hi / exposure


# --- the flight -------------------------------------------------------------------------


def _cells_exposure(build: Build) -> Exposure:
    """The scratchpad's cells alone, from the build's layout, for a build whose site map
    is not kept: its flip-flops are unknown and not exposed."""
    lay = spm_layout(build)
    spm_entry = next(e for e in MODEL_ENTRIES if e.kind is SpmCell)
    banks = tuple(
        Entry(spm_entry.to_entry(SpmCell(b, 0, 0))[0], SiteClass.OPERAND_MEMORY, "memory",
              width=lay.row_cells, depth=lay.rows)
        for b in (0, 1)
    )  # fmt: skip
    return Exposure(SiteMap(build, banks), SiteMap(build, ()), 0)


def _cells_and_sequencer(build: Build, cells: SiteMap) -> SiteMap:
    """The sites a soak's chip may be hit in where the build has no kept map: its cells,
    and the sequencer registers a SEFI upsets (``firmware_sim.chip.sefi_faults``)."""
    copies = range(3 if build.tmr else 1)
    seq = tuple(
        Entry(f"u_seq.u_{name}.q_q[{c}]", SiteClass.SEQUENCER, "flop", width, copy=c)
        for name, width in SEQ_WIDTHS.items()
        for c in copies
    )
    return SiteMap(build, tuple(cells) + seq)


class _Soak:
    """One soak in flight: the chip, the upsets landing on it, and the tallies."""

    def __init__(self, spec: SoakSpec) -> None:
        spec.check()
        self.spec = spec
        self.power = Power(EnvironmentConfig())
        ram = FirmwareRam(0)  # the chip alone: no firmware RAM exposed
        sitemap = None
        try:
            exposure = Exposure.of(spec.build, ram)
            self.landing = LANDED_BY_SITEMAP
        except SiteMapError:
            exposure = _cells_exposure(spec.build)
            sitemap = _cells_and_sequencer(spec.build, exposure.spm)
            self.landing = LANDED_ON_CELLS
        self.backend = ModelChip(spec.build, spec.clock_hz, sitemap)
        self.chip = self.backend.chip
        process = ArrivalProcess(spec.environment, exposure.bits(), spec.acceleration,
                                 seed=spec.seed)  # fmt: skip
        self.lander = UpsetLander(process, self.backend, ram, self.power, exposure)
        self.scrubs = spec.build.ecc and spec.build.scrub
        self.words = self.chip.spm_words
        self.end = round(spec.days * SECONDS_PER_DAY * spec.clock_hz)
        self.cyc = 0
        self.jobs: Counter[str] = Counter()
        self.simulated = 0
        self.events: dict[str, list[int]] = {k: [] for k in (*RATE_KINDS, "upsets")}
        self.not_landed_reasons: Counter[str] = Counter()
        self.down_until: int | None = None
        self.downtime = 0
        self.last: tuple[str, bytes] | None = None  # outcome and C of the last job run
        self.stable = False
        self.previous_outcome: str | None = None
        self._workload()
        self._configure()

    # --- setup ---------------------------------------------------------------------

    def _workload(self) -> None:
        """Operands, golden result, the memory image to repair from, the job period."""
        spec = self.spec
        self.image = np.zeros((self.words, spec.build.n), dtype=np.uint8)
        self.period: int | None = None
        if spec.duty_cycle == 0:
            return
        m, k, ncols = spec.workload
        rng = np.random.default_rng((spec.seed, 2))
        self.a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        self.b = rng.integers(-128, 128, (k, ncols), dtype=np.int8)
        self.golden = gemm_reference(self.a, self.b)
        try:
            self.place = self.chip.load_job(self.a, self.b)
        except ValueError as exc:
            raise ValueError(f"soak: workload {spec.workload} does not fit build "
                             f"{spec.build.name}: {exc}") from None  # fmt: skip
        self.regs = {r: self.chip.read_reg(r) for r in JOB_REGS}
        self.a_words = self.chip.pack_a(self.a)
        self.b_words = self.chip.pack_b(self.b)
        reference = ModelChip(self.backend.build).chip
        c, err = reference.run_gemm(self.a, self.b)
        if err or not np.array_equal(c, self.golden):
            raise RuntimeError(f"soak: the model's clean job disagrees with the reference "
                               f"GEMM (error {err})")  # fmt: skip
        self.image = reference.dump(0, self.words)
        self.job_cycles = reference.read_reg(Reg.CYCLES)
        self.period = max(round(self.job_cycles / spec.duty_cycle), self.job_cycles + 1)

    def _configure(self) -> None:
        """What the flight software does after every reset: the scrub period."""
        self.chip = self.backend.chip
        self.chip.write_reg(Reg.SCRUB_PERIOD, self.spec.scrub_period)

    def _reload(self) -> None:
        """Operands back into the scratchpad, job registers programmed."""
        if self.period is not None:
            self.chip.load_job(self.a, self.b)

    # --- time ----------------------------------------------------------------------

    def fly(self, progress: Callable[[int, int], None] | None) -> None:
        """From 0 to the end, event by event."""
        process = self.lander.process
        total_s = int(self.end / self.spec.clock_hz)
        next_report = 0
        while self.cyc < self.end:
            arrival = process.next_arrival()
            c_arrival = (
                math.inf if math.isinf(arrival) else math.floor(arrival * self.spec.clock_hz)
            )
            target = min(c_arrival, self.end, self.down_until or math.inf)
            target = max(int(target), self.cyc)
            self._run_until(target)
            if self.down_until is not None and self.cyc >= self.down_until:
                self._recover()
            if c_arrival <= self.cyc and self.cyc < self.end:
                self._land(arrival)
            if progress is not None and self.cyc >= next_report:
                progress(int(self.cyc / self.spec.clock_hz), total_s)
                next_report = self.cyc + self.end // 100
        if progress is not None:
            progress(total_s, total_s)

    def _land(self, arrival: float) -> None:
        """Land what arrives at ``arrival`` (mission seconds) and act on device events."""
        before = Counter(self.lander.landed)
        for line in self.lander.advance(math.nextafter(arrival, math.inf)):
            if " not landed: " in line:
                # Grouped by element: the bit, row and cell numbers apart.
                why = re.sub(r"\b(bit|row|cell) \d+", r"\1 #", line.split(" not landed: ", 1)[1])
                self.not_landed_reasons[why] += 1
        new = Counter(self.lander.landed)
        new.subtract(before)
        self._changed()
        for kind in ("spm", "flipflop", "fw_ram"):
            self.events["upsets"] += [self.cyc] * new[kind]
        if new["sel"]:
            self.events["sel"] += [self.cyc] * new["sel"]
            # Powered off and on again: memory and registers are lost until the reload.
            self.power.latchup = False
            self.backend.power_cycle()
            self.chip = self.backend.chip
            self._go_down(self.spec.power_cycle_s)
        if new["sefi"]:
            self.events["sefi"] += [self.cyc] * new["sefi"]
            self._go_down(self.spec.reset_s)

    def _go_down(self, seconds: float) -> None:
        until = self.cyc + max(round(seconds * self.spec.clock_hz), 1)
        self.down_until = max(self.down_until or 0, until)

    def _recover(self) -> None:
        """Soft reset, reconfigure, reload: the chip serves jobs again."""
        self.backend.write(int(Reg.CTRL), int(Ctrl.SOFT_RESET))
        self._configure()
        self._reload()
        self.down_until = None
        self._changed()
        self.previous_outcome = None

    def _changed(self) -> None:
        """The chip's state changed: the next two jobs must run before any is repeated."""
        self.stable = False
        self.last = None

    def _run_until(self, target: int) -> None:
        """Jobs and idle stretches up to cycle ``target``; nothing lands meanwhile."""
        while True:
            next_job = self._next_job()
            if next_job is None or next_job > target:
                self._idle_to(target)
                return
            due = (target - next_job) // self.period + 1
            if self.down_until is not None:
                self._missed(next_job, due)
                self._idle_to(target)
                return
            self._serve(next_job, due)

    def _missed(self, start: int, due: int) -> None:
        """``due`` jobs from cycle ``start`` that the chip, being down, cannot serve."""
        self.jobs["missed"] += due

    def _serve(self, next_job: int, due: int) -> None:
        """The job due at ``next_job``, and maybe more of the ``due`` before the target:
        repeated when they must end as the last one did."""
        if self.stable and not self.spec.run_every_job:
            repeat = min(due, self._repeatable())
            if repeat > 0:
                self._repeat(repeat)
                return
        self._idle_to(next_job)
        self._job()

    def _next_job(self) -> int | None:
        """Start cycle of the next job after the chip's current cycle (None: no jobs)."""
        if self.period is None:
            return None
        return (self.cyc // self.period + 1) * self.period

    def _idle_to(self, target: int) -> None:
        """Idle cycles up to ``target``, in one call; nothing runs while the chip is hung."""
        cycles = target - self.cyc
        if cycles <= 0:
            return
        if self.down_until is not None:
            self.downtime += cycles
        start, self.cyc = self.cyc, target
        if not self.chip.hung:
            snap = self._scrub_position()
            self.chip.idle(cycles)
            self._found(snap, start, self.chip.config("SCRUB_PERIOD") + 2)

    # --- the scrubber's finds --------------------------------------------------------

    def _scrub_position(self) -> tuple[int, int]:
        return self.chip.read_reg(Reg.SCRUB_PTR), self.chip.read_reg(Reg.SCRUB_PASSES)

    def _found(self, snap: tuple[int, int], start: int, step_cycles: float) -> bool:
        """Count and repair the uncorrectable words the scrubber visited since ``snap``
        (a scrubbed word stays dirty only if it is uncorrectable); whether it found any.

        The scrubber's k-th step since ``snap`` is dated ``start + k * step_cycles``,
        at the latest the chip's current cycle.
        """
        if not self.scrubs or not self.chip.spm.dirty:
            return False
        ptr0, passes0 = snap
        ptr1, passes1 = self._scrub_position()
        steps = ((passes1 - passes0) & MASK32) * self.words + ptr1 - ptr0
        if steps <= 0:
            return False
        visited = [w for w in self.chip.spm.dirty if steps >= self.words
                   or (w - ptr0) % self.words < steps]  # fmt: skip
        if not visited:
            return False
        _, status = self.chip.spm.decode_words(visited)
        bad = [w for w, s in zip(visited, status, strict=True) if s == EccStatus.UNCORRECTABLE]
        for w in bad:
            # The flight software rewrites the word from what it loaded there.
            self.chip.load(w, self.image[w : w + 1])
        for w in bad:
            when = start + math.ceil(((w - ptr0) % self.words + 1) * step_cycles)
            self.events["uncorrectable"].append(min(when, self.cyc))
        if bad:
            self._changed()
        return bool(bad)

    # --- jobs ------------------------------------------------------------------------

    def _steps_per_gap(self) -> int:
        """Scrub steps between two jobs: START restarts the timer, and completes a step
        in progress (``Accelerator.idle``)."""
        period = self.chip.config("SCRUB_PERIOD")
        if not self.scrubs or period == 0:
            return 0
        gap = self.period - self.job_cycles
        return gap // (period + 2) + int(gap % (period + 2) >= period)

    def _repeatable(self) -> int | float:
        """How many coming jobs see the state the last job saw: until the scrubber
        reaches a damaged word of B (while nothing lands, the only change a job can see:
        A is loaded for each job and C written by it)."""
        steps = self._steps_per_gap()
        lo, hi = self.place.b_addr, self.place.b_addr + self.place.b_words
        dirty = [w for w in self.chip.spm.dirty if lo <= w < hi]
        if steps == 0 or not dirty:
            return math.inf
        ptr = self.chip.read_reg(Reg.SCRUB_PTR)
        reach = min((w - ptr) % self.words for w in dirty) + 1
        return math.ceil(reach / steps) - 1

    def _repeat(self, count: int) -> None:
        """``count`` jobs with the last job's outcome, their gaps' scrub steps at once."""
        assert self.last is not None
        self.jobs[self.last[0]] += count
        steps = self._steps_per_gap()
        start = self.cyc
        self.cyc += count * self.period
        if steps:
            snap = self._scrub_position()
            self.chip.scrub_steps(count * steps)
            # Uncorrectable words outside B may be found meanwhile: no job sees them.
            self._found(snap, start, self.period / steps)

    def _job(self) -> None:
        """Run one job now and classify it against the golden result."""
        chip, backend = self.chip, self.backend
        corr = chip.read_reg(Reg.ECC_CORR), chip.read_reg(Reg.TMR_MISMATCH)
        snap = self._scrub_position()
        chip.load(self.place.a_addr, self.a_words)
        resp = [backend.write(int(r), v) for r, v in self.regs.items()]
        resp.append(backend.write(int(Reg.CTRL), int(Ctrl.START)))
        self.simulated += 1
        self.cyc += self.job_cycles
        c, repaired = b"", False
        if chip.hung:
            seen = Observation(None, hung=True)
        else:
            repaired = self._found(snap, self.cyc, 0)
            status = chip.read_reg(Reg.STATUS)
            m, _, ncols = self.spec.workload
            result = chip.unpack_c(chip.dump(self.place.c_addr, self.place.c_words), m, ncols)
            c = result.tobytes()
            error = ""
            if status & Status.ERROR:
                error = f"the job ended with ERR_CODE {status >> ERR_CODE_SHIFT}"
            elif any(r != Resp.OKAY for r in resp):
                error = "the chip refused a write of the job"
            moved = (chip.read_reg(Reg.ECC_CORR) - corr[0] & MASK32,
                     chip.read_reg(Reg.TMR_MISMATCH) - corr[1] & MASK32)  # fmt: skip
            counters = dict(zip(MITIGATION_COUNTERS, moved, strict=True))
            seen = Observation(result, error, False, counters)
        outcome = classify(seen, self.golden).outcome
        self.jobs[outcome.value] += 1
        kind = {Outcome.SDC: "sdc", Outcome.DETECTED: "detected", Outcome.HANG: "hang"}
        if outcome in kind and (outcome is Outcome.HANG or self.previous_outcome != outcome):
            self.events[kind[outcome]].append(self.cyc)
        self.previous_outcome = outcome.value
        now = (outcome.value, c)
        self.stable = now == self.last
        self.last = now
        if outcome is Outcome.HANG:
            self._go_down(self.spec.reset_s)
            self._changed()
        elif outcome is Outcome.DETECTED:
            # The flight software reloads the operands before the next job.
            self._reload()
            self._changed()
        elif repaired:
            self._changed()

    # --- the result ----------------------------------------------------------------

    def result(self, wall_s: float) -> SoakResult:
        """Tallies, rates and the time series."""
        spec = self.spec
        counts = {k: len(v) for k, v in self.events.items()}
        rates = {}
        for kind in RATE_KINDS:
            per_day = poisson_interval(counts[kind], spec.days)
            fit = tuple(per_day_to_fit(x / spec.acceleration) for x in per_day)
            rates[kind] = Rate(counts[kind], per_day, fit)
        samples = np.linspace(0, self.end, spec.samples + 1)[1:]
        series = []
        cum = {
            k: np.searchsorted(np.asarray(v), samples, side="right") for k, v in self.events.items()
        }
        for i, c in enumerate(samples):
            day = float(c / spec.clock_hz / SECONDS_PER_DAY)
            series.append((day, {k: int(cum[k][i]) for k in cum}))
        jobs = {o.value: self.jobs[o.value] for o in CLASSES}
        jobs["missed"] = self.jobs["missed"]
        land = self.lander
        return SoakResult(
            build=spec.build.name,
            environment=spec.environment.name,
            days=spec.days,
            acceleration=spec.acceleration,
            landing=self.landing,
            scrub_pass_s=spec.scrub_pass_s,
            job_period_s=None if self.period is None else self.period / spec.clock_hz,
            jobs=jobs,
            simulated_jobs=self.simulated,
            incidents=counts,
            rates=rates,
            landed=dict(land.landed),
            not_landed=dict(land.not_landed),
            not_landed_reasons=dict(self.not_landed_reasons),
            downtime_s=self.downtime / spec.clock_hz,
            availability=1.0 - self.downtime / self.end,
            series=series,
            wall_s=wall_s,
        )


def run_soak(spec: SoakSpec, progress: Callable[[int, int], None] | None = None) -> SoakResult:
    """Fly ``spec`` and return what it counted; ``progress(done, total)`` is called with
    simulated seconds flown about a hundred times. ValueError names a spec field that
    cannot be flown."""
    started = time.perf_counter()
    if spec.network is not None:
        from campaign.network_soak import NetworkSoak

        soak: _Soak = NetworkSoak(spec)
    else:
        soak = _Soak(spec)
    soak.fly(progress)
    return soak.result(time.perf_counter() - started)
