"""``hil campaign crosscheck FILE``: the same injections on the model and on the chip's
RTL (or a chip over the link), injection by injection.

The campaign runs twice with its seed, so with the same injections: on the bit-exact model
in worker processes, and on the RTL (``rtl``: the RTL in a simulation per worker, many
injections each) or over the serial link (``link``: the target file's chip, the flight
software and the RTL with ``backend: rtl``, or a board with ``--port``). Every injection
that both placed must end in the same outcome class; one that does not is a
disagreement, reported with its site, its point in the job and both outcomes. Injections
the model cannot place (sites only the RTL has: the bus interface, the reset pulse) are
reported apart with what they did on the chip; an injection the model placed and the chip
did not is a disagreement too.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from campaign.runner import RUNS, run_campaign
from testbed.config.campaign import Campaign

NOT_INJECTED = "not_injected"
#: The fields of a run that say where and when its fault was.
WHERE = ("build", "stratum", "index", "kind", "entry", "bit", "job", "tile", "phase",
         "cycle", "job_cycle", "size", "orientation", "value")  # fmt: skip


@dataclass
class CrossCheck:
    """How the two runs of each injection ended, compared."""

    runs: int = 0
    agree: int = 0
    differ: list[dict] = field(default_factory=list)
    chip_only: Counter[str] = field(default_factory=Counter)
    """Outcomes on the chip of injections the model could not place."""
    neither: int = 0
    by_class: dict[str, Counter[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def compared(self) -> int:
        """Injections both placed."""
        return self.agree + sum(1 for d in self.differ if NOT_INJECTED not in
                                (d["model"], d["chip"]))  # fmt: skip

    def to_json(self) -> dict:
        return {
            "runs": self.runs, "compared": self.compared, "agree": self.agree,
            "differ": self.differ, "chip_only": dict(self.chip_only), "neither": self.neither,
            "by_class": {k: dict(v) for k, v in self.by_class.items()},
            "seconds": self.seconds,
        }  # fmt: skip

    def summary(self) -> list[str]:
        """What a reader came for, in a few lines."""
        lines = [
            f"{self.compared} injections placed on both: {self.agree} ended alike on the model "
            f"and on the chip, {len(self.differ)} did not.",
        ]
        if self.chip_only:
            what = ", ".join(f"{k} {v}" for k, v in sorted(self.chip_only.items()))
            lines.append(f"{sum(self.chip_only.values())} injections in sites only the chip has "
                         f"(no model site): {what}.")  # fmt: skip
        if self.neither:
            lines.append(f"{self.neither} injections were placed on neither.")
        for d in self.differ[:10]:
            lines.append(
                f"differ: {d['build']} {d['stratum']}#{d['index']} {d['entry']} bit {d['bit']} "
                f"at {d['phase']} tile {d['tile']} cycle {d['cycle']} (job cycle "
                f"{d['job_cycle']}): model {d['model']}, chip {d['chip']} ({d['chip_detail']})"
            )
        return lines


def _runs(path: Path) -> dict[tuple[str, str, int], dict]:
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out[(r["build"], r["stratum"], r["index"])] = r
    return out


def _ended(run: dict) -> str:
    """A run's outcome class; a classifier's SDC with the images whose class it changed
    (``sdc, 1 class changed``), which must agree as well."""
    changed = run.get("changed")
    return run["outcome"] if changed is None else f"{run['outcome']}, {changed} class changed"


def compare(model_runs: Path, chip_runs: Path) -> CrossCheck:
    """Compare two ``runs.jsonl`` of the same campaign, injection by injection."""
    model, chip = _runs(model_runs), _runs(chip_runs)
    check = CrossCheck()
    for key in sorted(chip):
        theirs, ours = chip[key], model.get(key)
        if ours is None:
            continue
        check.runs += 1
        cls = key[1].split("/")[0]
        check.by_class.setdefault(cls, Counter())[ours["outcome"]] += 1
        a, b = _ended(ours), _ended(theirs)
        if a == NOT_INJECTED and b == NOT_INJECTED:
            check.neither += 1
        elif a == NOT_INJECTED:
            check.chip_only[b] += 1
        elif a == b:
            check.agree += 1
        else:
            where = {k: theirs.get(k) for k in WHERE}
            check.differ.append({**where, "model": a, "chip": b, "model_detail": ours["detail"],
                                 "chip_detail": theirs["detail"]})  # fmt: skip
    return check


def crosscheck(
    campaign: Campaign, out: Path, *, chip: str = "rtl", injections: int | None = None,
    workers: int = 1, progress=None,
) -> CrossCheck:  # fmt: skip
    """Run ``campaign`` (``injections`` per stratum instead of its own, if given) on the
    model and on ``chip`` (``rtl`` or ``link``) into ``out/model`` and ``out/CHIP``; write
    ``crosscheck.json``. ``progress(label)``, if given, is a context manager that shows a
    run's progress."""
    if injections is not None:
        campaign = campaign.model_copy(update={"injections": injections, "precision": None})
    seconds = {}
    for backend in ("model", chip):
        started = time.perf_counter()
        with progress(backend) if progress else nullcontext() as shown:
            run_campaign(campaign, out / backend, backend=backend, workers=workers,
                         progress=shown)  # fmt: skip
        seconds[backend] = round(time.perf_counter() - started, 2)
    check = compare(out / "model" / RUNS, out / chip / RUNS)
    check.seconds = seconds
    (out / "crosscheck.json").write_text(json.dumps(check.to_json(), indent=2) + "\n")
    return check
