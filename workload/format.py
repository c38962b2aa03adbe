"""``configs/workloads/<name>/``: an int8 network for the chip and its held-out test set.

``workload.yaml`` names the layers in order, their ``.npy`` files and the test set; the
YAML is the one source of every shape, and each file is checked against it. Loading
checks everything (keys, ranges, the chain of shapes, every file's dtype and shape)
before returning, and a problem is one ``ConfigError`` line naming the file, the line,
the key and what is allowed. docs/WORKLOADS.md describes the format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, Field

from firmware_sim.accel.regs import FIELD_MASKS
from testbed.config.errors import ConfigError
from testbed.config.schema import Schema, dotted, validate
from testbed.config.yamlfile import Loc, YamlDocument, read_yaml

FILE_NAME = "workload.yaml"
MAX_DIM = FIELD_MASKS["DIM_K"]
"""The largest K (and N) of one chip job: the 12-bit DIM fields of docs/REGISTERS.md."""
NAME_FORM = "a name of letters, digits, '_', '.' and '-'"
NPY_FORM = "the name of a .npy file in the workload's directory"
LayerKind = Literal["conv2d", "dense"]


def _npy_name(text: str) -> str:
    if not text.endswith(".npy") or "/" in text or "\\" in text or text.startswith("."):
        raise ValueError("not a .npy file name")
    return text


Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")]
NpyFile = Annotated[str, AfterValidator(_npy_name)]
Dim = Annotated[int, Field(ge=1, le=MAX_DIM)]


class Source(Schema):
    """Where the data comes from, under which licence, and how to cite it."""

    dataset: str = Field(description="a line of text: the data, its origin and its licence")
    citation: str = Field("", description="a line of text")


class InputSpec(Schema):
    """The network's input: one int8 NHWC image, and the real value of one int8 step."""

    shape: Annotated[list[Dim], Field(min_length=3, max_length=3)] = Field(
        description=f"[height, width, channels], each 1..{MAX_DIM}"
    )
    scale: Annotated[float, Field(gt=0)] = Field(
        description="a number > 0: the real value of one int8 step (real = int8 x scale)"
    )


class LayerSpec(Schema):
    """One layer: a GEMM on the chip with the chip's epilogue (bias, ReLU, shift)."""

    name: Name = Field(description=NAME_FORM)
    kind: LayerKind = Field(description="one of: conv2d, dense")
    kernel: Annotated[list[Dim], Field(min_length=2, max_length=2)] | None = Field(
        None, description=f"[kh, kw], each 1..{MAX_DIM} (conv2d only)"
    )
    out_channels: Dim | None = Field(None, description=f"1..{MAX_DIM} (conv2d only)")
    stride: Literal[1] = Field(1, description="1, the only stride supported (conv2d only)")
    padding: Literal["valid"] = Field(
        "valid", description="valid, the only padding supported (conv2d only)"
    )
    out_features: Dim | None = Field(None, description=f"1..{MAX_DIM} (dense only)")
    weights: NpyFile = Field(description=f"{NPY_FORM}, int8")
    bias: NpyFile | None = Field(None, description=f"{NPY_FORM}, int32")
    shift: Annotated[int, Field(ge=0, le=31)] = Field(
        0, description="0..31, the accelerator's requantize right shift"
    )
    relu: bool = Field(False, description="true or false")
    out_int32: bool = Field(False, description="true or false")
    weight_scale: Annotated[float, Field(gt=0)] | None = Field(
        None, description="a number > 0: the real value of one int8 weight step"
    )
    float_weights: NpyFile | None = Field(None, description=f"{NPY_FORM}, float32")
    float_bias: NpyFile | None = Field(None, description=f"{NPY_FORM}, float32")

    @property
    def outputs(self) -> int:
        """Output channels (conv2d) or features (dense): the N of the layer's GEMM."""
        out = self.out_channels if self.kind == "conv2d" else self.out_features
        assert out is not None  # load_workload checked the layer's keys
        return out


class HeldOut(Schema):
    """The held-out test set: int8 NHWC images and their class labels."""

    inputs: NpyFile = Field(description=f"{NPY_FORM}, int8 (count, height, width, channels)")
    labels: NpyFile = Field(description=f"{NPY_FORM}, integers (count,)")
    count: Annotated[int, Field(ge=1)] = Field(description="a positive integer: the images")


class Recorded(Schema):
    """Figures measured on the test set when the workload was made."""

    seed: Annotated[int, Field(ge=0)] | None = Field(None, description="an integer >= 0")
    float_accuracy: Annotated[float, Field(ge=0, le=1)] | None = Field(
        None, description="a number 0..1"
    )
    int8_accuracy: Annotated[float, Field(ge=0, le=1)] = Field(description="a number 0..1")


class WorkloadFile(Schema):
    """``workload.yaml``."""

    name: Name = Field(description=NAME_FORM)
    description: str = Field("", description="a line of text")
    source: Source
    input: InputSpec
    layers: Annotated[list[LayerSpec], Field(min_length=1)] = Field(
        description="a list of one or more layers (conv2d or dense), in order"
    )
    test: HeldOut
    recorded: Recorded | None = None


