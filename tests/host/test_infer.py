"""The digits classifier through the link on a simulated chip (real pty, real processes):
logits equal to the int8 reference bit for bit, its accuracy, the figures `hil infer`
prints, and one-line refusals of what cannot run."""

from __future__ import annotations

import re
import shutil
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from hil_process import REPO, HilSim, hil

from host.infer import Inference, plan_memory
from host.target import FIRMWARE_RAM_SIZE
from workload.format import load_workload
from workload.reference import forward

DIGITS = REPO / "configs" / "workloads" / "digits"


@pytest.fixture(scope="module")
def digits():
    return load_workload(DIGITS)


def test_a_batch_through_the_chip_equals_the_reference_bit_for_bit(start_chip, digits) -> None:
    target = start_chip()
    inference = Inference(target, digits, batch=16)
    inference.load()
    # 40 images: two full batches and one of 8, whose regions are planned again.
    x, labels = digits.test_inputs[:40], digits.test_labels[:40]
    result = inference.run(x, labels)
    logits, predictions = forward(digits, x)
    np.testing.assert_array_equal(result.logits, logits)
    assert result.mismatched == 0
    assert result.accuracy == float(np.mean(predictions == labels)) > 0.9
    # Each layer ran once a batch: MACs are M x K x N summed over the batches.
    for stats, layer in zip(result.layers, digits.layers, strict=True):
        assert stats.macs == 40 * layer.positions * layer.k * layer.n
        assert 0 < stats.utilization(4) <= 1
    assert result.energy_nj > 0


def test_weights_first_then_each_layers_result_is_the_next_ones_operand(digits) -> None:
    plans = plan_memory(digits, 32)
    assert [p.job.layer for p in plans] == [layer.name for layer in digits.layers]
    for before, after in zip(plans, plans[1:], strict=False):
        assert after.a == before.c
    weights_end = max(max(p.b.end, p.bias.end if p.bias else 0) for p in plans)
    assert weights_end <= plans[0].a.address
    ends = sorted((r.address, r.end) for p in plans for r in (p.b, p.c))
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairwise(ends))
    with pytest.raises(ValueError, match=r"needs \d+ octets of FIRMWARE_RAM, the target has "
                       rf"{FIRMWARE_RAM_SIZE}: use a smaller --batch"):  # fmt: skip
        plan_memory(digits, 1000)


def test_hil_infer_prints_accuracy_exactness_latency_energy_and_utilization() -> None:
    sim = HilSim()
    try:
        done = hil("infer", "--port", sim.port, "--count", "64", timeout=120)
    finally:
        sim.stop()
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"^accuracy on the chip +\d+\.\d\d % of 64 test images", out, re.M), out
    assert "logits equal bit for bit in 64 of 64" in out
    energy = re.search(r"^energy per inference +(\d+\.\d) nJ", out, re.M)
    assert energy and float(energy.group(1)) > 0, out
    assert re.search(r"^latency per inference +\d+\.\d\d ms", out, re.M), out
    for layer in ("conv1", "fc1", "fc2"):
        assert re.search(rf"^{layer} .* \d+\.\d%$", out, re.M), out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "0"], r"--batch must be at least 1, got 0"),
        (["--count", "9999"], r"--count must be 1\.\.360, got 9999"),
        (["--batch", "1000"], r"needs \d+ octets of FIRMWARE_RAM, the target has 65536"),
        (["no-such-workload"], r"no such workload"),
    ],
)
def test_what_cannot_run_is_refused_in_one_line_before_anything_is_sent(
    args: list[str], message: str
) -> None:
    # Checked before the port is opened: this one does not exist.
    done = hil("infer", "--port", "/dev/no-such-port", *args)
    assert done.returncode == 2, done
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert re.search(message, line), line


def test_a_workload_with_float_weights_is_refused_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "digits"
    shutil.copytree(DIGITS, bad)
    np.save(bad / "fc1_w.npy", np.load(bad / "fc1_w.npy").astype(np.float64))
    done = hil("infer", "--port", "/dev/no-such-port", str(bad))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "fc1_w.npy holds float64, want int8 (-128..127)" in line, line
