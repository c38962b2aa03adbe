"""The flight software, sans I/O: bytes and time in, bytes and actions out.

``FlightSoftware`` is fed the bytes the serial port received (``receive_data``) and the
time (``step(now)``, seconds on any monotonic clock), and returns an ``Output``: the
bytes to send and what happened that the edge may want to know (log lines, reboots).
The accelerator is behind the ``chip`` (``firmware_sim.chip.Chip``: its bus, interrupt,
clock and a test bench's hands), the environment is simulated in-process; neither does
I/O. Each service is given the few collaborators it uses, not the flight software. The
edge calls ``step`` again by ``next_deadline()`` at the latest.

A reset (commanded or by the watchdog) is a reboot of this object: volatile state is
built anew, while the non-volatile store, the chip, the environment and the RAM's
physical damage carry over.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from firmware_sim.chip import Chip
from firmware_sim.dispatcher import Dispatcher
from firmware_sim.driver import AccelDriver, DriverError
from firmware_sim.environment import EnvEvent, Environment, EnvironmentConfig
from firmware_sim.health import AnomalyWindow, CounterTotal, NonVolatile, Watchdog
from firmware_sim.jobs import NO_ADDRESS, JobScheduler
from firmware_sim.radiation import ArrivalProcess, UpsetLander
from firmware_sim.ram import DEFAULT_RAM_BYTES, FirmwareRam, ResultStore, crc32
from firmware_sim.services.events import NO_JOB, EventService
from firmware_sim.services.fault_injection import FaultInjectionService
from firmware_sim.services.functions import FunctionService
from firmware_sim.services.housekeeping import INTERVAL_PARAM, HousekeepingService
from firmware_sim.services.keys import KeyService
from firmware_sim.services.memory import MemoryService
from firmware_sim.services.outcomes import OutcomeService
from firmware_sim.services.parameters import ParameterService, ParameterStore
from firmware_sim.services.test import TestService
from firmware_sim.telemetry import TmSender
from protocol.auth import derive_key
from protocol.codes import EventId, MemoryId, Mode, Service
from protocol.link import DEFAULT_BAUD, PROGRESS_INTERVAL_S, gap_timeout
from protocol.payloads import AccelState, ParamId, ResetCause
from protocol.timecode import CdsTime

MONITOR_PERIOD_S = 1.0
"""Health checks (EDAC counters, latch-up, hang, RAM results, power, heat) run this often."""
JOB_POLL_S = 0.01
"""While a job runs the core wants to be called at least this often."""
DEFAULT_EPOCH_UNIX = 1_767_225_600.0
"""On-board time at power-on unless configured: 2026-01-01T00:00:00Z."""
POWER_LOW_HYSTERESIS = 0.02
THERMAL_HYSTERESIS_C = 2.0
FSW_VERSION = 1


@dataclass(frozen=True, slots=True)
class FswConfig:
    """What the flight software is configured with before it boots."""

    mode: Mode = Mode.NOMINAL
    """Mode at every boot."""
    keys: Mapping[int, bytes] = field(default_factory=dict)
    """Authentication keys by key id (ICD section 13); never key id 0."""
    master_key_id: int | None = None
    """The key among ``keys`` that signs key management, and only that (ICD 13)."""
    ram_bytes: int = DEFAULT_RAM_BYTES
    epoch_unix: float = DEFAULT_EPOCH_UNIX
    time_scale: float = 1.0
    """Simulated environment seconds per second of ``now``."""
    baud: int = DEFAULT_BAUD
    """Line rate of the link, which sets how long TCs wait for a missing count (ICD 6)."""
    env: EnvironmentConfig = field(default_factory=EnvironmentConfig)

    def __post_init__(self) -> None:
        if 0 in self.keys:
            raise ValueError("key id 0 is the null key (ICD section 13) and takes no key")
        for kid, key in self.keys.items():
            if not 0 < kid <= 0xFFFF or len(key) < 16:
                raise ValueError(
                    f"key id {kid}: ids are 1..65535 and keys at least 16 octets, "
                    f"got {len(key)} octets"
                )
        if self.master_key_id is not None and self.master_key_id not in self.keys:
            raise ValueError(f"master key id {self.master_key_id} is not one of the keys")
        if self.time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {self.time_scale}")


@dataclass(frozen=True, slots=True)
class Log:
    """A line for the edge's log."""

    message: str


