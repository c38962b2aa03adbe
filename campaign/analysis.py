"""From a campaign's runs to what a reader came for: outcome shares per site class, rates
per device-day in an orbit (or events per rad in a beam), and what each build costs.

Shares are of injected runs only; a run whose fault was not injected is counted apart
and is in no share and no rate. A stratum (site class x fault kind) with no injected
run says nothing of its class: the bits it stands for are reported as not covered.

Rates assume the chip runs the workload back to back, each upset landing at a uniform
cycle of a job, and that only the first upset of a job matters (rates low enough that
two in one job are rare). A stratum's rate is its bits x the environment's rate per
bit-day (SRAM for scratchpad cells, flip-flop for registers) x the share of upsets of
its kind (multi-bit upsets are ``multi_bit.share`` of the memory's events); SETs and
stuck bits have no rate in an environment file, so they are given as shares only.

For a classifier (a network workload) the SDCs are split by what they did to the answer:
``sdc_class``, an SDC that changed some image's predicted class, gets a share and a rate
of its own; the rest of the SDCs left every answer right.
A chip's rate is the sum over its strata; its interval sums the strata's interval ends,
which is conservative (wider than the true interval of the sum).
"""

from __future__ import annotations

from dataclasses import dataclass

from campaign.outcome import CLASSES, Outcome
from campaign.plan import Plan
from campaign.runner import CampaignRun
from campaign.stats import per_day_to_fit, per_day_to_year, quantile, wilson
from firmware_sim.accel import Accelerator, Reg
from firmware_sim.environment import EnergyModel
from firmware_sim.jobs import gemm_spm_accesses
from testbed.config.campaign import Campaign, Network
from testbed.sitemap import SiteClass
from testbed.sitemap_builds import Build

#: Outcome classes that are an error a user sees (the architectural vulnerability).
FAILURES = (Outcome.SDC, Outcome.DETECTED, Outcome.HANG)
#: A classifier's SDCs that changed some image's predicted class.
SDC_CLASS = "sdc_class"
#: Seconds a hang costs: the flight software's job watchdog, then a reset and reload
#: (the firmware's default JOB_TIMEOUT is 2 s; the reload is an estimate).
HANG_COST_S = 2.5
#: Seconds a detected error costs: the job is run again (an estimate, one job's time
#: with the link's turn-around).
DETECTED_COST_S = 0.05
#: Seconds a functional interrupt (SEFI) costs: a power cycle and reload (an estimate).
SEFI_COST_S = 5.0
RATED_KINDS = ("sbu", "mbu")


def protection(build: Build, cls: SiteClass, kind: str) -> str:
    """What protects a site class against a fault kind on a build (docs/FAULTS.md)."""
    if cls in (SiteClass.OPERAND_MEMORY, SiteClass.MEMORY_READ) and build.ecc:
        text = "SECDED"
        if build.scrub and cls is SiteClass.OPERAND_MEMORY:
            text += " + scrub"
        if kind == "mbu" and build.interleave > 1:
            text += f", interleave {build.interleave}"
        return text
    if cls in (SiteClass.CONFIGURATION, SiteClass.SEQUENCER) and build.tmr:
        return "TMR (not against SET)" if kind == "set" else "TMR"
    return "none"


@dataclass(frozen=True)
class Share:
    """A share of injected runs with its Wilson interval."""

    count: int
    rate: float
    low: float
    high: float

    def to_json(self) -> dict:
        return {"count": self.count, "share": self.rate, "low": self.low, "high": self.high}


def _share(count: int, trials: int, z: float) -> Share | None:
    if trials == 0:
        return None
    p, lo, hi = wilson(count, trials, z)
    return Share(count, p, lo, hi)


