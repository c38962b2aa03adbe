"""A step counter flipped past the end of its phase counts on to its wrap at 2^13 while
nothing else moves: the twin takes those cycles at once and ends bit for bit as
stepping every cycle does, with and without a golden run."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
from test_model_golden import observed, outcome
from test_model_hang import CASES, job_of

from firmware_sim.accel import Accelerator, SeqCopy, SetBit, cycle
from firmware_sim.accel.cycle import CycleTwin
from firmware_sim.accel.cycle_job import hang_bound
from testbed.sitemap_builds import Build

SEED = 20261207
#: Bits of the 13-bit step counter t flipped: each puts t past the end of every phase.
BITS = (8, 11, 12)


def count_idle_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A one-item list counting the idle stretches the twin runs take at once from now on."""
    taken = [0]
    idle_run = CycleTwin._idle_run

    def counted(twin: CycleTwin, *args: object) -> int:
        out = idle_run(twin, *args)
        taken[0] += out > 0
        return out

    monkeypatch.setattr(CycleTwin, "_idle_run", counted)
    return taken


@pytest.mark.parametrize(("build", "job"), CASES)
def test_a_step_counter_past_its_phase_runs_to_its_wrap_as_stepping_every_cycle_does(
    build: str, job: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = SEED + CASES.index((build, job))
    rng, pick = np.random.default_rng(seed), random.Random(seed)
    chip = Accelerator(**Build.from_name(build).options())
    c = job_of(chip, rng, job)
    snap = chip.snapshot()
    golden = chip.golden_job()
    idle = count_idle_runs(monkeypatch)
    spans = chip.job_schedule()
    phases = sorted({s.phase for s in spans}, key=lambda p: p.value)
    for phase in phases:
        span = pick.choice([s for s in spans if s.phase is phase])
        bit = pick.choice(BITS)
        site = SetBit("u_seq.u_t.q_q", bit) if chip.tmr else SeqCopy("t", 0, bit)
        faults = [(span.start + pick.randrange(span.cycles), site)]
        chip.restore(snap)
        ref = copy.deepcopy(chip)
        monkeypatch.setattr(cycle, "LEAP", False)
        err = ref.run(faults)
        monkeypatch.setattr(cycle, "LEAP", True)
        stepped = (outcome(ref, err, c), observed(ref))
        # The flipped counter made the job longer by most of its wrap (or hung it).
        assert ref.last_job is not None
        assert ref.last_job.cycles > golden.cycles + (1 << bit) // 2, f"seed {seed}: {faults}"
        assert ref.last_job.cycles <= hang_bound(chip.descriptor())
        for gold in (None, golden):
            before = idle[0]
            chip.restore(snap)
            fast = chip.run(faults, golden=gold)
            assert (outcome(chip, fast, c), observed(chip)) == stepped, f"seed {seed}: {faults}"
            assert idle[0] > before, f"seed {seed}: {faults} was stepped cycle by cycle"
