"""A campaign's report: ``report.json`` (the analysis), ``report.md`` and a self-contained
``report.html`` with its figures, each opening with the sentences a reader came for.

Every figure and table states its conditions: the workload (shape), the builds, the
orbit or beam, the backend, the seed and the confidence of its intervals.
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from campaign.outcome import CLASSES  # noqa: E402
from testbed.sitemap_builds import Build  # noqa: E402

#: A published beam test to set a chip's figures beside (RADIATION.md, "Orbital AI
#: computing"): Agüera y Arcas et al., Project Suncatcher, arXiv:2511.19468, 2025.
BEAM_REFERENCE = ("For comparison, a Trillium v6e TPU under 67 MeV protons showed one silent "
                  "data corruption per 14.4-20 rad(Si), a cross-section of 6-9e-9 cm2 per chip "
                  "(Project Suncatcher, arXiv:2511.19468).")  # fmt: skip
COLOURS = {"masked": "#9bbf85", "corrected": "#4c9be8", "detected": "#f2b134",
           "sdc": "#d9534f", "hang": "#6f4e7c"}  # fmt: skip


def build_label(name: str) -> str:
    """A build as a reader names it: ``bare`` or what protects it."""
    b = Build.from_name(name)
    parts = [p for p, on in (("SECDED", b.ecc), ("scrub", b.scrub), ("TMR", b.tmr)) if on]
    text = " + ".join(parts) if parts else "bare"
    if b.interleave > 1:
        text += f", interleave {b.interleave}"
    return f"{text} (N={b.n})" if b.n != 4 else text


def _num(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    if x == 0:
        return "0" + unit
    if abs(x) >= 100 or abs(x) < 0.01:
        return f"{x:.2g}" + unit
    return f"{x:.3g}" + unit


def _rate(r: dict, key: str = "per_year") -> str:
    return f"{_num(r[key])} [{_num(r[key + '_low'])}, {_num(r[key + '_high'])}]"


def _downtime(orbit: dict) -> str:
    """Unavailability as time lost a year: hangs, retried jobs and functional interrupts."""
    seconds = (1.0 - orbit["availability"]) * 86_400.0 * 365.25
    return _num(seconds, " s") if seconds < 600 else _num(seconds / 3600, " h")


def _absorbed(orbit: dict) -> str:
    """Upsets a year whose runs a mitigation corrected, by mitigation."""
    parts = [f"{_num(per_day * 365.25)} by {what}"
             for what, per_day in sorted(orbit["absorbed_per_day"].items()) if what != "none"]
    return "; ".join(parts) or "-"


def conditions(a: dict) -> str:
    """One line: workload, builds, orbit or beam, backend, seed, confidence."""
    where = (f"orbit {a['environment']}" if a["environment"]
             else f"beam {a['beam']}" if a["beam"] else "no orbit")  # fmt: skip
    return (f"{a['workload']}; {where}; backend {a['backend']}; seed {a['seed']}; "
            f"{100 * a['confidence']:.0f} % intervals; {a['injected']} injected of "
            f"{a['runs']} runs")  # fmt: skip


def headline(a: dict) -> list[str]:
    """The sentences a reader came for."""
    out = []
    builds = a["builds"]
    if a["environment"] and builds and "orbit" in builds[0]:
        first = builds[0]
        parts = [f"{build_label(b['build'])}: {_rate(b['orbit']['sdc'])}" for b in builds[1:]]
        text = (f"In {a['environment_description'] or a['environment']}, the "
                f"{build_label(first['build'])} chip delivers {_rate(first['orbit']['sdc'])} "
                f"silent data corruptions per device-year running {a['workload']}")  # fmt: skip
        out.append(text + ("; " + "; ".join(parts) if parts else "") + ".")
        if "sdc_class" in first["orbit"]:
            parts = [f"{build_label(b['build'])}: {_rate(b['orbit']['sdc_class'])}"
                     for b in builds]  # fmt: skip
            out.append("Of those, the ones that changed a predicted class, per device-year: "
                       + "; ".join(parts) + "; the others left every answer right.")  # fmt: skip
        for b in builds:
            o = b["orbit"]
            out.append(
                f"{build_label(b['build'])}: {_rate(o['detected'])} detected errors and "
                f"{_rate(o['hang'])} hangs per device-year, "
                f"{_downtime(o)} of downtime a year"
                + (f"; {100 * (1 - o['covered_share']):.2g} % of its upsets fall in sites "
                   "this backend cannot inject and are in no rate" if o["covered_share"] < 1
                   else "") + "."
            )  # fmt: skip
        out += _unrated(a)
    if a["beam"] and builds and "beam" in builds[0]:
        for b in builds:
            sdc = b["beam"]["sdc"]
            per = sdc["rad_per_event"]
            out.append(
                f"Under {a['beam']}, {build_label(b['build'])}: one silent data corruption per "
                f"{_num(per)} rad(Si) (cross-section {_num(sdc['cross_section_cm2'])} cm2 "
                f"[{_num(sdc['low'])}, {_num(sdc['high'])}])."
            )
        out.append(BEAM_REFERENCE)
    for soak in a.get("soaks", []):
        r = soak["rates"]
        if soak.get("network"):
            out.append(_accuracy_sentence(soak))
            continue
        out.append(
            f"Flown {soak['days']:g} days in {soak['environment']} at {soak['acceleration']:g} "
            f"times its rates, {build_label(soak['build'])} with SCRUB_PERIOD "
            f"{soak['scrub_period']}: {_span(r['sdc'])} SDC incidents, {_span(r['detected'])} "
            f"detected, {_span(r['uncorrectable'])} uncorrectable words per device-day, "
            f"{_num(soak['downtime_s'] / soak['days'] * 365.25, ' s')} of downtime a year."
        )
    check = a.get("link_check")
    if check is not None:
        same = check["runs"] - len(check["differ"])
        out.append(f"The first injections of every stratum, run again on simulated chips over "
                   f"the serial link, ended as on the model in {same} of {check['runs']} runs.")
    worst = max(a["strata"], key=lambda r: (r["shares"]["sdc"] or {}).get("share", 0),
                default=None)  # fmt: skip
    if worst is not None and worst["shares"]["sdc"]:
        s = worst["shares"]["sdc"]
        out.append(
            f"The most exposed stratum is {worst['stratum']} on the "
            f"{build_label(worst['build'])} build ({worst['protection']}): "
            f"{100 * s['share']:.0f} % [{100 * s['low']:.0f}, {100 * s['high']:.0f}] of its "
            "injected faults became silent data corruption."
        )
    return out


def _unrated(a: dict) -> list[str]:
    """What the orbit's rates leave out: fault kinds the environment gives no rate (SETs,
    stuck bits), at their worst on the last, most protected, build."""
    names = {"set": "SETs", "stuck_at": "stuck bits"}
    last = a["builds"][-1]["build"]
    out = []
    for kind, name in names.items():
        rows = [r for r in a["strata"] if r["kind"] == kind and r["injected"] and r["avf"]]
        if not rows:
            continue
        worst = max((r for r in rows if r["build"] == last), key=lambda r: r["avf"]["share"],
                    default=None)  # fmt: skip
        text = (f"{name} have no rate in {a['environment']}, so no figure above holds them")
        if worst is not None:
            f = worst["avf"]
            text += (f"; on the {build_label(last)} build {100 * f['share']:.0f} % "
                     f"[{100 * f['low']:.0f}, {100 * f['high']:.0f}] of those injected in "
                     f"{worst['site_class']} ({worst['protection']}) ended in silent data "
                     "corruption, a detected error or a hang")
        out.append(text + ".")
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _accuracy_sentence(soak: dict) -> str:
    """A network soak: its accuracy over the mission and its silently wrong answers."""
    net = soak["network"]
    return (
        f"Flown {soak['days']:g} days in {soak['environment']} at {soak['acceleration']:g} "
        f"times its rates with its weights resident, {build_label(soak['build'])} classified "
        f"{net['name']} test images with {_pct(net['accuracy'])} accuracy over the mission "
        f"and {_pct(net['accuracy_last_tenth'])} over its last tenth (fault-free: "
        f"{_pct(net['baseline_accuracy'])}); {_pct(net['sdc_share'])} of its answers were "
        f"silently wrong, {_pct(net['class_changed_share'])} with a changed class, and "
        f"{_pct(net['no_answer_share'])} got no answer."
    )


def accuracy_figure(a: dict):
    """A network's accuracy and silently wrong answers over mission time, per soak."""
    soaks = [s for s in a.get("soaks", []) if s.get("network")]
    if not soaks:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    for soak in soaks:
        net = soak["network"]
        days = [p["day"] for p in net["samples"]]
        label = build_label(soak["build"])
        if Build.from_name(soak["build"]).scrub:
            label += f", SCRUB_PERIOD {soak['scrub_period']}"
        acc = [p["right_share"] for p in net["samples"]]
        line = top.step(days, [100 * (x if x is not None else float("nan")) for x in acc],
                        where="post", label=label)[0]  # fmt: skip
        for key, style in (("sdc_share", "-"), ("class_changed_share", ":")):
            values = [p[key] for p in net["samples"]]
            bottom.step(days, [100 * (x if x is not None else float("nan")) for x in values],
                        where="post", ls=style, color=line.get_color())  # fmt: skip
    base = soaks[0]["network"]["baseline_accuracy"]
    top.axhline(100 * base, color="grey", ls="--", lw=0.8, label=f"fault-free {100 * base:.1f} %")
    top.set_ylabel("accuracy, % of inferences")
    top.legend(fontsize=7)
    bottom.set_ylabel("silently wrong, % of inferences")
    bottom.set_xlabel("simulated days (solid: logits wrong; dotted: predicted class changed)")
    s = soaks[0]
    top.set_title(f"{s['network']['name']}: {s['network']['test_images']} test images in turn, "
                  f"weights resident; {s['environment']} at x{s['acceleration']:g}, seed "
                  f"{a['seed']}", fontsize=8)  # fmt: skip
    return fig