def stratum_rows(run: CampaignRun, z: float) -> list[dict]:
    """One row per stratum: counts, shares, AVF, the rule that ended it (and for a
    classifier, the SDCs that changed a predicted class: ``sdc_class``)."""
    classifier = isinstance(run.campaign.workload, Network)
    rows = []
    for (build_name, _), sr in run.strata.items():
        build = Build.from_name(build_name)
        s = sr.stratum
        end = sr.stop if sr.stop is not None else len(sr.outcomes)
        outcomes = [sr.outcomes[i][0] for i in range(end) if i in sr.outcomes]
        counts = {o.value: outcomes.count(o.value) for o in Outcome}
        injected = len(outcomes) - counts[Outcome.NOT_INJECTED.value]
        shares = {o.value: _share(counts[o.value], injected, z) for o in CLASSES}
        failures = sum(counts[o.value] for o in FAILURES)
        changed = [sr.outcomes[i][2] for i in range(end) if i in sr.outcomes
                   and sr.outcomes[i][0] == Outcome.SDC.value]  # fmt: skip
        if classifier:
            counts[SDC_CLASS] = sum(1 for c in changed if c)
            shares[SDC_CLASS] = _share(counts[SDC_CLASS], injected, z)
        why = sorted({sr.outcomes[i][1] for i in range(end) if i in sr.outcomes
                      and sr.outcomes[i][0] == Outcome.NOT_INJECTED.value})  # fmt: skip
        rows.append({
            "build": build_name, "site_class": s.site_class.value, "kind": s.kind,
            "stratum": s.key, "protection": protection(build, s.site_class, s.kind),
            "bits": s.bits, "memory_bits": sum(e.bits for e in s.entries if e.kind == "memory"),
            "population": s.population, "planned": sr.planned, "runs": len(outcomes),
            "rule": sr.rule or "unfinished", "injected": injected, "counts": counts,
            "shares": {k: v.to_json() if v else None for k, v in shares.items()},
            "avf": (a.to_json() if (a := _share(failures, injected, z)) else None),
            "not_injected_why": why[:3],
        })  # fmt: skip
    return rows


def _kind_share(row: dict, campaign: Campaign) -> float:
    env = campaign.environment_config
    assert env is not None
    mbu = env.multi_bit.share.value
    if row["kind"] == "mbu":
        return mbu
    return 1.0 - mbu if row["memory_bits"] else 1.0


def upsets_per_day(row: dict, campaign: Campaign) -> float:
    """Upsets of a stratum's kind in its bits per device-day in the campaign's orbit."""
    env = campaign.environment_config
    assert env is not None
    mem = row["memory_bits"]
    rate = mem * env.sram_upsets_per_bit_day.value
    rate += (row["bits"] - mem) * env.flipflop_upsets_per_bit_day.value
    return rate * _kind_share(row, campaign)


def orbit_rates(rows: list[dict], campaign: Campaign, build: str) -> dict:
    """SDC, detected and hang rates of one build in the campaign's orbit, with intervals,
    availability, what each mitigation absorbed, and the share of upsets not covered."""
    env = campaign.environment_config
    assert env is not None
    kinds = [o.value for o in CLASSES]
    if any(SDC_CLASS in r["shares"] for r in rows):
        kinds.append(SDC_CLASS)
    totals = {kind: [0.0, 0.0, 0.0] for kind in kinds}
    absorbed: dict[str, float] = {}
    covered = uncovered = 0.0
    unrated: list[str] = []
    for row in rows:
        if row["build"] != build:
            continue
        if row["kind"] not in RATED_KINDS:
            unrated.append(row["stratum"])
            continue
        lam = upsets_per_day(row, campaign)
        if not row["injected"]:
            uncovered += lam
            continue
        covered += lam
        for kind in kinds:
            sh = row["shares"][kind]
            for k, key in enumerate(("share", "low", "high")):
                totals[kind][k] += lam * sh[key]
        corrected = lam * row["shares"][Outcome.CORRECTED.value]["share"]
        if corrected:
            absorbed[row["protection"]] = absorbed.get(row["protection"], 0.0) + corrected
    out = {}
    for kind in (*(o.value for o in FAILURES), *kinds[len(CLASSES) :]):
        rate, low, high = totals[kind]
        out[kind] = {
            "per_day": rate, "low": low, "high": high,
            "per_year": per_day_to_year(rate), "per_year_low": per_day_to_year(low),
            "per_year_high": per_day_to_year(high), "fit": per_day_to_fit(rate),
            "fit_low": per_day_to_fit(low), "fit_high": per_day_to_fit(high),
        }  # fmt: skip
    lost = (totals["hang"][0] * HANG_COST_S + totals["detected"][0] * DETECTED_COST_S
            + env.sefi_per_device_day.value * SEFI_COST_S)  # fmt: skip
    out["availability"] = 1.0 - lost / 86_400.0
    out["upsets_per_day"] = covered + uncovered
    out["covered_share"] = covered / (covered + uncovered) if covered + uncovered else 0.0
    out["absorbed_per_day"] = absorbed
    out["sefi_per_day"] = env.sefi_per_device_day.value
    out["unrated_strata"] = unrated
    return out


