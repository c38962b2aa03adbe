"""A campaign backend that runs each injection on a chip over the serial link: the
simulated chip (the flight software and model in their own process, on a
pseudo-terminal) or a board.

Each injection is one fault record of service 148 (ICD 15.8): a site-map entry by name
(class SITE), a scratchpad cell or cluster (SPM_CELL, SPM_CLUSTER), armed for the next
job at its point (timing NEXT_JOB); a stuck bit is set before the job and cleared after.
Then the workload runs as a job (service 8) and the result is compared with the golden
run's. As on the model, a run is one job and its read-back from a known state: the
scrubber is stopped, C's words are cleared before the job and, with ECC, a scrub pass
first corrects any upset an earlier run left in memory. A fault the target refuses,
or whose point the job never reached (ACCELERATOR housekeeping
``last_job_not_injected``), is not injected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from campaign.outcome import MITIGATION_COUNTERS, Observation, Outcome, Verdict, classify
from campaign.plan import Injection, Plan
from host.commands import Authenticator
from host.errors import CommandFailed, CommandTimeout, describe_code
from host.served import open_link
from host.sim import SIM_KEY, SIM_KEY_ID, SimulatedTarget
from host.target import FAULT_REFUSALS, Target
from protocol.codes import FailureCode, FaultKind, MemoryId
from protocol.payloads import (
    ClusterShape,
    FaultRecord,
    FaultSiteClass,
    FaultTiming,
    HkStructure,
    JobPhase,
    ParamId,
)
from testbed.config.target import BoardTarget, SimTarget
from testbed.sitemap import SiteClass
from testbed.sitemap_builds import Build

#: The job watchdog while a campaign runs (ms): a hung chip is found and reset quickly.
JOB_TIMEOUT_MS = 1000
KINDS = {"sbu": FaultKind.SBU, "mbu": FaultKind.MBU, "set": FaultKind.SET}
SHAPES = {"word_line": ClusterShape.WORD_LINE, "bit_line": ClusterShape.BIT_LINE,
          "block": ClusterShape.BLOCK}  # fmt: skip


def sim_args(build: Build) -> tuple[str, ...]:
    """The simulated chip's command-line options for a build."""
    args = ["--array-n", str(build.n), "--bank-words", str(build.bank_words),
            "--interleave", str(build.interleave)]  # fmt: skip
    args += [flag for flag, on in (("--no-ecc", not build.ecc), ("--no-scrub", not build.scrub),
                                   ("--no-tmr", not build.tmr)) if on]  # fmt: skip
    return tuple(args)


def record(inj: Injection, plan: Plan) -> FaultRecord:
    """The service 148 record of an injection."""
    entry = plan.sitemap.entry(inj.entry)
    point = (inj.tile, int(JobPhase[inj.phase.upper()]), inj.cycle)
    if inj.kind == "stuck_at":
        kind = FaultKind.STUCK_AT_1 if inj.value else FaultKind.STUCK_AT_0
        timing, point = FaultTiming.NOW, (0, 0, 0)
    else:
        kind, timing = KINDS[inj.kind], FaultTiming.NEXT_JOB
    if entry.kind == "memory":
        bank, row, cell = plan.memory_cell(inj.entry, inj.bit)
        if inj.kind == "mbu":
            return FaultRecord(kind, FaultSiteClass.SPM_CLUSTER, inj.size,
                               (bank, row, cell, SHAPES[inj.orientation]), timing, point)
        return FaultRecord(kind, FaultSiteClass.SPM_CELL, 1, (bank, row, cell), timing, point)
    return FaultRecord(kind, FaultSiteClass.SITE, 1, (inj.entry, inj.bit), timing, point)


