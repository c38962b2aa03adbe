"""`make demo`: a simulated chip on a pseudo-terminal, an NN layer run through it, faults
injected while it runs, and a report with a figure.

Two chips are started, one built with every protection (SECDED, scrubbing, TMR) and one
without, so the report shows what the protections buy. For each chip the demo runs the
layer once clean (its result is the golden one, checked against the model's reference
arithmetic), then once per fault, each fault timed to land inside the next job
(service 148, timing NEXT_JOB), and classifies how the run ended. Sequencer, pipeline
and SET faults name their sites from the build's site map (site class SITE). Each row
names what protects its site on that build. A fault the target refuses, or whose point the job
never reaches, is counted as not injected and kept out of the rates (docs/FAULTS.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware_sim.accel.reference import gemm_reference
from host.commands import Authenticator
from host.errors import CommandFailed, CommandTimeout, describe_code
from host.link import Link
from host.report import Outcome, Run, summarize, write
from host.sim import SIM_KEY, SIM_KEY_ID, SimulatedTarget
from host.target import FAULT_REFUSALS, Target
from protocol.codes import FailureCode, FaultKind
from protocol.payloads import (
    FaultRecord,
    FaultSiteClass,
    FaultTiming,
    HkStructure,
    JobPhase,
    ParamId,
)
from testbed.sitemap import SiteClass, SiteMap

ARRAY_N = 4
#: The layer: 16 inputs of 40 features through 24 units (fits one TC inline).
M, K, N = 16, 40, 24
SHIFT = 7
SEFI_RUNS = 3
#: Cycles of a tile's STREAM period for this int8 layer (docs/REGISTERS.md).
PERIOD = max(K + 1, 2 * ARRAY_N + 1)
#: Counters of the ACCELERATOR housekeeping that say a mitigation acted.
MITIGATION_COUNTERS = ("ecc_corrected", "ecc_uncorrectable", "tmr_mismatches", "accel_resets")
#: Configuration registers a job reads (docs/REGISTERS.md), by offset, with their widths.
JOB_REGISTERS = {0x18: 12, 0x1C: 12, 0x20: 12, 0x24: 16, 0x28: 16, 0x2C: 16, 0x30: 16, 0x34: 8}


@dataclass(frozen=True)
class Chip:
    """One build of the simulated chip."""

    label: str
    args: tuple[str, ...]
    ecc: bool
    tmr: bool

    @property
    def check_bits(self) -> int:
        return 7 if self.ecc else 0  # SECDED check bits of a 32-bit word (N = 4)

    @property
    def sitemap(self) -> SiteMap:
        """The build's site map (``SITE`` records name its entries)."""
        return SiteMap.for_build(n=ARRAY_N, ecc=self.ecc, scrub=self.ecc, tmr=self.tmr)

    def protection(self, record: FaultRecord) -> str:
        """What protects the record's site on this build (docs/FAULTS.md, "Sites and what
        protects them"); a SEFI hangs the sequencer itself, which nothing on the chip
        protects, and a SET before the copies of a TMR register reaches all three."""
        site = record.site_class
        if site in (FaultSiteClass.SPM_WORD, FaultSiteClass.SPM_CELL) and self.ecc:
            return "SECDED"
        tmr_site = site == FaultSiteClass.REG_COPY or (
            site == FaultSiteClass.SITE and self.sitemap.entry(str(record.site[0])).cls
            in (SiteClass.CONFIGURATION, SiteClass.SEQUENCER)
        )  # fmt: skip
        if tmr_site and self.tmr:
            return "TMR (not against SET)" if record.kind == FaultKind.SET else "TMR"
        return "none"


CHIPS = (
    Chip("protected", (), ecc=True, tmr=True),
    Chip("unprotected", ("--no-ecc", "--no-scrub", "--no-tmr"), ecc=False, tmr=False),
)


