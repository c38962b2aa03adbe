"""The chip's storage in a running simulation, by site-map name: find it, flip it, force it.

Every site-map entry (``testbed.sitemap``) is a signal below ``scc_top`` by its name; a
memory's bit ``row * width + cell`` is bit ``cell`` of word ``row``. Writes to a signal are
deposits, which land at the end of the time step: several flips of one signal in one
cycle are therefore made as one deposit of their mask. Nothing here waits on the clock:
the caller is at the falling edge it chose.
"""

from __future__ import annotations

from collections.abc import Iterable

from testbed.sitemap import Entry, path_parts


def resolve(dut, name: str):
    """The simulator handle of a site-map name (a memory: the whole array)."""
    handle = dut
    for part, index in path_parts(name):
        handle = getattr(handle, part)
        if index is not None:
            handle = handle[index]
    return handle


def read_int(handle) -> int:
    """A signal's value as an int, read straight from the simulator: a campaign compares
    every scratchpad row after each run, and building cocotb's ``LogicArray`` for each
    costs more than the simulation of a short job."""
    raw = getattr(handle, "_handle", None)
    if raw is None:
        return int(handle.value)
    return int(raw.get_signal_val_binstr(), 2)


def signal_bit(dut, entry: Entry, bit: int) -> tuple[object, int]:
    """The signal that holds bit ``bit`` of ``entry`` (a memory's word), and its bit."""
    handle = resolve(dut, entry.name)
    if entry.kind == "memory":
        row, cell = entry.locate(bit)
        return handle[row], cell
    return handle, bit


def masks(dut, bits: Iterable[tuple[Entry, int]]) -> dict[int, tuple[object, int]]:
    """The flips of several bits as one mask per signal (by the handle's identity)."""
    out: dict[int, tuple[object, int]] = {}
    for entry, bit in bits:
        handle, b = signal_bit(dut, entry, bit)
        _, mask = out.get(id(handle), (handle, 0))
        out[id(handle)] = (handle, mask ^ (1 << b))
    return out


def flip(dut, bits: Iterable[tuple[Entry, int]]) -> None:
    """Invert each bit now (one deposit per signal)."""
    for handle, mask in masks(dut, bits).values():
        handle.value = int(handle.value) ^ mask


Held = list[tuple[object, int, int]]
"""Signals with bits to hold: (handle, mask of the bits, their levels)."""


def held(dut, bits: Iterable[tuple[Entry, int, int]]) -> Held:
    """The signals and masks that hold each (entry, bit, level): found once, applied at
    every cycle by ``hold``."""
    per: dict[int, tuple[object, int, int]] = {}
    for entry, bit, level in bits:
        handle, b = signal_bit(dut, entry, bit)
        _, mask, ones = per.get(id(handle), (handle, 0, 0))
        per[id(handle)] = (handle, mask | 1 << b, ones | level << b)
    return list(per.values())


def hold(signals: Held) -> None:
    """Set the held bits to their levels now (one deposit per signal that differs)."""
    for handle, mask, ones in signals:
        now = int(handle.value)
        value = now & ~mask | ones
        if value != now:
            handle.value = value
