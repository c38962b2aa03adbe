"""The SCC site map: every storage element of a build that radiation can flip.

The maps are generated from the RTL by Yosys (``testbed/sitemap_gen.py``) and kept, one
file per build, in ``testbed/sitemaps/``. An entry is a register or a memory, named by
its path below ``scc_top`` as cocotb addresses it (``u_array.g_row[0].g_col[1].u_pe.acc_q``,
``u_regs.u_dim_m.q_q[2]``, ``u_spm.u_bank0.mem_q``), with its width, depth (words of a
memory, 1 for a register), bits and class; copies of a TMR register carry their copy
index. Bits are numbered across the whole map in entry order, so ``site(i)`` for a
uniform ``i`` below ``total_bits`` is a uniformly chosen bit of the chip, and
``select(cls)`` narrows the map to some classes.

    python -m testbed.sitemap generate [--build NAME ...]   # regenerate maps from the RTL
    python -m testbed.sitemap check [--build NAME ...]      # fail if a map is stale
"""

from __future__ import annotations

import argparse
import bisect
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from testbed.sitemap_builds import STANDARD_BUILDS, Build, BuildError

MAPS_DIR = Path(__file__).resolve().parent / "sitemaps"


_PART = re.compile(r"(\w+)(?:\[(\d+)\])?")


def path_parts(name: str) -> list[tuple[str, int | None]]:
    """A site name as (scope or signal, index or None) steps from ``scc_top`` down.

    ``u_array.g_row[0].g_col[1].u_pe.acc_q`` is ``u_array``, ``g_row`` [0], ``g_col`` [1],
    ``u_pe``, ``acc_q``: the steps a simulator handle takes (``dut.u_array.g_row[0]...``).
    """
    parts = []
    for step in name.split("."):
        match = _PART.fullmatch(step)
        if match is None:
            raise SiteMapError(f"{name}: {step!r} is not a scope or signal name")
        parts.append((match[1], None if match[2] is None else int(match[2])))
    return parts


class SiteMapError(Exception):
    """A site map that is missing, stale or asked for something it does not hold."""


class SiteClass(StrEnum):
    """What a storage element holds (docs/REGISTERS.md, "Fault sites")."""

    #: Scratchpad cells: SECDED codewords of operands, bias and results.
    OPERAND_MEMORY = "operand_memory"
    #: A bank's read register: the row of the last read, before decoding. Apart from the
    #: pipeline registers because ECC covers it like the cells it was read from.
    MEMORY_READ = "memory_read"
    #: The int32 accumulator of a PE.
    ACCUMULATOR = "accumulator"
    #: The int32 result register of a PE (a finished tile's sum).
    RESULT = "result_register"
    #: Operands, valid and first tags on their way through the skew and the PEs, and
    #: the banks' read routing.
    PIPELINE = "pipeline_register"
    #: The sequencer's two bias buffers (N int32 each).
    BIAS_BUFFER = "bias_buffer"
    #: Configuration registers (IRQ_EN .. SCRUB_PERIOD), TMR copies.
    CONFIGURATION = "configuration_register"
    #: The sequencer's state, tile and step counters, error flag and status, TMR copies.
    SEQUENCER = "sequencer_state"
    #: The scrubber's state, timer and pointer.
    SCRUBBER = "scrubber_state"
    #: Bus data on its way in or out: AXI4-Lite address, data and response, the
    #: scratchpad window's staging and read latch.
    BUS_STAGING = "bus_staging"
    #: Bus handshake state. Apart from the staging because a flip can hang a transaction
    #: or answer one that was never made, not just change a value.
    BUS_STATE = "bus_state"
    #: Counters read over the bus (CYCLES, MACS, ECC and TMR counts, SCRUB_PASSES).
    COUNTER = "counter"
    #: The SOFT_RESET pulse register. Apart because a flip resets the chip.
    RESET = "reset"


