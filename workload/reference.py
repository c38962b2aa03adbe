"""The host's int8 reference of a workload: every layer as one GEMM with the chip's arithmetic.

The arithmetic is ``firmware_sim.accel.gemm_reference`` (docs/REGISTERS.md "Arithmetic");
this module only lays out operands (``workload.layout``). ``gemm_jobs`` lists the chip
jobs of one batch, and ``layer_outputs`` runs them with any GEMM engine, so a host that
sends the jobs to the chip can compare every layer's C with the reference's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firmware_sim.accel import gemm_reference
from workload import layout
from workload.format import Layer, Workload


@dataclass(frozen=True, eq=False)
class GemmJob:
    """One layer of one batch as a chip job: C (M x N) = epilogue(A (M x K) @ B (K x N))."""

    layer: str
    m: int
    k: int
    n: int
    #: K x N int8.
    b: np.ndarray
    #: N int32, or None for no BIAS_EN.
    bias: np.ndarray | None
    relu: bool
    shift: int
    out_int32: bool


#: A GEMM engine: the job and its A in, its C out (int8, or int32 with ``out_int32``).
Engine = Callable[[GemmJob, np.ndarray], np.ndarray]


def run_reference(job: GemmJob, a: np.ndarray) -> np.ndarray:
    """``job`` on ``a`` with the chip's arithmetic (``gemm_reference``)."""
    return gemm_reference(
        a, job.b, job.bias, relu=job.relu, shift=job.shift, out_int32=job.out_int32
    )


def gemm_jobs(workload: Workload, batch: int) -> list[GemmJob]:
    """The chip jobs of ``batch`` images, one per layer, in order."""
    if batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch}")
    return [_job(layer, batch) for layer in workload.layers]


def _job(layer: Layer, batch: int) -> GemmJob:
    return GemmJob(
        layer=layer.name,
        m=batch * layer.positions,
        k=layer.k,
        n=layer.n,
        b=layer.b,
        bias=layer.bias,
        relu=layer.relu,
        shift=layer.shift,
        out_int32=layer.out_int32,
    )


def layer_a(layer: Layer, x: np.ndarray, batch: int) -> np.ndarray:
    """The A of ``layer`` from its input: the network's NHWC images or the previous C."""
    if layer.kind == "conv2d":
        assert layer.kernel is not None  # format checks every conv2d's kernel
        return layout.im2col(layout.as_images(x, batch, layer.input_shape), layer.kernel)
    return layout.as_rows(x, batch)


def layer_outputs(
    workload: Workload, x: np.ndarray, engine: Engine = run_reference
) -> list[np.ndarray]:
    """Each layer's C for int8 NHWC images ``x`` (batch x H x W x C), run by ``engine``."""
    batch = _check_input(workload, x)
    outputs = []
    for layer, job in zip(workload.layers, gemm_jobs(workload, batch), strict=True):
        x = engine(job, layer_a(layer, x, batch))
        outputs.append(x)
    return outputs


def forward(workload: Workload, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The int32 logits (batch x classes) of int8 NHWC images ``x``, and the predictions."""
    logits = layer_outputs(workload, x)[-1]
    return logits, predictions(logits)


def predictions(logits: np.ndarray) -> np.ndarray:
    """The class of each row of ``logits`` (the first of equal maxima)."""
    return np.argmax(logits, axis=1)


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``predicted`` classes equal to ``labels``, 0..1."""
    if predicted.shape != labels.shape or not labels.size:
        raise ValueError(f"{predicted.shape} predictions for {labels.shape} labels")
    return float(np.mean(predicted == labels))


def int8_accuracy(workload: Workload) -> float:
    """The reference's accuracy on the workload's test set."""
    _, predicted = forward(workload, workload.test_inputs)
    return accuracy(predicted, workload.test_labels)


def _check_input(workload: Workload, x: np.ndarray) -> int:
    want = workload.input_shape
    if x.dtype != np.int8 or x.ndim != 4 or x.shape[1:] != want or not x.shape[0]:
        raise ValueError(
            f"{workload.name} takes int8 images batch x {want[0]} x {want[1]} x {want[2]}, "
            f"got {x.dtype} {x.shape}"
        )
    return x.shape[0]
