"""The site map (``testbed.sitemap``) in the model's terms: which entries the model covers.

Every entry of a build's site map is either covered by the model, with one fault site of
``Accelerator.fault_sites()`` for each of its bits, or listed in ``RTL_ONLY`` with the
reason the model has no site there (``tests/sitemap/test_model_coverage.py`` holds both
ways for every kept map). ``MODEL_ENTRIES`` is the one table between the two namings:

- ``u_spm.u_bank<b>.mem_q`` bit ``row * row_cells + cell``: ``SpmCell(b, row, cell)``;
- ``u_array.g_row[i].g_col[j].u_pe.acc_q`` / ``out_q`` bit ``k``: ``AccBit`` / ``OutBit``;
- ``u_regs.u_<register>.q_q[c]`` bit ``k``: ``RegCopy(<REGISTER>, c, k)``;
- ``u_seq.u_<state>.q_q[c]`` bit ``k``: ``SeqCopy(<state>, c, k)``.

When the model gains a site type, add its row to ``MODEL_ENTRIES`` and delete the rows of
``RTL_ONLY`` it covers; the coverage test says which.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from testbed.sitemap import Entry, SiteMap, SiteMapError
from testbed.sitemap_builds import Build

from .faults import AccBit, FaultSite, OutBit, RegCopy, SeqCopy, SpmCell

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


#: Storage only the RTL has: the model predicts outcomes without these registers.
RTL_ONLY: tuple[RtlOnly, ...] = (
    RtlOnly(_PE + r"\.(a_q|b_q)", "operands passing through a PE: the model multiplies "
            "operand words, it does not move them through the array"),
    RtlOnly(_PE + r"\.(valid_q|first_q)", "valid and FIRST tags of a beat in a PE: the model "
            "has no beats in flight"),
    RtlOnly(r"u_array\.g_skew\[\d+\]\.g_delay\.(a_sr_q|b_sr_q)", "skew stages of operands and "
            "tags before the array edge: no beats in flight in the model"),
    RtlOnly(r"u_seq\.(valid_q|first_q)", "the sequencer's beat tags at the array edge: no "
            "beats in flight in the model"),
    RtlOnly(r"u_seq\.bias[01]_q", "the bias buffers: the model adds the bias words read "
            "from the scratchpad, it holds no buffer to flip"),
    RtlOnly(r"u_spm\.u_bank[01]\.(rrow_q|rslot_q|rvalid_q)", "a bank's read register (the row "
            "on its way to the decoder): the model decodes the cells directly"),
    RtlOnly(r"u_spm\.(r0_bank_q|r1_bank_q|scrub_bank_q)", "read routing of the last cycle: "
            "the model has no memory ports"),
    RtlOnly(r"u_spm\.(stage_q|latch_q|rd_bank_q|rd_pend_q)", "the scratchpad window's "
            "staging, read latch and pending read: values in the model, not fault sites"),
    RtlOnly(r"u_axil\.\w+_q", "the AXI4-Lite slave: the model answers whole transactions"),
    RtlOnly(r"u_regs\.(cycles_q|macs_q|corr_q|uncorr_q|mismatch_q)", "counters: values in "
            "the model, not fault sites"),
    RtlOnly(r"g_scrub\.u_scrub\.\w+_q", "the scrubber's state, timer, pointer and pass "
            "count: the model steps the scrubber by count, without fault sites"),
    RtlOnly(r"soft_rst_q", "the SOFT_RESET pulse: the model resets on the write itself"),
    RtlOnly(r"u_seq\.u_\w+\.q_q\[\d\]", "sequencer state without TMR: a flip changes the "
            "job's control flow in ways the model does not predict (NotModelled); RTL "
            "campaigns observe it", tmr=False),
)


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