@dataclass(frozen=True, slots=True)
class Entry:
    """One storage element: a register (``kind`` "flop") or a memory (``kind`` "memory")."""

    name: str
    cls: SiteClass
    kind: str
    width: int
    depth: int = 1
    #: Copy index 0..2 of a TMR register (0 alone without TMR); None elsewhere.
    copy: int | None = None

    @property
    def bits(self) -> int:
        """Storage bits: width x depth."""
        return self.width * self.depth

    def locate(self, bit: int) -> tuple[int, int]:
        """(word, bit in the word) of bit ``bit`` of the entry (word 0 for a register)."""
        if not 0 <= bit < self.bits:
            raise SiteMapError(f"{self.name}: bit {bit} outside 0 .. {self.bits - 1}")
        return divmod(bit, self.width)

    def to_json(self) -> dict[str, object]:
        """The entry as one object of a map file."""
        row: dict[str, object] = {"name": self.name, "class": str(self.cls), "kind": self.kind}
        if self.copy is not None:
            row["copy"] = self.copy
        row.update(width=self.width, depth=self.depth, bits=self.bits)
        return row

    @classmethod
    def from_json(cls, row: dict) -> Entry:
        """An entry from one object of a map file."""
        entry = cls(
            name=row["name"],
            cls=SiteClass(row["class"]),
            kind=row["kind"],
            width=row["width"],
            depth=row["depth"],
            copy=row.get("copy"),
        )
        if entry.bits != row["bits"]:
            raise SiteMapError(f"{entry.name}: bits {row['bits']} is not width x depth")
        return entry


@dataclass(frozen=True)
class Net:
    """A net that several different registers load at the same clock edge: the bits of
    entries (entry name, bit) whose next value it is. A transient on it (SET) is latched
    by all of them. The copies of one TMR register, which share their next value too,
    are not listed: every copy of a TMR register is a load of the same net by rule."""

    name: str
    loads: tuple[tuple[str, int], ...]

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "loads": [list(load) for load in self.loads]}

    @classmethod
    def from_json(cls, row: dict) -> Net:
        return cls(row["name"], tuple((str(e), int(b)) for e, b in row["loads"]))


