"""Make a workload: train a small float network in numpy, quantize it for the chip, write it.

``python -m workload.train digits [--out DIR] [--seed S]`` trains a conv2d 3x3 -> 8 + ReLU,
dense 288 -> 32 + ReLU, dense 32 -> 10 classifier on scikit-learn's bundled handwritten
digits (1797 8 x 8 images, nothing downloaded), holds out a stratified 20 % test set,
quantizes to int8 (docs/WORKLOADS.md "Quantization") and writes the workload directory
with the float and int8 test accuracies it measures on what it wrote. The same seed gives
the same files.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware_sim.accel import gemm_reference
from workload import float_model, layout
from workload.float_model import FloatLayer
from workload.format import FILE_NAME, load_workload
from workload.reference import int8_accuracy

PIXEL_STEP = 7
"""int8 input = pixel x 7: the digits' 0..16 become 0..112."""
PIXEL_MAX = 16
INPUT_SCALE = 1 / (PIXEL_STEP * PIXEL_MAX)
"""Real value of one int8 input step: the float network sees pixel / 16, 0..1."""
TEST_SHARE = 0.2
CALIBRATION_SHIFTS = 5
"""Shifts tried per layer, from the smallest one that never saturates downwards."""


@dataclass
class Recipe:
    """A workload ``train`` can make: the network, how long it learns, how it is described."""

    description: str
    dataset: str
    citation: str
    channels: int
    hidden: int
    epochs: int
    batch: int
    learning_rate: float


RECIPES = {
    "digits": Recipe(
        description="Handwritten digit classifier, 8 x 8 grey images, 10 classes: "
        "conv2d 3x3 -> 8 + ReLU, dense 288 -> 32 + ReLU, dense 32 -> 10",
        dataset="scikit-learn load_digits: the test set of UCI Optical Recognition of "
        "Handwritten Digits (optdigits), 1797 images, CC BY 4.0",
        citation="E. Alpaydin and C. Kaynak, Optical Recognition of Handwritten Digits, "
        "UCI Machine Learning Repository, 1998, https://doi.org/10.24432/C50P49",
        channels=8,
        hidden=32,
        epochs=30,
        batch=32,
        learning_rate=3e-3,
    )
}


@dataclass
class QuantLayer:
    """One layer as the chip runs it, and the float layer it came from."""

    name: str
    source: FloatLayer
    weights: np.ndarray
    bias: np.ndarray
    weight_scale: float
    shift: int
    out_int32: bool


