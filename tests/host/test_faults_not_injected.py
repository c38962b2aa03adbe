"""No injection dropped in silence (ICD 15.8), against the simulated chip on a real pty:
a fault that cannot be applied is refused with a code that says why, and a fault whose
point the job never reaches is reported by that job (event, job events, housekeeping)."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_sim.accel import Accelerator, JobPoint, NotModelled, Phase, RegCopy, gemm_reference
from firmware_sim.accel.faults import FlopBit
from firmware_sim.chip import ModelChip
from host.errors import CommandFailed
from host.target import Target
from protocol.codes import EventId, FailureCode, FaultKind, NotInjectedReason
from protocol.payloads import (
    POINT_OFFSETS,
    FaultRecord,
    FaultSiteClass,
    FaultTiming,
    HkStructure,
    JobPhase,
    read_fault_refusal,
)
from testbed.sitemap_builds import Build

N = 4
S = FaultSiteClass
NEXT = FaultTiming.NEXT_JOB


def operands(seed: int, m: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(-128, 128, (m, k), dtype=np.int8),
            rng.integers(-128, 128, (k, n), dtype=np.int8))  # fmt: skip


def refused(target: Target, record: FaultRecord) -> CommandFailed:
    """The refusal of a TC[148,1] with ``record`` alone; nothing may be left armed."""
    with pytest.raises(CommandFailed) as info:
        target.inject([record])
    assert target.list_faults() == (0, [])
    return info.value


def test_check_bits_of_a_build_without_ecc_are_refused_as_absent(start_chip) -> None:
    target = start_chip("--no-ecc")
    check_bit = 8 * N  # the first check bit of a codeword with ECC
    exc = refused(target, FaultRecord(FaultKind.SBU, S.SPM_WORD, 1, (3, check_bit)))
    assert exc.code == FailureCode.FAULT_SITE_ABSENT
    assert read_fault_refusal(exc.data) == (1 + 4, 0)  # site fields of record 0
    assert "record 0 (SBU at SPM_WORD) cannot be injected" in str(exc)


def test_a_cycle_no_job_has_is_refused_as_unreachable(start_chip) -> None:
    target = start_chip()
    far = (0, JobPhase.WRITE, 4 * N)  # WRITE has at most 4N words
    records = [
        FaultRecord(FaultKind.SBU, S.ACC_BIT, 1, (0, 0, 0), NEXT, (0, JobPhase.STREAM, 3)),
        FaultRecord(FaultKind.SBU, S.OUT_BIT, 1, (1, 1, 1), NEXT, far),
    ]
    with pytest.raises(CommandFailed) as info:
        target.inject(records)
    assert info.value.code == FailureCode.FAULT_POINT_UNREACHABLE
    second = 1 + len(records[0].pack())
    assert read_fault_refusal(info.value.data) == (second + POINT_OFFSETS["cycle"], 1)
    assert target.list_faults() == (0, []), "nothing of a refused TC is armed"


def test_a_register_flip_inside_a_job_is_refused_exactly_when_the_model_cannot_predict_it(
    start_chip,
) -> None:
    point, site = JobPoint(0, Phase.STREAM, 2), RegCopy("DIM_K", 0, 1)
    try:
        ModelChip(Build(n=N, tmr=False)).chip.check_scheduled(point, [site])
        predictable = True
    except NotModelled:
        predictable = False
    target = start_chip("--no-tmr")
    record = FaultRecord(FaultKind.SBU, S.REG_COPY, 1, (0x1C, 0, 1), NEXT, (0, JobPhase.STREAM, 2))
    if not predictable:
        exc = refused(target, record)
        assert exc.code == FailureCode.FAULT_NOT_PREDICTABLE
        assert read_fault_refusal(exc.data) == (1 + 9, 0)  # site fields after the point
    else:  # the model grew: the same record is accepted and lands in the job
        target.inject([record])
        a, b = operands(3, 4, 8, 4)
        try:
            target.run_gemm(a, b)
        except CommandFailed as exc:  # a flipped dimension may fail the job: still injected
            assert exc.code == FailureCode.JOB_FAILED
        faults = target.job_faults()
        assert (faults.scheduled, faults.not_injected) == (1, 0)


@pytest.mark.parametrize(
    ("why", "record"),
    [
        ("a bias point before a plain GEMM (no BIAS)",
         FaultRecord(FaultKind.SBU, S.SPM_WORD, 1, (0, 0), NEXT, (0, JobPhase.BIAS, 0))),
        ("a tile past the job's last",
         FaultRecord(FaultKind.SBU, S.ACC_BIT, 1, (1, 2, 3), NEXT, (7, JobPhase.STREAM, 1))),
        ("a STREAM cycle past the tile's period",
         FaultRecord(FaultKind.SBU, S.ACC_BIT, 1, (1, 2, 3), NEXT, (0, JobPhase.STREAM, 900))),
    ],
    ids=["bias", "tile", "cycle"],
)  # fmt: skip
def test_a_point_the_job_does_not_have_is_reported_not_injected(
    start_chip, why: str, record: FaultRecord
) -> None:
    target = start_chip()
    a, b = operands(4, 4, 8, 4)  # one tile, STREAM period 9
    target.inject([record])
    mark = target.link.history.mark()
    c = target.run_gemm(a, b, job_id=77)
    np.testing.assert_array_equal(c, gemm_reference(a, b, out_int32=True))
    missed = target.await_event(EventId.FAULT_NOT_INJECTED, timeout=2.0, start=mark)
    assert missed is not None, f"{why}: no FAULT_NOT_INJECTED"
    assert isinstance(missed.args["reason"], NotInjectedReason), "decoded as its enum"
    assert missed.args == {
        "job_id": 77, "reason": NotInjectedReason.NO_SUCH_POINT, "count": 1, "scheduled": 1
    }
    done = target.await_event(EventId.JOB_COMPLETED, timeout=2.0, start=mark)
    assert done is not None and (done.args["faults"], done.args["not_injected"]) == (1, 1)
    hk = target.housekeeping(HkStructure.ACCELERATOR)
    assert (hk["faults_not_injected"], hk["last_job_faults"], hk["last_job_not_injected"]) == (
        1, 1, 1,
    )  # fmt: skip
    assert target.list_faults() == (0, []), "the job settled the fault: it no longer waits"


def test_a_point_after_an_ecc_abort_is_reported_not_injected_and_the_rest_injected(
    start_chip,
) -> None:
    target = start_chip()
    a, b = operands(5, 8, 4, 4)  # two tiles (rows 0-3, 4-7); FLUSH belongs to tile 1
    two_bits = FaultRecord(FaultKind.MBU, S.SPM_WORD, 2, (0, 0), NEXT, (0, JobPhase.STREAM, 0))
    late = FaultRecord(FaultKind.SBU, S.OUT_BIT, 1, (0, 0, 4), NEXT, (1, JobPhase.FLUSH, 0))
    target.inject([two_bits, late])
    mark = target.link.history.mark()
    with pytest.raises(CommandFailed) as info:
        target.run_gemm(a, b, job_id=78)
    assert info.value.code == FailureCode.JOB_FAILED
    missed = target.await_event(EventId.FAULT_NOT_INJECTED, timeout=2.0, start=mark)
    assert missed is not None
    assert (missed.args["reason"], missed.args["count"], missed.args["scheduled"]) == (
        NotInjectedReason.JOB_ENDED_BEFORE, 1, 3,
    )  # fmt: skip
    failed = target.await_event(EventId.JOB_FAILED, timeout=2.0, start=mark)
    assert failed is not None and (failed.args["faults"], failed.args["not_injected"]) == (3, 1)
    assert (target.job_faults().scheduled, target.job_faults().not_injected) == (3, 1)


def test_a_job_whose_faults_all_landed_reports_none_missing(start_chip) -> None:
    target = start_chip()
    a, b = operands(6, 4, 8, 4)
    one = FaultRecord(FaultKind.SBU, S.SPM_WORD, 1, (1, 5), NEXT, (0, JobPhase.STREAM, 0))
    target.inject([one])
    mark = target.link.history.mark()
    c = target.run_gemm(a, b)
    np.testing.assert_array_equal(c, gemm_reference(a, b, out_int32=True))  # SECDED corrected
    assert target.events(EventId.FAULT_NOT_INJECTED, timeout=0.3, start=mark) == []
    assert (target.job_faults().scheduled, target.job_faults().not_injected) == (1, 0)
    assert target.housekeeping(HkStructure.ACCELERATOR)["faults_not_injected"] == 0


@pytest.mark.parametrize(
    ("build", "record", "sites", "when"),
    [
        (("--no-ecc", "--no-scrub", "--no-tmr"),
         FaultRecord(FaultKind.SBU, S.SITE, 1, ("u_spm.u_bank0.rslot_q", 0), NEXT,
                     (0, JobPhase.STREAM, 1)),
         [FlopBit("u_spm.u_bank0.rslot_q", 0)], JobPoint(0, Phase.STREAM, 1)),
    ],
    ids=["read-slot-without-interleaving"],
)  # fmt: skip
def test_what_the_model_cannot_predict_is_refused_at_acceptance(
    start_chip, build: tuple[str, ...], record: FaultRecord, sites: list, when: JobPoint | None
) -> None:
    options = {"ecc": not build, "scrub": not build, "tmr": not build}
    try:
        Accelerator(N, **options).check_scheduled(when, sites)
        pytest.skip(f"the chip model now predicts {sites} at {when or 'idle'}")
    except NotModelled:
        pass
    target = start_chip(*build)
    exc = refused(target, record)
    assert exc.code == FailureCode.FAULT_NOT_PREDICTABLE
    assert read_fault_refusal(exc.data) == (1 + record.field_offset("name"), 0)


@pytest.mark.parametrize(
    ("build", "record"),
    [
        (("--no-ecc", "--no-scrub", "--no-tmr"),
         FaultRecord(FaultKind.SBU, S.SITE, 1, ("u_seq.u_state.q_q[0]", 0))),
        ((), FaultRecord(FaultKind.SET, S.SITE, 1, ("u_seq.u_state.q_q[1]", 0))),
        ((), FaultRecord(FaultKind.SET, S.SITE, 1, ("u_seq.u_t.q_q[1]", 4))),
        ((), FaultRecord(FaultKind.SBU, S.SITE, 1, ("g_scrub.u_scrub.state_q", 0))),
        ((), FaultRecord(FaultKind.SBU, S.SITE, 1, ("g_scrub.u_scrub.state_q", 1))),
    ],
    ids=["sequencer-state-idle", "set-on-state-idle", "set-on-t-idle", "scrubber-step-idle",
         "scrubber-fix-without-read-idle"],
)  # fmt: skip
def test_idle_control_upsets_are_injected_and_the_next_job_is_right(
    start_chip, build: tuple[str, ...], record: FaultRecord
) -> None:
    target = start_chip(*build)
    a, b = operands(8, 5, 6, 7)
    np.testing.assert_array_equal(target.run_gemm(a, b), gemm_reference(a, b, out_int32=True))
    mismatches = target.housekeeping(HkStructure.ACCELERATOR)["tmr_mismatches"]
    target.inject([record])  # accepted: the model runs the chip from the flipped idle state
    assert target.list_faults() == (0, [])
    # No copy is outvoted alone (a transient is loaded by every copy): no mismatch.
    assert target.housekeeping(HkStructure.ACCELERATOR)["tmr_mismatches"] == mismatches
    np.testing.assert_array_equal(target.run_gemm(a, b), gemm_reference(a, b, out_int32=True))
