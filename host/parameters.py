"""Parameters of service 20 as a person reads and writes them: in physical units.

The ICD (15.7) carries some parameters scaled (``TEMP_LOW_LIMIT`` in ``0.01 degC``);
``hil param`` shows and takes them in the unit's base (``-20.00 degC``). The scale is the
one in ``PARAM_SPECS``' unit, read here and nowhere else.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from protocol.payloads import PARAM_SPECS, ParamId


def scale_of(pid: ParamId) -> tuple[Decimal, str]:
    """The factor from wire value to physical value, and the physical unit
    (``0.01 degC`` -> ``(0.01, "degC")``; ``ms`` -> ``(1, "ms")``)."""
    unit = PARAM_SPECS[pid].unit
    head, _, rest = unit.partition(" ")
    try:
        return Decimal(head), rest
    except InvalidOperation:
        return Decimal(1), "" if unit == "-" else unit


def physical(pid: ParamId, raw: int, grouped: bool = False) -> str:
    """``-2000`` of TEMP_LOW_LIMIT -> ``-20.00 degC``: as many decimals as the scale has
    (``grouped``: with thousands separators)."""
    factor, unit = scale_of(pid)
    return f"{raw * factor:{',' if grouped else ''}} {unit}".rstrip()


def physical_range(pid: ParamId) -> str:
    """``-100.00..150.00 degC``: the range a physical value must be in."""
    spec = PARAM_SPECS[pid]
    _, unit = scale_of(pid)
    lo, hi = (physical(pid, v, grouped=True).removesuffix(unit).strip() for v in (spec.lo, spec.hi))
    return f"{lo}..{hi} {unit}".rstrip()


def raw_value(pid: ParamId, text: str) -> int:
    """The wire value of ``text``, a physical value (``-20``, ``-20.5degC``, ``30 %``) in
    the parameter's range; a ValueError naming the parameter, its range and unit otherwise."""
    spec = PARAM_SPECS[pid]
    factor, unit = scale_of(pid)
    number = text.strip().replace("_", "")
    if unit and number.endswith(unit):
        number = number[: -len(unit)].strip()
    allowed = physical_range(pid)
    try:
        # An unscaled count may be written as a person writes integers (0x1000).
        value = Decimal(int(number, 0)) if factor == 1 and "." not in number else None
    except ValueError:
        value = None
    try:
        value = Decimal(number) if value is None else value
    except InvalidOperation:
        value = Decimal("nan")
    if not value.is_finite():
        raise ValueError(f"{pid.name}={text}: not a number; must be {allowed}")
    raw = value / factor
    if raw != raw.to_integral_value():
        raise ValueError(f"{pid.name}={text}: must be a multiple of {factor} {unit}".rstrip())
    if not spec.lo <= raw <= spec.hi:
        raise ValueError(f"{pid.name} must be {allowed}, got {text}")
    return int(raw)
