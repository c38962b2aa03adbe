"""A campaign backend that runs each injection on the bit-exact model in this process.

The chip is built, the workload's operands placed and its registers programmed once;
that pre-job state is kept (``Accelerator.snapshot``) with a record of its fault-free
job (``golden_job``), and every injection starts from it: the state is restored, the
fault placed at its point of the job, and the job run from the recorded golden run
(``run(..., golden=...)``: it starts at the fault's cycle and rejoins the recording
once the fault has died out), and the result and counters are compared with the
golden run's. A fault the model has no site for, or
refuses to predict (``NotModelled``), or whose point the job never reached, is not
injected: the run says why and is kept out of every rate.
"""

from __future__ import annotations

import numpy as np

from campaign.outcome import (
    ENDED_WITHOUT_DONE,
    MITIGATION_COUNTERS,
    Observation,
    Outcome,
    classify,
)
from campaign.plan import Injection, Plan
from firmware_sim.accel import Accelerator, EccStatus, JobPoint, NotModelled, Reg, SpmCell
from firmware_sim.accel.regs import Status
from firmware_sim.accel.sitemap_sites import model_site, rtl_only_reason, transient_sites
from testbed.clusters import shape
from testbed.sitemap import SiteClass

#: The model's register of each counter the classifier reads (``MITIGATION_COUNTERS``, by
#: the names the ACCELERATOR housekeeping gives them).
COUNTER_REGS = {"ecc_corrected": Reg.ECC_CORR, "tmr_mismatches": Reg.TMR_MISMATCH}


#: Injections whose model sites a backend keeps (the scratchpad alone has more bits).
SITES_KEPT = 1 << 16


class ModelBackend:
    """Injections of one build's plan on the model."""

    name = "model"

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.build = plan.build
        chip = Accelerator(**self.build.options())
        # As on the link: the scrubber is stopped, a run is its job and read-back.
        chip.write_reg(Reg.SCRUB_PERIOD, 0)
        self.place = chip.load_job(**plan.workload.job_args())
        self.chip = chip
        self._sites: dict[tuple, tuple | str] = {}
        self._pristine = chip.snapshot()
        self._golden = chip.golden_job()
        err = chip.run()
        if err or chip.hung:
            raise RuntimeError(f"the golden run of {plan.workload.spec.describe()} failed: {err}")
        self._golden_c: bytes | None = None
        self.golden, why = self._result(chip)
        if self.golden is None:
            raise RuntimeError(f"the golden run's result cannot be read: {why}")
        self.golden_counters = self._counters(chip)
        #: C as the golden run stored it, every word as written: a run that leaves the same
        #: octets, none of them with an error, reads back the golden result.
        base, count = self.place.c_addr, self.place.c_words
        clean = not any(base <= w < base + count for w in chip.spm.dirty)
        self._golden_c = chip.dump(base, count).tobytes() if clean else None
        self.cycles = chip.read_reg(Reg.CYCLES)
        self.macs = chip.read_reg(Reg.MACS)

    def _result(self, chip: Accelerator) -> tuple[np.ndarray | None, str]:
        """C read back through the ECC decoder, as the flight software reads it (a
        corrected word is counted); None and why if a word is uncorrectable."""
        spec = self.plan.workload.spec
        base, count = self.place.c_addr, self.place.c_words
        # A word stored as written reads back as it is, uncounted: only the words holding
        # an error go through the decoder (corrected and counted, or uncorrectable).
        dirty = sorted(w for w in chip.spm.dirty if base <= w < base + count)
        if not dirty and self._golden_c is not None:
            if chip.spm.data[base : base + count].tobytes() == self._golden_c:
                return self.golden, ""
        words = chip.dump(base, count)
        for addr in dirty:
            data, status = chip.read_word(addr)
            if status is EccStatus.UNCORRECTABLE:
                return None, f"result word {addr - base} uncorrectable on read-back (ECC)"
            words[addr - base] = np.frombuffer(data.to_bytes(chip.n, "little"), dtype=np.uint8)
        return chip.unpack_c(words, spec.m, spec.n, spec.out_int32), ""

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

    def run(self, inj: Injection) -> tuple[Outcome, str]:
        """Run one injection; its outcome class and a line saying why."""
        chip = self.chip
        chip.restore(self._pristine)
        sites = self.sites(chip, inj)
        if isinstance(sites, str):
            return Outcome.NOT_INJECTED, sites
        point = JobPoint(inj.tile, inj.phase, inj.cycle)
        try:
            if inj.kind == "stuck_at":
                chip.stick(sites[0], inj.value)  # a changed state: no recording applies
                err = chip.run()
            else:
                err = chip.run([(point, s) for s in sites], golden=self._golden)
        except NotModelled as exc:
            return Outcome.NOT_INJECTED, f"the model cannot predict it: {exc}"
        report = chip.last_job
        if report is not None and report.not_injected:
            missed = len(report.not_injected)
            return Outcome.NOT_INJECTED, f"the job never reached the point of {missed} flip(s)"
        if chip.hung:
            return classify(Observation(None, hung=True), self.golden)
        if err:
            return classify(Observation(None, f"the job ended in error, ERR_CODE {int(err)}"),
                            self.golden)  # fmt: skip
        if not chip.status & Status.DONE:
            # The flight software fails a job whose chip went idle without DONE.
            return classify(Observation(None, ENDED_WITHOUT_DONE), self.golden)
        result, error = self._result(chip)
        moved = {k: (v - self.golden_counters[k]) & 0xFFFFFFFF
                 for k, v in self._counters(chip).items()}  # fmt: skip
        return classify(Observation(result, error, False, moved), self.golden,
                        counter_site=inj.site_class is SiteClass.COUNTER)  # fmt: skip
