"""What a campaign injects: strata of the site map, and each injection drawn from its index.

A stratum is one site class of a build's site map (testbed/sitemaps) under one fault
kind. Its population is every (bit, injection point) pair: the bits of the class's
entries that the kind can hit, times the cycles of the workload's chip jobs (BIAS,
STREAM and FLUSH of every tile of every job, ``campaign.workloads``: one job for a GEMM,
a network's layers as the flight software tiles them); a stuck-at instead takes each bit
at 0 and at 1 for the whole (single) job. Each stratum
is sampled on its own and its results weighted by its bits, so that per-chip rates
compose correctly whatever the sample sizes.

Injection ``i`` of a stratum is drawn from a generator seeded by the campaign seed, the
build, the stratum and ``i`` alone, so a campaign gives the same injections however many
workers run it, in whatever order, and a resumed campaign continues where it stopped.
A population of up to ``WITHOUT_REPLACEMENT`` faults is sampled without replacement
(a fixed permutation); a larger one with replacement (a repeat is then unlikely).
"""

from __future__ import annotations

import random
import zlib
from bisect import bisect_right
from dataclasses import dataclass
from functools import cached_property
from itertools import accumulate

import numpy as np

from campaign.workloads import workload_of
from firmware_sim.accel import Accelerator, PhaseSpan, SpmCell
from firmware_sim.accel.sitemap_sites import model_site
from testbed.clusters import draw as draw_cluster
from testbed.config.campaign import Campaign
from testbed.config.environment import Environment
from testbed.sitemap import Entry, SiteClass, SiteMap
from testbed.sitemap_builds import Build

WITHOUT_REPLACEMENT = 1 << 20
#: Cluster sizes of an MBU when the campaign names no environment: the smallest.
DEFAULT_MBU = ((2,), (1.0,), 0.5)


def eligible(entry: Entry, kind: str) -> bool:
    """Whether fault ``kind`` can hit ``entry``: a multi-bit upset hits scratchpad cells,
    a transient or a stuck bit a register (a SET once per register, on the net its TMR
    copies share)."""
    if kind == "mbu":
        return entry.cls is SiteClass.OPERAND_MEMORY
    if kind == "set":
        return entry.kind == "flop" and entry.copy in (None, 0)
    if kind == "stuck_at":
        return entry.kind == "flop"
    return True


@dataclass(frozen=True)
class Stratum:
    """One site class under one fault kind, on one build. ``skip`` holds bits of its
    entries that are no site of the kind (a SET on a net several registers load is the
    first load's: the others are skipped, so that the net counts once)."""

    build: str
    site_class: SiteClass
    kind: str
    entries: tuple[Entry, ...]
    points: int
    skip: frozenset[tuple[str, int]] = frozenset()

    @property
    def key(self) -> str:
        return f"{self.site_class.value}/{self.kind}"

    @cached_property
    def bits(self) -> int:
        return sum(e.bits for e in self.entries) - len(self._skipped)

    @cached_property
    def _starts(self) -> list[int]:
        return list(accumulate((e.bits for e in self.entries), initial=0))

    @cached_property
    def _skipped(self) -> list[int]:
        """The skipped bits as indices over all entries' bits, in order."""
        starts = {e.name: self._starts[k] for k, e in enumerate(self.entries)}
        return sorted(starts[name] + bit for name, bit in self.skip if name in starts)

    @property
    def population(self) -> int:
        """Faults the stratum holds: bits x points (x 2 stuck values)."""
        return self.bits * (2 if self.kind == "stuck_at" else self.points)

    def locate(self, bit: int) -> tuple[Entry, int]:
        for skipped in self._skipped:  # the bit-th of the bits not skipped
            if skipped <= bit:
                bit += 1
            else:
                break
        k = bisect_right(self._starts, bit) - 1
        return self.entries[k], bit - self._starts[k]


@dataclass(frozen=True)
class Injection:
    """One fault of a campaign, enough to replay it: where, what and when."""

    build: str
    stratum: str
    index: int
    kind: str
    entry: str
    bit: int
    #: The job point (tile, phase, cycle) and its job cycle (CHECK = 0).
    tile: int
    phase: str
    cycle: int
    job_cycle: int
    #: A multi-bit upset's cluster: cells and the direction they run in.
    size: int = 1
    orientation: str = ""
    #: A stuck-at's value.
    value: int = 0
    #: The chip job of the workload the point is in (a network runs several).
    job: int = 0

    @property
    def site_class(self) -> SiteClass:
        """The site class of the stratum the injection belongs to."""
        return SiteClass(self.stratum.split("/", 1)[0])

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, row: dict) -> Injection:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__ if k in row})


def _stable(text: str) -> int:
    return zlib.crc32(text.encode())