@dataclass(frozen=True, eq=False)
class Layer:
    """One checked layer with its arrays (read-only)."""

    name: str
    kind: LayerKind
    #: The layer's input per image: (h, w, c) for an image, (features,) after a dense.
    input_shape: tuple[int, ...]
    #: The layer's output per image: (oh, ow, c_out) for conv2d, (features,) for dense.
    output_shape: tuple[int, ...]
    kernel: tuple[int, int] | None
    #: int8: (kh, kw, c_in, c_out) for conv2d, (in_features, out_features) for dense.
    weights: np.ndarray
    bias: np.ndarray | None
    shift: int
    relu: bool
    out_int32: bool
    weight_scale: float | None
    float_weights: np.ndarray | None
    float_bias: np.ndarray | None

    @property
    def positions(self) -> int:
        """Output positions per image: GEMM rows per image (1 for dense)."""
        return math.prod(self.output_shape[:-1])

    @property
    def k(self) -> int:
        """The K of the layer's GEMM."""
        return self.weights.size // self.n

    @property
    def n(self) -> int:
        """The N of the layer's GEMM: output channels or features."""
        return self.output_shape[-1]

    @property
    def b(self) -> np.ndarray:
        """The layer's B, K x N int8 (a view of the weights)."""
        return self.weights.reshape(self.k, self.n)


@dataclass(frozen=True, eq=False)
class Workload:
    """A checked workload: its layers in order, its test set and its recorded figures."""

    name: str
    description: str
    directory: Path
    source: Source
    input_shape: tuple[int, int, int]
    input_scale: float
    layers: tuple[Layer, ...]
    test_inputs: np.ndarray
    test_labels: np.ndarray
    recorded: Recorded | None

    @property
    def classes(self) -> int:
        """Classes the network tells apart: the last layer's outputs."""
        return self.layers[-1].n


def load_workload(path: str | Path) -> Workload:
    """Read and check a workload (its directory or its ``workload.yaml``); raises ConfigError."""
    path = Path(path)
    doc = read_yaml(path / FILE_NAME if path.is_dir() else path)
    spec = validate(WorkloadFile, doc)
    files = _Files(doc)
    for i, layer in enumerate(spec.layers):
        _check_keys(files, i, layer, spec.layers[:i])
    layers = []
    shape = tuple(spec.input.shape)
    for i, layer in enumerate(spec.layers):
        layers.append(_layer(files, i, layer, shape, last=i == len(spec.layers) - 1))
        shape = layers[-1].output_shape
    inputs, labels = _held_out(files, spec, layers[-1].n)
    return Workload(
        name=spec.name,
        description=spec.description,
        directory=doc.directory,
        source=spec.source,
        input_shape=(spec.input.shape[0], spec.input.shape[1], spec.input.shape[2]),
        input_scale=spec.input.scale,
        layers=tuple(layers),
        test_inputs=inputs,
        test_labels=labels,
        recorded=spec.recorded,
    )


class _Files:
    """The ``.npy`` files of one workload, read and checked with errors that point at keys."""

    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc

    def fail(self, loc: Loc, message: str) -> ConfigError:
        return ConfigError(self.doc.path, f"'{dotted(loc)}': {message}", self.doc.line(loc))

    def array(
        self,
        loc: Loc,
        name: str,
        dtypes: tuple[str, ...],
        want: str,
        shape: tuple[int, ...],
        shape_means: str,
    ) -> np.ndarray:
        """The array in file ``name`` (key ``loc``), which must have a dtype of ``dtypes``
        (``want`` in words) and ``shape`` (``shape_means`` says where it comes from)."""
        path = self.doc.directory / name
        if not path.is_file():
            raise self.fail(loc, f"{name} not found in {self.doc.directory}")
        try:
            value = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise self.fail(loc, f"cannot read {name} as .npy: {exc}") from None
        if not isinstance(value, np.ndarray):
            raise self.fail(loc, f"{name} is not a single .npy array")
        if value.dtype.name not in dtypes:
            raise self.fail(loc, f"{name} holds {value.dtype.name}, want {want}")
        if value.shape != shape:
            raise self.fail(loc, f"{name} has shape {value.shape}, want {shape} ({shape_means})")
        value = np.ascontiguousarray(value)
        value.setflags(write=False)
        return value


INT8 = "int8 (-128..127)"
INT32 = "int32"
FLOAT32 = "float32"
INTEGERS = tuple(np.dtype(t).name for t in "bBhHiIlLqQ")


CONV_ONLY = ("kernel", "out_channels", "stride", "padding")


