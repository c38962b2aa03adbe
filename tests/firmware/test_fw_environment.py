"""The simulated environment: orbit, eclipse, battery, temperature, and what the core makes
of it (events, housekeeping, the energy of jobs)."""

from __future__ import annotations

import struct

import pytest
from fw_harness import Harness, hk, small_job

from firmware_sim.environment import EnvEvent, Environment, EnvironmentConfig
from protocol.codes import EventId
from protocol.payloads import HkStructure, ParamId

PERIOD = 95 * 60.0


def test_a_95_minute_orbit_spends_35_percent_in_eclipse():
    env = Environment()
    samples = [env.in_eclipse(t) for t in range(0, int(PERIOD), 10)]
    assert sum(samples) / len(samples) == pytest.approx(0.35, abs=0.005)
    events = env.advance(2 * PERIOD)
    assert events == [EnvEvent.ECLIPSE_ENTRY, EnvEvent.ECLIPSE_EXIT] * 2


def test_the_battery_charges_in_the_sun_and_drains_in_eclipse():
    env = Environment(EnvironmentConfig(soc0=0.5))
    env.advance(0.65 * PERIOD - 1)
    assert not env.eclipse and env.soc > 0.5
    top = env.soc
    env.advance(PERIOD - 1)
    assert env.eclipse and env.soc < top
    s = env.sensors()
    assert s.solar_w == 0 and 6.0 < s.battery_v < 8.4


def test_the_temperature_rises_in_the_sun_and_falls_in_eclipse_around_a_sane_mean():
    env = Environment()
    env.advance(20 * PERIOD)  # settle into the periodic regime
    start_sun = env.sensors().board_c
    env.advance(20 * PERIOD + 0.65 * PERIOD - 1)
    end_sun = env.sensors().board_c
    env.advance(21 * PERIOD - 1)
    end_eclipse = env.sensors().board_c
    assert end_sun > start_sun and end_eclipse < end_sun
    assert -20 < end_eclipse < end_sun < 40
    assert env.sensors().chip_c > env.sensors().board_c


def test_leakage_grows_with_temperature_and_a_latch_up_draws_current():
    env = Environment()
    cold = env.config.energy.leakage_w(0.0)
    assert env.config.energy.leakage_w(40.0) == pytest.approx(4 * cold)
    idle = env.sensors().accel_ma
    env.latchup = True
    assert env.sensors().accel_ma > idle + 500


def test_a_latch_up_costs_its_extra_power_in_static_energy_while_it_lasts():
    quiet, latched = Environment(), Environment()
    latched.latchup = True
    quiet.advance(60.0)
    latched.advance(60.0)
    extra = latched.accel_static_energy_j - quiet.accel_static_energy_j
    # 60 s at the latch-up's extra 2 W, plus the leakage it heats up (never less).
    assert extra >= 60.0 * latched.config.energy.latchup_w
    assert extra < 60.0 * 1.5 * latched.config.energy.latchup_w
    assert quiet.accel_static_energy_j == pytest.approx(
        60.0 * quiet.accel_power_w(), rel=0.05
    )


def test_eclipse_is_reported_and_shows_in_housekeeping_at_a_faster_time_scale():
    fsw = Harness(env=EnvironmentConfig(phase0=0.6), time_scale=60.0)
    assert hk(fsw, HkStructure.ENVIRONMENT)["eclipse"] == 0
    reply = fsw.run_for(10)  # 0.05 orbit = 285 s of environment time = 4.75 s here
    (entry,) = reply.events(EventId.ECLIPSE_ENTRY)
    orbit, soc = struct.unpack("!IH", entry)
    assert orbit == 0 and 0 < soc <= 1000
    env = hk(fsw, HkStructure.ENVIRONMENT)
    assert (env["eclipse"], env["solar_power"]) == (1, 0)
    assert env["env_time"] == pytest.approx(600, abs=2)
    assert env["orbit_phase"] == pytest.approx(1e4 * (0.6 + 600 / PERIOD), abs=5)


def test_housekeeping_reports_the_static_energy_and_a_latch_up_raises_it():
    fsw = Harness(time_scale=60.0)
    fsw.run_for(2)
    quiet = hk(fsw, HkStructure.ENVIRONMENT)["accel_static_energy"]
    leak_w = fsw.fsw.env.accel_power_w()
    # 2 s on board at 60x is 120 s of leakage; the report is read as the world moves on.
    assert 1e3 * 100 * leak_w < quiet <= 1e3 * fsw.fsw.env.accel_static_energy_j + 1
    fsw.fsw.env.latchup = True
    fsw.fsw.env.advance(fsw.fsw.env.t + 30.0)
    latched = hk(fsw, HkStructure.ENVIRONMENT)["accel_static_energy"]
    assert latched - quiet >= 1e3 * 30.0 * (leak_w + fsw.fsw.env.config.energy.latchup_w) - 1


def test_a_job_books_its_energy():
    fsw = Harness()
    before = fsw.fsw.env.accel_energy_j
    assert small_job(fsw).ok
    assert fsw.fsw.env.accel_energy_j > before


def test_power_low_and_thermal_limits_raise_events_once():
    fsw = Harness(env=EnvironmentConfig(phase0=0.7, soc0=0.2001))
    data = struct.pack("!BHhHh", 2, ParamId.TEMP_HIGH_LIMIT, 1000, ParamId.TEMP_LOW_LIMIT, -500)
    assert fsw.tc(20, 3, data).ok
    reply = fsw.run_for(5)
    (low,) = reply.events(EventId.POWER_LOW)
    soc, threshold = struct.unpack("!HH", low)
    assert soc <= threshold == 200
    assert not fsw.run_for(5).events(EventId.POWER_LOW)
    (thermal,) = reply.events(EventId.THERMAL_LIMIT)
    board, chip, lo, hi = struct.unpack("!hhhh", thermal)
    assert board > 1000 and (lo, hi) == (-500, 1000)
