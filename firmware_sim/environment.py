"""The world the flight computer flies in: orbit day and eclipse, power, battery, heat.

Pure and deterministic: ``advance(t)`` integrates up to simulated time ``t`` (seconds)
and returns what happened (eclipse entry and exit). The flight software reads the
sensors (``sensors``) and books the energy of each accelerator job (``add_energy``).

Every coefficient below is an engineering ESTIMATE for a 6U-class small satellite
carrying a small int8 accelerator, chosen to give plausible magnitudes, not measured.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from enum import Enum

STEFAN_BOLTZMANN = 5.670374419e-8
"""W m^-2 K^-4."""
KELVIN = 273.15
SPACE_SINK_K = 3.0
MAX_STEP_S = 5.0
"""Integration step: short next to the thermal time constant (hours) and the orbit."""


@dataclass(frozen=True, slots=True)
class EnergyModel:
    """Accelerator energy: per operation and leakage. All values are ESTIMATES."""

    mac_j: float = 0.5e-12
    """One int8 x int8 multiply-accumulate (estimate, 28 nm class logic)."""
    spm_access_j: float = 10e-12
    """One scratchpad word read or write, ECC included (estimate)."""
    cycle_j: float = 20e-12
    """Clock tree and control per cycle while a job runs (estimate)."""
    leakage_w_25c: float = 0.05
    """Static power at 25 degC (estimate)."""
    leakage_doubling_k: float = 20.0
    """Leakage doubles every this many kelvin (estimate)."""
    rail_v: float = 3.3
    """Supply rail whose current the firmware measures."""
    latchup_w: float = 2.0
    """Extra power drawn while latched up (estimate: ~600 mA at 3.3 V)."""
    theta_jb_k_per_w: float = 20.0
    """Chip junction above the board per watt dissipated (estimate)."""

    def job_energy_j(self, cycles: int, macs: int, spm_accesses: int) -> float:
        """Dynamic energy of one job."""
        return macs * self.mac_j + spm_accesses * self.spm_access_j + cycles * self.cycle_j

    def leakage_w(self, temp_c: float) -> float:
        return self.leakage_w_25c * 2 ** ((temp_c - 25.0) / self.leakage_doubling_k)


@dataclass(frozen=True, slots=True)
class EnvironmentConfig:
    """Orbit, power and thermal constants. All values are ESTIMATES for a LEO small sat."""

    orbit_period_s: float = 95 * 60.0
    eclipse_fraction: float = 0.35
    phase0: float = 0.0
    """Orbit phase at t = 0; phase 0 is eclipse exit, eclipse is the last 35 %."""
    solar_array_w: float = 20.0
    platform_load_w: float = 5.0
    """Everything but the accelerator: OBC, radio, attitude control (estimate)."""
    battery_wh: float = 40.0
    soc0: float = 0.7
    charge_efficiency: float = 0.9
    heat_capacity_j_per_k: float = 2000.0
    radiator_area_m2: float = 0.06
    emissivity: float = 0.85
    absorbed_sun_w: float = 20.0
    """Sunlight absorbed by the body while in the sun (estimate)."""
    temp0_c: float = 20.0
    energy: EnergyModel = EnergyModel()

    @classmethod
    def from_seed(cls, seed: int) -> EnvironmentConfig:
        """Defaults with the initial orbit phase and battery charge drawn from ``seed``."""
        rng = random.Random(seed)
        return replace(cls(), phase0=rng.random(), soc0=round(rng.uniform(0.6, 0.9), 3))


class EnvEvent(Enum):
    """What ``advance`` reports."""

    ECLIPSE_ENTRY = "eclipse_entry"
    ECLIPSE_EXIT = "eclipse_exit"


@dataclass(frozen=True, slots=True)
class Sensors:
    """What the flight software measures."""

    t: float
    orbit: int
    phase: float
    eclipse: bool
    solar_w: float
    load_w: float
    accel_w: float
    accel_ma: float
    soc: float
    battery_v: float
    board_c: float
    chip_c: float


class Environment:
    """Orbit, electrical power and a lumped thermal node with a radiator."""

    def __init__(self, config: EnvironmentConfig | None = None) -> None:
        self.config = config or EnvironmentConfig()
        c = self.config
        self.t = 0.0
        self.energy_wh = c.battery_wh * c.soc0
        self.temp_k = c.temp0_c + KELVIN
        self.latchup = False
        self.accel_energy_j = 0.0
        self.accel_static_energy_j = 0.0
        """Leakage and latch-up energy since power-on: what a latch-up costs while it lasts."""
        self._eclipse = self.in_eclipse(0.0)

    # --- orbit -----------------------------------------------------------------------

    def _orbits(self, t: float) -> float:
        return self.config.phase0 + t / self.config.orbit_period_s

    def in_eclipse(self, t: float) -> bool:
        return self._orbits(t) % 1.0 >= 1.0 - self.config.eclipse_fraction

    @property
    def eclipse(self) -> bool:
        return self._eclipse

    # --- power and heat --------------------------------------------------------------

    @property
    def soc(self) -> float:
        return self.energy_wh / self.config.battery_wh

    def accel_power_w(self) -> float:
        """Static power of the accelerator: leakage at chip temperature, plus latch-up."""
        e = self.config.energy
        board_c = self.temp_k - KELVIN
        leak = e.leakage_w(board_c)
        extra = e.latchup_w if self.latchup else 0.0
        # Leakage warms the chip, which leaks more: one fixed-point step is plenty here.
        leak = e.leakage_w(board_c + e.theta_jb_k_per_w * (leak + extra))
        return leak + extra

    def add_energy(self, joules: float) -> None:
        """Book energy the accelerator used for a job: from the battery, into heat."""
        self.accel_energy_j += joules
        self.energy_wh = max(0.0, self.energy_wh - joules / 3600.0)
        self.temp_k += joules / self.config.heat_capacity_j_per_k

    def advance(self, t: float) -> list[EnvEvent]:
        """Integrate to simulated time ``t``; returns eclipse transitions on the way."""
        events: list[EnvEvent] = []
        c = self.config
        while self.t < t:
            dt = min(MAX_STEP_S, t - self.t)
            sun = not self.in_eclipse(self.t)
            solar = c.solar_array_w if sun else 0.0
            accel_w = self.accel_power_w()
            self.accel_static_energy_j += accel_w * dt
            load = c.platform_load_w + accel_w
            net = solar - load
            self.energy_wh += (net * c.charge_efficiency if net > 0 else net) * dt / 3600.0
            self.energy_wh = min(max(self.energy_wh, 0.0), c.battery_wh)
            heat_in = (c.absorbed_sun_w if sun else 0.0) + load
            radiated = (
                c.emissivity
                * STEFAN_BOLTZMANN
                * c.radiator_area_m2
                * (self.temp_k**4 - SPACE_SINK_K**4)
            )
            self.temp_k += (heat_in - radiated) * dt / c.heat_capacity_j_per_k
            self.t += dt
            eclipse = self.in_eclipse(self.t)
            if eclipse != self._eclipse:
                events.append(EnvEvent.ECLIPSE_ENTRY if eclipse else EnvEvent.ECLIPSE_EXIT)
                self._eclipse = eclipse
        return events

    def sensors(self) -> Sensors:
        """A reading of every sensor now."""
        c = self.config
        accel_w = self.accel_power_w()
        board_c = self.temp_k - KELVIN
        orbits = self._orbits(self.t)
        return Sensors(
            t=self.t,
            orbit=math.floor(orbits),
            phase=orbits % 1.0,
            eclipse=self._eclipse,
            solar_w=0.0 if self._eclipse else c.solar_array_w,
            load_w=c.platform_load_w + accel_w,
            accel_w=accel_w,
            accel_ma=1000.0 * accel_w / c.energy.rail_v,
            soc=self.soc,
            battery_v=6.0 + 2.4 * self.soc,
            board_c=board_c,
            chip_c=board_c + c.energy.theta_jb_k_per_w * accel_w,
        )
