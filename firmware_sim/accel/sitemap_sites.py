"""The site map (``testbed.sitemap``) in the model's terms: which entries the model covers.

Every entry of a build's site map is either covered by the model, with one fault site of
``Accelerator.fault_sites()`` for each of its bits, or listed in ``RTL_ONLY`` with the
reason the model has no site there (``tests/sitemap/test_model_coverage.py`` holds both
ways for every kept map). ``MODEL_ENTRIES`` is the one table between the two namings:

- ``u_spm.u_bank<b>.mem_q`` bit ``row * row_cells + cell``: ``SpmCell(b, row, cell)``;
- ``u_array.g_row[i].g_col[j].u_pe.acc_q`` / ``out_q`` bit ``k``: ``AccBit`` / ``OutBit``;
- ``u_regs.u_<register>.q_q[c]`` bit ``k``: ``RegCopy(<REGISTER>, c, k)``;
- ``u_seq.u_<state>.q_q[c]`` bit ``k``: ``SeqCopy(<state>, c, k)`` (with or without TMR);
- any other flop of the job path (``cycle_state.flop_list``: operands and tags in the PEs
  and the skew, the bias buffers, the banks' read registers and routing, the counters, the
  scrubber) bit ``k``: ``FlopBit(<name>, k)``, predicted by the cycle-level twin.

``transient_site`` is the site of a single-event transient (SET) latched by an entry.

When the model gains a site type, add its row to ``MODEL_ENTRIES`` and delete the rows of
``RTL_ONLY`` it covers; the coverage test says which.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from testbed.sitemap import Entry, SiteMap, SiteMapError
from testbed.sitemap_builds import Build

from .cycle_state import flop_list
from .faults import AccBit, FaultSite, FlopBit, OutBit, RegCopy, SeqCopy, SetBit, SpmCell

_PE = r"u_array\.g_row\[(?P<i>\d+)\]\.g_col\[(?P<j>\d+)\]\.u_pe"


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """Site-map entries of one model site type: their path pattern and the map both ways."""

    kind: type
    pattern: str
    #: (match groups, bit of the entry, entry) -> the model's site.
    to_site: Callable[[dict[str, str], int, Entry], FaultSite]
    #: model site -> (entry name, word of the entry, bit of the word).
    to_entry: Callable[[FaultSite], tuple[str, int, int]]


def _spm_site(g: dict[str, str], bit: int, entry: Entry) -> FaultSite:
    row, cell = entry.locate(bit)
    return SpmCell(int(g["bank"]), row, cell)


MODEL_ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry(
        SpmCell,
        r"u_spm\.u_bank(?P<bank>[01])\.mem_q",
        _spm_site,
        lambda s: (f"u_spm.u_bank{s.bank}.mem_q", s.row, s.cell),
    ),
    ModelEntry(
        AccBit,
        _PE + r"\.acc_q",
        lambda g, bit, e: AccBit(int(g["i"]), int(g["j"]), bit),
        lambda s: (f"u_array.g_row[{s.i}].g_col[{s.j}].u_pe.acc_q", 0, s.bit),
    ),
    ModelEntry(
        OutBit,
        _PE + r"\.out_q",
        lambda g, bit, e: OutBit(int(g["i"]), int(g["j"]), bit),
        lambda s: (f"u_array.g_row[{s.i}].g_col[{s.j}].u_pe.out_q", 0, s.bit),
    ),
    ModelEntry(
        RegCopy,
        r"u_regs\.u_(?P<name>\w+)\.q_q\[(?P<copy>\d)\]",
        lambda g, bit, e: RegCopy(g["name"].upper(), int(g["copy"]), bit),
        lambda s: (f"u_regs.u_{s.name.lower()}.q_q[{s.copy}]", 0, s.bit),
    ),
    ModelEntry(
        SeqCopy,
        r"u_seq\.u_(?P<name>\w+)\.q_q\[(?P<copy>\d)\]",
        lambda g, bit, e: SeqCopy(g["name"], int(g["copy"]), bit),
        lambda s: (f"u_seq.u_{s.name}.q_q[{s.copy}]", 0, s.bit),
    ),
    ModelEntry(
        FlopBit,
        # The job path's flops without a site kind of their own (cycle_state.flop_list).
        _PE + r"\.(a_q|b_q|valid_q|first_q)"
        r"|u_array\.g_skew\[\d+\]\.g_delay\.(a_sr_q|b_sr_q)"
        r"|u_seq\.(valid_q|first_q|bias[01]_q)"
        r"|u_spm\.u_bank[01]\.(rrow_q|rslot_q|rvalid_q)"
        r"|u_spm\.(r0_bank_q|r1_bank_q|scrub_bank_q)"
        r"|u_regs\.(cycles_q|macs_q|corr_q|uncorr_q|mismatch_q)"
        r"|g_scrub\.u_scrub\.\w+_q",
        lambda g, bit, e: FlopBit(e.name, bit),
        lambda s: (s.path if s.copy is None else f"{s.path}[{s.copy}]", 0, s.bit),
    ),
)


@dataclass(frozen=True, slots=True)
class RtlOnly:
    """Site-map entries the model has no fault site for, and why."""

    pattern: str
    reason: str
    #: The row holds only for builds with this TMR setting (None: every build).
    tmr: bool | None = None

    def applies(self, entry: Entry, build: Build) -> bool:
        """True if this row lists ``entry`` of ``build``."""
        tmr_ok = self.tmr is None or self.tmr == build.tmr
        return tmr_ok and re.fullmatch(self.pattern, entry.name) is not None


#: Storage only the RTL has: the model answers whole bus transactions and resets.
RTL_ONLY: tuple[RtlOnly, ...] = (
    RtlOnly(r"u_spm\.(stage_q|latch_q|rd_bank_q|rd_pend_q)", "the scratchpad window's "
            "staging, read latch and pending read: the model serves a bus access whole"),
    RtlOnly(r"u_axil\.\w+_q", "the AXI4-Lite slave: the model answers whole transactions"),
    RtlOnly(r"soft_rst_q", "the SOFT_RESET pulse: the model resets on the write itself"),
)


def job_path_sites(build: Build) -> list[FaultSite]:
    """Every bit of the job path's flops that the cycle-level twin holds for ``build``
    (``cycle_state.flop_list``), as the model's sites (``FlopBit`` where no other kind)."""
    from .cycle_job import classic_site
    from .cycle_state import Build as TwinBuild

    twin = TwinBuild(build.n, build.bank_words, build.interleave, build.ecc, build.scrub,
                     build.tmr)  # fmt: skip
    out: list[FaultSite] = []
    for flop in flop_list(twin):
        copies = range(flop.copies) if flop.path.endswith(".q_q") else [None]
        for copy in copies:
            out += [classic_site(FlopBit(flop.path, bit, copy)) for bit in range(flop.width)]
    return out


