"""``configs/campaigns/*.yaml``: what a radiation campaign injects, into what, and for how long.

A campaign names a target file (a simulated chip or a board), optionally the builds to
compare on a simulated chip, a workload, the site classes and fault kinds to sample, and
either an environment (for rates per device-day) or a beam test (for events per rad).
It asks for a number of injections per stratum or for a margin at a confidence, from which
the sample size follows (statistical fault injection, Leveugle et al., DATE 2009). Paths
are relative to the campaign file.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, PrivateAttr, model_validator

from testbed.config.environment import Environment, Positive, load_environment
from testbed.config.errors import ConfigError
from testbed.config.schema import Schema, cross_field, validate
from testbed.config.target import SimTarget, Target, load_target
from testbed.config.yamlfile import YamlDocument, read_yaml
from testbed.sitemap import SiteClass
from testbed.sitemap_builds import NAME_FORM, Build, BuildError

FaultKindName = Literal["sbu", "mbu", "set", "stuck_at"]
FAULT_KINDS: tuple[str, ...] = typing.get_args(FaultKindName)
"""Fault kinds a campaign samples over site-map bits (SEFI and latch-up are device events:
they come from the environment's rates in a soak)."""
BackendName = Literal["model", "rtl", "link"]
SimulatorName = Literal["icarus", "verilator"]
SIMULATORS: tuple[str, ...] = typing.get_args(SimulatorName)
BACKENDS: tuple[str, ...] = typing.get_args(BackendName)
"""``model``: the bit-exact model in the campaign's own processes; ``link``: the chip the
target file names (the simulated chip on a pseudo-terminal, or a board) over the serial link."""
SITE_CLASSES = ", ".join(c.value for c in SiteClass)
MAX_INJECTIONS = 10_000_000
MAX_IMAGES = 64
"""Test images in one campaign run of a network (the batch its first layer's M holds)."""


def _build_name(text: str) -> str:
    try:
        Build.from_name(text)
    except BuildError as exc:
        raise ValueError(str(exc)) from None
    return text


def _site_class(text: str) -> str:
    if text not in {c.value for c in SiteClass}:
        raise ValueError("not a site class")
    return text


class Gemm(Schema):
    """An int8 GEMM C = A . B (+ bias, ReLU, >> shift) with operands drawn from ``seed``."""

    kind: Literal["gemm"] = Field(description="gemm")
    m: Annotated[int, Field(ge=1, le=4095)] = Field(description="rows of A, 1..4095")
    k: Annotated[int, Field(ge=1, le=4095)] = Field(description="columns of A, 1..4095")
    n: Annotated[int, Field(ge=1, le=4095)] = Field(description="columns of B, 1..4095")
    bias: bool = Field(False, description="true or false")
    relu: bool = Field(False, description="true or false")
    shift: Annotated[int, Field(ge=0, le=31)] = Field(0, description="0..31")
    out_int32: bool = Field(False, description="true or false")
    seed: Annotated[int, Field(ge=0)] = Field(1, description="an integer >= 0 (operand values)")

    def describe(self) -> str:
        """``16x16x16 GEMM + bias, ReLU, >>7, int8 out`` and the like."""
        extra = [s for s, on in (("+ bias", self.bias), ("ReLU", self.relu)) if on]
        if self.shift:
            extra.append(f">>{self.shift}")
        extra.append("int32 out" if self.out_int32 else "int8 out")
        return f"{self.m}x{self.k}x{self.n} GEMM " + ", ".join(extra)


class Network(Schema):
    """An int8 network of configs/workloads (docs/WORKLOADS.md) classifying a batch of its
    test images: ``images`` of them from ``first``."""

    kind: Literal["network"] = Field(description="network")
    path: str = Field(description="the path of a configs/workloads directory")
    images: Annotated[int, Field(ge=1, le=MAX_IMAGES)] = Field(
        4, description=f"test images in the batch, 1..{MAX_IMAGES}"
    )
    first: Annotated[int, Field(ge=0)] = Field(0, description="the first test image, >= 0")

    def describe(self) -> str:
        """``digits network, test images 0..3`` and the like."""
        name = Path(self.path).name
        last = self.first + self.images - 1
        return f"{name} network, test images {self.first}..{last}"


WorkloadSpec = Annotated[Gemm | Network, Field(discriminator="kind")]


class Precision(Schema):
    """The margin of error wanted on every outcome share, at a confidence."""

    margin: Annotated[float, Field(gt=0, lt=0.5)] = Field(
        description="a share between 0 and 0.5 (0.05: +/- 5 points)"
    )
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = Field(
        0.95, description="a probability between 0.5 and 1 (default 0.95)"
    )
    early_stop: bool = Field(
        True, description="true or false: stop a stratum once every outcome's interval is "
        "narrower than the margin"
    )  # fmt: skip


class Beam(Schema):
    """A beam test instead of an orbit: fluence, dose conversion and per-bit cross-sections."""

    particle: str = Field(description="a line of text naming the particle and energy")
    fluence_per_cm2: Positive
    particles_per_cm2_per_rad: Positive
    sram_cross_section_cm2_per_bit: Positive
    flipflop_cross_section_cm2_per_bit: Positive


class Soak(Schema):
    """A mission soak: the orbit flown for a span of simulated time, once per scrub period."""

    days: Annotated[float, Field(gt=0, le=36_500)] = Field(description="a number of days, > 0")
    acceleration: Annotated[float, Field(ge=1)] = Field(
        1.0, description="a factor >= 1 on every rate"
    )
    scrub_periods: list[Annotated[int, Field(ge=0, le=0xFFFF)]] = Field(
        [50_000], description="a list of SCRUB_PERIOD values, 0..65535 idle cycles between "
        "scrub steps (0 stops the scrubber)", min_length=1,
    )  # fmt: skip
    duty: Annotated[float, Field(ge=0, lt=1)] = Field(
        1e-3, description="the share of time the chip runs jobs, at least 0 and below 1 (a "
        "START restarts the scrubber's timer: a high duty keeps it from ever stepping)",
    )  # fmt: skip


class Campaign(Schema):
    """A campaign file."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")] = Field(
        description="a short name of lower-case letters, digits and dashes"
    )
    description: str = Field("", description="a line of text")
    target: str = Field(description="the path of a configs/targets file")
    builds: list[Annotated[str, AfterValidator(_build_name)]] | None = Field(
        None, description=f"a list of build names ({NAME_FORM}); sim targets only", min_length=1
    )
    backend: BackendName = Field("model", description=f"one of: {', '.join(BACKENDS)}")
    simulator: SimulatorName = Field(
        "icarus", description=f"the RTL backend's simulator, one of: {', '.join(SIMULATORS)}"
    )
    workload: WorkloadSpec
    sites: list[Annotated[str, AfterValidator(_site_class)]] | Literal["all"] = Field(
        "all", description=f"all, or a list of site classes ({SITE_CLASSES})"
    )
    faults: list[FaultKindName] = Field(
        ["sbu"], description=f"a list of fault kinds ({', '.join(FAULT_KINDS)})", min_length=1
    )
    environment: str | None = Field(None, description="the path of a configs/environments file")
    beam: Beam | None = None
    injections: Annotated[int, Field(ge=1, le=MAX_INJECTIONS)] | None = Field(
        None, description=f"injections per stratum, 1..{MAX_INJECTIONS}"
    )
    precision: Precision | None = None
    soak: Soak | None = None
    seed: Annotated[int, Field(ge=0)] = Field(1, description="an integer >= 0")

    _path: str = PrivateAttr("")
    _target: Target | None = PrivateAttr(None)
    _environment: Environment | None = PrivateAttr(None)
    _port: str | None = PrivateAttr(None)
    _network: Path | None = PrivateAttr(None)
    _baud: int | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _consistent(self) -> Campaign:
        if (self.injections is None) == (self.precision is None):
            raise cross_field(
                "injections", "give exactly one of 'injections' (per stratum) and 'precision'"
            )
        if self.environment is not None and self.beam is not None:
            raise cross_field("beam", "give an 'environment' or a 'beam', not both")
        if self.soak is not None and self.environment is None:
            raise cross_field("soak", "a 'soak' flies an orbit: it needs an 'environment'")
        if isinstance(self.workload, Network) and "stuck_at" in self.faults:
            raise cross_field(
                "faults", "a stuck bit holds for a whole run, and a network's run spans "
                "several chip jobs, which a campaign run does not model: use sbu, mbu or set",
            )  # fmt: skip
        if len(set(self.faults)) != len(self.faults):
            raise cross_field("faults", "a fault kind is listed twice")
        return self

    @property
    def path(self) -> str:
        return self._path

    @property
    def target_config(self) -> Target:
        assert self._target is not None
        return self._target

    @property
    def environment_config(self) -> Environment | None:
        return self._environment

    @property
    def network_dir(self) -> Path:
        """The directory of the network workload, resolved from the campaign file."""
        assert self._network is not None, "the campaign's workload is not a network"
        return self._network

    @property
    def port(self) -> str | None:
        """The serial port of the board the campaign runs on instead of its target (the
        command line's ``--port``), if any."""
        return self._port

    @property
    def baud(self) -> int | None:
        return self._baud

    def on_board(self, board: Target, port: str, baud: int | None) -> Campaign:
        """The campaign run over the link on ``board`` at ``port`` instead of its target."""
        builds = self.build_list()
        moved = self.model_copy(update={"builds": [b.name for b in builds]})
        moved._target, moved._port, moved._baud = board, port, baud
        return moved

    def build_list(self) -> list[Build]:
        """The builds the campaign runs on: ``builds``, or the target's own build."""
        target = self.target_config
        if self.builds:
            return [Build.from_name(name) for name in self.builds]
        if isinstance(target, SimTarget):
            return [
                Build(target.n, target.bank_words, target.interleave,
                      target.ecc, target.scrub, target.tmr)
            ]  # fmt: skip
        return []  # a board says its build when it is reached

    def site_classes(self) -> list[SiteClass]:
        """The site classes sampled, in ``SiteClass`` order."""
        if self.sites == "all":
            return list(SiteClass)
        return [c for c in SiteClass if c.value in self.sites]


def load_campaign(path: str | Path) -> Campaign:
    """Read and check a campaign file and the target and environment files it names;
    raises ConfigError (one line) if any cannot be used."""
    doc = read_yaml(path)
    campaign = validate(Campaign, doc)
    campaign._path = doc.path
    here = doc.directory
    campaign._target = load_target(here / campaign.target)
    if campaign.builds and not isinstance(campaign._target, SimTarget):
        raise ConfigError(
            doc.path, "'builds': only a simulated target can be rebuilt; a board has one build",
            doc.line(("builds",)),
        )  # fmt: skip
    if campaign.environment is not None:
        campaign._environment = load_environment(here / campaign.environment)
    if isinstance(campaign.workload, Network):
        campaign._network = _check_network(doc, campaign.workload, here)
    return campaign


def _check_network(doc: YamlDocument, spec: Network, here: Path) -> Path:
    """The network's directory, once its files load and hold the batch asked for."""
    from workload.format import load_workload  # numpy arrays: loaded only for a network

    directory = (here / spec.path).resolve()
    network = load_workload(directory)
    count = len(network.test_labels)
    if spec.first + spec.images > count:
        raise ConfigError(
            doc.path, f"'workload.images': test images {spec.first}..{spec.first + spec.images - 1}"
            f" asked for, {network.name} holds {count} (0..{count - 1})",
            doc.line(("workload", "images")),
        )  # fmt: skip
    return directory
