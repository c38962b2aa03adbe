"""``make coverage``: line and toggle coverage of the RTL, per module, from the cocotb tests
run under Verilator.

The cocotb regression (``cocotb_tests/``, or the modules named) runs with
``SCC_SIMULATOR=verilator SCC_COVERAGE=1``: every build is compiled with
``--coverage-line --coverage-toggle`` into its own ``sim_build/*-verilator-coverage``
directory, and every test module writes its counts there (``coverage-<module>.dat``).
This module adds them up, point by point, and reports per RTL module how many of its
line and toggle points the tests reached, with the points never reached listed in
``results/coverage.json`` and a table in ``results/coverage.md``.

    python -m testbed.coverage [cocotb_tests/test_scc.py ...]
    python -m testbed.coverage --report     # the figures again from the counts kept

Verilator's coverage file is a text file of lines ``C '<fields>' <count>``; the fields
are key/value pairs, each key after a 0x01 octet and its value after a 0x02 octet
(``f`` file, ``l`` line, ``page`` the kind and module, ``o`` the point's description,
``h`` the instance).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from testbed.rtl_sim import BUILD_ROOT, ROOT

RESULTS = ROOT / "results"
DEFAULT_TESTS = ("cocotb_tests",)
_LINE = re.compile(r"^C '(?P<fields>[^']*)' (?P<count>\d+)$")


def parse(path: Path) -> dict[tuple[str, ...], int]:
    """The points of one coverage file: (kind, module, file, line, description) -> count."""
    points: dict[tuple[str, ...], int] = {}
    for raw in path.read_text(errors="replace").splitlines():
        m = _LINE.match(raw)
        if m is None:
            continue
        fields = dict(part.split("\x02", 1) for part in m["fields"].split("\x01") if "\x02" in part)
        kind, _, module = fields.get("page", "").partition("/")
        module = module.split("__", 1)[0]  # scc_tmr_reg__W8: one module, several widths
        key = (
            kind.removeprefix("v_"),
            module,
            Path(fields.get("f", "")).name,
            fields.get("l", "0"),
            fields.get("o", ""),
        )
        points[key] = points.get(key, 0) + int(m["count"])
    return points


def merge(paths: list[Path]) -> dict[tuple[str, ...], int]:
    total: dict[tuple[str, ...], int] = defaultdict(int)
    for path in paths:
        for key, count in parse(path).items():
            total[key] += count
    return dict(total)


def summary(points: dict[tuple[str, ...], int]) -> dict[str, dict[str, dict]]:
    """Per module and kind (line, toggle): points, reached, and the ones never reached."""
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    groups: dict[tuple[str, str], list[tuple[tuple[str, ...], int]]] = defaultdict(list)
    for key, count in points.items():
        groups[(key[1], key[0])].append((key, count))
    for (module, kind), items in sorted(groups.items()):
        missed = sorted(f"{k[2]}:{k[3]} {k[4]}".strip() for k, c in items if c == 0)
        out[module][kind] = {
            "points": len(items),
            "reached": len(items) - len(missed),
            "share": round((len(items) - len(missed)) / len(items), 4),
            "missed": missed,
        }
    return dict(out)


def table(report: dict[str, dict[str, dict]]) -> str:
    lines = [
        "| module | line points | reached | toggle points | reached |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for module, kinds in report.items():
        cells = []
        for kind in ("line", "toggle"):
            k = kinds.get(kind)
            cells += (
                [str(k["points"]), f"{k['reached']} ({100 * k['share']:.1f} %)"]
                if k
                else ["-", "-"]
            )
        lines.append(f"| `{module}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    report_only = "--report" in args
    tests = [a for a in args if a != "--report"] or list(DEFAULT_TESTS)
    returncode = 0
    if not report_only:
        env = {**os.environ, "SCC_SIMULATOR": "verilator", "SCC_COVERAGE": "1"}
        for old in BUILD_ROOT.glob("*-verilator-coverage/coverage-*.dat"):
            old.unlink()
        returncode = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
            cwd=ROOT, env=env,
        ).returncode  # fmt: skip
    files = sorted(BUILD_ROOT.glob("*-verilator-coverage/coverage-*.dat"))
    if not files:
        print("coverage: no coverage file was written (did the cocotb tests run?)",
              file=sys.stderr)  # fmt: skip
        return 1
    report = summary(merge(files))
    RESULTS.mkdir(exist_ok=True)
    builds = sorted({f.parent.name for f in files})
    (RESULTS / "coverage.json").write_text(json.dumps(
        {"tests": tests, "builds": builds, "files": [str(f) for f in files], "modules": report},
        indent=2,
    ))  # fmt: skip
    text = (
        f"Line and toggle coverage of the RTL under Verilator, from "
        f"{', '.join(sorted({f.stem.removeprefix('coverage-') for f in files}))} over "
        f"{len(builds)} builds ({len(files)} runs), a point counted reached when any build "
        "reached it; points never reached are listed in results/coverage.json.\n\n"
        + table(report) + "\n"
    )
    (RESULTS / "coverage.md").write_text(text)
    print(text)
    if returncode != 0:
        print("coverage: some cocotb tests failed; the figures count the runs that ended",
              file=sys.stderr)  # fmt: skip
    return returncode


if __name__ == "__main__":
    sys.exit(main())