def _span(rate: dict) -> str:
    value, low, high = rate["per_day"]
    return f"{_num(value)} [{_num(low)}, {_num(high)}]"


def soak_figure(a: dict):
    """Cumulative counts over simulated mission time, one panel per soak."""
    soaks = a.get("soaks", [])
    if not soaks:
        return None
    fig, axes = plt.subplots(len(soaks), 1, figsize=(8, 2.8 * len(soaks)), squeeze=False)
    for ax, soak in zip(axes[:, 0], soaks, strict=True):
        days = [p["day"] for p in soak["series"]]
        for kind in ("sdc", "detected", "hang", "sefi", "sel", "uncorrectable", "upsets"):
            counts = [p[kind] for p in soak["series"]]
            if any(counts):
                ax.step(days, counts, where="post", label=kind)
        ax.set_yscale("symlog")
        ax.set_ylabel("cumulative count")
        ax.set_title(f"{build_label(soak['build'])}, SCRUB_PERIOD {soak['scrub_period']}: "
                     f"{soak['environment']} at x{soak['acceleration']:g}, {a['workload']}, "
                     f"seed {a['seed']}", fontsize=8)  # fmt: skip
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncol=4)
    axes[-1, 0].set_xlabel("simulated days")
    return fig


def soak_table(a: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows: per soak, its rates per device-day beside the analytic rate."""
    head = ["build", "SCRUB_PERIOD", "days x rate", "upsets landed", "not landed",
            "SDC / day", "detected / day", "hangs / day", "uncorrectable words / day",
            "single-upset formula", "downtime / year"]  # fmt: skip
    rows = []
    for s in a.get("soaks", []):
        r = s["rates"]
        rows.append([build_label(s["build"]), str(s["scrub_period"]),
                     f"{s['days']:g} x {s['acceleration']:g}", str(sum(s["landed"].values())),
                     str(sum(s["not_landed"].values())), _span(r["sdc"]), _span(r["detected"]),
                     _span(r["hang"]), _span(r["uncorrectable"]),
                     _num(s["analytic_uncorrectable_per_day"]),
                     _num(s["downtime_s"] / s["days"] * 365.25, " s")])  # fmt: skip
    return head, rows


def _figure_svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def outcome_figure(a: dict, kind: str = "sbu"):
    """Stacked outcome shares per site class, the builds side by side, for one kind."""
    rows = [r for r in a["strata"] if r["kind"] == kind and r["injected"]]
    builds = list(dict.fromkeys(r["build"] for r in rows))
    classes = list(dict.fromkeys(r["site_class"] for r in rows))
    fig, ax = plt.subplots(figsize=(10, 0.45 * max(4, len(classes) * len(builds)) + 1.5))
    height = 0.8 / max(1, len(builds))
    for bi, build in enumerate(builds):
        for ci, cls in enumerate(classes):
            row = next((r for r in rows if r["build"] == build and r["site_class"] == cls), None)
            if row is None:
                continue
            y = ci + bi * height
            left = 0.0
            for o in CLASSES:
                share = row["shares"][o.value]["share"]
                ax.barh(y, share, height * 0.9, left=left, color=COLOURS[o.value],
                        label=o.value if (bi, ci) == (0, 0) else None)  # fmt: skip
                left += share
            sdc = row["shares"]["sdc"]
            start = left - sum(row["shares"][o]["share"] for o in ("sdc", "hang"))
            err = [[max(0.0, sdc["share"] - sdc["low"])], [max(0.0, sdc["high"] - sdc["share"])]]
            ax.errorbar(start + sdc["share"], y, xerr=err, fmt="none", ecolor="black",
                        capsize=2, lw=0.8)  # fmt: skip
            ax.text(1.01, y, f"{build_label(build)}  ({row['protection']}, n={row['injected']})",
                    va="center", fontsize=7)  # fmt: skip
    ax.set_yticks([c + 0.4 - height / 2 for c in range(len(classes))], classes, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of injected {kind.upper()} runs (error bar: SDC share, Wilson)")
    ax.set_title(f"Outcome per site class\n{conditions(a)}", fontsize=8)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=5, fontsize=8)
    ax.invert_yaxis()
    return fig


def tradeoff_figure(a: dict):
    """SDC per device-year against each build's cost (area if measured, else energy)."""
    builds = [b for b in a["builds"] if "orbit" in b]
    if not builds:
        return None
    use_area = all("cells" in b["cost"] for b in builds)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for b in builds:
        x = b["cost"]["cells"] if use_area else b["cost"]["energy_per_job_j"] * 1e9
        r = b["orbit"]["sdc"]
        y = max(r["per_year"], 1e-12)
        low, high = max(r["per_year_low"], 1e-12), r["per_year_high"]
        ax.errorbar(x, y, yerr=[[max(0.0, y - low)], [max(0.0, high - y)]], fmt="o", capsize=3)
        ax.annotate(build_label(b["build"]), (x, y), textcoords="offset points", xytext=(6, 4),
                    fontsize=8)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("area, generic cells (make synth)" if use_area else "energy per job, nJ")
    ax.set_ylabel("silent data corruptions per device-year")
    ax.set_title(f"Mitigation trade-off in {a['environment']}: {a['workload']}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    return fig


def mitigation_table(a: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows: per build, its rates next to its cost."""
    classifier = any("sdc_class" in b.get("orbit", {}) for b in a["builds"])
    head = ["build", "SDC / device-year",
            *["class-changing SDC / device-year"] * classifier,
            "detected / device-year", "hangs / device-year",
            "downtime / year", "upsets absorbed / device-year", "cycles / job", "energy / job",
            "cells", "flip-flops"]  # fmt: skip
    rows = []
    for b in a["builds"]:
        c = b["cost"]
        o = b.get("orbit")
        rows.append([
            build_label(b["build"]), _rate(o["sdc"]) if o else "-",
            *([_rate(o["sdc_class"]) if o else "-"] if classifier else []),
            _rate(o["detected"]) if o else "-",
            _rate(o["hang"]) if o else "-",
            _downtime(o) if o else "-", _absorbed(o) if o else "-",
            str(c["cycles_per_job"]), _num(c["energy_per_job_j"] * 1e9, " nJ"),
            str(c.get("cells", "-")), str(c.get("flip_flops", "-")),
        ])  # fmt: skip
    return head, rows


def strata_table(a: dict) -> tuple[list[str], list[list[str]]]:
    classifier = any("sdc_class" in r["shares"] for r in a["strata"])
    head = ["build", "site class", "fault", "protected by", "bits", "injected", "not injected",
            *[o.value for o in CLASSES], "SDC share",
            *["class-changing SDC share"] * classifier, "AVF", "ended by"]  # fmt: skip
    rows = []
    for r in a["strata"]:
        sdc, avf = r["shares"]["sdc"], r["avf"]

        def pct(s: dict | None) -> str:
            if not s:
                return "-"
            return f"{100 * s['share']:.1f} % [{100 * s['low']:.1f}, {100 * s['high']:.1f}]"

        rows.append([build_label(r["build"]), r["site_class"], r["kind"], r["protection"],
                     str(r["bits"]), str(r["injected"]), str(r["counts"]["not_injected"]),
                     *[str(r["counts"][o.value]) for o in CLASSES], pct(sdc),
                     *([pct(r["shares"]["sdc_class"])] if classifier else []), pct(avf),
                     r["rule"]])  # fmt: skip
    return head, rows


NOTES = [
    "Each run injects one fault at a uniform point of one job (BIAS, STREAM or FLUSH "
    "cycle) and compares the result, read back through ECC as the flight software reads "
    "it, with the golden run's. A stuck bit is held for the whole job.",
    "Outcome classes: masked (right, nothing noticed), corrected (right, ECC or TMR "
    "acted), detected (the job ended in error or its result could not be read), SDC "
    "(wrong result delivered as good), hang (only a reset ended it).",
    "A network workload: a run classifies a batch of test images; its fault lands in one "
    "of the chip jobs the layers are tiled into, and the run's logits are compared with "
    "the golden run's. A class-changing SDC changed some image's predicted class; the "
    "other SDCs changed logits only.",
    "A run whose fault was not injected (no such site on this backend, a prediction the "
    "model refuses, a point the job never reached) is counted apart and is in no share "
    "and no rate: it is never counted as masked.",
    "Rates: each stratum's upsets per device-day (its bits x the orbit's rate per bit-day "
    "x the share of its fault kind) times its outcome shares, summed over strata; the "
    "interval sums the strata's interval ends (conservative). SETs and stuck bits have "
    "no orbit rate: they appear as shares only.",
    "Area is Yosys generic synthesis of each build (make synth, docs/AREA.md, kept in "
    "testbed/area/): generic cells and flip-flops, not a foundry library; '-' where "
    "make synth has not measured the build from this RTL.",
    "Energy per job is the firmware's energy model (estimates): multiply-accumulates, "
    "scratchpad accesses and cycles, the same for every protection build; what ECC, TMR "
    "and the scrubber cost shows in their area.",
]


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                  for r in rows)  # fmt: skip
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def write_report(a: dict, out: Path) -> dict[str, Path]:
    """Write report.json, report.md (with PNG figures beside it) and report.html."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html"}
    paths["json"].write_text(json.dumps(a, indent=2) + "\n")
    figures = {"outcomes": outcome_figure(a)}
    if (trade := tradeoff_figure(a)) is not None:
        figures["tradeoff"] = trade
    if (accuracy := accuracy_figure(a)) is not None:
        figures["accuracy"] = accuracy
    if (soak := soak_figure(a)) is not None:
        figures["soak"] = soak
    kinds = list(dict.fromkeys(r["kind"] for r in a["strata"] if r["kind"] != "sbu"))
    for kind in kinds:
        if any(r["kind"] == kind and r["injected"] for r in a["strata"]):
            figures[f"outcomes-{kind}"] = outcome_figure(a, kind)
    svgs, pngs = {}, {}
    for name, fig in figures.items():
        png = out / f"report-{name}.png"
        fig.savefig(png, dpi=110, bbox_inches="tight")
        pngs[name] = png
        svgs[name] = _figure_svg(fig)
    lead = headline(a)
    mit, strata, soaks = mitigation_table(a), strata_table(a), soak_table(a)
    soak_md = ["## Mission soak", "", _md_table(*soaks), ""] if soaks[1] else []
    soak_html = ["<h2>Mission soak</h2>", _html_table(*soaks)] if soaks[1] else []
    md = [f"# Campaign {a['campaign']}: {a['description']}", "", *lead, "",
          f"Conditions: {conditions(a)}.", "", "## Mitigations: what they buy and cost", "",
          _md_table(*mit), "",
          *[f"![{n}]({p.name})" for n, p in pngs.items()], "",
          *soak_md, "## Outcomes per site class and fault kind", "", _md_table(*strata), "",
          "## How to read this", "", *[f"- {n}" for n in NOTES], ""]  # fmt: skip
    paths["md"].write_text("\n".join(md))
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;"
             "padding:0 1em;color:#222}table{border-collapse:collapse;font-size:13px;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
             "th{background:#f3f3f3}.lead{font-size:17px;line-height:1.5}"
             "figure{margin:1.5em 0}")  # fmt: skip
    body = [f"<h1>Campaign {html.escape(a['campaign'])}</h1>",
            f"<p>{html.escape(a['description'])}</p>",
            *[f'<p class="lead">{html.escape(s)}</p>' for s in lead],
            f"<p><b>Conditions:</b> {html.escape(conditions(a))}.</p>",
            "<h2>Mitigations: what they buy and cost</h2>", _html_table(*mit),
            *[f"<figure>{svg[svg.index('<svg'):]}</figure>" for svg in svgs.values()],
            *soak_html, "<h2>Outcomes per site class and fault kind</h2>",
            _html_table(*strata),
            "<h2>How to read this</h2><ul>",
            *[f"<li>{html.escape(n)}</li>" for n in NOTES], "</ul>"]  # fmt: skip
    paths["html"].write_text(
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Campaign "
        f"{html.escape(a['campaign'])}</title><style>{style}</style></head><body>"
        + "\n".join(body) + "</body></html>\n"
    )
    return paths

