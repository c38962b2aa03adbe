"""Stuck-at 0/1 in register bits (ICD 15.8) against the simulated chip on a real pty: the
bit holds through jobs and idle time, the job comes out as the bit-exact model run
directly says, a stuck TMR copy is outvoted in every cycle, and TC[148,2] releases it."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_sim.accel import Accelerator, RegCopy
from firmware_sim.accel.regs import Reg
from host.errors import CommandFailed
from host.target import Target
from protocol.codes import FailureCode, FaultKind
from protocol.payloads import FaultRecord, FaultSiteClass, HkStructure, read_fault_refusal

N = 4
NO_MITIGATION = ("--no-ecc", "--no-scrub", "--no-tmr")


def operands(seed: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(-128, 128, (4, k), dtype=np.int8),
            rng.integers(-128, 128, (k, 4), dtype=np.int8),
            rng.integers(-1000, 1000, 4))  # fmt: skip


def mismatches(target: Target) -> int:
    return target.housekeeping(HkStructure.ACCELERATOR)["tmr_mismatches"]


def test_a_stuck_dim_k_bit_without_tmr_shortens_every_job_as_the_model_says(start_chip) -> None:
    target = start_chip(*NO_MITIGATION)
    a, b, bias = operands(5, k=7)  # K odd: DIM_K bit 0 stuck at 0 drops the last step
    target.inject([FaultRecord(FaultKind.STUCK_AT_0, FaultSiteClass.SITE, 1,
                               ("u_regs.u_dim_k.q_q[0]", 0))])  # fmt: skip
    chip = Accelerator(N, ecc=False, scrub=False, tmr=False)
    chip.stick(RegCopy("DIM_K", 0, 0), 0)
    for _ in range(2):  # held through the writes of every job's descriptor
        c = np.asarray(target.run_layer(a, b, bias, out_int32=True))
        want, _ = chip.run_gemm(a, b, bias, out_int32=True)
        np.testing.assert_array_equal(c, want)
        wide = a[:, :-1].astype(np.int64) @ b[:-1].astype(np.int64) + bias
        np.testing.assert_array_equal(c, wide)
    # Listed by the most specific class that names the bit: DIM_K, copy 0, bit 0.
    count, listed = target.list_faults()
    assert (count, [(r.kind, r.site_class, r.site) for r in listed]) == (
        1, [(FaultKind.STUCK_AT_0, FaultSiteClass.REG_COPY, (int(Reg.DIM_K), 0, 0))]
    )
    target.clear_faults()
    c = np.asarray(target.run_layer(a, b, bias, out_int32=True))
    np.testing.assert_array_equal(c, a.astype(np.int64) @ b.astype(np.int64) + bias)


def test_a_stuck_tmr_copy_is_outvoted_every_cycle_until_cleared(start_chip) -> None:
    target = start_chip()
    a, b, bias = operands(6, k=8)
    before = mismatches(target)
    target.inject([FaultRecord(FaultKind.STUCK_AT_1, FaultSiteClass.REG_COPY, 1,
                               (int(Reg.DIM_M), 1, 5))])  # fmt: skip
    c = np.asarray(target.run_layer(a, b, bias, out_int32=True))
    np.testing.assert_array_equal(c, a.astype(np.int64) @ b.astype(np.int64) + bias)
    first = mismatches(target)
    second = mismatches(target)
    # Idle cycles at 100 MHz keep the vote disagreeing: the count grows between reads.
    assert before < first < second
    count, listed = target.list_faults()
    assert [(r.kind, r.site_class, r.site) for r in listed] == [
        (FaultKind.STUCK_AT_1, FaultSiteClass.REG_COPY, (int(Reg.DIM_M), 1, 5))
    ]
    target.clear_faults()
    released = mismatches(target)
    assert mismatches(target) == released


def test_stuck_bits_the_chip_cannot_hold_as_such_are_refused_by_field(start_chip) -> None:
    target = start_chip()
    counter = FaultRecord(FaultKind.STUCK_AT_1, FaultSiteClass.SITE, 1, ("u_regs.cycles_q", 3))
    with pytest.raises(CommandFailed) as refused:
        target.inject([counter])
    assert refused.value.code == FailureCode.FAULT_NOT_PREDICTABLE
    assert read_fault_refusal(refused.value.data) == (1 + counter.site_offset(), 0)
    wide = FaultRecord(FaultKind.STUCK_AT_0, FaultSiteClass.ACC_BIT, 2, (0, 0, 4))
    with pytest.raises(CommandFailed) as refused:
        target.inject([wide])
    assert refused.value.code == FailureCode.VALUE_OUT_OF_RANGE
    assert target.list_faults()[0] == 0
