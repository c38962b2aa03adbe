"""Values of ``hil``'s command line, checked where they are parsed: integers and numbers in
their allowed range, and files that can be written. Each refusal names the range, so that
argparse's one line (``argument --count: must be at least 1, got 0``) says what to give.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

from host.errors import UsageError

MAX_BAUD = 4_000_000
"""Fastest baud rate a serial port is asked for (the fastest standard Linux rate)."""


def _range(lo: float | None, hi: float | None, unit: str = "") -> str:
    unit = f" {unit}" if unit else ""
    if hi is None:
        return f"at least {lo:,}{unit}" if lo is not None else "an integer"
    if lo is None:
        return f"at most {hi:,}{unit}"
    return f"{lo:,}..{hi:,}{unit}"


def parse_int(text: str) -> int:
    """An integer as a person writes it: 4096, 0x1000, 0b101; ValueError otherwise."""
    return int(text.replace("_", ""), 0)


def check_int(what: str, value: int, lo: int | None, hi: int | None, unit: str = "") -> int:
    """``value``, or a UsageError naming ``what`` and its range."""
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise UsageError(f"{what} must be {_range(lo, hi, unit)}, got {value:,}")
    return value


def integer(lo: int | None = None, hi: int | None = None, unit: str = "") -> Callable[[str], int]:
    """An argparse type: an integer in ``lo .. hi`` (either end open when None)."""

    def parse(text: str) -> int:
        try:
            value = parse_int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not an integer (4096, 0x1000); must be {_range(lo, hi, unit)}"
            ) from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {_range(lo, hi, unit)}, got {text}")
        return value

    return parse


def number(
    lo: float, hi: float, unit: str = "", *, above: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number from ``lo`` (or above it, with ``above``) to ``hi``."""
    allowed = f"{'more than' if above else 'at least'} {lo:g} and at most {hi:g}"
    allowed += f" {unit}" if unit else ""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; must be {allowed}") \
                from None  # fmt: skip
        if not math.isfinite(value) or value < lo or (above and value == lo) or value > hi:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text}")
        return value

    return parse


def writable(path: Path | str, what: str) -> Path:
    """``path`` if a file can be written there (created, or an existing one replaced or
    appended to); a UsageError naming ``what`` otherwise, before anything is sent."""
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise UsageError(f"{what} {path}: is a directory, not a file")
    if not parent.is_dir():
        raise UsageError(f"{what} {path}: no such directory {parent}")
    existing = path.exists() and not os.access(path, os.W_OK)
    if existing or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: not writable")
    return path