def beam_rates(rows: list[dict], campaign: Campaign, build: str) -> dict:
    """Events of one build in the campaign's beam: expected counts over its fluence and
    events per rad, as a proton test report gives them."""
    beam = campaign.beam
    assert beam is not None
    fluence = beam.fluence_per_cm2.value
    per_rad = beam.particles_per_cm2_per_rad.value
    totals = {o.value: [0.0, 0.0, 0.0] for o in (Outcome.SDC, Outcome.DETECTED, Outcome.HANG)}
    for row in rows:
        if row["build"] != build or row["kind"] != "sbu" or not row["injected"]:
            continue
        mem = row["memory_bits"]
        sigma = (mem * beam.sram_cross_section_cm2_per_bit.value
                 + (row["bits"] - mem) * beam.flipflop_cross_section_cm2_per_bit.value)
        for o, acc in totals.items():
            sh = row["shares"][o]
            for k, key in enumerate(("share", "low", "high")):
                acc[k] += sigma * sh[key]
    out = {}
    for o, (sigma, low, high) in totals.items():
        out[o] = {
            "cross_section_cm2": sigma, "low": low, "high": high,
            "events": sigma * fluence, "per_rad": sigma * per_rad,
            "rad_per_event": 1.0 / (sigma * per_rad) if sigma else None,
        }  # fmt: skip
    out["dose_rad"] = fluence / per_rad
    return out


def cost(campaign: Campaign, build: Build) -> dict:
    """What the build costs for one run of the workload (a GEMM, or a network's batch: all
    its chip jobs): cycles, energy (the firmware's energy model, blind to the
    protections) and area if ``make synth`` has measured it."""
    plan = Plan(campaign, build)
    energy = EnergyModel()
    cycles = macs = 0
    joules = 0.0
    for job in plan.workload.jobs:
        chip = Accelerator(**build.options())
        chip.load_job(**job.job_args())
        chip.run()
        job_cycles, job_macs = chip.read_reg(Reg.CYCLES), chip.read_reg(Reg.MACS)
        m, k, n = job.dims
        accesses = gemm_spm_accesses(build.n, m, k, n, job.bias is not None, job.out_int32)
        joules += energy.job_energy_j(job_cycles, job_macs, accesses)
        cycles, macs = cycles + job_cycles, macs + job_macs
    out = {"cycles_per_job": cycles, "macs_per_job": macs, "energy_per_job_j": joules}
    out.update(area(build))
    return out


def area(build: Build) -> dict:
    """Cells, flip-flops and memory bits of the build as ``make synth`` measured it from
    the current RTL (kept in testbed/area/, ``testbed.synth``); empty otherwise."""
    from testbed import synth

    report = synth.cached(build)
    if report is None:
        return {}
    return {"cells": report.cells, "flip_flops": report.flops, "memory_bits": report.memory_bits}


def analyse(run: CampaignRun, soaks: list[dict] | None = None) -> dict:
    """The whole analysis of a campaign as plain data (``report.json``), with the results
    of its mission soaks (``mission.run_soaks``) if it flew any."""
    campaign = run.campaign
    conf = campaign.precision.confidence if campaign.precision else 0.95
    z = quantile(conf)
    rows = stratum_rows(run, z)
    builds = []
    for build in run.builds:
        entry = {"build": build.name, "options": build.options(), "cost": cost(campaign, build)}
        if campaign.environment_config is not None:
            entry["orbit"] = orbit_rates(rows, campaign, build.name)
        if campaign.beam is not None:
            entry["beam"] = beam_rates(rows, campaign, build.name)
        builds.append(entry)
    return {
        "campaign": campaign.name, "description": campaign.description,
        "file": campaign.path, "backend": run.backend, "seed": campaign.seed,
        "workload": campaign.workload.describe(), "confidence": conf,
        "environment": campaign.environment_config.name if campaign.environment_config else None,
        "environment_description": (campaign.environment_config.description
                                    if campaign.environment_config else None),
        "beam": campaign.beam.particle if campaign.beam else None,
        "strata": rows, "builds": builds, "soaks": soaks or [],
        "runs": sum(r["runs"] for r in rows), "injected": sum(r["injected"] for r in rows),
    }  # fmt: skip