def digits(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """int8 NHWC images and labels, split into train and a stratified test set by ``seed``."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit(
            "workload.train needs scikit-learn: pip install 'scikit-learn>=1.4,<2'"
        ) from None
    data = load_digits()
    images = (data.images * PIXEL_STEP).astype(np.int8)[..., None]
    x_train, x_test, y_train, y_test = train_test_split(
        images, data.target, test_size=TEST_SHARE, stratify=data.target, random_state=seed
    )
    return x_train, y_train, x_test, y_test


def init_network(
    recipe: Recipe, shape: tuple[int, ...], classes: int, rng: np.random.Generator
) -> list[FloatLayer]:
    """The recipe's float network with He-initialised weights and zero biases."""
    height, width, channels = shape
    oh, ow = layout.conv_output_hw(height, width, (3, 3))
    shapes = [
        ("conv2d", (3, 3, channels, recipe.channels), True),
        ("dense", (oh * ow * recipe.channels, recipe.hidden), True),
        ("dense", (recipe.hidden, classes), False),
    ]
    layers = []
    for kind, w_shape, relu in shapes:
        fan_in = int(np.prod(w_shape[:-1]))
        w = rng.normal(0, np.sqrt(2 / fan_in), w_shape).astype(np.float32)
        layers.append(FloatLayer(kind, w, np.zeros(w_shape[-1], np.float32), relu))
    return layers


def fit(
    layers: list[FloatLayer],
    x: np.ndarray,
    y: np.ndarray,
    recipe: Recipe,
    rng: np.random.Generator,
) -> float:
    """Train ``layers`` in place with Adam on float inputs ``x``; the last epoch's loss."""
    params = [p for layer in layers for p in (layer.weights, layer.bias)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    step = 0
    loss = float("nan")
    for _ in range(recipe.epochs):
        order = rng.permutation(len(x))
        losses = []
        for start in range(0, len(x), recipe.batch):
            rows = order[start : start + recipe.batch]
            logits, trace = float_model.forward_trace(layers, x[rows])
            batch_loss, d_logits = float_model.softmax_cross_entropy(logits, y[rows])
            losses.append(batch_loss)
            grads = [g for pair in float_model.backward(layers, trace, d_logits) for g in pair]
            step += 1
            for p, g, mi, vi in zip(params, grads, m, v, strict=True):
                mi[...] = beta1 * mi + (1 - beta1) * g
                vi[...] = beta2 * vi + (1 - beta2) * g * g
                m_hat = mi / (1 - beta1**step)
                v_hat = vi / (1 - beta2**step)
                p -= (recipe.learning_rate * m_hat / (np.sqrt(v_hat) + eps)).astype(p.dtype)
        loss = float(np.mean(losses))
    return loss


def quantize(
    layers: list[FloatLayer], names: list[str], calibration: np.ndarray
) -> list[QuantLayer]:
    """int8 weights, int32 biases and a shift per layer; ``calibration`` is int8 NHWC.

    Weights are symmetric per layer (scale max|w| / 127); a bias is at the scale of its
    layer's products, s_in x s_w; a layer's int8 output has scale s_in x s_w x 2**shift,
    its shift the one that best keeps the calibration data's int32 C (least squared error
    of rounding and saturation), so the chip's SHIFT is the whole requantization.
    """
    out = []
    x = calibration
    batch = len(x)
    shape = calibration.shape[1:]
    s_in = INPUT_SCALE
    for i, (layer, name) in enumerate(zip(layers, names, strict=True)):
        last = i == len(layers) - 1
        s_w = float(np.abs(layer.weights).max()) / 127
        weights = np.clip(np.round(layer.weights / s_w), -127, 127).astype(np.int8)
        bias = np.round(layer.bias.astype(np.float64) / (s_in * s_w)).astype(np.int32)
        n = layer.weights.shape[-1]
        if layer.kind == "conv2d":
            a = layout.im2col(layout.as_images(x, batch, shape), layer.kernel)
            shape = (*layout.conv_output_hw(shape[0], shape[1], layer.kernel), n)
        else:
            a = layout.as_rows(x, batch)
            shape = (n,)
        b = layout.conv_b(weights)
        shift = 0 if last else _best_shift(a, b, bias, layer.relu)
        out.append(QuantLayer(name, layer, weights, bias, s_w, shift, out_int32=last))
        x = gemm_reference(a, b, bias, relu=layer.relu, shift=shift, out_int32=last)
        s_in = s_in * s_w * 2**shift
    return out


def _best_shift(a: np.ndarray, b: np.ndarray, bias: np.ndarray, relu: bool) -> int:
    """The shift whose int8 C, scaled back, is nearest the int32 C on ``a``."""
    exact = gemm_reference(a, b, bias, relu=relu, out_int32=True).astype(np.float64)
    peak = float(np.abs(exact).max())
    no_saturation = 0
    while no_saturation < 31 and peak > 127 * 2**no_saturation:
        no_saturation += 1
    errors = {}
    for shift in range(max(0, no_saturation - CALIBRATION_SHIFTS + 1), no_saturation + 1):
        c = gemm_reference(a, b, bias, relu=relu, shift=shift).astype(np.float64)
        errors[shift] = float(np.mean((c * 2**shift - exact) ** 2))
    return min(errors, key=lambda s: (errors[s], s))


def write(
    out: Path,
    name: str,
    seed: int,
    quant: list[QuantLayer],
    test: tuple[np.ndarray, np.ndarray],
    recorded: dict[str, float] | None,
) -> None:
    """The workload directory: .npy files and workload.yaml (with ``recorded`` if given)."""
    recipe = RECIPES[name]
    x_test, y_test = test
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Made by: python -m workload.train {name} --seed {seed}",
        "# The format: docs/WORKLOADS.md",
        f"name: {name}",
        f"description: {_quoted(recipe.description)}",
        "source:",
        f"  dataset: {_quoted(recipe.dataset)}",
        f"  citation: {_quoted(recipe.citation)}",
        "input:",
        f"  shape: [{', '.join(str(d) for d in x_test.shape[1:])}]  # height, width, channels",
        f"  scale: {INPUT_SCALE!r}  # real = int8 x scale; int8 = pixel (0..16) x {PIXEL_STEP}",
        "layers:",
    ]
    for q in quant:
        src = q.source
        files = {
            "weights": (f"{q.name}_w.npy", q.weights),
            "bias": (f"{q.name}_b.npy", q.bias),
            "float_weights": (f"{q.name}_w_float.npy", src.weights.astype(np.float32)),
            "float_bias": (f"{q.name}_b_float.npy", src.bias.astype(np.float32)),
        }
        lines += [f"  - name: {q.name}", f"    kind: {src.kind}"]
        if src.kind == "conv2d":
            kh, kw = src.kernel
            lines += [f"    kernel: [{kh}, {kw}]", f"    out_channels: {src.weights.shape[-1]}"]
        else:
            lines.append(f"    out_features: {src.weights.shape[-1]}")
        for key, (file, array) in files.items():
            np.save(out / file, array)
            lines.append(f"    {key}: {file}")
        lines += [
            f"    shift: {q.shift}",
            f"    relu: {str(src.relu).lower()}",
            f"    out_int32: {str(q.out_int32).lower()}",
            f"    weight_scale: {q.weight_scale!r}",
        ]
    np.save(out / "test_x.npy", x_test)
    np.save(out / "test_y.npy", y_test.astype(np.uint8))
    lines += [
        "test:",
        "  inputs: test_x.npy",
        "  labels: test_y.npy",
        f"  count: {len(x_test)}",
    ]
    if recorded is not None:
        lines += ["recorded:", f"  seed: {seed}"]
        lines += [f"  {key}: {value}" for key, value in recorded.items()]
    (out / FILE_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def make(name: str, out: Path, seed: int) -> dict[str, float]:
    """Train, quantize and write workload ``name`` to ``out``; the figures it recorded."""
    recipe = RECIPES[name]
    rng = np.random.default_rng(seed)
    x_train, y_train, x_test, y_test = digits(seed)
    layers = init_network(recipe, x_train.shape[1:], int(y_train.max()) + 1, rng)
    loss = fit(layers, x_train.astype(np.float32) * np.float32(INPUT_SCALE), y_train, recipe, rng)
    quant = quantize(layers, ["conv1", "fc1", "fc2"], x_train)
    # Measure what was written, as a user of the directory would, then record it.
    write(out, name, seed, quant, (x_test, y_test), recorded=None)
    workload = load_workload(out)
    figures = {
        "float_accuracy": round(float_model.float_accuracy(workload), 4),
        "int8_accuracy": round(int8_accuracy(workload), 4),
    }
    write(out, name, seed, quant, (x_test, y_test), recorded=figures)
    load_workload(out)
    return {**figures, "train_loss": round(loss, 4)}


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m workload.train NAME [--out DIR] [--seed S]``."""
    parser = argparse.ArgumentParser(prog="python -m workload.train", description=__doc__)
    parser.add_argument("name", choices=sorted(RECIPES), help="the workload to make")
    parser.add_argument("--out", type=Path, help="directory (default configs/workloads/NAME)")
    parser.add_argument("--seed", type=int, default=0, help="split, initialisation, order")
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    out = args.out or Path("configs/workloads") / args.name
    figures = make(args.name, out, args.seed)
    print(
        f"{args.name}: float accuracy {figures['float_accuracy']:.4f}, "
        f"int8 accuracy {figures['int8_accuracy']:.4f} on the test set "
        f"(train loss {figures['train_loss']:.4f}); written to {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