@dataclass(frozen=True)
class SiteMap:
    """The storage elements of one build, with uniform indexing of their bits."""

    build: Build
    entries: tuple[Entry, ...]
    #: Storage that no output depends on: listed for completeness, holds no sites.
    unobservable: tuple[Entry, ...] = ()
    rtl_sha256: str = ""
    #: Nets loaded by several different registers (``Net``).
    nets: tuple[Net, ...] = ()
    _starts: list[int] = field(init=False, repr=False, compare=False)
    _by_name: dict[str, Entry] = field(init=False, repr=False, compare=False)
    _net_of: dict[tuple[str, int], Net] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts, total = [], 0
        for entry in self.entries:
            starts.append(total)
            total += entry.bits
        object.__setattr__(self, "_starts", starts)
        object.__setattr__(self, "_by_name", {e.name: e for e in self.entries})
        net_of = {load: net for net in self.nets for load in net.loads}
        object.__setattr__(self, "_net_of", net_of)

    def loads(self, name: str, bit: int) -> tuple[tuple[str, int], ...]:
        """Every register bit that loads the net bit ``bit`` of entry ``name`` loads (it
        alone, unless a ``Net`` lists it): where a transient on that net lands."""
        net = self._net_of.get((name, bit))
        return net.loads if net is not None else ((name, bit),)

    def net_head(self, name: str, bit: int) -> bool:
        """Whether (``name``, ``bit``) stands for its net: the first of its loads (so that
        a net is counted once when transients are sampled by register bit)."""
        return self.loads(name, bit)[0] == (name, bit)

    @classmethod
    def for_build(
        cls,
        *,
        n: int = 4,
        bank_words: int = 1024,
        interleave: int = 1,
        ecc: bool = True,
        scrub: bool = True,
        tmr: bool = True,
    ) -> SiteMap:
        """The committed map of the build with these options."""
        try:
            build = Build(n, bank_words, interleave, ecc, scrub, tmr)
        except BuildError as err:
            raise SiteMapError(str(err)) from None
        return cls.load(build)

    @classmethod
    def load(cls, build: Build) -> SiteMap:
        """The committed map of ``build``; a missing one names the command that makes it."""
        path = MAPS_DIR / f"{build.name}.json"
        if not path.exists():
            raise SiteMapError(
                f"no site map for build {build.name}: generate it with "
                f"python -m testbed.sitemap generate --build {build.name}"
            )
        return cls.from_text(path.read_text(), str(path))

    @classmethod
    def from_text(cls, text: str, where: str = "site map") -> SiteMap:
        """A map from the text of a map file."""
        try:
            data = json.loads(text)
            options = {k: v for k, v in data["build"].items() if k != "name"}
            return cls(
                build=Build(**options),
                entries=tuple(Entry.from_json(r) for r in data["entries"]),
                unobservable=tuple(Entry.from_json(r) for r in data["unobservable"]),
                rtl_sha256=data["rtl_sha256"],
                nets=tuple(Net.from_json(r) for r in data.get("nets", ())),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise SiteMapError(f"{where}: not a site map ({err})") from None

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def total_bits(self) -> int:
        """Storage bits of every entry."""
        return sum(e.bits for e in self.entries)

    def entry(self, name: str) -> Entry:
        """The entry called ``name`` (a path below ``scc_top``)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise SiteMapError(f"build {self.build.name} has no storage element {name}") from None

    def bits_by_class(self) -> dict[SiteClass, int]:
        """Storage bits of each class present, in ``SiteClass`` order."""
        totals = dict.fromkeys(SiteClass, 0)
        for entry in self.entries:
            totals[entry.cls] += entry.bits
        return {cls: bits for cls, bits in totals.items() if bits}

    def site(self, index: int) -> tuple[Entry, int]:
        """Bit ``index`` of the map, 0 .. total_bits-1, as (entry, bit of the entry)."""
        if not 0 <= index < self.total_bits:
            raise SiteMapError(f"site {index} outside 0 .. {self.total_bits - 1}")
        k = bisect.bisect_right(self._starts, index) - 1
        return self.entries[k], index - self._starts[k]

    def select(self, *classes: SiteClass | str) -> SiteMap:
        """The map narrowed to entries of the given classes (to sample by class)."""
        try:
            wanted = {SiteClass(c) for c in classes}
        except ValueError:
            raise SiteMapError(
                f"unknown site class in {classes}: classes are {', '.join(SiteClass)}"
            ) from None
        return SiteMap(
            build=self.build,
            entries=tuple(e for e in self.entries if e.cls in wanted),
            rtl_sha256=self.rtl_sha256,
        )


def _builds(names: list[str] | None) -> list[Build]:
    if names:
        return [Build.from_name(name) for name in names]
    committed = [Build.from_name(p.stem) for p in sorted(MAPS_DIR.glob("*.json"))]
    return list(dict.fromkeys([*STANDARD_BUILDS, *committed]))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``generate`` or ``check`` the maps of some builds (all kept ones)."""
    parser = argparse.ArgumentParser(prog="python -m testbed.sitemap", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["generate", "check"])
    parser.add_argument("--build", action="append", metavar="NAME",
                        help="build name, e.g. n4-bw1024-il1-ecc-scrub-tmr (repeatable; "
                             "default: every kept build)")  # fmt: skip
    args = parser.parse_args(argv)
    from testbed import sitemap_gen

    try:
        builds = _builds(args.build)
        stale = []
        for build in builds:
            if args.action == "generate":
                path = sitemap_gen.write(build)
                print(f"{path.relative_to(sitemap_gen.ROOT)}: "
                      f"{SiteMap.load(build).total_bits} bits")  # fmt: skip
            else:
                path = sitemap_gen.map_path(build)
                if not path.exists():
                    stale.append((build, "no map kept"))
                elif path.read_text() != sitemap_gen.generate(build):
                    stale.append((build, "map differs from the RTL"))
        for build, why in stale:
            print(f"{build.name}: {why}; run {sitemap_gen.command(build)}", file=sys.stderr)
        return 1 if stale else 0
    except (BuildError, SiteMapError) as err:
        print(f"python -m testbed.sitemap: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # Run the imported module's main, so that its errors are the classes the generator
    # raises (this file also runs as __main__, a second copy of the module).
    from testbed.sitemap import main as _main

    sys.exit(_main())
