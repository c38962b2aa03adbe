"""The whole state of an ``Accelerator``, captured and put back by copying arrays.

A fault-injection campaign starts every injected job from the same state: ``capture``
takes it once (scratchpad words and check bits, the ECC state, registers and their TMR
copies, counters, scrubber, the job path's flops, stuck bits, the hung and done flags,
``last_job``) and ``restore`` puts it back in a few dozen array and dict copies, far
cheaper than a deep copy of the object graph. A snapshot is never changed once taken:
``restore`` copies out of it, so one snapshot serves any number of restores.

Each snapshot carries a state token: the chip holds the token of the state it is known
to be in (taken or restored, and not changed since), so that a recorded golden run
(``golden``) can check cheaply that a chip is still in the state it was recorded from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .cycle_state import Build
from .faults import JobReport
from .stuck import Held

if TYPE_CHECKING:
    from .model import Accelerator, StuckSite

#: Scalar attributes of ``Accelerator`` that make up its state beside the containers.
_SCALARS = ("_done", "_error", "_err_code", "_cycles", "_macs", "_tmr_mismatch",
            "_scrub_ptr", "_scrub_passes", "_scrub_timer", "_scrub_state", "_stage",
            "_latch", "_hung", "_disagree")  # fmt: skip

#: Scalar flops of ``PathState``.
_PATH_SCALARS = ("valid_q", "first_q", "r0_bank_q", "r1_bank_q", "scrub_bank_q")

#: Array flops of ``PathState``.
_PATH_ARRAYS = ("bias", "pipe", "acc", "out", "skew")


class StateToken:
    """Names one state of one chip; compared by identity."""

    __slots__ = ()


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The state of an ``Accelerator`` at one moment (``Accelerator.snapshot``)."""

    token: StateToken
    build: Build
    scalars: dict[str, object]
    cfg: dict[str, int]
    last_job: JobReport | None
    stuck: dict[StuckSite, int]
    held: tuple[Held, ...]
    data: np.ndarray
    check: np.ndarray
    dirty: frozenset[int]
    ecc_counts: tuple[int, int]
    path_cfg: dict[str, tuple[int, ...]]
    path_seq: dict[str, tuple[int, ...]]
    path_counters: dict[str, int]
    path_scrub: dict[str, int]
    path_scalars: dict[str, int]
    path_arrays: tuple[np.ndarray, ...]
    rrow: tuple[tuple[int, ...], ...]
    rslot: tuple[int, ...]
    rvalid: tuple[int, ...]


def capture(chip: Accelerator) -> Snapshot:
    """A snapshot of ``chip``; the chip takes its token (see the module docstring)."""
    token = chip._token if chip._token is not None else StateToken()
    chip._token = token
    spm, p = chip.spm, chip._path
    return Snapshot(
        token=token,
        build=chip.build,
        scalars={name: chip.__dict__[name] for name in _SCALARS},
        cfg=dict(chip._cfg),
        last_job=chip.last_job,
        stuck=dict(chip._stuck),
        held=chip._held,
        data=spm.data.copy(),
        check=spm.check.copy(),
        dirty=frozenset(spm.dirty),
        ecc_counts=(spm.corr, spm.uncorr),
        path_cfg={name: tuple(c) for name, c in p.cfg.items()},
        path_seq={name: tuple(c) for name, c in p.seq.items()},
        path_counters=dict(p.counters),
        path_scrub=dict(p.scrub),
        path_scalars={name: p.__dict__[name] for name in _PATH_SCALARS},
        path_arrays=tuple(getattr(p, name).copy() for name in _PATH_ARRAYS),
        rrow=tuple(p.rrow),
        rslot=tuple(p.rslot),
        rvalid=tuple(p.rvalid),
    )


def restore(chip: Accelerator, snap: Snapshot) -> None:
    """Put ``chip`` back in the state of ``snap`` (a snapshot of a chip of this build)."""
    if snap.build is not chip.build and snap.build != chip.build:
        raise ValueError(f"a snapshot of {snap.build} cannot restore a chip of {chip.build}")
    # Attributes are set through __dict__: a campaign restores thousands of times a second.
    state = chip.__dict__
    state.update(snap.scalars)
    state["_cfg"] = snap.cfg.copy()
    state["last_job"] = snap.last_job
    state["_stuck"] = snap.stuck.copy()
    state["_held"] = snap.held
    state["_token"] = snap.token
    spm = chip.spm
    np.copyto(spm.data, snap.data)
    np.copyto(spm.check, snap.check)
    spm.dirty = set(snap.dirty)
    spm.corr, spm.uncorr = snap.ecc_counts
    p = chip._path
    path = p.__dict__
    path.update(snap.path_scalars)
    path["cfg"] = {name: list(c) for name, c in snap.path_cfg.items()}
    path["seq"] = {name: list(c) for name, c in snap.path_seq.items()}
    path["counters"] = snap.path_counters.copy()
    path["scrub"] = snap.path_scrub.copy()
    p.bias, p.pipe, p.acc, p.out, p.skew = [a.copy() for a in snap.path_arrays]
    p.rrow, p.rslot, p.rvalid = list(snap.rrow), list(snap.rslot), list(snap.rvalid)
