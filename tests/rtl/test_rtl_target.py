"""The flight software on the chip's RTL, reached over a serial port as any target is.

One simulated chip of each kind (``firmware-sim --backend rtl`` and the model's) serves on
its own pty; the same commands go to both over the link, and the RTL must answer as the
model does: the same results, the same fault outcomes and the same counters.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from host.commands import Authenticator
from host.errors import CommandFailed, PortNotFound
from host.infer import Inference
from host.link import Link
from host.sim import SIM_KEY, SIM_KEY_ID, SimulatedTarget
from host.target import Target
from protocol.codes import FaultKind, MemoryId
from protocol.payloads import (
    FaultRecord,
    FaultSiteClass,
    FaultTiming,
    HkStructure,
    JobPhase,
    ParamId,
)
from workload.format import load_workload

S, NEXT = FaultSiteClass, FaultTiming.NEXT_JOB
#: Counters of HK ACCELERATOR that a fault moves.
COUNTERS = ("ecc_corrected", "ecc_uncorrectable", "tmr_mismatches")


class Chip:
    """A simulated chip on its pty and a target over the link to it."""

    def __init__(self, backend: str) -> None:
        self.sim = SimulatedTarget(mode="test", backend=backend)
        self.sim.start()
        self.link = Link(self.sim.port, auth=Authenticator(SIM_KEY_ID, SIM_KEY))
        self.link.open()
        self.target = Target(self.link)
        # Faults here are put in on purpose: no autonomous SAFE mode, hangs found fast.
        self.target.set_parameter(ParamId.SAFE_MODE_THRESHOLD, 255)
        self.target.set_parameter(ParamId.JOB_TIMEOUT, 1000)
        # No idle scrubbing: it advances with wall time on the model and with simulated
        # cycles on the RTL, so an upset left in memory would be found at different times.
        self.target.set_parameter(ParamId.SCRUB_PERIOD, 0)

    def close(self) -> None:
        self.link.close()
        self.sim.stop()

    def run(self, a: np.ndarray, b: np.ndarray, records: list[FaultRecord]) -> dict:
        """Arm ``records``, run C = A . B, clear the faults; what a host can see of it."""
        before = self.target.housekeeping(HkStructure.ACCELERATOR)
        if records:
            self.target.inject(records)
        try:
            outcome: object = self.target.run_gemm(a, b).tolist()
        except CommandFailed as exc:
            outcome = exc.code.name
        self.target.clear_faults()
        if outcome == "TIMEOUT":
            # A hung job wrote on past its last tile until reset, further on the RTL (its
            # clock runs through the accesses that reset it): start the next case clean.
            self.target.load(MemoryId.ACCEL_SCRATCHPAD, 0, bytes(2 * 1024 * 4))
        after = self.target.housekeeping(HkStructure.ACCELERATOR)
        seen = {k: (after[k] - before[k]) & 0xFFFFFFFF for k in COUNTERS}
        seen.update(outcome=outcome, cycles=after["last_job_cycles"],
                    faults=after["last_job_faults"],
                    missed=after["last_job_not_injected"])  # fmt: skip
        return seen


@pytest.fixture(scope="module")
def chips() -> Iterator[tuple[Chip, Chip]]:
    rtl, model = Chip("rtl"), Chip("model")
    try:
        yield rtl, model
    finally:
        rtl.close()
        model.close()


def operands(seed: int, m: int = 8, k: int = 12, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(-128, 128, (m, k), dtype=np.int8),
            rng.integers(-128, 128, (k, n), dtype=np.int8))  # fmt: skip


def test_a_gemm_on_the_rtl_is_a_times_b_in_the_model_s_cycles(chips) -> None:
    rtl, model = chips
    a, b = operands(1, 16, 16, 16)
    got = rtl.run(a, b, [])
    assert got["outcome"] == (a.astype(np.int64) @ b.astype(np.int64)).tolist()
    assert got == model.run(a, b, [])  # cycles and counters too
    assert got["cycles"] > 16 * 16 * 16 // 16  # the job ran on the array, tile by tile


FAULTS = {
    "sequencer copy, outvoted": [FaultRecord(FaultKind.SBU, S.SITE, 1, ("u_seq.u_state.q_q[1]", 1),
                                             NEXT, (0, JobPhase.STREAM, 3))],
    "transient on the column-block counter, which TMR does not correct": [
        FaultRecord(FaultKind.SET, S.SITE, 1, ("u_seq.u_cb.q_q[0]", 0), NEXT,
                    (1, JobPhase.STREAM, 2))],
    "accumulator bit": [FaultRecord(FaultKind.SBU, S.ACC_BIT, 1, (1, 2, 20), NEXT,
                                    (0, JobPhase.STREAM, 6))],
    "operand cell corrected by SECDED": [FaultRecord(FaultKind.SBU, S.SPM_WORD, 1, (3, 5), NEXT,
                                                     (0, JobPhase.STREAM, 0))],
    "two bits of one word: detected": [FaultRecord(FaultKind.MBU, S.SPM_WORD, 2, (0, 2), NEXT,
                                                   (0, JobPhase.STREAM, 0))],
    "pipeline register": [FaultRecord(FaultKind.SBU, S.SITE, 1,
                                      ("u_array.g_row[1].g_col[0].u_pe.b_q", 6), NEXT,
                                      (0, JobPhase.STREAM, 4))],
    "a point past the job": [FaultRecord(FaultKind.SBU, S.ACC_BIT, 1, (0, 0, 3), NEXT,
                                         (9, JobPhase.STREAM, 0))],
    "stuck result register bit": [FaultRecord(FaultKind.STUCK_AT_1, S.OUT_BIT, 1, (0, 1, 30))],
    "SEFI at START": [FaultRecord(FaultKind.SEFI, S.ACCEL, 0, (), NEXT)],
}  # fmt: skip


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_fault_ends_on_the_rtl_as_on_the_model(chips, name: str) -> None:
    rtl, model = chips
    a, b = operands(7)
    got, want = rtl.run(a, b, FAULTS[name]), model.run(a, b, FAULTS[name])
    assert got == want
    # And what that is, absolutely: the result, or the failure the job ended with.
    if name == "SEFI at START":
        assert got["outcome"] == "TIMEOUT"
    elif name == "two bits of one word: detected":
        assert got["outcome"] == "JOB_FAILED" and got["ecc_uncorrectable"] >= 1
    elif name in ("sequencer copy, outvoted", "operand cell corrected by SECDED"):
        assert got["outcome"] == (a.astype(np.int64) @ b.astype(np.int64)).tolist()
        assert got["tmr_mismatches"] + got["ecc_corrected"] >= 1
    elif name == "a point past the job":
        assert (got["faults"], got["missed"]) == (1, 1)


def test_a_simulator_that_dies_ends_the_session_at_once_with_a_clear_error() -> None:
    chip = Chip("rtl")
    try:
        chip.target.ping()
        simulators = subprocess.run(
            ["pgrep", "-P", str(chip.sim.proc.pid), "-f", "vvp"], capture_output=True, text=True
        ).stdout.split()
        assert simulators, "the RTL chip runs in a vvp process started by firmware-sim"
        for pid in simulators:
            os.kill(int(pid), signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(PortNotFound, match="pseudo-terminal is gone"):
            chip.target.ping()
        assert time.monotonic() - started < chip.link.timing.acceptance_s
    finally:
        chip.close()


def test_the_digits_classifier_on_the_rtl_equals_the_reference_and_the_model() -> None:
    # Four images: each layer larger than the scratchpad runs in blocks on both chips,
    # chips of its own (the scrubber's idle progress differs with wall time).
    chips = Chip("rtl"), Chip("model")
    digits = load_workload(Path(__file__).resolve().parents[2] / "configs/workloads/digits")
    x, labels = digits.test_inputs[:4], digits.test_labels[:4]
    runs = []
    try:
        for chip in chips:
            inference = Inference(chip.target, digits, batch=4, job_timeout_s=300)
            inference.load()
            runs.append(inference.run(x, labels))
    finally:
        for chip in chips:
            chip.close()
    rtl, model = runs
    assert rtl.mismatched == 0  # the int8 reference's logits, bit for bit
    np.testing.assert_array_equal(rtl.logits, model.logits)
    assert rtl.accuracy == rtl.reference_accuracy
    for on_rtl, on_model in zip(rtl.layers, model.layers, strict=True):
        assert (on_rtl.cycles, on_rtl.macs, on_rtl.energy_nj) == (
            on_model.cycles, on_model.macs, on_model.energy_nj)  # fmt: skip
        assert on_rtl.macs > 0
