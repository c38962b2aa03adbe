"""The cycle-level twin against the analytic job, and what only the twin predicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from firmware_sim.accel import (
    AccBit,
    Accelerator,
    ErrCode,
    JobPoint,
    NotModelled,
    OutBit,
    Phase,
    Reg,
    RegCopy,
    SeqCopy,
)
from firmware_sim.accel.cycle_state import Build, PathState, flop_list
from firmware_sim.accel.faults import FlopBit, SetBit
from firmware_sim.accel.regs import SEQ_WIDTHS, Resp, Status

SEED = 3131
BUILDS = [
    dict(n=2, interleave=1, ecc=True, tmr=True),
    dict(n=2, interleave=2, ecc=False, tmr=False),
    dict(n=4, interleave=1, ecc=True, tmr=False),
    dict(n=4, interleave=4, ecc=True, tmr=True),
    dict(n=8, interleave=2, ecc=True, tmr=True),
    dict(n=8, interleave=1, ecc=False, tmr=True),
]


def chip_of(build: dict, bank_words: int = 512) -> Accelerator:
    return Accelerator(bank_words=bank_words, scrub=build["ecc"], **build)


def random_job(chip: Accelerator, rng: np.random.Generator) -> None:
    """Program a random GEMM that fits: dims up to 3 blocks, every epilogue option."""
    n = chip.n
    while True:
        m, k, ncols = (int(x) for x in rng.integers(1, 3 * n + 2, 3))
        bias = rng.integers(-(2**31), 2**31, ncols) if rng.integers(2) else None
        opts = dict(
            relu=bool(rng.integers(2)),
            shift=int(rng.integers(32)),
            out_int32=bool(rng.integers(2)),
        )
        a = rng.integers(-128, 128, (m, k))
        b = rng.integers(-128, 128, (k, ncols))
        try:
            chip.load_job(a, b, bias, **opts)
            return
        except ValueError:
            continue


def twin_pair(build: dict, seed: int) -> tuple[Accelerator, Accelerator]:
    """Two chips in the same state with the same random job programmed."""
    chips = []
    for _ in range(2):
        chip = chip_of(build)
        random_job(chip, np.random.default_rng(seed))
        chips.append(chip)
    return chips[0], chips[1]


def state_of(chip: Accelerator) -> tuple:
    regs = tuple(chip.read_reg(r) for r in Reg if r not in (Reg.CTRL,))
    return regs, chip.spm.data.tobytes(), chip.spm.check.tobytes(), chip.irq


def assert_same(a: Accelerator, b: Accelerator) -> None:
    ra, rb = state_of(a), state_of(b)
    names = [r.name for r in Reg if r != Reg.CTRL]
    diff = {names[i]: (x, y) for i, (x, y) in enumerate(zip(ra[0], rb[0], strict=True)) if x != y}
    assert not diff, f"registers differ (analytic, cycle): {diff}"
    assert ra[1] == rb[1], "scratchpad data differs"
    assert ra[2] == rb[2], "scratchpad check bits differ"
    assert ra[3] == rb[3]


def upset_operands(chip: Accelerator, rng: np.random.Generator, doubles: bool) -> None:
    """Single-bit (and with ``doubles`` some double-bit) errors in A, B and bias words."""
    d = chip.descriptor()
    for _, lo, hi in d.regions():
        for word in rng.choice(np.arange(lo, hi), size=min(3, hi - lo), replace=False):
            bits = rng.choice(chip.layout.codeword_bits, size=2 if doubles else 1, replace=False)
            for bit in bits:
                chip.flip(chip.layout.cell_of(int(word), int(bit)))


# --- clean jobs ---------------------------------------------------------------------------


@pytest.mark.parametrize("build", BUILDS, ids=lambda b: "-".join(f"{k}{v}" for k, v in b.items()))
def test_clean_jobs_equal_the_analytic_model_bit_for_bit(build):
    for trial in range(6):
        analytic, cycle = twin_pair(build, SEED * 100 + trial)
        if trial >= 2 and build["ecc"]:
            for chip in (analytic, cycle):
                upset_operands(chip, np.random.default_rng(trial), doubles=trial >= 4)
        ea = analytic.run(engine="analytic")
        ec = cycle.run(engine="cycle")
        assert ea == ec
        assert_same(analytic, cycle)
        assert cycle.last_job.engine == "cycle" and not cycle.hung
        if trial >= 4 and build["ecc"]:
            assert ea == ErrCode.ECC


def test_a_job_that_fails_check_is_the_same_in_both():
    analytic, cycle = twin_pair(BUILDS[3], SEED)
    for chip in (analytic, cycle):
        chip.write_reg(Reg.DIM_K, 0)
    assert analytic.run(engine="analytic") == cycle.run(engine="cycle") == ErrCode.DESCRIPTOR
    assert_same(analytic, cycle)


def test_pipeline_state_after_an_analytic_job_is_the_twins():
    """The PE registers, bias buffers and bank read registers a job leaves behind."""
    for build, doubles in zip(BUILDS, (False, True) * 3, strict=True):
        analytic, cycle = twin_pair(build, SEED + 7)
        if build["ecc"]:
            for chip in (analytic, cycle):
                upset_operands(chip, np.random.default_rng(5), doubles)
        analytic.run(engine="analytic")
        cycle.run(engine="cycle")
        pa, pc = analytic._path, cycle._path
        for flop in flop_list(analytic.build):
            # STATUS is the model's own register; every other job-path flop must agree.
            if flop.path == "u_seq.u_status.q_q":
                continue
            if flop.path.startswith(("u_array", "u_seq.bias", "u_spm.u_bank", "u_seq.u_")):
                assert pa.value(flop.path) == pc.value(flop.path), flop.path


# --- faults both engines predict ----------------------------------------------------------


def random_point(chip: Accelerator, rng: np.random.Generator) -> JobPoint:
    spans = chip.job_schedule(writes=True)
    span = spans[int(rng.integers(len(spans)))]
    return JobPoint(span.tile, span.phase, int(rng.integers(span.cycles)))


@pytest.mark.parametrize("build", BUILDS, ids=lambda b: "-".join(f"{k}{v}" for k, v in b.items()))
def test_faults_the_analytic_job_handles_agree_with_the_twin(build):
    rng = np.random.default_rng(SEED + 1)
    for trial in range(5):
        analytic, cycle = twin_pair(build, SEED * 7 + trial)
        n = analytic.n
        faults = []
        for _ in range(6):
            when = random_point(analytic, rng)
            i, j, bit = (int(x) for x in rng.integers(0, [n, n, 32]))
            faults.append((when, AccBit(i, j, bit) if rng.integers(2) else OutBit(i, j, bit)))
        d = analytic.descriptor()
        for _, lo, hi in d.regions():
            word = int(rng.integers(lo, hi))
            cell = analytic.layout.cell_of(word, int(rng.integers(analytic.layout.codeword_bits)))
            faults.append((random_point(analytic, rng), cell))
        if build["tmr"]:
            faults.append((random_point(analytic, rng), RegCopy("DIM_K", 1, 3)))
            faults.append((random_point(analytic, rng), SeqCopy("t", 2, 5)))
        assert not analytic._needs_twin(d, analytic._timed(d, analytic_faults(faults)))
        ea = analytic.run(faults, engine="analytic")
        ec = cycle.run(faults, engine="cycle")
        assert ea == ec
        assert_same(analytic, cycle)


def analytic_faults(faults):
    from firmware_sim.accel import ScheduledFault

    return [ScheduledFault(w, s) for w, s in faults]


def test_a_raw_job_cycle_is_the_job_point_it_names():
    chips = twin_pair(BUILDS[2], SEED) + twin_pair(BUILDS[2], SEED)[:1]
    when = JobPoint(1, Phase.STREAM, 3)
    x = chips[0].job_cycle(when)
    chips[0].run([(when, AccBit(0, 1, 4))])
    chips[1].run([(x, AccBit(0, 1, 4))])
    chips[2].run([(x, AccBit(0, 1, 4))], engine="cycle")
    assert [c.last_job.engine for c in chips] == ["analytic", "analytic", "cycle"]
    assert_same(chips[0], chips[1])
    assert_same(chips[0], chips[2])


# --- what only the twin predicts ----------------------------------------------------------

JOB_FIELDS = ("DIM_M", "DIM_K", "DIM_N", "A_ADDR", "B_ADDR", "BIAS_ADDR", "C_ADDR", "EPILOGUE")


def test_a_configuration_flip_in_check_is_the_job_programmed_with_it():
    """Without TMR a copy flipped in CHECK (job cycle 0) is what CHECK and the job see."""
    rng = np.random.default_rng(SEED + 2)
    from firmware_sim.accel.regs import CONFIG_STORAGE, from_storage, to_storage

    changed = 0
    for trial in range(12):
        build = dict(n=4, interleave=1, ecc=True, tmr=False)
        twin, ref = twin_pair(build, SEED + 40 + trial)
        name = JOB_FIELDS[trial % len(JOB_FIELDS)]
        bit = int(rng.integers(len(CONFIG_STORAGE[name])))
        before = twin.read_reg(Reg.CYCLES), twin.descriptor()
        twin.run([(0, RegCopy(name, 0, bit))])
        value = from_storage(name, to_storage(name, ref.config(name)) ^ (1 << bit))
        ref.write_reg(Reg[name], value)
        ref.run(engine="analytic")
        assert twin.last_job.engine == "cycle"
        assert_same(twin, ref)
        changed += twin.descriptor() != before[1]
    assert changed == 12


def test_a_flipped_dim_k_without_tmr_changes_cycles_as_the_period_says():
    chip, ref = twin_pair(dict(n=4, interleave=1, ecc=True, tmr=False), SEED + 3)
    ref.run()
    d = chip.descriptor()
    x = d.stream_start(0) + 1
    err = chip.run([(x, RegCopy("DIM_K", 0, 8))])  # K + 256 from tile 0's cycle 1 on
    assert err == ErrCode.NONE and not chip.hung
    k2 = d.k + 256
    period2 = max(k2 + 1, (d.per_row + 1) * d.n + 1)
    expect = ref.read_reg(Reg.CYCLES) + d.tiles * (period2 - d.period)
    assert chip.read_reg(Reg.CYCLES) == expect
    assert chip.read_reg(Reg.DIM_K) == k2


def test_two_copies_outvote_the_good_one_during_a_job_with_tmr():
    chip, clean = twin_pair(dict(n=4, interleave=1, ecc=True, tmr=True), SEED + 4)
    clean.run()
    c_before = chip.dump(0, chip.spm_words)
    x = chip.job_cycle(JobPoint(0, Phase.STREAM, 2))
    chip.run([(x, RegCopy("C_ADDR", k, 1)) for k in (0, 2)])
    assert chip.last_job.engine == "cycle"
    assert chip.read_reg(Reg.C_ADDR) == clean.read_reg(Reg.C_ADDR) ^ 2
    assert chip.read_reg(Reg.TMR_MISMATCH) == 1
    # The results land two words further on than the clean job's.
    assert not np.array_equal(chip.dump(0, chip.spm_words), clean.dump(0, clean.spm_words))
    assert not np.array_equal(chip.dump(0, chip.spm_words), c_before)


def test_a_sequencer_tile_counter_run_past_its_end_is_a_hang_until_soft_reset():
    chip, _ = twin_pair(dict(n=2, interleave=1, ecc=True, tmr=False), SEED + 5)
    x = chip.job_cycle(JobPoint(0, Phase.STREAM, 1))
    chip.run([(x, SeqCopy("cb", 0, 11))])  # cb 2048: far past the last column block
    assert chip.hung and chip.last_job.hung
    assert chip.read_reg(Reg.STATUS) & Status.BUSY
    assert chip.bus_write(int(Reg.DIM_M), 3) == Resp.SLVERR
    chip.write_reg(Reg.CTRL, 1)  # START is ignored while BUSY
    assert chip.hung
    chip.write_reg(Reg.CTRL, 2)  # SOFT_RESET
    assert not chip.hung and chip.read_reg(Reg.STATUS) == 0


def test_a_state_flipped_to_idle_ends_the_job_without_done():
    chip, _ = twin_pair(dict(n=4, interleave=1, ecc=True, tmr=False), SEED + 6)
    chip.write_reg(Reg.IRQ_EN, 1)
    d = chip.descriptor()
    x = d.flush_start + 1
    later = (x + 3, AccBit(0, 0, 0))
    chip.run([(x, SeqCopy("state", 0, 2)), later])  # FLUSH (4) -> IDLE (0)
    assert not chip.hung and chip.read_reg(Reg.STATUS) == 0 and not chip.irq
    assert chip.read_reg(Reg.CYCLES) == x  # in cycle x the sequencer is IDLE: not counted
    assert chip.last_job.not_injected == (later,)


def test_outvoted_sequencer_state_with_tmr_changes_the_job():
    chip, clean = twin_pair(dict(n=4, interleave=1, ecc=True, tmr=True), SEED + 8)
    clean.run()
    x = chip.job_cycle(JobPoint(0, Phase.STREAM, 0))
    with pytest.raises(NotModelled):
        chip.run([(x, SeqCopy("state", k, 2)) for k in (0, 1)], engine="analytic")
    chip.run([(x, SeqCopy("state", k, 2)) for k in (0, 1)])  # STREAM (3) -> 7: default
    assert chip.read_reg(Reg.STATUS) == 0  # back to IDLE through default: no DONE
    assert chip.read_reg(Reg.CYCLES) == x + 1  # cycle x, in state 7, is the job's last


def bias_job(tmr: bool = True) -> tuple[Accelerator, Accelerator]:
    """Two chips with one GEMM (bias, int32 results: every flipped term shows)."""
    chips = []
    for _ in range(2):
        rng = np.random.default_rng(SEED + 9)
        chip = Accelerator(n=4, bank_words=512, tmr=tmr)
        a, b = rng.integers(-128, 128, (6, 5)), rng.integers(-128, 128, (5, 7))
        chip.load_job(a, b, rng.integers(-1000, 1000, 7), out_int32=True)
        chips.append(chip)
    return chips[0], chips[1]


@pytest.mark.parametrize("path", ["u_seq.bias0_q", "u_array.g_skew[1].g_delay.a_sr_q",
                                  "u_array.g_row[1].g_col[0].u_pe.a_q",
                                  "u_array.g_row[0].g_col[2].u_pe.valid_q",
                                  "u_seq.first_q", "u_spm.u_bank1.rrow_q"])  # fmt: skip
def test_new_pipeline_sites_change_a_result_word(path):
    chip, clean = bias_job()
    clean.run()
    d = chip.descriptor()
    start = d.stream_start(0)
    when, bit = {
        "u_seq.bias0_q": (start + 2, 6),
        "u_array.g_skew[1].g_delay.a_sr_q": (start + 2, 6),
        "u_array.g_row[1].g_col[0].u_pe.a_q": (start + 3, 6),
        "u_array.g_row[0].g_col[2].u_pe.valid_q": (start + d.k + 3, 0),
        "u_seq.first_q": (start + 4, 0),
        "u_spm.u_bank1.rrow_q": (start + 2, 3),
    }[path]
    chip.run([(when, FlopBit(path, bit))])
    assert chip.last_job.engine == "cycle"
    assert chip.read_reg(Reg.STATUS) == clean.read_reg(Reg.STATUS)
    same = np.array_equal(chip.dump(0, chip.spm_words), clean.dump(0, clean.spm_words))
    if path.endswith("rrow_q"):  # a codeword bit of the word being read: ECC corrects it
        assert same and chip.read_reg(Reg.ECC_CORR) == clean.read_reg(Reg.ECC_CORR) + 1
    else:
        assert not same


def test_a_transient_on_shared_next_state_beats_tmr_like_a_flip_without_it():
    rng = np.random.default_rng(SEED + 10)
    for trial in range(6):
        name = list(SEQ_WIDTHS)[trial % len(SEQ_WIDTHS)]
        bit = int(rng.integers(SEQ_WIDTHS[name]))
        with_tmr, _ = twin_pair(dict(n=4, interleave=1, ecc=True, tmr=True), SEED + 50 + trial)
        bare, _ = twin_pair(dict(n=4, interleave=1, ecc=True, tmr=False), SEED + 50 + trial)
        x = with_tmr.job_cycle(random_point(with_tmr, rng))
        with_tmr.run([(x, SetBit(f"u_seq.u_{name}.q_q", bit))])
        # The flipped next value is the copy's value one cycle later.
        bare.run([(x + 1, SeqCopy(name, 0, bit))])
        assert with_tmr.hung == bare.hung
        assert with_tmr.read_reg(Reg.STATUS) == bare.read_reg(Reg.STATUS)
        assert with_tmr.read_reg(Reg.CYCLES) == bare.read_reg(Reg.CYCLES)
        assert with_tmr.dump(0, 1024).tobytes() == bare.dump(0, 1024).tobytes()


def test_flops_flipped_while_idle_persist_where_the_rtl_keeps_them():
    chip, clean = twin_pair(BUILDS[2], SEED + 11)
    chip.flip(FlopBit("u_regs.cycles_q", 4))
    assert chip.read_reg(Reg.CYCLES) == 16
    # An operand register is reloaded every cycle; a result register keeps its bit, but
    # the job's first FIRST overwrites it before any write reads it.
    chip.flip_many([FlopBit("u_array.g_row[0].g_col[0].u_pe.a_q", 3),
                    FlopBit("u_array.g_row[1].g_col[1].u_pe.out_q", 9)])  # fmt: skip
    assert chip._path.value("u_array.g_row[1].g_col[1].u_pe.out_q") == 1 << 9
    assert chip._path.value("u_array.g_row[0].g_col[0].u_pe.a_q") == 0
    chip.run()
    clean.run()
    assert_same(chip, clean)
    # A transient on a TMR register's shared next value while idle: every copy takes it.
    mismatch = chip.read_reg(Reg.TMR_MISMATCH)
    chip.flip(SetBit("u_regs.u_dim_m.q_q", 0))
    assert chip.config("DIM_M") == clean.config("DIM_M") ^ 1
    assert chip.read_reg(Reg.TMR_MISMATCH) == mismatch
    with pytest.raises(NotModelled, match="undefined"):
        chip.check_site(FlopBit("u_spm.u_bank0.rslot_q", 0))


# --- the flops --------------------------------------------------------------------------


def test_flop_list_names_each_flop_once_and_every_bit_flips():
    b = Build(4, 64, 2, True, True, True)
    flops = flop_list(b)
    paths = [f.path for f in flops]
    assert len(paths) == len(set(paths))
    state = PathState(b)
    for flop in flops:
        for copy in range(flop.copies):
            for bit in (0, flop.width - 1):
                c = copy if flop.copies > 1 or flop.path.endswith(".q_q") else None
                before = state.value(flop.path, c)
                state.flip(flop.path, bit, c)
                assert state.value(flop.path, c) == before ^ (1 << bit), flop.path
    assert sum(f.width * f.copies for f in flops) > 4 * 4 * 82


MAPS = sorted((Path(__file__).resolve().parents[2] / "testbed" / "sitemaps").glob("*.json"))
#: Site-map classes outside the job path: the memory cells (SpmCell) and the bus side.
NOT_JOB_PATH = {"operand_memory", "bus_staging", "bus_state", "reset"}


@pytest.mark.parametrize("path", MAPS, ids=lambda p: p.stem)
def test_flop_list_is_the_site_maps_job_path(path):
    """Every job-path flop of a generated site map is a twin flop of its width, and every
    twin flop is in the map, as a site or as unobservable storage."""
    data = json.loads(path.read_text())
    o = data["build"]
    build = Build(o["n"], o["bank_words"], o["interleave"], o["ecc"], o["scrub"], o["tmr"])
    ours = {}
    for flop in flop_list(build):
        names = [f"{flop.path}[{k}]" for k in range(flop.copies)]
        names = names if flop.path.endswith(".q_q") else [flop.path]
        ours.update(dict.fromkeys(names, flop.width))
    mapped = {e["name"]: e["width"] for e in data["entries"] if e["class"] not in NOT_JOB_PATH}
    hidden = {e["name"]: e["width"] for e in data["unobservable"]}
    assert {k: v for k, v in mapped.items() if ours.get(k) != v} == {}
    assert {k: v for k, v in ours.items() if k not in mapped and hidden.get(k) != v} == {}


def test_a_flop_the_build_lacks_is_refused_with_the_paths_named():
    chip = Accelerator(n=2, bank_words=64)
    with pytest.raises(ValueError, match="flop_list"):
        chip.run([(3, FlopBit("u_array.g_row[5].g_col[0].u_pe.acc_q", 0))])
    with pytest.raises(ValueError, match="bits 0..7"):
        chip.check_site(FlopBit("u_array.g_row[1].g_col[0].u_pe.a_q", 8))
