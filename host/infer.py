"""An int8 network run on the chip through the link, checked against the int8 reference.

The layers' weights and biases are loaded into FIRMWARE_RAM once. Each batch of inputs is
loaded as the first layer's A (its im2col rows for a convolution), every layer runs as one
RUN_LAYER job from FIRMWARE_RAM whose A is the previous layer's C where the target wrote
it (a convolution's C, row-major, is the flattened input of the dense layer after it: see
docs/WORKLOADS.md), and only the logits are read back. After each job the accelerator's
housekeeping gives its cycles, MACs and energy, so that a layer's MAC utilization and an
inference's energy come from the target itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from host.target import FIRMWARE_RAM_SIZE, Target
from protocol.codes import MemoryId
from protocol.payloads import HkStructure
from workload.format import Workload
from workload.reference import GemmJob, forward, gemm_jobs, layer_a

ALIGN = 4
"""Every region starts on a multiple of four octets (the int32 bias and logits)."""


@dataclass(frozen=True)
class Region:
    address: int
    length: int

    @property
    def end(self) -> int:
        return self.address + self.length


@dataclass(frozen=True)
class LayerPlan:
    """Where one layer's operands and result lie in FIRMWARE_RAM, for one batch size."""

    job: GemmJob
    a: Region
    b: Region
    bias: Region | None
    c: Region


@dataclass
class LayerStats:
    """What the target reported for one layer, summed over batches."""

    name: str
    shape: tuple[int, int, int]
    cycles: int = 0
    macs: int = 0
    energy_nj: int = 0

    def utilization(self, array_n: int) -> float:
        """MACs done over MACs the array could have done in those cycles (N x N a cycle)."""
        return self.macs / (self.cycles * array_n * array_n) if self.cycles else 0.0


@dataclass
class InferenceResult:
    """How a run of the network on the target came out, against the int8 reference."""

    workload: str
    batch: int
    array_n: int
    labels: np.ndarray
    logits: np.ndarray
    reference: np.ndarray
    seconds: float
    layers: list[LayerStats] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.labels)

    @property
    def predictions(self) -> np.ndarray:
        return np.argmax(self.logits, axis=1)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predictions == self.labels))

    @property
    def reference_accuracy(self) -> float:
        return float(np.mean(np.argmax(self.reference, axis=1) == self.labels))

    @property
    def mismatched(self) -> int:
        """Inferences whose logits differ from the reference's in any element."""
        return int(np.count_nonzero(np.any(self.logits != self.reference, axis=1)))

    @property
    def latency_s(self) -> float:
        """Wall time per inference, loads and reads over the link included."""
        return self.seconds / self.count

    @property
    def energy_nj(self) -> float:
        """Accelerator energy per inference (the firmware's energy model)."""
        return sum(layer.energy_nj for layer in self.layers) / self.count


def plan_memory(
    workload: Workload, batch: int, ram_size: int = FIRMWARE_RAM_SIZE
) -> list[LayerPlan]:
    """Regions of FIRMWARE_RAM: the weights and biases of every layer first (loaded once),
    then the first layer's A and each layer's C for a batch of ``batch`` inputs.
    Raises ValueError naming the sizes when they do not fit."""
    jobs = gemm_jobs(workload, batch)
    cursor = 0

    def take(length: int) -> Region:
        nonlocal cursor
        cursor += -cursor % ALIGN
        region = Region(cursor, length)
        cursor += length
        return region

    weights = [take(job.k * job.n) for job in jobs]
    biases = [None if job.bias is None else take(4 * job.n) for job in jobs]
    a = take(jobs[0].m * jobs[0].k)
    plans = []
    for job, b, bias in zip(jobs, weights, biases, strict=True):
        c = take(job.m * job.n * (4 if job.out_int32 else 1))
        plans.append(LayerPlan(job, a, b, bias, c))
        a = c
    if cursor > ram_size:
        raise ValueError(
            f"{workload.name} in batches of {batch} needs {cursor} octets of FIRMWARE_RAM, "
            f"the target has {ram_size}: use a smaller --batch"
        )
    return plans


class Inference:
    """A workload on a target: ``load()`` its weights once, then ``run()`` inputs."""

    def __init__(
        self, target: Target, workload: Workload, batch: int, job_timeout_s: float | None = None
    ) -> None:
        """``job_timeout_s``: how long a layer's job may go without a report once accepted
        (default: the link's progress timeout; a simulated RTL stages operands slowly)."""
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        later = [layer.name for layer in workload.layers[1:] if layer.kind == "conv2d"]
        if later:
            raise ValueError(
                f"{workload.name}: conv2d layer {later[0]} follows another layer; on the chip "
                "a convolution runs first only (the host lays out its im2col rows)"
            )
        self.target = target
        self.workload = workload
        self.batch = batch
        self.job_timeout_s = job_timeout_s
        self.plans = plan_memory(workload, batch)

    def load(self) -> None:
        """Load every layer's B (and bias), verified by CRC."""
        for plan in self.plans:
            self.target.load(MemoryId.FIRMWARE_RAM, plan.b.address,
                             plan.job.b.tobytes(), verify=True)  # fmt: skip
            if plan.bias is not None:
                data = plan.job.bias.astype(">i4").tobytes()
                self.target.load(MemoryId.FIRMWARE_RAM, plan.bias.address, data, verify=True)

    def run(
        self,
        inputs: np.ndarray,
        labels: np.ndarray,
        progress: Callable[[int, int], None] | None = None,
    ) -> InferenceResult:
        """Every input through the network on the target, in batches (the last one may be
        smaller), with the reference's logits beside."""
        count = len(inputs)
        stats = [LayerStats(p.job.layer, (p.job.m, p.job.k, p.job.n)) for p in self.plans]
        logits = []
        started = time.monotonic()
        for start in range(0, count, self.batch):
            logits.append(self._batch(inputs[start : start + self.batch], stats))
            if progress is not None:
                progress(min(start + self.batch, count), count)
        seconds = time.monotonic() - started
        reference, _ = forward(self.workload, inputs)
        return InferenceResult(self.workload.name, self.batch, self.target.array_n(),
                               np.asarray(labels), np.concatenate(logits), reference, seconds,
                               stats)  # fmt: skip

    def _batch(self, x: np.ndarray, stats: list[LayerStats]) -> np.ndarray:
        plans = self.plans if len(x) == self.batch else plan_memory(self.workload, len(x))
        a = layer_a(self.workload.layers[0], x, len(x))
        self.target.load(MemoryId.FIRMWARE_RAM, plans[0].a.address, a.tobytes())
        for plan, layer in zip(plans, stats, strict=True):
            job = plan.job
            self.target.run_layer_in_ram(
                job.m, job.k, job.n, a=plan.a.address, b=plan.b.address, c=plan.c.address,
                bias=None if plan.bias is None else plan.bias.address, relu=job.relu,
                shift=job.shift, out_int32=job.out_int32, timeout=self.job_timeout_s,
            )  # fmt: skip
            hk = self.target.housekeeping(HkStructure.ACCELERATOR)
            layer.cycles += int(hk["last_job_cycles"])
            layer.macs += int(hk["last_job_macs"])
            layer.energy_nj += int(hk["last_job_energy"])
        last = plans[-1]
        raw = self.target.dump(MemoryId.FIRMWARE_RAM, last.c.address, last.c.length)
        dtype = ">i4" if last.job.out_int32 else "i1"
        return np.frombuffer(raw, dtype=dtype).reshape(len(x), last.job.n).astype(np.int32)
