"""Fault-injection results as a person and a machine read them: JSON, Markdown and a figure.

Every injected run ends in one outcome class (docs/FAULTS.md, "Outcome classes"):
masked, corrected, detected, SDC or hang. A run whose fault was not injected (refused by
the target, or its point never reached by the job) is counted apart and kept out of the
rates: it is never masked. Rates carry 95 % Wilson score intervals, which stay
meaningful for the small counts and zero counts a short campaign produces.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from host.campaign.stats import wilson


class Outcome(StrEnum):
    """How a run ended: one of the classes of an injected fault, or not injected."""

    MASKED = "masked"  # result correct, nothing noticed
    CORRECTED = "corrected"  # result correct, a mitigation acted
    DETECTED = "detected"  # error reported, no wrong result delivered
    SDC = "sdc"  # wrong result delivered as good
    HANG = "hang"  # recovered only by watchdog or reset
    NOT_INJECTED = "not_injected"  # the fault never happened: no sample of any class


CLASSES: tuple[Outcome, ...] = tuple(o for o in Outcome if o is not Outcome.NOT_INJECTED)
"""The outcome classes of an injected run, the ones rates are given for."""


@dataclass(frozen=True)
class Run:
    """One injected run: which fault, where, and how it ended."""

    fault: str
    site: str
    outcome: Outcome
    detail: str = ""


@dataclass
class Summary:
    """Counts and rates of outcomes for one fault label; ``runs`` counts the runs whose
    fault was injected, ``not_injected`` the others (in no count and no rate)."""

    fault: str
    runs: int
    counts: dict[str, int] = field(default_factory=dict)
    rates: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    not_injected: int = 0


def summarize(runs: Iterable[Run]) -> list[Summary]:
    """One summary per fault label, in the order labels first appear."""
    by_fault: dict[str, list[Run]] = {}
    for run in runs:
        by_fault.setdefault(run.fault, []).append(run)
    out = []
    for fault, group in by_fault.items():
        injected = [r for r in group if r.outcome is not Outcome.NOT_INJECTED]
        counts = {o.value: sum(r.outcome == o for r in injected) for o in CLASSES}
        rates = {o: wilson(c, len(injected)) for o, c in counts.items()} if injected else {}
        out.append(Summary(fault, len(injected), counts, rates, len(group) - len(injected)))
    return out


def plot(summaries: list[Summary], path: Path, title: str) -> None:
    """Stacked bars: the share of each outcome per fault label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {
        "masked": "#9e9e9e",
        "corrected": "#4caf50",
        "detected": "#2196f3",
        "sdc": "#f44336",
        "hang": "#ff9800",
    }
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(summaries) + 2), 4.2))
    labels = [s.fault for s in summaries]
    bottom = [0.0] * len(summaries)
    for outcome in CLASSES:
        shares = [s.counts[outcome.value] / s.runs if s.runs else 0.0 for s in summaries]
        ax.bar(labels, shares, bottom=bottom, color=colours[outcome.value], label=outcome.value)
        bottom = [b + v for b, v in zip(bottom, shares, strict=True)]
    for x, s in enumerate(summaries):
        label = f"n={s.runs}" + (f"\n+{s.not_injected} not injected" if s.not_injected else "")
        ax.text(x, 1.02, label, ha="center", fontsize=7)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("share of runs with the fault injected")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(
    outdir: Path, name: str, title: str, runs: list[Run], meta: dict, notes: list[str]
) -> dict[str, Path]:
    """Write ``name``.json, ``name``.md and ``name``.png into ``outdir``; return their paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    summaries = summarize(runs)
    paths = {ext: outdir / f"{name}.{ext}" for ext in ("json", "md", "png")}
    paths["json"].write_text(
        json.dumps(
            {
                "title": title,
                "meta": meta,
                "summary": [asdict(s) for s in summaries],
                "runs": [asdict(r) for r in runs],
            },
            indent=2,
        )
    )
    plot(summaries, paths["png"], title)
    lines = [f"# {title}", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", f"![outcomes]({paths['png'].name})", ""]
    header = "| fault | runs | " + " | ".join(o.value for o in CLASSES) + " | not injected |"
    lines += [header, "|" + " --- |" * (3 + len(CLASSES))]
    for s in summaries:
        cells = []
        for o in CLASSES:
            if s.runs:
                rate, lo, hi = s.rates[o.value]
                cells.append(f"{s.counts[o.value]} ({rate:.0%}, {lo:.0%}-{hi:.0%})")
            else:
                cells.append("-")
        cells.append(str(s.not_injected))
        lines.append(f"| {s.fault} | {s.runs} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Runs and rates count only runs whose fault was injected, with 95 % Wilson score "
        "intervals; a run whose fault was not injected is in the last column alone, never "
        "counted as masked.",
        "",
    ]
    lines += notes
    paths["md"].write_text("\n".join(lines) + "\n")
    return paths
