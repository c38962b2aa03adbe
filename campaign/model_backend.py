"""A campaign backend that runs each injection on the bit-exact model in this process.

For each chip job of the workload (``campaign.workloads``: one for a GEMM, a network's
layers as they are tiled) the chip is built, the job's operands placed and its registers
programmed once; that pre-job state is kept (``Accelerator.snapshot``) with a record of
its fault-free job (``golden_job``), and every injection into that job starts from it:
the state is restored, the fault placed at its point of the job, and the job run from
the recorded golden run (``run(..., golden=...)``: it starts at the fault's cycle and
rejoins the recording once the fault has died out). The job's C, read back as the flight
software reads it, makes the run's result (``CampaignWorkload.finish``), which is
compared with the golden run's with the job's counters. A fault the model has no site for, or
refuses to predict (``NotModelled``), or whose point the job never reached, is not
injected: the run says why and is kept out of every rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from campaign.outcome import (
    ENDED_WITHOUT_DONE,
    MITIGATION_COUNTERS,
    Observation,
    Outcome,
    Verdict,
    classify,
)
from campaign.plan import Injection, Plan
from firmware_sim.accel import Accelerator, EccStatus, JobPoint, NotModelled, Reg, SpmCell
from firmware_sim.accel.packing import Placement
from firmware_sim.accel.regs import Status
from firmware_sim.accel.sitemap_sites import model_site, rtl_only_reason, transient_sites
from testbed.clusters import shape
from testbed.sitemap import SiteClass

#: The model's register of each counter the classifier reads (``MITIGATION_COUNTERS``, by
#: the names the ACCELERATOR housekeeping gives them).
COUNTER_REGS = {"ecc_corrected": Reg.ECC_CORR, "tmr_mismatches": Reg.TMR_MISMATCH}


#: Injections whose model sites a backend keeps (the scratchpad alone has more bits).
SITES_KEPT = 1 << 16


@dataclass
class _JobState:
    """One chip job of the workload, ready to run: its pre-job state, the recording of
    its fault-free run, its golden C (as stored and as read) and counters."""

    pristine: object
    recording: object
    place: Placement
    golden: np.ndarray
    #: C as the golden run stored it, every word as written: a run that leaves the same
    #: octets, none of them with an error, reads back the golden result.
    golden_c: bytes | None
    counters: dict[str, int]


class ModelBackend:
    """Injections of one build's plan on the model."""

    name = "model"

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.build = plan.build
        self.workload = plan.workload
        chip = Accelerator(**self.build.options())
        self.chip = chip
        self._sites: dict[tuple, tuple | str] = {}
        blank = chip.snapshot()
        self._jobs = [self._prepare(j, blank) for j in range(len(self.workload.jobs))]
        self.golden = self.workload.golden

    def _prepare(self, j: int, blank: object) -> _JobState:
        """Chip job ``j`` loaded on the ``blank`` chip, its pre-job state kept, and its
        golden run recorded."""
        chip, job = self.chip, self.workload.jobs[j]
        chip.restore(blank)
        # As on the link: the scrubber is stopped, a run is its job and read-back.
        chip.write_reg(Reg.SCRUB_PERIOD, 0)
        place = chip.load_job(**job.job_args())
        pristine = chip.snapshot()
        recording = chip.golden_job()
        err = chip.run()
        if err or chip.hung:
            raise RuntimeError(f"the golden run of {job.label} of "
                               f"{self.workload.describe()} failed: {err}")  # fmt: skip
        state = _JobState(pristine, recording, place, self.workload.job_golden(j), None, {})
        got, why = self._result(chip, j, state)
        if got is None:
            raise RuntimeError(f"the golden run's result of {job.label} cannot be read: {why}")
        if not np.array_equal(got, state.golden):
            what = self.workload.describe()
            raise RuntimeError(f"the model's fault-free {job.label} of {what} differs from "
                               "the reference")  # fmt: skip
        state.counters = self._counters(chip)
        base, count = place.c_addr, place.c_words
        if not any(base <= w < base + count for w in chip.spm.dirty):
            state.golden_c = chip.dump(base, count).tobytes()
        return state

    def _result(self, chip: Accelerator, j: int, state: _JobState) -> tuple[np.ndarray | None, str]:
        """C of job ``j`` read back through the ECC decoder, as the flight software reads
        it (a corrected word is counted); None and why if a word is uncorrectable."""
        m, _, n = self.workload.jobs[j].dims
        base, count = state.place.c_addr, state.place.c_words
        # A word stored as written reads back as it is, uncounted: only the words holding
        # an error go through the decoder (corrected and counted, or uncorrectable).
        dirty = sorted(w for w in chip.spm.dirty if base <= w < base + count)
        if not dirty and state.golden_c is not None:
            if chip.spm.data[base : base + count].tobytes() == state.golden_c:
                return state.golden, ""
        words = chip.dump(base, count)
        for addr in dirty:
            data, status = chip.read_word(addr)
            if status is EccStatus.UNCORRECTABLE:
                return None, f"result word {addr - base} uncorrectable on read-back (ECC)"
            words[addr - base] = np.frombuffer(data.to_bytes(chip.n, "little"), dtype=np.uint8)
        return chip.unpack_c(words, m, n, self.workload.jobs[j].out_int32), ""

    @staticmethod
    def _counters(chip: Accelerator) -> dict[str, int]:
        return {name: chip.read_reg(COUNTER_REGS[name]) for name in MITIGATION_COUNTERS}

    def sites(self, chip: Accelerator, inj: Injection) -> list | str:
        """The model sites an injection flips, or why the model has none."""
        # Sites are frozen values: an injection's depend on its entry, bit, kind and cluster.
        key = (inj.entry, inj.bit, inj.kind, inj.size, inj.orientation)
        found = self._sites.get(key)
        if found is None:
            found = self._find_sites(chip, inj)
            if len(self._sites) < SITES_KEPT:
                self._sites[key] = found
        return list(found) if isinstance(found, tuple) else found

    def _find_sites(self, chip: Accelerator, inj: Injection) -> tuple | str:
        entry = self.plan.sitemap.entry(inj.entry)
        if inj.kind == "set":
            # The net the flop loads, latched by every register bit that loads it.
            sites = transient_sites(self.plan.sitemap, entry, inj.bit, self.build.tmr)
            if sites and rtl_only_reason(entry, self.build) is None:
                return tuple(sites)
            site = None
        else:
            site = model_site(entry, inj.bit)
        if site is None:
            why = rtl_only_reason(entry, self.build) or "no model site of this kind"
            return f"the model has no site for {inj.entry}: {why}"
        if inj.kind != "mbu":
            return (site,)
        assert isinstance(site, SpmCell)
        lay = chip.layout
        cells = [SpmCell(site.bank, site.row + dr, site.cell + dc)
                 for dr, dc in shape(inj.size, inj.orientation).offsets]  # fmt: skip
        # A cluster reaching past the array's edge flips the cells that exist.
        return tuple(c for c in cells if 0 <= c.row < lay.rows and 0 <= c.cell < lay.row_cells)

    def run(self, inj: Injection) -> Verdict:
        """Run one injection; its outcome class and a line saying why."""
        chip, state = self.chip, self._jobs[inj.job]
        chip.restore(state.pristine)
        sites = self.sites(chip, inj)
        if isinstance(sites, str):
            return Verdict(Outcome.NOT_INJECTED, sites)
        point = JobPoint(inj.tile, inj.phase, inj.cycle)
        try:
            if inj.kind == "stuck_at":
                chip.stick(sites[0], inj.value)  # a changed state: no recording applies
                err = chip.run()
            else:
                err = chip.run([(point, s) for s in sites], golden=state.recording)
        except NotModelled as exc:
            return Verdict(Outcome.NOT_INJECTED, f"the model cannot predict it: {exc}")
        report = chip.last_job
        if report is not None and report.not_injected:
            missed = len(report.not_injected)
            why = f"the job never reached the point of {missed} flip(s)"
            return Verdict(Outcome.NOT_INJECTED, why)
        if chip.hung:
            return classify(Observation(None, hung=True), self.golden)
        if err:
            return classify(Observation(None, f"the job ended in error, ERR_CODE {int(err)}"),
                            self.golden)  # fmt: skip
        if not chip.status & Status.DONE:
            # The flight software fails a job whose chip went idle without DONE.
            return classify(Observation(None, ENDED_WITHOUT_DONE), self.golden)
        c, error = self._result(chip, inj.job, state)
        result = None if c is None else self.workload.finish(inj.job, c)
        moved = {k: (v - state.counters[k]) & 0xFFFFFFFF
                 for k, v in self._counters(chip).items()}  # fmt: skip
        return classify(Observation(result, error, False, moved), self.golden,
                        counter_site=inj.site_class is SiteClass.COUNTER,
                        classes=self.workload.classes)  # fmt: skip
