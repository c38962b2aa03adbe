"""Hung jobs: a twin run certain to hang leaps whole STREAM periods to the hang bound
(``cycle.LEAP``) and ends bit for bit as stepping every cycle does, with and without a
golden run."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
from test_model_golden import observed, outcome, program

from firmware_sim.accel import Accelerator, RegCopy, SeqCopy, SetBit, cycle
from firmware_sim.accel.cycle import CycleTwin
from firmware_sim.accel.cycle_job import hang_bound
from firmware_sim.accel.regs import CONFIG_STORAGE, SEQ_WIDTHS
from testbed.sitemap_builds import Build

SEED = 20261203
#: (build, job): the unprotected build and the default one (hung there only by
#: transients on the voted next value, which TMR cannot outvote).
CASES = [("n4-bw1024-il1-noecc-noscrub-notmr", "plain"),
         ("n4-bw1024-il1-noecc-noscrub-notmr", "bias-int32"),
         ("n4-bw1024-il1-ecc-scrub-tmr", "bias-relu"),
         ("n4-bw1024-il4-ecc-scrub-tmr", "plain")]  # fmt: skip
#: Hanging injections compared per case.
HANGS = 7
#: Registers whose upsets hang a job: the sequencer's tile counters and state, and the
#: configuration a running job reads.
SEQ = ("rb", "cb", "state", "t")
CONFIG = ("DIM_M", "DIM_N", "DIM_K", "A_ADDR", "B_ADDR", "C_ADDR", "EPILOGUE")


def count_leaps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A one-item list counting the twin runs' leaps taken from now on."""
    taken = [0]
    leap = CycleTwin._leap

    def counted(twin: CycleTwin, *args: object) -> tuple | None:
        out = leap(twin, *args)
        taken[0] += out is not None
        return out

    monkeypatch.setattr(CycleTwin, "_leap", counted)
    return taken


def random_fault(pick: random.Random, chip: Accelerator, cycles: int) -> list[tuple]:
    """One upset of a sequencer or configuration register in the job (all copies at once,
    as a transient, where the build votes), sometimes with a scratchpad flip later on."""
    if pick.random() < 0.6:
        name = pick.choice(SEQ)
        path, bit = f"u_seq.u_{name}.q_q", pick.randrange(SEQ_WIDTHS[name])
        site = SetBit(path, bit) if chip.tmr else SeqCopy(name, 0, bit)
    else:
        name = pick.choice(CONFIG)
        path, bit = f"u_regs.u_{name.lower()}.q_q", pick.randrange(len(CONFIG_STORAGE[name]))
        site = SetBit(path, bit) if chip.tmr else RegCopy(name, 0, bit)
    faults = [(pick.randrange(1, cycles), site)]
    if pick.random() < 0.3:
        lay = chip.layout
        cell = lay.cell_of(pick.randrange(chip.spm_words), pick.randrange(lay.codeword_bits))
        faults.append((pick.randrange(cycles, 3 * cycles), cell))
    return faults


def job_of(chip: Accelerator, rng: np.random.Generator, job: str) -> tuple[int, int]:
    """Program one of the cases' jobs: (C address, words)."""
    if job == "plain":
        return program(chip, rng, False)
    return program(chip, rng, True, out_int32=job == "bias-int32")


@pytest.mark.parametrize(("build", "job"), CASES)
def test_hung_jobs_leap_to_the_bound_as_stepping_every_cycle_ends(build, job, monkeypatch):
    seed = SEED + CASES.index((build, job))
    rng, pick = np.random.default_rng(seed), random.Random(seed)
    chip = Accelerator(**Build.from_name(build).options())
    c = job_of(chip, rng, job)
    snap = chip.snapshot()
    golden = chip.golden_job()
    bound = hang_bound(chip.descriptor())
    leaps = count_leaps(monkeypatch)
    found = 0
    for _ in range(60 * HANGS):
        if found == HANGS:
            break
        faults = random_fault(pick, chip, golden.cycles)
        chip.restore(snap)
        fast = chip.run(faults, golden=golden)
        if not chip.hung:
            continue
        found += 1
        seen = (outcome(chip, fast, c), observed(chip))
        chip.restore(snap)
        ref = copy.deepcopy(chip)
        monkeypatch.setattr(cycle, "LEAP", False)
        err = ref.run(faults)
        monkeypatch.setattr(cycle, "LEAP", True)
        stepped = (outcome(ref, err, c), observed(ref))
        assert ref.hung and ref.last_job is not None and ref.last_job.cycles == bound
        chip.restore(snap)
        plain = chip.run(faults)
        assert (outcome(chip, plain, c), observed(chip)) == stepped, f"seed {seed}: {faults}"
        assert seen == stepped, f"seed {seed}, golden: {faults}"
    assert found == HANGS, f"seed {seed}: {found} hangs found"
    # Each hang ran twice with leaps (with and without the golden run).
    assert leaps[0] >= found, f"seed {seed}: {leaps[0]} leaps"


def test_an_ecc_abort_during_a_hang_ends_the_job_as_stepping_does(monkeypatch):
    """A hung job reading a word with two flipped bits ends with ERR_ECC, in a leap too."""
    chip = Accelerator(**Build.from_name(CASES[2][0]).options())
    c = job_of(chip, np.random.default_rng(SEED), "plain")
    golden = chip.golden_job()
    # Past the last row block (a hang), then two bits of a B word every runaway tile reads.
    word = chip.descriptor().b_addr + 3
    lay = chip.layout
    faults = [(20, SetBit("u_seq.u_rb.q_q", 3)), (golden.cycles + 5, lay.cell_of(word, 1)),
              (golden.cycles + 5, lay.cell_of(word, 2))]  # fmt: skip
    snap = chip.snapshot()
    ref = copy.deepcopy(chip)
    monkeypatch.setattr(cycle, "LEAP", False)
    err = ref.run(faults)
    monkeypatch.setattr(cycle, "LEAP", True)
    assert not ref.hung and int(err) == 1 and ref.last_job is not None
    assert ref.last_job.cycles < hang_bound(chip.descriptor())
    leaps = count_leaps(monkeypatch)
    for gold in (None, golden):
        chip.restore(snap)
        fast = chip.run(faults, golden=gold)
        assert (outcome(chip, fast, c), observed(chip)) == (outcome(ref, err, c), observed(ref))
    assert leaps[0] == 2