class LinkBackend:
    """Injections of one build's plan on a chip over the link."""

    name = "link"

    def __init__(self, plan: Plan, log_dir: Path | None = None) -> None:
        self.plan = plan
        target = plan.campaign.target_config
        self.sim: SimulatedTarget | None = None
        if isinstance(target, SimTarget):
            log = (log_dir / f"{plan.build.name}.log") if log_dir else None
            self.sim = SimulatedTarget(mode="test", args=sim_args(plan.build), log=log,
                                       backend=target.backend)  # fmt: skip
            self.sim.__enter__()
            port, baud, auth = self.sim.port, None, Authenticator(SIM_KEY_ID, SIM_KEY)
        else:
            assert isinstance(target, BoardTarget)
            key = target.key_pair()
            port, baud = target.port, target.baud
            auth = Authenticator(*key) if key else Authenticator()
        self.link = open_link(port, baud, auth=auth, client="hil campaign")
        self.target = Target(self.link)
        self.target.set_parameter(ParamId.JOB_TIMEOUT, JOB_TIMEOUT_MS)
        # The detected errors a campaign provokes on purpose must not send it to SAFE.
        self.target.set_parameter(ParamId.SAFE_MODE_THRESHOLD, 255)
        # A run is one job and its read-back: the scrubber, which acts between jobs
        # (the mission soak's business), is stopped so that it neither corrects nor
        # counts an upset left in memory before the counters are read.
        self.target.set_parameter(ParamId.SCRUB_PERIOD, 0)
        self.layer = plan.workload.jobs[0].job_args()
        address, octets = plan.c_region
        self._c = (address, bytes(octets))
        self._upset_left = plan.build.ecc
        self._fresh()
        self.golden = self._job()

    def _job(self, job_id: int | None = None) -> np.ndarray:
        args = dict(self.layer)
        return self.target.run_layer(args.pop("a"), args.pop("b"), args.pop("bias"),
                                     job_id=job_id, **args)  # fmt: skip

    def _fresh(self) -> None:
        """Start a run as the model's does: C's words cleared (a misdirected write must
        not leave the last run's right answer there) and, with ECC, no upset of an
        earlier run left in memory (a scrub pass corrects them before the counters are
        read). Only a fault in memory cells leaves such an upset; a fault elsewhere
        writes whole codewords, and the job stages A and B anew."""
        self.target.load(MemoryId.ACCEL_SCRATCHPAD, *self._c)
        if self._upset_left:
            self.target.scrub_now()
            self._upset_left = False

    def _after_hang(self) -> None:
        """A hung job ran on over tiles past its last, writing where they pointed, until the
        chip was reset; how far it got before that is no outcome of the fault (the model
        stops it at its hang bound). The whole scratchpad is cleared, so that the next runs
        start from one state on every chip."""
        size = self.plan.build.n * 2 * self.plan.build.bank_words
        self.target.load(MemoryId.ACCEL_SCRATCHPAD, 0, bytes(size))

    def close(self) -> None:
        self.link.close()
        if self.sim is not None:
            self.sim.__exit__(None, None, None)

    def run(self, inj: Injection) -> Verdict:
        """Run one injection over the link; its outcome class and a line saying why."""
        rec = record(inj, self.plan)
        self._fresh()
        in_memory = self.plan.sitemap.entry(inj.entry).kind == "memory"
        self._upset_left = self.plan.build.ecc and in_memory
        before = self.target.housekeeping(HkStructure.ACCELERATOR)
        try:
            self.target.inject([rec])
        except CommandFailed as exc:
            if exc.code not in FAULT_REFUSALS:
                raise
            why = f"refused, {describe_code(exc.code)}: {FAULT_REFUSALS[exc.code]}"
            return Verdict(Outcome.NOT_INJECTED, why)
        job_id = self.target.next_job_id()
        got, failed = None, None
        try:
            got = self._job(job_id)
        except CommandFailed as exc:
            failed = exc
        except CommandTimeout as exc:
            self.target.clear_faults()
            self._after_hang()
            return classify(Observation(None, str(exc), hung=True), self.golden)
        finally:
            if failed is not None or got is not None:
                self.target.clear_faults()
        after = self.target.housekeeping(HkStructure.ACCELERATOR)
        if after["last_job_id"] == job_id and after["last_job_not_injected"]:
            missed, of = after["last_job_not_injected"], after["last_job_faults"]
            why = f"the job reported {missed} of its {of} flips not injected"
            return Verdict(Outcome.NOT_INJECTED, why)
        if failed is not None:
            if failed.code == FailureCode.TIMEOUT:
                self._after_hang()
                return classify(Observation(None, "job timed out; the chip was reset",
                                            hung=True), self.golden)  # fmt: skip
            return classify(Observation(None, "job refused its result: "
                                        + describe_code(failed.code)), self.golden)  # fmt: skip
        moved = {k: (after[k] - before[k]) & 0xFFFFFFFF for k in MITIGATION_COUNTERS}
        return classify(Observation(got, "", False, moved), self.golden,
                        counter_site=inj.site_class is SiteClass.COUNTER)  # fmt: skip
