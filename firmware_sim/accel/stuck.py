"""Register bits stuck at 0 or 1 (total dose, wear): held every cycle whatever the logic drives.

A stuck bit is a flop bit of the job path (``cycle_state.PathState``) by its RTL path
and TMR copy. ``hold`` forces every stuck bit into a ``PathState``: the model calls it
whenever its idle state changes (a bus access, a job's end, a reset), the cycle-level
twin at the start of every job cycle, as a flop whose bit cannot change shows it to the
logic of every cycle. A stuck TMR copy that disagrees with the others is outvoted every
cycle and never repaired: ``disagree`` says whether any is, so that TMR_MISMATCH counts
each such cycle.

While idle the model keeps the counters and the scrubber's registers in registers of
its own (``IDLE_REGISTERS``), which count many cycles at once: ``idle_bits`` gives the
stuck bits of each, and ``count_on`` what a counter holds after a number of cycles that
each add one to it and force its stuck bits again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from .cycle_state import PathState

#: A stuck bit as the twin holds it: (path, bit, copy, value).
Held = tuple[str, int, int | None, int]

#: (mask, ones): the stuck bits of one register and the values they are stuck at.
Bits = tuple[int, int]

#: No bit stuck.
FREE: Bits = (0, 0)

#: Flops the model keeps in registers of its own while idle, and their widths: the
#: counters of scc_regs.v and the scrubber's registers (scc_scrub.v).
IDLE_REGISTERS: dict[str, int] = {
    "u_regs.cycles_q": 32, "u_regs.macs_q": 32, "u_regs.corr_q": 32, "u_regs.uncorr_q": 32,
    "u_regs.mismatch_q": 32, "g_scrub.u_scrub.state_q": 2, "g_scrub.u_scrub.timer_q": 16,
    "g_scrub.u_scrub.ptr_q": 16, "g_scrub.u_scrub.passes_q": 32,
}  # fmt: skip


@functools.lru_cache(maxsize=256)
def idle_bits(held: tuple[Held, ...]) -> dict[str, Bits]:
    """The stuck bits of each of ``IDLE_REGISTERS`` that has any, by path."""
    out: dict[str, Bits] = {}
    for path, bit, _, value in held:
        if path in IDLE_REGISTERS:
            mask, ones = out.get(path, FREE)
            out[path] = (mask | 1 << bit, ones & ~(1 << bit) | value << bit)
    return out


def forced(value: int, bits: Bits) -> int:
    """``value`` with the stuck bits at their values."""
    mask, ones = bits
    return value & ~mask | ones


def count_on(value: int, cycles: int, width: int, bits: Bits) -> int:
    """A ``width``-bit counter after ``cycles`` cycles that each add one to it, its stuck
    bits forced again after each.

    An addition's carry passes a bit stuck at 1 (it reads 1, the sum's 0 is forced back to
    1) and dies in a bit stuck at 0 (the sum's 1 is forced back to 0): the free bits below
    the lowest bit stuck at 0 count as one counter of their own, wrapping to 0, and every
    bit above it keeps its value.
    """
    full = (1 << width) - 1
    mask, ones = bits
    if not mask:
        return (value + cycles) & full
    value = forced(value, bits)
    zeros = mask & ~ones
    below = (zeros & -zeros) - 1 if zeros else full
    free = [b for b in range(width) if (below & ~mask) >> b & 1]
    count = sum((value >> b & 1) << i for i, b in enumerate(free))
    count = (count + cycles) & ((1 << len(free)) - 1)
    for i, b in enumerate(free):
        value = value & ~(1 << b) | (count >> i & 1) << b
    return value


def vote(copies: list[int]) -> int:
    """The majority of three copies, or the one copy without TMR."""
    if len(copies) == 1:
        return copies[0]
    a, b, c = copies
    return (a & b) | (b & c) | (a & c)


def hold(state: PathState, stuck: Iterable[Held]) -> None:
    """Force every stuck bit into ``state``."""
    for path, bit, copy, value in stuck:
        if (state.value(path, copy) >> bit & 1) != value:
            state.flip(path, bit, copy)


def disagree(state: PathState) -> bool:
    """Whether the copies of any TMR register in ``state`` disagree."""
    regs = list(state.cfg.values()) + list(state.seq.values())
    return any(len(c) == 3 and not c[0] == c[1] == c[2] for c in regs)
