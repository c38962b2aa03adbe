"""``configs/environments/*.yaml``: the radiation a chip flies in, every number with its source.

Each number is a mapping ``{value: ..., source: ...}``: ``source`` is a citation of where
the figure is published (authors, venue, year or identifier, as in the project's
radiation notes), or the word ``estimate`` for a figure with no source; ``note`` may say
how a figure was derived or chosen.

Rates are orbit averages for unhardened parts. In low Earth orbit most upsets happen in
the South Atlantic Anomaly: ``saa`` gives the share of upsets there (``f_u``), the share
of time spent there (``f_t``), the orbit period and how many orbits a day cross it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from testbed.clusters import MAX_CLUSTER
from testbed.config.schema import Schema, cross_field, validate
from testbed.config.yamlfile import read_yaml

ESTIMATE = "estimate"
"""The ``source`` of a number that no publication gives."""
SECONDS_PER_DAY = 86_400.0
SOURCE_FORMAT = f"a citation (authors, venue, year or identifier) or the word {ESTIMATE}"
PROBABILITY_TOLERANCE = 1e-6


def _source(text: str) -> str:
    words = text.split()
    if not words:
        raise ValueError("empty")
    if words[0].lower().strip(".,:;") == ESTIMATE and text.strip() != ESTIMATE:
        raise ValueError(f"an estimate is marked by the single word {ESTIMATE}")
    return text


Source = Annotated[str, AfterValidator(_source)]


class Sourced(Schema):
    """A number and where it comes from."""

    value: float
    source: Source = Field(description=SOURCE_FORMAT)
    note: str = Field("", description="a line of text: how the number was derived or chosen")

    @property
    def is_estimate(self) -> bool:
        return self.source == ESTIMATE


class Rate(Sourced):
    """Events per bit-day or per device-day, or a dose rate: zero or more."""

    value: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(description="a number >= 0")


class Share(Sourced):
    """A fraction from 0 to 1."""

    value: Annotated[float, Field(ge=0, le=1)] = Field(description="a share 0..1")


class Positive(Sourced):
    """A number above zero."""

    value: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(description="a number > 0")


class Clusters(Schema):
    """How many adjacent cells a multi-bit upset hits, and how often each size occurs."""

    sizes: list[Annotated[int, Field(ge=2, le=MAX_CLUSTER)]] = Field(
        description=f"a list of cluster sizes, each 2..{MAX_CLUSTER} bits", min_length=1
    )
    probabilities: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        description="a list of probabilities (each 0 < p <= 1, summing to 1)", min_length=1
    )
    source: Source = Field(description=SOURCE_FORMAT)
    note: str = Field("", description="a line of text")

    @model_validator(mode="after")
    def _distribution(self) -> Clusters:
        if len(self.sizes) != len(self.probabilities):
            raise cross_field(
                "probabilities",
                f"'probabilities' must give one probability per size: {len(self.sizes)} sizes, "
                f"{len(self.probabilities)} probabilities",
            )
        if len(set(self.sizes)) != len(self.sizes):
            raise cross_field("sizes", f"'sizes' must not repeat a size, got {self.sizes}")
        total = math.fsum(self.probabilities)
        if abs(total - 1.0) > PROBABILITY_TOLERANCE:
            raise cross_field("probabilities", f"'probabilities' must sum to 1, got {total:.9g}")
        return self


class MultiBit(Schema):
    """The share of upsets that hit several adjacent cells, the cluster sizes, and the share
    of clusters that run along the bit line (the rest run along the word line, or form a
    block from 4 cells: ``testbed.clusters.draw``)."""

    share: Share
    clusters: Clusters
    bit_line_share: Share = Field(
        description="a mapping of value (share of clusters along the bit line, 0..1), source"
    )


class Saa(Schema):
    """South Atlantic Anomaly: how upsets bunch in time in low Earth orbit."""

    f_u: Share = Field(description="a mapping of value (share of upsets in the anomaly), source")
    f_t: Share = Field(description="a mapping of value (share of time in the anomaly), source")
    orbit_period_min: Positive
    passes_per_day: Positive

    @model_validator(mode="after")
    def _fits(self) -> Saa:
        if not 0 < self.f_t.value < 1:
            raise cross_field("f_t", f"'f_t' must be above 0 and below 1, got {self.f_t.value}")
        orbits = SECONDS_PER_DAY / self.orbit_period_s
        if self.passes_per_day.value > orbits:
            raise cross_field(
                "passes_per_day",
                f"'passes_per_day' ({self.passes_per_day.value:g}) cannot exceed the orbits "
                f"in a day ({orbits:.2f} at {self.orbit_period_min.value:g} min)",
            )
        if self.pass_s > self.orbit_period_s:
            raise cross_field(
                "f_t",
                f"one pass (f_t x 1 day / passes_per_day = {self.pass_s:.0f} s) must fit in an "
                f"orbit of {self.orbit_period_s:.0f} s",
            )
        return self

    @property
    def orbit_period_s(self) -> float:
        return 60.0 * self.orbit_period_min.value

    @property
    def pass_s(self) -> float:
        """Length of one pass through the anomaly."""
        return self.f_t.value * SECONDS_PER_DAY / self.passes_per_day.value

    @property
    def inside_factor(self) -> float:
        """Rate inside the anomaly over the orbit average: f_u / f_t."""
        return self.f_u.value / self.f_t.value

    @property
    def outside_factor(self) -> float:
        """Rate outside the anomaly over the orbit average: (1 - f_u) / (1 - f_t)."""
        return (1.0 - self.f_u.value) / (1.0 - self.f_t.value)


class Environment(Schema):
    """A radiation environment: upset, functional interrupt and latch-up rates, dose."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")] = Field(
        description="a short name of lower-case letters, digits and dashes"
    )
    description: str = Field(description="a line of text")
    sram_upsets_per_bit_day: Rate
    flipflop_upsets_per_bit_day: Rate
    multi_bit: MultiBit
    sefi_per_device_day: Rate
    sel_per_device_day: Rate
    dose_krad_per_year: Rate
    saa: Saa | None = None

    def numbers(self) -> dict[str, Sourced]:
        """Every sourced number of the file by its dotted key."""
        out: dict[str, Sourced] = {}

        def walk(model: Schema, prefix: str) -> None:
            for name in type(model).model_fields:
                value = getattr(model, name)
                if isinstance(value, Sourced):
                    out[prefix + name] = value
                elif isinstance(value, Schema):
                    walk(value, f"{prefix}{name}.")

        walk(self, "")
        return out


def load_environment(path: str | Path) -> Environment:
    """Read and check an environment file; raises ConfigError (one line) if it cannot be used."""
    return validate(Environment, read_yaml(path))
