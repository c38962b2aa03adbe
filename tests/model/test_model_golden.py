"""Snapshots and golden runs: an injected job from a restored state, reusing the
recorded fault-free run, ends exactly as the same job run from a deep copy without it."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest

from firmware_sim.accel import (
    Accelerator,
    FlopBit,
    NotModelled,
    Reg,
    RegCopy,
    SeqCopy,
    SpmCell,
)
from firmware_sim.accel.cycle_state import flop_list
from firmware_sim.accel.sitemap_sites import model_site, transient_site
from testbed.sitemap import SiteMap
from testbed.sitemap_builds import Build

SEED = 20261202
#: The default build, one without any protection, one that interleaves (rows of 4 words).
BUILDS = ["n4-bw1024-il1-ecc-scrub-tmr", "n4-bw1024-il1-noecc-noscrub-notmr",
          "n4-bw1024-il4-ecc-scrub-tmr"]  # fmt: skip
#: Injections per site class, build and job (a third of them transients where a class
#: has flops).
PER_CLASS = 8


def chip_for(build: str) -> Accelerator:
    return Accelerator(**Build.from_name(build).options())


def program(chip: Accelerator, rng: np.random.Generator, bias: bool, out_int32: bool = False
            ) -> tuple[int, int]:  # fmt: skip
    """A GEMM with partial tiles (and bias, ReLU, a shift), or a plain one: (C addr, words)."""
    if bias:
        a = rng.integers(-128, 128, (10, 13))
        b = rng.integers(-128, 128, (13, 7))
        place = chip.load_job(a, b, rng.integers(-(2**20), 2**20, 7), relu=True, shift=6,
                              out_int32=out_int32)  # fmt: skip
    else:
        a = rng.integers(-128, 128, (16, 16))
        b = rng.integers(-128, 128, (16, 16))
        place = chip.load_job(a, b)
    return place.c_addr, place.c_words


def observed(chip: Accelerator) -> tuple:
    """Every register as the bus reads it, every scratchpad codeword (as peek gives them,
    all at once), every job-path flop as the RTL holds it, the ECC's dirty words."""
    regs = tuple(chip.bus_read(int(r)) for r in Reg)
    p = chip._path
    flops = tuple(p.value(f.path, c) for f in flop_list(chip.build)
                  for c in (range(f.copies) if f.path.endswith(".q_q") else [None]))  # fmt: skip
    return (regs, chip.spm.data.tobytes(), chip.spm.check.tobytes(), flops,
            frozenset(chip.spm.dirty), chip.hung)  # fmt: skip


def outcome(chip: Accelerator, err: object, c: tuple[int, int]) -> tuple:
    """What a campaign reads after an injected job."""
    job = chip.last_job
    assert job is not None
    counters = tuple(chip.read_reg(r) for r in (Reg.STATUS, Reg.CYCLES, Reg.MACS,
                     Reg.ECC_CORR, Reg.ECC_UNCORR, Reg.TMR_MISMATCH, Reg.SCRUB_PTR,
                     Reg.SCRUB_PASSES))  # fmt: skip
    return (int(err), chip.dump(*c).tobytes(), counters, chip.hung, job.cycles,
            job.not_injected)  # fmt: skip


def class_sites(sitemap: SiteMap, rng: random.Random, count: int) -> dict[str, list]:
    """Per site class, ``count`` sites drawn uniformly over its bits, transients on
    one in three where the bit is a flop."""
    out = {}
    for cls in sitemap.bits_by_class():
        sub = sitemap.select(cls)
        sites = []
        for k in range(count * 20):
            if len(sites) == count:
                break
            entry, bit = sub.site(rng.randrange(sub.total_bits))
            if k % 3 == 2 and entry.kind == "flop":
                site = transient_site(entry, bit, sitemap.build.tmr)
            else:
                site = model_site(entry, bit)
            if site is not None:
                sites.append(site)
        if sites:
            out[str(cls)] = sites
    return out


def inject_both(chip: Accelerator, snap, golden, faults, c, engine: str = "auto"
                ) -> tuple[tuple, tuple] | None:  # fmt: skip
    """The job with ``faults`` from a deep copy without the golden run, and from the
    snapshot with it: (outcome, observed) of each; None if the model cannot predict it."""
    chip.restore(snap)
    ref = copy.deepcopy(chip)
    try:
        err = ref.run(faults, engine=engine)
    except NotModelled:
        with pytest.raises(NotModelled):
            chip.run(faults, golden=golden, engine=engine)
        return None
    chip.restore(snap)
    fast = chip.run(faults, golden=golden, engine=engine)
    return ((outcome(ref, err, c), observed(ref)), (outcome(chip, fast, c), observed(chip)))


