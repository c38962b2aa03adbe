"""``configs/targets/*.yaml``: a simulated chip and its build, or a board on a serial port.

The build options and their ranges are those of docs/REGISTERS.md "Build parameters",
defined once in ``testbed.sitemap_builds``; the firmware's and the host's command lines
take their choices from there too.
"""

from __future__ import annotations

import pkgutil
import typing
from pathlib import Path
from typing import Annotated, Literal

import serial.urlhandler
from pydantic import AfterValidator, Field, PrivateAttr, model_validator

from protocol.link import DEFAULT_BAUD
from testbed.config.errors import ConfigError
from testbed.config.keys import KEY_FORMAT, parse_key, read_key_file
from testbed.config.schema import Schema, cross_field, validate
from testbed.config.yamlfile import read_yaml
from testbed.sitemap_builds import (
    ARRAY_SIZES,
    INTERLEAVES,
    MAX_BANK_WORDS,
    OPTION_RULES,
    Build,
    BuildError,
)

Backend = Literal["model", "rtl"]
BACKENDS: tuple[str, ...] = typing.get_args(Backend)
"""Accelerator backends the flight software can drive."""
BootMode = Literal["nominal", "test"]
BOOT_MODES: tuple[str, ...] = typing.get_args(BootMode)
KINDS = {"sim": "a simulated chip", "board": "a board on a serial port"}
URL_SCHEMES = tuple(
    m.name.removeprefix("protocol_")
    for m in pkgutil.iter_modules(serial.urlhandler.__path__)
    if m.name.startswith("protocol_")
)
"""pyserial's URL handlers (``socket://``, ``loop://``, ``spy://`` ...)."""


def _one_of(allowed: tuple[int, ...]):
    def check(value: int) -> int:
        if value not in allowed:
            raise ValueError("not allowed")
        return value

    return check


def _power_of_two(value: int) -> int:
    if not 1 <= value <= MAX_BANK_WORDS or value & (value - 1):
        raise ValueError("not a power of two in range")
    return value


def _key(text: str) -> str:
    parse_key(text)
    return text


def _port(text: str) -> str:
    scheme, sep, _ = text.partition("://")
    if sep and scheme in URL_SCHEMES or text.startswith("/") or text.upper().startswith("COM"):
        return text
    raise ValueError("not a pyserial URL")


PORT_FORMAT = "a device path (/dev/ttyUSB0, COM3) or a pyserial URL ({})".format(
    ", ".join(f"{s}://" for s in URL_SCHEMES)
)
BOOL = "true or false"


class SimTarget(Schema):
    """A simulated chip: its build options, and how the flight software boots."""

    kind: Literal["sim"] = Field(description="sim")
    description: str = Field("", description="a line of text")
    n: Annotated[int, AfterValidator(_one_of(ARRAY_SIZES))] = Field(
        description=OPTION_RULES["n"]
    )
    bank_words: Annotated[int, AfterValidator(_power_of_two)] = Field(
        description=OPTION_RULES["bank_words"]
    )
    interleave: Annotated[int, AfterValidator(_one_of(INTERLEAVES))] = Field(
        description=OPTION_RULES["interleave"]
    )
    ecc: bool = Field(description=BOOL)
    scrub: bool = Field(description=f"{BOOL}; true needs ecc: true")
    tmr: bool = Field(description=BOOL)
    backend: Backend = Field("model", description=f"one of: {', '.join(BACKENDS)}")
    mode: BootMode | None = Field(None, description=f"one of: {', '.join(BOOT_MODES)}")
    key: Annotated[str, AfterValidator(_key)] | None = Field(None, description=KEY_FORMAT)

    @model_validator(mode="after")
    def _consistent(self) -> SimTarget:
        try:
            self.build()
        except BuildError as exc:  # the one build description's checks and words
            raise cross_field(exc.option or "n", str(exc)) from None
        return self

    def build(self) -> Build:
        """The chip's build these options describe."""
        return Build(self.n, self.bank_words, self.interleave, self.ecc, self.scrub, self.tmr)

    def key_pair(self) -> tuple[int, bytes] | None:
        """The key to provision, as (key id, key), if the file gives one."""
        return parse_key(self.key) if self.key else None


class BoardTarget(Schema):
    """A board on a serial port: where it is and the key that signs hazardous commands."""

    kind: Literal["board"] = Field(description="board")
    description: str = Field("", description="a line of text")
    port: Annotated[str, AfterValidator(_port)] = Field(description=PORT_FORMAT)
    baud: Annotated[int, Field(gt=0)] = Field(
        DEFAULT_BAUD, description=f"a positive integer (default {DEFAULT_BAUD})"
    )
    key_file: str | None = Field(
        None, description=f"the path (relative to this file) of a file holding {KEY_FORMAT}"
    )
    _source: str = PrivateAttr("")
    _key_file_line: int | None = PrivateAttr(None)

    def key_path(self) -> Path | None:
        """Where the key file is: ``key_file`` relative to the config file, ``~`` expanded."""
        if self.key_file is None:
            return None
        return Path(self._source).parent / Path(self.key_file).expanduser()

    def key_pair(self) -> tuple[int, bytes] | None:
        """The key read from ``key_file``; raises ConfigError naming the line of ``key_file``."""
        path = self.key_path()
        if path is None:
            return None
        try:
            return read_key_file(path)
        except ValueError as exc:
            raise ConfigError(self._source, f"'key_file': {exc}", self._key_file_line) from None


Target = SimTarget | BoardTarget


def load_target(path: str | Path) -> Target:
    """Read and check a target file; raises ConfigError (one line) if it cannot be used."""
    doc = read_yaml(path)
    data = doc.data
    if isinstance(data, dict):
        kind = data.get("kind")
        kinds = ", ".join(f"{k} ({what})" for k, what in KINDS.items())
        if kind is None:
            raise ConfigError(doc.path, f"missing key 'kind' ({kinds})")
        if kind not in KINDS:
            raise ConfigError(
                doc.path, f"'kind' must be one of: {kinds}, got {kind!r}", doc.line(("kind",))
            )
    if isinstance(data, dict) and data["kind"] == "board":
        board = validate(BoardTarget, doc)
        board._source = doc.path
        board._key_file_line = doc.line(("key_file",))
        return board
    return validate(SimTarget, doc)
