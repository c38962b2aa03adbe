"""Faults named by site-map entry (site class SITE, ICD 15.8) against the simulated chip on
a real pty: each changes the job exactly as the bit-exact model run directly says, a name
or bit the build lacks is refused, a SET on a TMR register beats the vote, and a hang from
a sequencer upset is seen as a hang and recovered."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from firmware_sim.accel import Accelerator, JobPoint, Phase
from firmware_sim.accel.regs import Reg, Status
from firmware_sim.accel.sitemap_sites import model_site, transient_sites
from host.errors import CommandFailed
from host.target import Target
from protocol.codes import EventId, FailureCode, FaultKind
from protocol.payloads import (
    FaultRecord,
    FaultSiteClass,
    FaultTiming,
    HkStructure,
    JobPhase,
    read_fault_refusal,
)
from testbed.sitemap import SiteMap

N = 4
SITE = FaultSiteClass.SITE
NEXT = FaultTiming.NEXT_JOB
NO_MITIGATION = ("--no-ecc", "--no-scrub", "--no-tmr")
"""The build without TMR that has a site map: n4-bw1024-il1-noecc-noscrub-notmr."""


def operands(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(-128, 128, (4, 8), dtype=np.int8),
            rng.integers(-128, 128, (8, 4), dtype=np.int8),
            rng.integers(-1000, 1000, 4))  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """How a job ended: "done" with C, "failed" (an error or no DONE) or "hung"."""

    end: str
    c: np.ndarray | None = None
    mismatches: int = 0


def predicted(tmr: bool, record: FaultRecord, a, b, bias) -> Outcome:
    """What the model, run directly, says the record does to an int32 layer job."""
    chip = Accelerator(N, ecc=tmr, scrub=tmr, tmr=tmr)
    sitemap = SiteMap.for_build(n=N, ecc=tmr, scrub=tmr, tmr=tmr)
    entry, bit = sitemap.entry(str(record.site[0])), int(record.site[1])
    if record.kind == FaultKind.SET:  # every register bit that loads the net
        sites = transient_sites(sitemap, entry, bit, tmr)
    else:
        sites = [model_site(entry, bit)]
    tile, phase, cycle = record.point
    when = JobPoint(tile, Phase[JobPhase(phase).name], cycle)
    c, _ = chip.run_gemm(a, b, bias, out_int32=True, faults=[(when, s) for s in sites])
    mismatches = chip.read_reg(Reg.TMR_MISMATCH)
    if chip.hung:
        return Outcome("hung", mismatches=mismatches)
    status = chip.read_reg(Reg.STATUS)
    if status & Status.ERROR or not status & Status.DONE:
        return Outcome("failed", mismatches=mismatches)
    return Outcome("done", c, mismatches)


def observed(target: Target, a, b, bias) -> Outcome:
    """The same job on the target, as the host sees it end."""
    try:
        c = target.run_layer(a, b, bias, out_int32=True)
    except CommandFailed as exc:
        end = "hung" if exc.code == FailureCode.TIMEOUT else "failed"
        assert exc.code in (FailureCode.TIMEOUT, FailureCode.JOB_FAILED), exc
        return Outcome(end, mismatches=target.housekeeping(HkStructure.ACCELERATOR)[
            "tmr_mismatches"])  # fmt: skip
    hk = target.housekeeping(HkStructure.ACCELERATOR)
    return Outcome("done", np.asarray(c), hk["tmr_mismatches"])


def assert_same(seen: Outcome, model: Outcome) -> None:
    assert (seen.end, seen.mismatches) == (model.end, model.mismatches)
    if model.c is not None:
        np.testing.assert_array_equal(seen.c, model.c)


@pytest.mark.parametrize(
    ("build", "name", "bit", "point"),
    [
        ((), "u_array.g_row[0].g_col[1].u_pe.a_q", 3, (0, JobPhase.STREAM, 4)),
        ((), "u_seq.u_t.q_q[1]", 2, (0, JobPhase.STREAM, 4)),
        (NO_MITIGATION, "u_seq.u_t.q_q[0]", 1, (0, JobPhase.STREAM, 3)),
        ((), "u_seq.bias0_q", 33, (0, JobPhase.STREAM, 2)),
    ],
    ids=["pipeline", "sequencer-copy-tmr", "sequencer-notmr", "bias-buffer"],
)
def test_a_site_record_changes_the_job_exactly_as_the_model_says(
    start_chip, build: tuple[str, ...], name: str, bit: int, point: tuple[int, int, int]
) -> None:
    target = start_chip(*build)
    a, b, bias = operands(11)
    record = FaultRecord(FaultKind.SBU, SITE, 1, (name, bit), NEXT, point)
    target.inject([record])
    model = predicted(build != NO_MITIGATION, record, a, b, bias)
    assert_same(observed(target, a, b, bias), model)
    faults = target.job_faults()
    assert (faults.scheduled, faults.not_injected) == (1, 0)


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (FaultRecord(FaultKind.SBU, SITE, 1, ("u_seq.no_such_q", 0)), "name"),
        (FaultRecord(FaultKind.SBU, SITE, 1, ("u_seq.u_state.q_q[2]", 3)), "bit"),
        (FaultRecord(FaultKind.SBU, SITE, 1, ("u_spm.stage_q", 0)), "name"),  # unobservable
        (FaultRecord(FaultKind.SET, SITE, 1, ("u_spm.u_bank0.mem_q", 5), NEXT,
                     (0, JobPhase.STREAM, 1)), "name"),  # fmt: skip
    ],
    ids=["unknown-name", "bit-out-of-range", "unobservable", "set-on-memory"],
)
def test_a_site_the_build_lacks_is_refused_absent_naming_the_field(
    start_chip, record: FaultRecord, field: str
) -> None:
    target = start_chip()
    with pytest.raises(CommandFailed) as info:
        target.inject([record])
    assert info.value.code == FailureCode.FAULT_SITE_ABSENT
    assert read_fault_refusal(info.value.data) == (1 + record.field_offset(field), 0)
    assert target.list_faults() == (0, [])


@pytest.mark.parametrize(
    "record",
    [
        FaultRecord(FaultKind.SET, SITE, 1, ("u_regs.u_c_addr.q_q[0]", 5), NEXT,
                    (0, JobPhase.STREAM, 4)),
        FaultRecord(FaultKind.SET, FaultSiteClass.REG_COPY, 1, (int(Reg.C_ADDR), 2, 5), NEXT,
                    (0, JobPhase.STREAM, 4)),
    ],
    ids=["site", "reg-copy"],
)  # fmt: skip
def test_a_set_on_a_tmr_register_corrupts_the_job_as_the_model_says_and_no_vote_sees_it(
    start_chip, record: FaultRecord
) -> None:
    target = start_chip()
    a, b, bias = operands(12)
    site_record = record if record.site_class == SITE else FaultRecord(
        FaultKind.SET, SITE, 1, ("u_regs.u_c_addr.q_q[2]", 5), NEXT, record.point
    )
    model = predicted(True, site_record, a, b, bias)
    assert model.mismatches == 0, "a transient before the copies is no disagreement"
    target.inject([record])
    assert_same(observed(target, a, b, bias), model)


def test_a_set_on_a_net_several_registers_load_reaches_them_all_as_the_model_says(
    start_chip,
) -> None:
    # The array's valid tag is one net loaded by PE (0, 0) and the first stage of every
    # skew chain: a SET named by any of its loads lands on all N of them.
    target = start_chip(*NO_MITIGATION)
    sitemap = SiteMap.for_build(n=N, ecc=False, scrub=False, tmr=False)
    name = "u_array.g_skew[2].g_delay.a_sr_q"
    assert len(sitemap.loads(name, 8)) == N
    a, b, bias = operands(13)
    record = FaultRecord(FaultKind.SET, SITE, 1, (name, 8), NEXT, (0, JobPhase.STREAM, 2))
    model = predicted(False, record, a, b, bias)
    assert model.end == "done" and not np.array_equal(model.c, predicted_clean(a, b, bias))
    target.inject([record])
    assert target.list_faults()[0] == 1  # one fault, though it reaches N flops
    assert_same(observed(target, a, b, bias), model)
    faults = target.job_faults()
    assert (faults.scheduled, faults.not_injected) == (1, 0)


def test_a_hang_from_a_sequencer_upset_is_seen_as_a_hang_and_recovered(start_chip) -> None:
    target = start_chip(*NO_MITIGATION)
    a, b, bias = operands(11)
    record = FaultRecord(FaultKind.SBU, SITE, 1, ("u_seq.u_rb.q_q[0]", 0), NEXT,
                         (0, JobPhase.STREAM, 2))  # fmt: skip
    if predicted(False, record, a, b, bias).end != "hung":
        pytest.skip("the model no longer predicts a hang from this upset")
    target.set_parameter(0x0011, 200)  # JOB_TIMEOUT, ms: the hang is found sooner
    target.inject([record])
    mark = target.link.history.mark()
    assert observed(target, a, b, bias).end == "hung"
    assert target.await_event(EventId.SEFI_DETECTED, timeout=2.0, start=mark) is not None
    c = target.run_layer(a, b, bias, out_int32=True)  # the chip was reset: a clean job
    np.testing.assert_array_equal(np.asarray(c), predicted_clean(a, b, bias))


def predicted_clean(a, b, bias) -> np.ndarray:
    """C of the job without faults, from the model."""
    c, _ = Accelerator(N, ecc=False, scrub=False, tmr=False).run_gemm(a, b, bias, out_int32=True)
    return c