class Plan:
    """The strata of one build under a campaign, and the injections drawn from them."""

    def __init__(self, campaign: Campaign, build: Build, sitemap: SiteMap | None = None) -> None:
        self.campaign = campaign
        self.build = build
        self.sitemap = sitemap or SiteMap.load(build)
        self.workload = workload_of(campaign, build)
        #: Every job point of the run: (chip job, span) in order, and where each starts.
        self.spans: list[tuple[int, PhaseSpan]] = []
        for j, job in enumerate(self.workload.jobs):
            chip = Accelerator(**build.options())
            place = chip.load_job(**job.job_args())
            if j == 0:
                #: Where the first job's C lies in the scratchpad: (octet address, octets),
                #: as service 6 names it.
                self.c_region = (place.c_addr * build.n, place.c_words * build.n)
            self.spans += [(j, span) for span in chip.job_schedule()]
        self.points = sum(s.cycles for _, s in self.spans)
        self._span_starts = list(accumulate((s.cycles for _, s in self.spans), initial=0))
        self.strata: list[Stratum] = []
        for cls in campaign.site_classes():
            for kind in campaign.faults:
                entries = tuple(e for e in self.sitemap if e.cls is cls and eligible(e, kind))
                skip = frozenset(
                    load for net in self.sitemap.nets for load in net.loads[1:]
                ) if kind == "set" else frozenset()  # fmt: skip
                if entries:
                    stratum = Stratum(build.name, cls, kind, entries, self.points, skip)
                    self.strata.append(stratum)
        self._perms: dict[str, np.ndarray] = {}
        #: Per stratum: the seed of its draws and the prefix of its MBU shapes' seeds.
        self._seeds: dict[str, tuple[list[int], str]] = {}
        env = campaign.environment_config
        self._mbu = _mbu_shape(env)

    def memory_cell(self, entry_name: str, bit: int) -> tuple[int, int, int]:
        """The scratchpad cell (bank, row, cell) of bit ``bit`` of a memory entry, through
        the build's interleaving (docs/REGISTERS.md, "Physical layout")."""
        site = model_site(self.sitemap.entry(entry_name), bit)
        assert isinstance(site, SpmCell), f"{entry_name} is not a scratchpad memory"
        return site.bank, site.row, site.cell

    def stratum(self, key: str) -> Stratum:
        for s in self.strata:
            if s.key == key:
                return s
        raise KeyError(f"build {self.build.name} has no stratum {key}")

    def _fault(self, stratum: Stratum, index: int) -> int:
        """The index of fault ``index`` of the stratum within its population."""
        n = stratum.population
        seed = self._seed(stratum)[0]
        if n <= WITHOUT_REPLACEMENT:
            if index >= n:
                raise IndexError(f"{stratum.key} holds {n} faults; injection {index} repeats one")
            perm = self._perms.get(stratum.key)
            if perm is None:
                perm = self._perms[stratum.key] = np.random.default_rng(seed).permutation(n)
            return int(perm[index])
        return int(np.random.default_rng([*seed, index]).integers(n))

    def _seed(self, stratum: Stratum) -> tuple[list[int], str]:
        found = self._seeds.get(stratum.key)
        if found is None:
            name = self.build.name
            found = self._seeds[stratum.key] = (
                [self.campaign.seed, _stable(name), _stable(stratum.key)],
                f"{self.campaign.seed}/{name}/{stratum.key}/",
            )
        return found

    def injection(self, stratum: Stratum, index: int) -> Injection:
        """Injection ``index`` of ``stratum``: the same for the same campaign, always."""
        fault = self._fault(stratum, index)
        if stratum.kind == "stuck_at":
            bit, value = divmod(fault, 2)
            point = 0
        else:
            bit, point = divmod(fault, stratum.points)
            value = 0
        entry, entry_bit = stratum.locate(bit)
        k = bisect_right(self._span_starts, point) - 1
        job, span = self.spans[k]
        offset = point - self._span_starts[k]
        size, orientation = 1, ""
        if stratum.kind == "mbu":
            rng = random.Random(f"{self._seed(stratum)[1]}{index}")
            sizes, weights, bit_line_share = self._mbu
            size = rng.choices(sizes, weights)[0]
            orientation = draw_cluster(size, rng, bit_line_share).orientation.value
        return Injection(
            build=stratum.build, stratum=stratum.key, index=index, kind=stratum.kind,
            entry=entry.name, bit=entry_bit, tile=span.tile, phase=span.phase.value,
            cycle=offset, job_cycle=span.start + offset, size=size,
            orientation=orientation, value=value, job=job,
        )  # fmt: skip


def _mbu_shape(env: Environment | None) -> tuple[tuple[int, ...], tuple[float, ...], float]:
    if env is None:
        return DEFAULT_MBU
    mb = env.multi_bit
    return tuple(mb.clusters.sizes), tuple(mb.clusters.probabilities), mb.bit_line_share.value

