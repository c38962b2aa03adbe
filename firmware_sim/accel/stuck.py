"""Register bits stuck at 0 or 1 (total dose, wear): held every cycle whatever the logic drives.

A stuck bit is a flop bit of the job path (``cycle_state.PathState``) by its RTL path
and TMR copy. ``hold`` forces every stuck bit into a ``PathState``: the model calls it
whenever its idle state changes (a bus access, a job's end, a reset), the cycle-level
twin at the start of every job cycle, as a flop whose bit cannot change shows it to the
logic of every cycle. A stuck TMR copy that disagrees with the others is outvoted every
cycle and never repaired: ``disagree`` says whether any is, so that TMR_MISMATCH counts
each such cycle.
"""

from __future__ import annotations

from collections.abc import Iterable

from .cycle_state import PathState

#: A stuck bit as the twin holds it: (path, bit, copy, value).
Held = tuple[str, int, int | None, int]

#: Flops the model keeps outside the job path's state while idle (counters, scrubber):
#: a stuck bit there is not predicted.
UNHELD_PREFIXES = ("u_regs.cycles_q", "u_regs.macs_q", "u_regs.corr_q", "u_regs.uncorr_q",
                   "u_regs.mismatch_q", "g_scrub.")  # fmt: skip


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