def tiles() -> int:
    return -(-M // ARRAY_N) * -(-N // ARRAY_N)


def fault_plan(rng: np.random.Generator, chip: Chip, runs: int) -> list[tuple[str, FaultRecord]]:
    """``runs`` faults of each kind, at random sites and random points of the next job."""
    codeword = 8 * ARRAY_N + chip.check_bits
    a_words = -(-M // ARRAY_N) * K  # A sits in bank 0 from word 0 (ICD 15.6)
    plan: list[tuple[str, FaultRecord]] = []

    def point(phase: JobPhase, cycles: int) -> tuple[int, int, int]:
        return int(rng.integers(tiles())), int(phase), int(rng.integers(cycles))

    for _ in range(runs):
        word, bit = int(rng.integers(a_words)), int(rng.integers(codeword))
        plan.append(("SBU in an operand word", FaultRecord(
            FaultKind.SBU, FaultSiteClass.SPM_WORD, 1, (word, bit),
            FaultTiming.NEXT_JOB, (0, JobPhase.BIAS, 0))))
    for _ in range(runs):
        word, bit = int(rng.integers(a_words)), int(rng.integers(codeword - 1))
        plan.append(("2-bit MBU in an operand word", FaultRecord(
            FaultKind.MBU, FaultSiteClass.SPM_WORD, 2, (word, bit),
            FaultTiming.NEXT_JOB, (0, JobPhase.BIAS, 0))))
    for _ in range(runs):
        # Inside the job on both builds: between jobs the driver rewrites these registers
        # before START, so a flip there could only come out masked.
        offset = int(rng.choice(list(JOB_REGISTERS)))
        copies = 3 if chip.tmr else 1
        site = (offset, int(rng.integers(copies)), int(rng.integers(JOB_REGISTERS[offset])))
        plan.append(("SBU in a control register", FaultRecord(
            FaultKind.SBU, FaultSiteClass.REG_COPY, 1, site,
            FaultTiming.NEXT_JOB, point(JobPhase.STREAM, K))))
    for _ in range(runs):
        site = (int(rng.integers(ARRAY_N)), int(rng.integers(ARRAY_N)), int(rng.integers(32)))
        plan.append(("SBU in an accumulator", FaultRecord(
            FaultKind.SBU, FaultSiteClass.ACC_BIT, 1, site,
            FaultTiming.NEXT_JOB, point(JobPhase.STREAM, PERIOD))))
    for _ in range(runs):
        # A result register between its tile's end and the write of its row.
        site = (int(rng.integers(ARRAY_N)), int(rng.integers(ARRAY_N)), int(rng.integers(32)))
        plan.append(("SBU in a result register", FaultRecord(
            FaultKind.SBU, FaultSiteClass.OUT_BIT, 1, site,
            FaultTiming.NEXT_JOB, point(JobPhase.WRITE, ARRAY_N))))
    sitemap = chip.sitemap

    def named(*classes: SiteClass) -> tuple[str, int]:
        """A random bit of a random entry of these classes of the build's map."""
        entries = list(sitemap.select(*classes))
        entry = entries[int(rng.integers(len(entries)))]
        return entry.name, int(rng.integers(entry.bits))

    for _ in range(runs):
        plan.append(("SBU in the sequencer state", FaultRecord(
            FaultKind.SBU, FaultSiteClass.SITE, 1, named(SiteClass.SEQUENCER),
            FaultTiming.NEXT_JOB, point(JobPhase.STREAM, K))))
    for _ in range(runs):
        # On the next value the copies of a register share: TMR votes three equal copies.
        plan.append(("SET in a control or sequencer register", FaultRecord(
            FaultKind.SET, FaultSiteClass.SITE, 1,
            named(SiteClass.CONFIGURATION, SiteClass.SEQUENCER),
            FaultTiming.NEXT_JOB, point(JobPhase.STREAM, K))))
    for _ in range(runs):
        plan.append(("SBU in a pipeline register", FaultRecord(
            FaultKind.SBU, FaultSiteClass.SITE, 1, named(SiteClass.PIPELINE),
            FaultTiming.NEXT_JOB, point(JobPhase.STREAM, K))))
    # Each hang costs the job watchdog's timeout: a few are enough to show the class.
    for _ in range(min(runs, SEFI_RUNS)):
        plan.append(("SEFI of the accelerator", FaultRecord(
            FaultKind.SEFI, FaultSiteClass.ACCEL, 0, (), FaultTiming.NEXT_JOB, (0, 0, 0))))
    return plan  # fmt: skip


def classify(
    target: Target, golden: np.ndarray, layer: dict, record: FaultRecord
) -> tuple[Outcome, str]:
    """Inject one fault, run the layer, and say how the run ended."""
    before = target.housekeeping(HkStructure.ACCELERATOR)
    try:
        target.inject([record])
    except CommandFailed as exc:
        if exc.code not in FAULT_REFUSALS:
            raise
        why = FAULT_REFUSALS[exc.code]
        return Outcome.NOT_INJECTED, f"refused, {describe_code(exc.code)}: {why}"
    job_id = target.next_job_id()
    got, failed = None, None
    try:
        got = target.run_layer(**layer, job_id=job_id)
    except CommandFailed as exc:
        failed = exc
    except CommandTimeout as exc:
        return Outcome.HANG, str(exc)
    finally:
        target.clear_faults()
    after = target.housekeeping(HkStructure.ACCELERATOR)
    if after["last_job_id"] == job_id and after["last_job_not_injected"]:
        missed, of = after["last_job_not_injected"], after["last_job_faults"]
        return Outcome.NOT_INJECTED, f"the job reported {missed} of its {of} flips not injected"
    if failed is not None:
        if failed.code == FailureCode.TIMEOUT:
            return Outcome.HANG, "job timed out; the chip was reset"
        return Outcome.DETECTED, f"job refused its result: {describe_code(failed.code)}"
    acted = [name for name in MITIGATION_COUNTERS if after[name] != before[name]]
    if not np.array_equal(got, golden):
        wrong = int(np.count_nonzero(got != golden))
        return Outcome.SDC, f"{wrong} of {golden.size} outputs wrong, delivered as good"
    if acted:
        return Outcome.CORRECTED, "counters moved: " + ", ".join(acted)
    return Outcome.MASKED, "result correct, nothing noticed"


def show_progress(label: str, done: int, total: int, started: float) -> None:
    """One line redrawn in place on a terminal; a line per tenth of the runs in a log."""
    rate = done / max(time.monotonic() - started, 1e-6)
    text = f"[{label}] fault runs {done}/{total}  ({rate:.0f}/s)"
    if sys.stderr.isatty():
        print("\r" + text, end="\n" if done == total else "", file=sys.stderr, flush=True)
    elif done == total or done % max(1, total // 10) == 0:
        print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ChipPlan:
    """What the demo runs on one chip: the layer and the faults, in order."""

    chip: Chip
    layer: dict
    faults: list[tuple[str, FaultRecord]]


def plans(seed: int, runs: int) -> list[ChipPlan]:
    """The layer and fault plan of each chip, drawn from ``seed`` (the same every time)."""
    rng = np.random.default_rng(seed)
    out = []
    for chip in CHIPS:
        a = rng.integers(-128, 128, (M, K), dtype=np.int8)
        b = rng.integers(-128, 128, (K, N), dtype=np.int8)
        bias = rng.integers(-20000, 20000, N).astype(np.int32)
        layer = {"a": a, "b": b, "bias": bias, "relu": True, "shift": SHIFT}
        out.append(ChipPlan(chip, layer, fault_plan(rng, chip, runs)))
    return out


def label(chip: Chip, fault: str, record: FaultRecord) -> str:
    """The report row of a fault on a chip: what it is, what protects it, which build."""
    return f"{fault} [{chip.protection(record)}, {chip.label} build]"


def run_chip(chip_plan: ChipPlan, log: Path) -> list[Run]:
    """Start one chip, check the golden run, then run the fault plan on it."""
    chip, layer, plan = chip_plan.chip, chip_plan.layer, chip_plan.faults
    expected = gemm_reference(layer["a"], layer["b"], layer["bias"], relu=True, shift=SHIFT)
    args = ("--array-n", str(ARRAY_N), *chip.args)
    with SimulatedTarget(mode="test", args=args, log=log) as sim:
        print(f"[{chip.label}] simulated chip on {sim.port}", flush=True)
        auth = Authenticator(SIM_KEY_ID, SIM_KEY)
        with Link(sim.port, auth=auth, session_log=log.with_suffix(".link.log")) as link:
            target = Target(link)
            print(f"[{chip.label}] ping {1000 * target.ping():.1f} ms", flush=True)
            # A hung chip is found and reset within a second rather than the default, and
            # the detected errors a campaign provokes on purpose do not send it to SAFE.
            target.set_parameter(ParamId.JOB_TIMEOUT, 1000)
            target.set_parameter(ParamId.SAFE_MODE_THRESHOLD, 255)
            golden = target.run_layer(**layer)
            if not np.array_equal(golden, expected):
                raise SystemExit(f"[{chip.label}] the clean run differs from the reference")
            print(f"[{chip.label}] clean run matches the reference ({M}x{K}x{N} layer)")
            results = []
            started = time.monotonic()
            for i, (fault, record) in enumerate(plan, 1):
                outcome, detail = classify(target, golden, layer, record)
                row = label(chip, fault, record)
                results.append(Run(row, f"{chip.label}: {record.site}", outcome, detail))
                show_progress(chip.label, i, len(plan), started)
    return results


def not_injected_notes(runs: list[Run]) -> list[str]:
    """A sentence per row with runs whose fault was not injected, saying why."""
    notes = []
    for s in summarize(runs):
        if s.not_injected:
            why = sorted({r.detail for r in runs if r.fault == s.fault
                          and r.outcome is Outcome.NOT_INJECTED})  # fmt: skip
            notes.append(f"- {s.fault}: {s.not_injected} of {s.runs + s.not_injected} runs not "
                         f"injected ({'; '.join(why)}); they are in no rate.")  # fmt: skip
    return notes


def main(argv: list[str] | None = None) -> int:
    """Run the demo and write reports/demo.{json,md,png}."""
    parser = argparse.ArgumentParser(prog="python -m host.demo", description=__doc__)
    parser.add_argument("--runs", type=int, default=25, help="injections per fault kind")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    args.out.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    for chip_plan in plans(args.seed, args.runs):
        runs += run_chip(chip_plan, args.out / f"demo-{chip_plan.chip.label}.log")
    meta = {
        "workload": f"NN layer {M}x{K} . {K}x{N} + bias, ReLU, >>{SHIFT}, int8",
        "chip": f"{ARRAY_N}x{ARRAY_N} array, simulated (model backend) on a pty",
        "injections per fault kind and chip": args.runs,
        "seed": args.seed,
    }
    notes = [
        "Each fault was timed (service 148, NEXT_JOB) to land inside the job that followed,",
        "at a random tile and cycle; operand upsets land before the first read. Each row",
        "names what protects its site on that build: SECDED, TMR, or none; a SET on the",
        "next value a TMR register's copies share reaches all three, so TMR does not help.",
        "A run is *corrected* when the result was right and an EDAC or TMR counter moved,",
        "*detected* when the flight software refused to deliver the result.",
        "A run is *not injected* when the target refused the fault (it cannot apply it as",
        "that build would behave) or the job never reached its point; such runs are counted",
        "apart and kept out of the rates, never counted as masked.",
        "",
        *not_injected_notes(runs),
    ]
    paths = write(args.out, "demo", "SCC under injected upsets", runs, meta, notes)
    print(f"report: {paths['md']}  figure: {paths['png']}  data: {paths['json']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
