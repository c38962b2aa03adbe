"""The mission soaks of a campaign: each build flown through the campaign's orbit once per
scrub period (``soak`` in the campaign file; a network workload flies its own soak,
``campaign.network_soak``, with accuracy over mission time), each result kept as
``DIR/soak-BUILD-pPERIOD.json`` so that a resumed campaign does not fly it again.

Beside each soak's uncorrectable-word rate the analysis gives the rate RADIATION.md
derives for SECDED with scrubbing from independent single upsets,
W n (n - 1) L^2 T / 2 (``soak.analytic_uncorrectable_per_day`` with no double share):
the simulated count also holds what multi-bit clusters put into one word, which depends
on their shape and the build's interleaving, so it may lie above that term, never
far below it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from campaign.soak import SoakSpec, analytic_uncorrectable_per_day, run_soak
from firmware_sim.accel import Accelerator
from testbed.config.campaign import Campaign, Network
from testbed.config.environment import SECONDS_PER_DAY
from testbed.sitemap_builds import Build


def specs(campaign: Campaign) -> list[SoakSpec]:
    """One soak per build and scrub period of the campaign (none without ``soak``)."""
    soak, env = campaign.soak, campaign.environment_config
    if soak is None or env is None:
        return []
    w = campaign.workload
    if isinstance(w, Network):  # its weights resident, its test set classified in turn
        flown = {"network": campaign.network_dir}
    else:
        flown = {"workload": (w.m, w.k, w.n)}
    return [
        SoakSpec(build=build, environment=env, days=soak.days, acceleration=soak.acceleration,
                 scrub_period=period, duty_cycle=soak.duty, seed=campaign.seed,
                 **flown)  # fmt: skip
        for build in campaign.build_list()
        for period in soak.scrub_periods
    ]


def _path(out: Path, spec: SoakSpec) -> Path:
    return out / f"soak-{spec.build.name}-p{spec.scrub_period}.json"


def analytic(spec: SoakSpec) -> float | None:
    """Uncorrectable words per day from independent single upsets at the soak's
    (accelerated) rate, for a build with SECDED and a running scrubber; else None."""
    build: Build = spec.build
    if not (build.ecc and build.scrub and spec.scrub_period):
        return None
    words = 2 * build.bank_words
    bits = Accelerator(**build.options()).layout.codeword_bits
    rate = spec.environment.sram_upsets_per_bit_day.value * spec.acceleration
    return analytic_uncorrectable_per_day(words, bits, rate, spec.scrub_pass_s / SECONDS_PER_DAY)


def run_soaks(
    campaign: Campaign,
    out: Path,
    progress: Callable[[str, int, int], None] | None = None,
    fly: bool = True,
) -> list[dict]:
    """Fly every soak of the campaign that ``out`` does not hold yet (with ``fly``; else
    only those it holds are read); all their results."""
    results = []
    for spec in specs(campaign):
        path = _path(out, spec)
        if not path.exists() and not fly:
            continue
        if not path.exists():
            label = f"soak {spec.build.name} period {spec.scrub_period}"
            tick = (lambda d, t, label=label: progress(label, d, t)) if progress else None
            result = run_soak(spec, tick)
            path.write_text(result.to_json() + "\n")
        data = json.loads(path.read_text())
        data["scrub_period"] = spec.scrub_period
        data["analytic_uncorrectable_per_day"] = analytic(spec)
        results.append(data)
    return results