def _check_keys(files: _Files, i: int, spec: LayerSpec, before: list[LayerSpec]) -> None:
    """The keys of layer ``i`` that depend on its kind or on other keys."""
    loc: Loc = ("layers", i)
    given = spec.model_fields_set
    if any(other.name == spec.name for other in before):
        raise files.fail((*loc, "name"), f"{spec.name!r} names an earlier layer too")
    if spec.kind == "conv2d":
        for key in ("kernel", "out_channels"):
            if key not in given:
                raise files.fail((*loc, key), f"missing: a conv2d needs '{key}'")
        if "out_features" in given:
            raise files.fail((*loc, "out_features"), "a conv2d gives 'out_channels' instead")
    else:
        if "out_features" not in given:
            raise files.fail((*loc, "out_features"), "missing: a dense layer needs it")
        for key in CONV_ONLY:
            if key in given:
                raise files.fail((*loc, key), "only a conv2d takes this key")
    if spec.out_int32 and spec.shift:
        raise files.fail(
            (*loc, "shift"), f"must be 0 with out_int32 (C is not shifted), got {spec.shift}"
        )
    if spec.float_bias is not None and spec.float_weights is None:
        raise files.fail((*loc, "float_bias"), "needs 'float_weights' too")


def _layer(files: _Files, i: int, spec: LayerSpec, shape: tuple[int, ...], last: bool) -> Layer:
    """Layer ``i`` taking ``shape`` per image, its shapes chained and its files checked."""
    loc: Loc = ("layers", i)
    kernel: tuple[int, int] | None = None
    inputs = math.prod(shape)
    if spec.kind == "conv2d":
        assert spec.kernel is not None and spec.out_channels is not None  # LayerSpec
        if len(shape) != 3:
            raise files.fail((*loc, "kind"), "a conv2d takes an image: it cannot follow a dense")
        kernel = (spec.kernel[0], spec.kernel[1])
        if kernel[0] > shape[0] or kernel[1] > shape[1]:
            raise files.fail(
                (*loc, "kernel"),
                f"must fit the layer's {shape[0]} x {shape[1]} input, got {spec.kernel}",
            )
        out_shape: tuple[int, ...] = (
            shape[0] - kernel[0] + 1,
            shape[1] - kernel[1] + 1,
            spec.out_channels,
        )
        w_shape: tuple[int, ...] = (*kernel, shape[2], spec.out_channels)
        w_means = f"kh, kw, c_in, c_out; c_in = {shape[2]}, the channels of its input"
        k = kernel[0] * kernel[1] * shape[2]
    else:
        out_shape = (spec.outputs,)
        w_shape = (inputs, spec.outputs)
        came = f"its {_dims(shape)} input flattened" if len(shape) > 1 else "its input"
        w_means = f"in_features, out_features; {inputs} = {came}"
        k = inputs
    if k > MAX_DIM:
        raise files.fail(
            (*loc, "kind"), f"the layer's GEMM has K = {k}, above {MAX_DIM} (the chip's DIM_K)"
        )
    if spec.out_int32 != last:
        raise files.fail(
            (*loc, "out_int32"),
            "must be true for the last layer (its int32 C are the logits)"
            if last
            else "must be false: the next layer takes this one's int8 C as its A",
        )
    n = spec.outputs
    weights = files.array((*loc, "weights"), spec.weights, ("int8",), INT8, w_shape, w_means)
    bias = None
    if spec.bias is not None:
        bias = files.array((*loc, "bias"), spec.bias, ("int32",), INT32, (n,), "outputs")
    float_weights = float_bias = None
    if spec.float_weights is not None:
        float_weights = files.array(
            (*loc, "float_weights"), spec.float_weights, ("float32",), FLOAT32, w_shape, w_means
        )
    if spec.float_bias is not None:
        float_bias = files.array(
            (*loc, "float_bias"), spec.float_bias, ("float32",), FLOAT32, (n,), "outputs"
        )
    return Layer(
        name=spec.name,
        kind=spec.kind,
        input_shape=shape,
        output_shape=out_shape,
        kernel=kernel,
        weights=weights,
        bias=bias,
        shift=spec.shift,
        relu=spec.relu,
        out_int32=spec.out_int32,
        weight_scale=spec.weight_scale,
        float_weights=float_weights,
        float_bias=float_bias,
    )


def _dims(shape: tuple[int, ...]) -> str:
    return " x ".join(str(d) for d in shape)


def _held_out(files: _Files, spec: WorkloadFile, classes: int) -> tuple[np.ndarray, np.ndarray]:
    test = spec.test
    count = test.count
    shape = (count, *spec.input.shape)
    inputs = files.array(
        ("test", "inputs"), test.inputs, ("int8",), INT8, shape, "test.count, then input.shape"
    )
    labels = files.array(
        ("test", "labels"), test.labels, INTEGERS, "integers", (count,), "test.count"
    )
    if labels.size and not (labels.min() >= 0 and labels.max() < classes):
        bad = labels[(labels < 0) | (labels >= classes)][0]
        raise files.fail(
            ("test", "labels"),
            f"{test.labels} holds label {bad}, want 0..{classes - 1} (the last layer's outputs)",
        )
    return inputs, labels