@pytest.mark.parametrize("bias", [False, True], ids=["plain", "bias-relu"])
@pytest.mark.parametrize("build", BUILDS)
def test_every_site_class_injects_the_same_with_and_without_the_golden_run(build, bias):
    seed = SEED + BUILDS.index(build) * 2 + bias
    rng, pick = np.random.default_rng(seed), random.Random(seed)
    chip = chip_for(build)
    c = program(chip, rng, bias)
    snap = chip.snapshot()
    golden = chip.golden_job()
    # Cycles past the job's end too: those faults are never injected.
    cycles = golden.cycles + 3
    tried = 0
    for cls, sites in class_sites(SiteMap.for_build(**chip_options(chip)), pick, PER_CLASS).items():
        for site in sites:
            faults = [(pick.randrange(cycles), site)]
            pair = inject_both(chip, snap, golden, faults, c)
            if pair is None:
                continue
            tried += 1
            assert pair[0] == pair[1], f"seed {seed}: {cls} {faults}"
    assert tried >= 8 * PER_CLASS


def chip_options(chip: Accelerator) -> dict:
    return dict(n=chip.n, bank_words=chip.bank_words, interleave=chip.interleave,
                ecc=chip.ecc, scrub=chip.scrub, tmr=chip.tmr)  # fmt: skip


@pytest.mark.parametrize("build", BUILDS[::2])
def test_scratchpad_flips_around_the_reads_and_writes_of_a_job_agree(build):
    """Cells of the operand and result rows, at cycles around their reads and writes:
    where the analytic job never sees a flip the golden run takes a short cut."""
    seed = SEED + 7
    rng, pick = np.random.default_rng(seed), random.Random(seed)
    chip = chip_for(build)
    c = program(chip, rng, True)
    snap = chip.snapshot()
    golden = chip.golden_job()
    d = chip.descriptor()
    words = [d.a_addr, d.a_addr + d.mb * d.k - 1, d.b_addr + 3, d.b_addr + d.nb * d.k - 1,
             d.bias_addr + 1, d.c_addr, d.c_addr + d.c_words - 1, d.c_addr + d.c_words]
    lay = chip.layout
    for word in words:
        for _ in range(6):
            cell = lay.cell_of(word, pick.randrange(lay.codeword_bits))
            faults = [(pick.randrange(1, golden.cycles), cell)]
            pair = inject_both(chip, snap, golden, faults, c)
            assert pair is not None
            assert pair[0] == pair[1], f"seed {seed}: {faults}"


def test_several_faults_in_one_job_with_int32_results_agree():
    seed = SEED + 11
    rng, pick = np.random.default_rng(seed), random.Random(seed)
    chip = chip_for(BUILDS[0])
    c = program(chip, rng, True, out_int32=True)
    snap = chip.snapshot()
    golden = chip.golden_job()
    pool = [s for sites in class_sites(SiteMap.for_build(), pick, 6).values() for s in sites]
    for k in range(30):
        faults = [(pick.randrange(golden.cycles), pick.choice(pool))
                  for _ in range(pick.randint(2, 3))]  # fmt: skip
        # Every third in the twin alone, where the analytic job would run them.
        pair = inject_both(chip, snap, golden, faults, c, "cycle" if k % 3 == 0 else "auto")
        if pair is not None:
            assert pair[0] == pair[1], f"seed {seed}: {faults}"


def test_stuck_bits_are_held_in_the_golden_run_too():
    seed = SEED + 13
    rng, pick = np.random.default_rng(seed), random.Random(seed)
    chip = chip_for(BUILDS[0])
    c = program(chip, rng, False)
    chip.stick(RegCopy("DIM_K", 1, 2), 1)
    chip.stick(FlopBit("u_array.g_row[2].g_col[1].u_pe.b_q", 5), 0)
    snap = chip.snapshot()
    golden = chip.golden_job()
    pool = [s for sites in class_sites(SiteMap.for_build(), pick, 3).values() for s in sites]
    for _ in range(12):
        pair = inject_both(chip, snap, golden, [(pick.randrange(golden.cycles), pick.choice(pool))],
                           c)  # fmt: skip
        if pair is not None:
            assert pair[0] == pair[1], f"seed {seed}"


