"""Validating a ``YamlDocument`` against a pydantic model, with one-line errors.

Every model of ``configs/`` derives from ``Schema``: unknown keys are refused, values are
not coerced (``"4"`` is not 4), and each field's ``description`` says what is allowed, so
an error can always name it. A check across fields raises ``cross_field(key, message)``
to point at the key it is about.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from testbed.config.errors import ConfigError
from testbed.config.yamlfile import Loc, YamlDocument

M = TypeVar("M", bound="Schema")
CROSS_FIELD = "cross_field"


class Schema(BaseModel):
    """A strict, closed, immutable model of (part of) a config file."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def cross_field(key: str, message: str) -> PydanticCustomError:
    """An error about ``key`` that a check across fields found; ``message`` is the text."""
    return PydanticCustomError(CROSS_FIELD, "{text}", {"key": key, "text": message})


def validate(model: type[M], doc: YamlDocument) -> M:
    """``doc.data`` as a ``model``; raises ConfigError with the first error, one line."""
    if not isinstance(doc.data, dict):
        got = "an empty file" if doc.data is None else f"{type(doc.data).__name__} {doc.data!r}"
        raise ConfigError(doc.path, f"expected a mapping of keys at the top, got {got}")
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        errors = [_located(e) for e in exc.errors(include_url=False)]
        # A misspelt key is reported once, as unknown, not also as the key it misses.
        meant = {(*loc[:-1], m) for loc, e in errors if (m := _suggestion(model, loc, e))}
        errors = [(loc, e) for loc, e in errors if not (e["type"] == "missing" and loc in meant)]
        # A missing key is often the misspelt one reported as unknown: report that first.
        errors.sort(key=lambda e: (e[1]["type"] == "missing", doc.line(e[0]) or 0))
        loc, err = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        line = _line(doc, loc, err)
        raise ConfigError(doc.path, _message(model, loc, err) + more, line) from None


def _located(err: ErrorDetails) -> tuple[Loc, ErrorDetails]:
    loc = tuple(err["loc"])
    if err["type"] == CROSS_FIELD:
        loc = (*loc, err.get("ctx", {})["key"])
    return loc, err


def _line(doc: YamlDocument, loc: Loc, err: ErrorDetails) -> int | None:
    if err["type"] == "missing":
        return doc.line(loc[:-1]) if len(loc) > 1 else None
    return doc.line(loc)


def dotted(loc: Loc) -> str:
    """``("saa", "f_u", "value")`` -> ``saa.f_u.value``; list items as ``sizes[2]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(model: type[Schema], loc: Loc, err: ErrorDetails) -> str:
    key = f"'{dotted(loc)}'"
    if err["type"] == CROSS_FIELD:
        return str(err.get("ctx", {})["text"])
    if err["type"] == "extra_forbidden":
        close = _suggestion(model, loc, err)
        if close:
            return f"{key}: unknown key; did you mean '{close}'?"
        return f"{key}: unknown key; allowed: {', '.join(_keys(model, loc[:-1]))}"
    info = _field(model, loc)
    allowed = _allowed(info)
    if err["type"] == "missing":
        return f"missing key {key}" + (f": {allowed}" if allowed else "")
    if not allowed:
        return f"{key}: {err['msg']}, got {err.get('input')!r}"
    return f"{key} must be {allowed}, got {err.get('input')!r}"


def _suggestion(model: type[Schema], loc: Loc, err: ErrorDetails) -> str | None:
    """For an unknown key, the allowed key it most looks like (difflib), if any."""
    if err["type"] != "extra_forbidden":
        return None
    close = difflib.get_close_matches(str(loc[-1]), _keys(model, loc[:-1]), n=1, cutoff=0.6)
    return close[0] if close else None


def _allowed(info: FieldInfo | None) -> str:
    if info is None:
        return ""
    sub = _submodel(info.annotation)
    if info.description:
        return info.description
    if sub is not None:
        return "a mapping of " + ", ".join(_model_keys(sub))
    return ""


def _keys(model: type[Schema], loc: Loc) -> list[str]:
    """The keys allowed in the mapping at ``loc``."""
    target: type[BaseModel] | None = model
    if loc:
        info = _field(model, loc)
        target = _submodel(info.annotation) if info is not None else None
    return _model_keys(target) if target is not None else []


def _model_keys(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _field(model: type[BaseModel], loc: Loc) -> FieldInfo | None:
    """The field that ``loc`` names (list indices stay on the list's field)."""
    current: type[BaseModel] | None = model
    info: FieldInfo | None = None
    for part in loc:
        if isinstance(part, int):
            continue
        if current is None or part not in current.model_fields:
            return None
        info = current.model_fields[part]
        current = _submodel(info.annotation)
    return info


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The model class inside an annotation such as ``Saa | None`` or ``list[Rate]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _submodel(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple):
        for arg in typing.get_args(annotation):
            found = _submodel(arg)
            if found is not None:
                return found
    return None