def transient_site(entry: Entry, bit: int, tmr: bool) -> FaultSite | None:
    """The site of a SET latched by bit ``bit`` of ``entry``: on a TMR register the next
    value all three copies load (``SetBit``), on a plain flop a flip of that flop in that
    cycle; None for a memory (its cells latch no net)."""
    if entry.kind != "flop":
        return None
    if tmr and entry.copy is not None:
        return SetBit(entry.name.rsplit("[", 1)[0], bit)
    return model_site(entry, bit)


def transient_sites(sitemap: SiteMap, entry: Entry, bit: int, tmr: bool) -> list[FaultSite]:
    """The sites a SET latched by bit ``bit`` of ``entry`` reaches: that of each register
    bit that loads the same net (``SiteMap.loads``; ``transient_site`` for each), empty
    for a memory."""
    out = []
    for name, load_bit in sitemap.loads(entry.name, bit):
        site = transient_site(sitemap.entry(name), load_bit, tmr)
        if site is None:
            return []
        out.append(site)
    return out


def model_entry(entry: Entry) -> tuple[ModelEntry, dict[str, str]] | None:
    """The row of ``MODEL_ENTRIES`` an entry's name matches, with its groups, or None."""
    for row in MODEL_ENTRIES:
        match = re.fullmatch(row.pattern, entry.name)
        if match:
            return row, match.groupdict()
    return None


def model_site(entry: Entry, bit: int) -> FaultSite | None:
    """The model's fault site for bit ``bit`` of a site-map entry (None: no such type)."""
    found = model_entry(entry)
    if found is None:
        return None
    row, groups = found
    return row.to_site(groups, bit, entry)


def entry_bit(site: FaultSite, sitemap: SiteMap) -> tuple[Entry, int]:
    """The site-map entry and bit that a model fault site is."""
    for row in MODEL_ENTRIES:
        if isinstance(site, row.kind):
            name, word, bit = row.to_entry(site)
            entry = sitemap.entry(name)
            if not (0 <= word < entry.depth and 0 <= bit < entry.width):
                raise SiteMapError(f"{site!r}: outside {name} ({entry.depth} x {entry.width})")
            return entry, word * entry.width + bit
    raise SiteMapError(f"{site!r}: no row of MODEL_ENTRIES maps this site type to the site map")


def rtl_only_reason(entry: Entry, build: Build) -> str | None:
    """Why the model has no site for ``entry`` of ``build``, or None if ``RTL_ONLY`` says
    nothing of it."""
    for row in RTL_ONLY:
        if row.applies(entry, build):
            return row.reason
    return None
