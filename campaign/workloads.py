"""A campaign's workload as the chip jobs it runs, and what their results come to.

A GEMM is one chip job. An int8 network (``configs/workloads``, docs/WORKLOADS.md)
classifies a batch of its test images layer after layer, each layer cut into the chip
jobs the flight software runs it as (``firmware_sim.jobs.tile``, ICD 15.6 "Tiling").

A campaign run places one fault in one chip job; every other job delivers its golden C.
The run's result is therefore the network's logits with that job's C in place and every
later layer computed with the chip's arithmetic (``workload.reference``): exact, since
the chip is bit-exact with that arithmetic and the later jobs run fault-free. Its
outcome is judged on the logits, and for a classifier also on the predicted classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from firmware_sim.accel import gemm_reference
from firmware_sim.jobs import JobSpec, tile
from protocol.codes import FunctionId
from protocol.payloads import OperandSource, layer_flags
from testbed.config.campaign import Campaign, Gemm, Network
from testbed.sitemap_builds import Build


@dataclass(frozen=True, eq=False)
class ChipJob:
    """One job of the chip: C = epilogue(A . B), as ``Accelerator.load_job`` takes it."""

    label: str
    a: np.ndarray
    b: np.ndarray
    bias: np.ndarray | None
    relu: bool
    shift: int
    out_int32: bool

    @property
    def dims(self) -> tuple[int, int, int]:
        """M, K and N."""
        return self.a.shape[0], self.a.shape[1], self.b.shape[1]

    def job_args(self) -> dict:
        """Keywords of ``Accelerator.load_job`` and of the link's ``run_layer``."""
        return {"a": self.a, "b": self.b, "bias": self.bias, "relu": self.relu,
                "shift": self.shift, "out_int32": self.out_int32}  # fmt: skip

    def reference(self) -> np.ndarray:
        """C with the chip's arithmetic."""
        return gemm_reference(self.a, self.b, self.bias, relu=self.relu, shift=self.shift,
                              out_int32=self.out_int32)  # fmt: skip


class CampaignWorkload:
    """The chip jobs of one campaign run and its golden result."""

    spec: Gemm | Network
    jobs: tuple[ChipJob, ...]
    #: The run's result without a fault: C of a GEMM, the logits of a network.
    golden: np.ndarray
    #: For a classifier, the golden run's predicted class of each image; else None.
    classes: np.ndarray | None = None

    def describe(self) -> str:
        return self.spec.describe()

    def finish(self, job: int, c: np.ndarray) -> np.ndarray:
        """The run's result when chip job ``job`` delivered ``c`` and the others their
        golden C."""
        raise NotImplementedError

    def job_golden(self, job: int) -> np.ndarray:
        """C of chip job ``job`` without a fault."""
        raise NotImplementedError


class GemmWorkload(CampaignWorkload):
    """The campaign's GEMM with operands drawn from its seed: one chip job."""

    def __init__(self, spec: Gemm) -> None:
        self.spec = spec
        rng = np.random.default_rng(spec.seed)
        a = rng.integers(-128, 128, (spec.m, spec.k), dtype=np.int8)
        b = rng.integers(-128, 128, (spec.k, spec.n), dtype=np.int8)
        bias = rng.integers(-20000, 20000, spec.n).astype(np.int32) if spec.bias else None
        self.jobs = (ChipJob("gemm", a, b, bias, spec.relu, spec.shift, spec.out_int32),)
        self.golden = self.jobs[0].reference()

    def finish(self, job: int, c: np.ndarray) -> np.ndarray:
        return c

    def job_golden(self, job: int) -> np.ndarray:
        return self.golden


@dataclass(frozen=True)
class _Place:
    """Where a chip job's C lies in its layer's output."""

    layer: int
    row: int
    col: int
    rows: int
    cols: int

    @property
    def region(self) -> tuple[slice, slice]:
        return slice(self.row, self.row + self.rows), slice(self.col, self.col + self.cols)


class NetworkWorkload(CampaignWorkload):
    """A batch of a network's test images, layer by layer, each layer in the chip jobs
    the flight software tiles it into on ``build``."""

    def __init__(self, spec: Network, directory: Path, build: Build) -> None:
        from workload import reference
        from workload.format import load_workload

        self.spec = spec
        self.network = net = load_workload(directory)
        stop = spec.first + spec.images
        x = net.test_inputs[spec.first : stop]
        self.labels = net.test_labels[spec.first : stop]
        self.batch = spec.images
        self.layer_jobs = reference.gemm_jobs(net, self.batch)
        self.outputs: list[np.ndarray] = []
        jobs, places = [], []
        for i, (layer, gemm) in enumerate(zip(net.layers, self.layer_jobs, strict=True)):
            a = reference.layer_a(layer, x, self.batch)
            x = reference.run_reference(gemm, a)
            self.outputs.append(x)
            blocks = tile(JobSpec(
                FunctionId.RUN_LAYER, 0, OperandSource.FIRMWARE_RAM, gemm.m, gemm.k, gemm.n,
                flags=layer_flags(gemm.bias is not None, gemm.relu, gemm.out_int32),
                shift=gemm.shift,
            ), build.n, build.bank_words)  # fmt: skip
            for k, blk in enumerate(blocks):
                cols = slice(blk.col, blk.col + blk.cols)
                label = layer.name if len(blocks) == 1 else f"{layer.name} {k + 1}/{len(blocks)}"
                jobs.append(ChipJob(
                    label, np.ascontiguousarray(a[blk.row : blk.row + blk.rows]),
                    np.ascontiguousarray(gemm.b[:, cols]),
                    None if gemm.bias is None else np.ascontiguousarray(gemm.bias[cols]),
                    gemm.relu, gemm.shift, gemm.out_int32,
                ))  # fmt: skip
                places.append(_Place(i, blk.row, blk.col, blk.rows, blk.cols))
        self.jobs = tuple(jobs)
        self._places = tuple(places)
        self.golden = self.outputs[-1]
        self.classes = reference.predictions(self.golden)

    def describe(self) -> str:
        return (f"{self.spec.describe()} ({', '.join(j.label for j in self.jobs)}: "
                f"{len(self.jobs)} chip jobs)")  # fmt: skip

    def job_golden(self, job: int) -> np.ndarray:
        return self._golden_blocks[job]

    @cached_property
    def _golden_blocks(self) -> tuple[np.ndarray, ...]:
        return tuple(self.outputs[p.layer][p.region] for p in self._places)

    def finish(self, job: int, c: np.ndarray) -> np.ndarray:
        from workload import reference

        place = self._places[job]
        if np.array_equal(c, self._golden_blocks[job]):
            return self.golden
        x = self.outputs[place.layer].copy()
        x[place.region] = c
        layers = self.network.layers
        for i in range(place.layer + 1, len(layers)):
            a = reference.layer_a(layers[i], x, self.batch)
            x = reference.run_reference(self.layer_jobs[i], a)
        return x


def workload_of(campaign: Campaign, build: Build) -> CampaignWorkload:
    """The campaign's workload as it runs on ``build``."""
    spec = campaign.workload
    if isinstance(spec, Network):
        spec = spec.model_copy(update={"path": str(campaign.network_dir)})
    return make_workload(spec, build)


def make_workload(spec: Gemm | Network, build: Build) -> CampaignWorkload:
    """The workload ``spec`` names (a network's ``path`` resolved) as it runs on ``build``."""
    if isinstance(spec, Network):
        return NetworkWorkload(spec, Path(spec.path), build)
    return GemmWorkload(spec)