def messy_chip() -> Accelerator:
    """A chip whose every part of state is off its reset value: a faulty job behind it,
    dirty words, a stuck copy, a scrubber step in progress, interrupts on."""
    rng = np.random.default_rng(SEED)
    chip = chip_for(BUILDS[0])
    program(chip, rng, True)
    chip.write_reg(Reg.IRQ_EN, 1)
    chip.write_reg(Reg.SCRUB_PERIOD, 5)
    chip.run([(40, FlopBit("u_seq.bias1_q", 9)), (60, SpmCell(1, 3, 4))])
    chip.flip(SpmCell(0, 900, 2))
    chip.flip(SpmCell(1, 17, 30))
    chip.stick(SeqCopy("status", 2, 0), 1)
    chip.idle(6)
    chip.bus_read(0x40000 + 8 * 3)
    return chip


def test_restore_gives_back_every_observable_of_a_deep_copy():
    chip = messy_chip()
    twin = copy.deepcopy(chip)
    snap = chip.snapshot()
    # Change everything the snapshot holds.
    chip.run([(30, FlopBit("u_array.g_row[0].g_col[3].u_pe.acc_q", 4))])
    chip.unstick_all()
    chip.idle(50)
    chip.poke(5, 0x1234, 3)
    chip.write_reg(Reg.DIM_M, 3)
    chip.restore(snap)
    assert observed(chip) == observed(twin)
    words = range(chip.spm_words)
    assert [chip.peek(w) for w in words] == [twin.peek(w) for w in words]
    assert chip.last_job == twin.last_job and chip.stuck == twin.stuck and chip.irq == twin.irq
    clean = copy.deepcopy(twin)
    faults = [(25, SpmCell(0, 2, 7)), (31, FlopBit("u_seq.valid_q", 0))]
    assert chip.run(faults) == twin.run(faults)
    assert observed(chip) == observed(twin)
    chip.restore(snap)
    assert chip.run() == clean.run()
    assert observed(chip) == observed(clean)


def test_a_snapshot_is_not_changed_by_the_chip_it_was_restored_into():
    chip = messy_chip()
    snap = chip.snapshot()
    before = observed(chip)
    for _ in range(3):
        chip.restore(snap)
        chip.run([(50, FlopBit("u_array.g_row[1].g_col[1].u_pe.out_q", 30))])
        chip.poke(7, 1, 1)
    chip.restore(snap)
    assert observed(chip) == before


def test_golden_job_leaves_the_chip_as_it_was():
    chip = messy_chip()
    twin = copy.deepcopy(chip)
    chip.golden_job()
    assert observed(chip) == observed(twin)


def test_a_golden_run_refuses_a_chip_in_another_state():
    chip = chip_for(BUILDS[0])
    program(chip, np.random.default_rng(SEED), False)
    snap = chip.snapshot()
    golden = chip.golden_job()
    chip.run()  # the chip moved on
    with pytest.raises(ValueError, match="restore the snapshot"):
        chip.run([(9, SpmCell(0, 1, 1))], golden=golden)
    chip.restore(snap)
    chip.write_reg(Reg.DIM_K, 5)
    with pytest.raises(ValueError, match="another state"):
        chip.run(golden=golden)
    other = chip_for(BUILDS[0])
    with pytest.raises(ValueError, match="another state"):
        other.run(golden=golden)
    chip.restore(snap)
    chip.run([(9, SpmCell(0, 1, 1))], golden=golden)


def test_a_hung_chip_ignores_start_with_a_golden_run_too():
    chip = chip_for(BUILDS[1])
    program(chip, np.random.default_rng(SEED), False)
    chip.run([(20, SeqCopy("cb", 0, 11))])  # far past the last column block: a hang
    assert chip.hung
    twin = copy.deepcopy(chip)
    snap = chip.snapshot()
    golden = chip.golden_job()
    assert observed(chip) == observed(twin)
    chip.restore(snap)
    assert chip.run([(5, SpmCell(0, 1, 1))], golden=golden) == twin.run([(5, SpmCell(0, 1, 1))])
    assert observed(chip) == observed(twin)


def test_a_snapshot_of_another_build_is_refused():
    snap = chip_for(BUILDS[0]).snapshot()
    with pytest.raises(ValueError, match="cannot restore"):
        chip_for(BUILDS[1]).restore(snap)