@dataclass(frozen=True, slots=True)
class Rebooted:
    """The flight software rebooted (its TM counts start again at 0)."""

    cause: ResetCause


Action = Log | Rebooted


@dataclass(frozen=True, slots=True)
class Output:
    data: bytes
    actions: tuple[Action, ...] = ()


class EdacTotals:
    """The chip's counters as totals since boot or CLEAR_COUNTERS."""

    def __init__(self) -> None:
        self.corr = CounterTotal()
        self.uncorr = CounterTotal()
        self.tmr = CounterTotal()
        self.passes = CounterTotal()

    def rebase(self) -> None:
        for c in (self.corr, self.uncorr, self.tmr, self.passes):
            c.rebase(0)


class FlightSoftware:
    """PUS services, job scheduler, health and environment of the flight computer."""

    def __init__(
        self,
        chip: Chip,
        config: FswConfig | None = None,
        nv: NonVolatile | None = None,
        now: float = 0.0,
        radiation: ArrivalProcess | None = None,
    ) -> None:
        self.config = config or FswConfig()
        self.chip = chip
        self.nv = nv if nv is not None else NonVolatile()
        self.keys: Mapping[int, bytes] = MappingProxyType({})
        self.rekey()
        self.env = Environment(self.config.env)
        self.driver = AccelDriver(chip)
        self.ram = FirmwareRam(self.config.ram_bytes)
        # Upsets from the orbit, if one is flown; like the chip, it carries over reboots.
        self.radiation = (
            None if radiation is None else UpsetLander(radiation, chip, self.ram, self.env)
        )
        self.tm_overflow_total = 0
        """TM frames dropped on the way out since the process started (ICD 11, TM_OVERFLOW)."""
        self.t0 = now
        self.now = now
        self._world_time = now
        self._actions: list[Action] = []
        self._boot(now, self.nv.next_reset_cause)

    def tm_overflowed(self, frames: int) -> None:
        """``frames`` TM frames were dropped on the way out, oldest first: the host did not
        read its TM while the target's output backlog was full. Said by TM_OVERFLOW."""
        self.tm_overflow_total += frames
        total = self.tm_overflow_total
        self.events.limited(EventId.TM_OVERFLOW, frames, lambda since: (since, total))

    def rekey(self) -> None:
        """The keys in force: the configured ones, each derived key (ICD 13, key
        management) of the generation the non-volatile store names in its place."""
        keys = dict(self.config.keys)
        master = self.config.master_key_id
        if master is not None:
            for key_id, generation in self.nv.key_generations.items():
                keys[key_id] = derive_key(self.config.keys[master], key_id, generation)
        self.keys = MappingProxyType(keys)

    # --- boot ------------------------------------------------------------------------

    def _boot(self, now: float, cause: ResetCause) -> None:
        """Everything volatile, anew."""
        self.now = now
        self.boot_time = now
        self.nv.boot_count += 1
        self.nv.next_reset_cause = ResetCause.POWER_ON
        interrupted = self.nv.requests.reboot()
        self.nv.order.reboot()
        self.reset_cause = cause
        self.mode = self.config.mode
        self.hung = False
        self.internal_errors = 0
        self._reboot: ResetCause | None = None
        self.tm = TmSender(self.obt)
        self.params = ParameterStore()
        self.events = EventService(self.tm, self.params, self._clock, self.log)
        self.hk = HousekeepingService(self)
        self.jobs = JobScheduler(self)
        self.results = ResultStore()
        self.ram.data[:] = bytes(self.ram.size)
        self.ram.reassert()
        self.ram_errors = 0
        self.edac = EdacTotals()
        self.accel_resets = 0
        self.latchups = 0
        self.safe_entries = 0
        self.anomalies = AnomalyWindow()
        self.watchdog = Watchdog(now)
        if self.radiation is not None:
            self.radiation.mark_boot()  # HK counts upsets since boot
        self.power_low = False
        self.thermal_alarm = False
        clock, mode = self._clock, lambda: self.mode
        self.dispatcher = Dispatcher(
            self,
            {
                Service.HOUSEKEEPING: self.hk,
                Service.EVENT_REPORTING: self.events,
                Service.MEMORY_MANAGEMENT: MemoryService(
                    self.driver, self.ram, self.results, self.tm, clock,
                    idle=self.accelerator_idle, verify=self.verify_result_range,
                    check_counters=self.check_counters,
                ),
                Service.FUNCTION_MANAGEMENT: FunctionService(
                    self.jobs, self.driver, self.ram, self.params, self.events, clock,
                    mode=mode, set_mode=self.set_mode, reboot=self.request_reboot,
                    reset_accelerator=self.reset_accelerator,
                    clear_counters=self.clear_counters, check_counters=self.check_counters,
                    idle=self.accelerator_idle, scrub_passes=lambda: self.edac.passes.total,
                ),
                Service.TEST: TestService(self.tm, clock),
                Service.PARAMETER_MANAGEMENT: ParameterService(
                    self.params, self.events, self.tm, clock, self.parameter_changed
                ),
                Service.FAULT_INJECTION: FaultInjectionService(
                    self.chip, self.ram, self.env, self.events, self.tm, clock,
                    mode=mode, hang=self.hang, recover=self.recover_accelerator,
                ),
                Service.REQUEST_OUTCOME: OutcomeService(self.nv.requests, self.tm, clock),
                Service.KEY_MANAGEMENT: KeyService(
                    self.nv, self.config.master_key_id, self.events, self.rekey, clock
                ),
            },
            self.nv.requests,
            self.nv.order,
            gap_timeout(self.config.baud),
        )  # fmt: skip
        self._next_monitor = now + MONITOR_PERIOD_S
        self.driver.probe()
        self.reset_accelerator(fold=False)
        self.tm.send_raw(b"\x00")
        self.events.raise_event(EventId.BOOT, self.nv.boot_count, cause, self.mode)
        if cause == ResetCause.WATCHDOG:
            self.events.raise_event(EventId.WATCHDOG_RESET, self.nv.watchdog_resets)
        self.log(f"boot {self.nv.boot_count}, cause {cause.name}, mode {self.mode.name}"
                 + (f"; {interrupted} request(s) interrupted" if interrupted else ""))  # fmt: skip

    def _clock(self) -> float:
        """The time of the step being handled (what services stamp their reports with)."""
        return self.now

    def obt(self) -> CdsTime:
        """On-board time: the configured epoch plus the time since power-on."""
        return CdsTime.from_unix(self.config.epoch_unix + (self.now - self.t0))

    @property
    def uptime(self) -> float:
        return self.now - self.boot_time

    # --- the sans-I/O interface ------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the serial port; nothing happens until ``step``."""
        if not self.hung:
            self.dispatcher.receive_data(data)

    def step(self, now: float) -> Output:
        """Handle received TCs, run jobs, health checks and housekeeping up to ``now``."""
        self.now = max(now, self.now)
        if self.hung:
            self._advance_world()
            if self.watchdog.expired(self.now, self.params.seconds(ParamId.WATCHDOG_TIMEOUT)):
                self.nv.watchdog_resets += 1
                self._reboot = ResetCause.WATCHDOG
        else:
            self.dispatcher.process()
            self.dispatcher.tick()
            self._guarded(self._advance_world)
            self.jobs.poll()
            if self.now >= self._next_monitor:
                self._next_monitor = max(self._next_monitor + MONITOR_PERIOD_S, self.now)
                self._guarded(self.monitor)
            self._guarded(self.hk.poll)
            for job in self.jobs.jobs():
                if job.request.progress_due(self.now):
                    job.request.progress(self.now)
            self.watchdog.kick(self.now)
        data = self.tm.take()
        if self._reboot is not None:
            cause = self._reboot
            self._boot(self.now, cause)
            self._actions.append(Rebooted(cause))
            data += self.tm.take()
        actions, self._actions = tuple(self._actions), []
        return Output(data, actions)

    def feed(self, data: bytes, now: float) -> Output:
        """``receive_data`` then ``step``."""
        self.receive_data(data)
        return self.step(now)

    def _guarded(self, task: Callable[[], None]) -> None:
        """A periodic task; a bug in it is logged and counted, and the loop goes on."""
        try:
            task()
        except Exception:
            self.internal_errors += 1
            self.log(f"INTERNAL ERROR in {task.__name__}:\n{traceback.format_exc()}")

    def next_deadline(self) -> float:
        """The latest time the edge should call ``step`` again."""
        if self.hung:
            return self.watchdog.last_kick + self.params.seconds(ParamId.WATCHDOG_TIMEOUT)
        due = min(self._next_monitor, self.hk.next_due())
        if self.jobs.running is not None:
            due = min(due, self.now + JOB_POLL_S)
        for job in self.jobs.jobs():
            if job.request.wants_progress():
                due = min(due, job.request.last_report + PROGRESS_INTERVAL_S)
        gap = self.dispatcher.next_deadline()
        return due if gap is None else min(due, gap)

    # --- services' hooks -------------------------------------------------------------

    def log(self, message: str) -> None:
        self._actions.append(Log(message))

    def request_reboot(self, cause: ResetCause) -> None:
        """Reboot at the end of this step, after the reports already queued are sent."""
        self._reboot = cause

    def hang(self) -> None:
        """The flight software stops (an injected SEFI): only the watchdog brings it back."""
        self.hung = True
        self.log("flight software hung (injected SEFI); waiting for the watchdog")

    def set_mode(self, mode: Mode, autonomous: bool = False) -> None:
        if mode == self.mode:
            return
        old, self.mode = self.mode, mode
        if mode == Mode.SAFE:
            self.jobs.abort_all("entering SAFE mode")
        self.events.raise_event(EventId.MODE_CHANGED, old, mode, int(autonomous))

    def anomaly(self, event_id: EventId) -> None:
        """Count an anomaly; enough of them in the window and the software goes SAFE."""
        threshold = self.params[ParamId.SAFE_MODE_THRESHOLD]
        window = self.params[ParamId.SAFE_MODE_WINDOW]
        if self.anomalies.record(self.now, threshold, window) and self.mode != Mode.SAFE:
            count = self.anomalies.count(self.now, window)
            self.safe_entries += 1
            self.anomalies.clear()
            self.events.raise_event(EventId.SAFE_MODE_ENTERED, min(count, 255), window, event_id)
            self.set_mode(Mode.SAFE, autonomous=True)

    def parameter_changed(self, pid: ParamId) -> None:
        for sid, interval_pid in INTERVAL_PARAM.items():
            if pid == interval_pid:
                self.hk.restart(sid)
        if pid == ParamId.SCRUB_PERIOD and self.accelerator_idle():
            self.driver.set_scrub_period(self.params[ParamId.SCRUB_PERIOD])

    def accelerator_state(self) -> AccelState:
        if self.jobs.running is not None:
            return AccelState.RUNNING
        return AccelState.IDLE if self.accelerator_idle() else AccelState.HUNG

    def accelerator_idle(self) -> bool:
        """No job running and the chip not BUSY."""
        if self.jobs.running is not None:
            return False
        try:
            return not self.driver.status().busy
        except DriverError:
            return False

    def reset_accelerator(self, fold: bool = True) -> None:
        """SOFT_RESET and configure again (scrub period); the chip's counters restart at 0.

        ``fold`` first adds what the counters hold to the totals (not at boot: the
        totals start at boot).
        """
        if fold:
            self.check_counters()
        self.driver.soft_reset()
        self.edac.rebase()
        self.driver.set_scrub_period(self.params[ParamId.SCRUB_PERIOD])
        self.driver.enable_interrupt()

    def recover_accelerator(self) -> None:
        """After faults were cleared: a chip BUSY with no job (a SEFI between jobs) is
        reset now; a running job's own watchdog finds a hang in it."""
        if self.jobs.running is None and not self.accelerator_idle():
            self.reset_accelerator()

    def sefi_detected(self, job_id: int = NO_JOB) -> None:
        """The chip stopped answering: reset it, count it, report it."""
        self.accel_resets += 1
        self.reset_accelerator()
        self.events.raise_event(EventId.SEFI_DETECTED, job_id, self.accel_resets)
        self.anomaly(EventId.SEFI_DETECTED)

    def ram_error(self, address: int) -> None:
        """A stored result in firmware RAM no longer matches its CRC."""
        self.ram_errors += 1
        self.events.raise_event(
            EventId.EDAC_UNCORRECTABLE, MemoryId.FIRMWARE_RAM, address, self.ram_errors
        )
        self.anomaly(EventId.EDAC_UNCORRECTABLE)

    def check_counters(self, now_address: int | None = None) -> None:
        """Fold the chip's EDAC counters into the totals and report what changed.

        ``now_address`` is given when the caller saw the uncorrectable error itself (a
        job, a dump): it is reported at once, with that address; the scrubber's finds
        are rate-limited.
        """
        try:
            c = self.driver.counters()
        except DriverError:
            return
        e, ev, spm = self.edac, self.events, MemoryId.ACCEL_SCRATCHPAD
        d_corr = e.corr.update(c.ecc_corr)
        d_uncorr = e.uncorr.update(c.ecc_uncorr)
        d_tmr = e.tmr.update(c.tmr_mismatch)
        d_passes = e.passes.update(c.scrub_passes)
        # A held-back report is built when it is sent: its totals are those of that moment
        # (after a CLEAR_COUNTERS, the new ones).
        if d_corr:
            ev.limited(
                EventId.EDAC_CORRECTED, d_corr,
                lambda since: (spm, since, self.edac.corr.total),
            )  # fmt: skip
        if d_uncorr and now_address is not None:
            ev.raise_event(EventId.EDAC_UNCORRECTABLE, spm, now_address, e.uncorr.total)
        elif d_uncorr:
            ev.limited(
                EventId.EDAC_UNCORRECTABLE, d_uncorr,
                lambda since: (spm, NO_ADDRESS, self.edac.uncorr.total),
            )  # fmt: skip
        if d_tmr:
            ev.limited(EventId.TMR_MISMATCH, d_tmr, lambda since: (since, self.edac.tmr.total))
        if d_passes:
            ev.limited(
                EventId.SCRUB_PASS_DONE, d_passes, lambda since: (self.edac.passes.total, 0)
            )

    def clear_counters(self) -> None:
        """CLEAR_COUNTERS: EDAC, TMR, scrub and link counters, firmware RAM errors."""
        self.driver.clear_counters()
        self.edac = EdacTotals()
        self.ram_errors = 0
        self.dispatcher.clear_counters()

    # --- the world and the health checks ---------------------------------------------

    def _advance_world(self) -> None:
        dt = self.now - self._world_time
        self._world_time = self.now
        mission_t = (self.now - self.t0) * self.config.time_scale
        for what in self.env.advance(mission_t):
            s = self.env.sensors()
            soc = round(1000 * s.soc)
            if what is EnvEvent.ECLIPSE_ENTRY:
                self.events.raise_event(EventId.ECLIPSE_ENTRY, s.orbit, soc)
            else:
                self.events.raise_event(EventId.ECLIPSE_EXIT, s.orbit, soc)
        if self.radiation is not None:
            for line in self.radiation.advance(mission_t):
                self.log(line)
        self.chip.advance(dt)

    def monitor(self) -> None:
        """The periodic health checks."""
        self.check_counters()
        s = self.env.sensors()
        if s.accel_ma > self.params[ParamId.LATCHUP_CURRENT_LIMIT]:
            self._latchup(s.accel_ma)
        elif self.jobs.running is None and not self.accelerator_idle():
            self.log("accelerator BUSY with no job: sequencer hung")
            self.sefi_detected()
        self._scrub_results()
        self._check_power(s.soc)
        self._check_thermal(s.board_c, s.chip_c)
        self.events.flush()

    def _latchup(self, current_ma: float) -> None:
        self.latchups += 1
        self.jobs.abort_running("accelerator latch-up: power cycled")
        self.chip.power_cycle()
        self.env.latchup = False
        self.results.forget_memory(MemoryId.ACCEL_SCRATCHPAD)
        self.driver.probe()
        self.edac.rebase()
        self.reset_accelerator()
        self.events.raise_event(
            EventId.LATCHUP_DETECTED, min(round(current_ma), 0xFFFF), min(self.latchups, 0xFFFF)
        )
        self.anomaly(EventId.LATCHUP_DETECTED)

    def _scrub_results(self) -> None:
        """Software scrub: results kept in firmware RAM still match their CRC."""
        for r in self.results.results:
            if r.memory == MemoryId.FIRMWARE_RAM and r.err_code == 0:
                if crc32(self.ram.read(r.address, r.length)) != r.crc32:
                    r.err_code = 1  # ErrCode.ECC: an uncorrectable memory error
                    self.ram_error(r.address)

    def verify_result_range(self, memory: int, address: int, length: int) -> int:
        """0 if every result in the range is intact, else the ERR_CODE to refuse it with."""
        for r in self.results.overlapping(memory, address, length):
            if r.err_code:
                return r.err_code
            if memory == MemoryId.FIRMWARE_RAM:
                data = self.ram.read(r.address, r.length)
            else:
                n = self.driver.info.n
                data, bad = self.driver.read_words(r.address // n, r.length // n)
                if bad:
                    self.check_counters(now_address=bad[0] * n)
            if crc32(data) != r.crc32:
                r.err_code = 1
                if memory == MemoryId.FIRMWARE_RAM:
                    self.ram_error(r.address)
                return r.err_code
        return 0

    def _check_power(self, soc: float) -> None:
        limit = self.params[ParamId.POWER_LOW_SOC] / 1000.0
        if soc < limit and not self.power_low:
            self.power_low = True
            self.events.raise_event(
                EventId.POWER_LOW, round(1000 * soc), self.params[ParamId.POWER_LOW_SOC]
            )
        elif soc >= limit + POWER_LOW_HYSTERESIS:
            self.power_low = False

    def _check_thermal(self, board_c: float, chip_c: float) -> None:
        low = self.params[ParamId.TEMP_LOW_LIMIT] / 100.0
        high = self.params[ParamId.TEMP_HIGH_LIMIT] / 100.0
        outside = board_c < low or board_c > high or chip_c > high
        if outside and not self.thermal_alarm:
            self.thermal_alarm = True
            self.events.raise_event(
                EventId.THERMAL_LIMIT,
                _centi(board_c),
                _centi(chip_c),
                self.params[ParamId.TEMP_LOW_LIMIT],
                self.params[ParamId.TEMP_HIGH_LIMIT],
            )
        elif (
            board_c > low + THERMAL_HYSTERESIS_C
            and max(board_c, chip_c) < high - THERMAL_HYSTERESIS_C
        ):
            self.thermal_alarm = False


def _centi(celsius: float) -> int:
    """A temperature in 0.01 degC as i16 (saturated)."""
    return max(-32768, min(32767, round(100 * celsius)))
