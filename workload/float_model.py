"""The float network a workload is quantized from: forward and backward in numpy.

The layers are those of the workload format (conv2d valid/stride 1 and dense, each with
an optional ReLU), in the same layouts: conv weights ``(kh, kw, c_in, c_out)`` applied as
``im2col(x) @ weights`` and a dense layer's input flattened NHWC, so a float weight and
its int8 counterpart sit at the same index. ``train`` learns with it; the tests check a
workload's float accuracy with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workload import layout
from workload.format import Workload


@dataclass
class FloatLayer:
    """One float layer: ``kind`` conv2d or dense, weights in the workload's layout."""

    kind: str
    weights: np.ndarray
    bias: np.ndarray
    relu: bool

    @property
    def kernel(self) -> tuple[int, int]:
        """(kh, kw) of a conv2d."""
        return self.weights.shape[0], self.weights.shape[1]

    @property
    def b(self) -> np.ndarray:
        """The weights as the K x N matrix of the layer's product."""
        return self.weights.reshape(-1, self.weights.shape[-1])


@dataclass
class Trace:
    """What ``backward`` needs of a forward pass: each layer's input and pre-activation."""

    inputs: list[np.ndarray]
    cols: list[np.ndarray]
    pre: list[np.ndarray]


def forward(layers: list[FloatLayer], x: np.ndarray) -> np.ndarray:
    """Logits (batch x classes) of NHWC ``x``."""
    return forward_trace(layers, x)[0]


def forward_trace(layers: list[FloatLayer], x: np.ndarray) -> tuple[np.ndarray, Trace]:
    """Logits of NHWC ``x`` and the trace of the pass."""
    batch = x.shape[0]
    trace = Trace([], [], [])
    for layer in layers:
        trace.inputs.append(x)
        cols = layout.im2col(x, layer.kernel) if layer.kind == "conv2d" else x.reshape(batch, -1)
        z = cols @ layer.b.astype(x.dtype) + layer.bias.astype(x.dtype)
        trace.cols.append(cols)
        trace.pre.append(z)
        out = np.maximum(z, 0) if layer.relu else z
        if layer.kind == "conv2d":
            oh, ow = layout.conv_output_hw(x.shape[1], x.shape[2], layer.kernel)
            out = layout.as_images(out, batch, (oh, ow, out.shape[-1]))
        x = out
    return x, trace


def backward(
    layers: list[FloatLayer], trace: Trace, d_logits: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The gradient (weights, bias) of each layer, given the gradient of the logits."""
    grads: list[tuple[np.ndarray, np.ndarray]] = [None] * len(layers)  # type: ignore[list-item]
    d_out = d_logits
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        z = trace.pre[i]
        dz = d_out.reshape(z.shape)
        if layer.relu:
            dz = dz * (z > 0)
        d_w = (trace.cols[i].T @ dz).reshape(layer.weights.shape)
        grads[i] = (d_w, dz.sum(axis=0))
        if i == 0:
            break
        d_cols = dz @ layer.b.T.astype(dz.dtype)
        x = trace.inputs[i]
        if layer.kind == "conv2d":
            d_out = layout.col2im(d_cols, x.shape, layer.kernel)
        else:
            d_out = d_cols.reshape(x.shape)
    return grads


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``logits`` against integer ``labels``, and its gradient."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    prob = exp / exp.sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    loss = float(-np.log(prob[rows, labels] + 1e-12).mean())
    grad = prob
    grad[rows, labels] -= 1
    return loss, grad / len(labels)


def from_workload(workload: Workload) -> list[FloatLayer]:
    """The float layers a workload records (``float_weights``); ValueError if it has none."""
    layers = []
    for layer in workload.layers:
        if layer.float_weights is None:
            raise ValueError(f"{workload.name}: layer {layer.name} has no float_weights")
        bias = layer.float_bias
        if bias is None:
            bias = np.zeros(layer.n, dtype=np.float32)
        layers.append(FloatLayer(layer.kind, layer.float_weights, bias, layer.relu))
    return layers


def float_accuracy(workload: Workload) -> float:
    """Accuracy of the workload's float network on its test set (inputs x input scale)."""
    x = workload.test_inputs.astype(np.float64) * workload.input_scale
    logits = forward(from_workload(workload), x)
    return float(np.mean(np.argmax(logits, axis=1) == workload.test_labels))
