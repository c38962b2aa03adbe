"""Stuck-at 0/1 in register bits (ICD 15.8) against the simulated chip on a real pty: the
bit holds through jobs and idle time, the job comes out as the bit-exact model run
directly says, a stuck TMR copy is outvoted in every cycle, a stuck counter bit shows in
housekeeping, and TC[148,2] releases it."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_sim.accel import Accelerator, FlopBit, RegCopy
from firmware_sim.accel.regs import Reg
from host.errors import CommandFailed
from host.target import Target
from protocol.codes import FailureCode, FaultKind, MemoryId
from protocol.payloads import (
    FaultRecord,
    FaultSiteClass,
    HkStructure,
    ParamId,
    read_fault_refusal,
)

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


def test_a_stuck_counter_bit_shows_in_housekeeping_and_counts_around_it(start_chip) -> None:
    target = start_chip()
    n, word = target.array_n(), 300
    data = bytes(range(1, n + 1))
    # The scrubber would count the flipped word too, whenever it got there: stopped.
    target.set_parameter(ParamId.SCRUB_PERIOD, 0)
    target.load(MemoryId.ACCEL_SCRATCHPAD, word * n, data)
    assert target.housekeeping(HkStructure.ACCELERATOR)["ecc_corrected"] == 0
    stuck = FaultRecord(FaultKind.STUCK_AT_1, FaultSiteClass.SITE, 1, ("u_regs.corr_q", 0))
    target.inject([stuck])
    assert target.housekeeping(HkStructure.ACCELERATOR)["ecc_corrected"] == 1
    # One corrected read: bit 0 reads 1 and passes the carry, so ECC_CORR goes 1 -> 3,
    # as the model says.
    target.inject([FaultRecord(FaultKind.SBU, FaultSiteClass.SPM_WORD, 1, (word, 2))])
    report = target.dump_report(MemoryId.ACCEL_SCRATCHPAD, word * n, n)
    assert (report.data, report.uncorrectable) == (data, 0)
    chip = Accelerator(N)
    chip.stick(FlopBit("u_regs.corr_q", 0), 1)
    chip.flip(chip.layout.cell_of(word, 2))
    chip.read_word(word)
    assert target.housekeeping(HkStructure.ACCELERATOR)["ecc_corrected"] == 3
    assert chip.read_reg(Reg.ECC_CORR) == 3
    count, listed = target.list_faults()
    assert (count, [(r.kind, r.site_class, r.site) for r in listed]) == (
        1, [(FaultKind.STUCK_AT_1, FaultSiteClass.SITE, ("u_regs.corr_q", 0))]
    )
    target.clear_faults()
    assert target.housekeeping(HkStructure.ACCELERATOR)["ecc_corrected"] == 3  # kept


def test_stuck_bits_the_chip_cannot_hold_as_such_are_refused_by_field(start_chip) -> None:
    target = start_chip()
    # Off WAIT for good, the scrubber would keep the scratchpad port: no bus access there
    # would ever complete.
    state = FaultRecord(FaultKind.STUCK_AT_1, FaultSiteClass.SITE, 1,
                        ("g_scrub.u_scrub.state_q", 1))  # fmt: skip
    with pytest.raises(CommandFailed) as refused:
        target.inject([state])
    assert refused.value.code == FailureCode.FAULT_NOT_PREDICTABLE
    assert read_fault_refusal(refused.value.data) == (1 + state.site_offset(), 0)
    wide = FaultRecord(FaultKind.STUCK_AT_0, FaultSiteClass.ACC_BIT, 2, (0, 0, 4))
    with pytest.raises(CommandFailed) as refused:
        target.inject([wide])
    assert refused.value.code == FailureCode.VALUE_OUT_OF_RANGE
    assert target.list_faults()[0] == 0
