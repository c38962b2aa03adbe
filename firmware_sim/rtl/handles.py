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


def hold(dut, bits: Iterable[tuple[Entry, int, int]]) -> None:
    """Set each bit to its level now (one deposit per signal), the others kept."""
    per: dict[int, tuple[object, int, int]] = {}
    for entry, bit, level in bits:
        handle, b = signal_bit(dut, entry, bit)
        _, mask, ones = per.get(id(handle), (handle, 0, 0))
        per[id(handle)] = (handle, mask | 1 << b, ones | level << b)
    for handle, mask, ones in per.values():
        value = int(handle.value) & ~mask | ones
        if value != int(handle.value):
            handle.value = value


def next_net(dut, entry: Entry):
    """The net a TMR register's copies all load (``scc_tmr_reg``'s next value)."""
    base = entry.name.rsplit(".q_q", 1)[0]
    return resolve(dut, base).next
