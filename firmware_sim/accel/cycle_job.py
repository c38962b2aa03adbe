"""The model's side of the cycle-level twin: sites as flop paths, a job run by the twin,
and the pipeline state an analytic job leaves behind.

``Accelerator.run`` hands a job to ``run_twin`` when a scheduled fault is one the analytic
job (``job``) cannot predict; ``settle_after_analytic`` keeps the twin's pipeline state
(PE registers, bias buffers, bank read registers) what the RTL holds after a job the
analytic path ran, for a later job whose faults may expose it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .cycle import Action, CycleTwin, TwinResult, Watch
from .cycle_state import Build, PathState
from .faults import AccBit, FaultSite, FlopBit, OutBit, RegCopy, SeqCopy, SetBit, SpmCell
from .job import Descriptor, Job, wrap32
from .layout import Layout
from .regs import CONFIG_STORAGE, SEQ_WIDTHS, from_storage, to_storage
from .scratchpad import Scratchpad
from .stuck import Held, hold, vote

#: Extra cycles past twice a job's clean length after which a job still BUSY is a hang.
HANG_MARGIN = 8192


def hang_bound(d: Descriptor | None) -> int:
    """Job cycles after which a job still BUSY counts as hung: twice its clean length
    plus ``HANG_MARGIN`` (a sequencer counter that wraps, such as ``t``, finishes well
    inside it; a tile counter run past its last value does not)."""
    clean = d.done_cycle(None) + 1 if d is not None and d.valid() else 2
    return 2 * clean + HANG_MARGIN


def flop_of(site: FaultSite) -> FlopBit | None:
    """The flop bit a register site names (None for a scratchpad cell or a transient)."""
    if isinstance(site, AccBit):
        return FlopBit(f"u_array.g_row[{site.i}].g_col[{site.j}].u_pe.acc_q", site.bit)
    if isinstance(site, OutBit):
        return FlopBit(f"u_array.g_row[{site.i}].g_col[{site.j}].u_pe.out_q", site.bit)
    if isinstance(site, RegCopy):
        return FlopBit(f"u_regs.u_{site.name.lower()}.q_q", site.bit, site.copy)
    if isinstance(site, SeqCopy):
        return FlopBit(f"u_seq.u_{site.name}.q_q", site.bit, site.copy)
    if isinstance(site, FlopBit):
        return site
    return None


_CFG_PATHS = {f"u_regs.u_{name.lower()}.q_q": name for name in CONFIG_STORAGE}
_SEQ_PATHS = {f"u_seq.u_{name}.q_q": name for name in SEQ_WIDTHS}


def classic_site(site: FlopBit) -> FaultSite:
    """A flop bit as the analytic model's own site kind where it has one, else itself."""
    import re

    if site.path in _CFG_PATHS:
        return RegCopy(_CFG_PATHS[site.path], site.copy or 0, site.bit)
    if site.path in _SEQ_PATHS:
        return SeqCopy(_SEQ_PATHS[site.path], site.copy or 0, site.bit)
    m = re.fullmatch(r"u_array\.g_row\[(\d+)\]\.g_col\[(\d+)\]\.u_pe\.(acc_q|out_q)", site.path)
    if m and site.copy is None:
        kind = AccBit if m.group(3) == "acc_q" else OutBit
        return kind(int(m.group(1)), int(m.group(2)), site.bit)
    return site


def action_of(site: FaultSite, layout: Layout) -> Action:
    """What the twin does for a site in its cycle."""
    if isinstance(site, SpmCell):
        word, bit = layout.word_bit_of(site)
        return ("mem", word, bit)
    if isinstance(site, SetBit):
        return ("set", site.path, site.bit)
    flop = flop_of(site)
    assert flop is not None
    return (flop.path, flop.bit, flop.copy)


def codes_of(spm: Scratchpad) -> list[int]:
    """Every scratchpad word as one codeword int, check bits above the data."""
    dw = spm.dw
    raw = spm.data.tobytes()
    n = spm.n
    checks = spm.check.tolist()
    return [
        int.from_bytes(raw[w * n : (w + 1) * n], "little") | (checks[w] << dw if spm.ecc else 0)
        for w in range(spm.words)
    ]


@dataclass
class Counters:
    """The registers of the chip a job changes besides the scratchpad, in model terms."""

    cycles: int
    macs: int
    mismatch: int
    status: int
    scrub_ptr: int
    scrub_passes: int
    scrub_state: int
    scrub_timer: int
    config: dict[str, int]


def run_twin(
    build: Build,
    path: PathState,
    spm: Scratchpad,
    config: dict[str, int],
    counters: tuple[int, int, int],
    timed: Sequence[tuple[int, FaultSite]],
    bound: int,
    stuck: tuple[Held, ...] = (),
    watch: Watch | None = None,
) -> tuple[TwinResult, Counters]:
    """Run one job in the twin from START: ``config`` the voted configuration values,
    ``counters`` (mismatch, scrub_ptr, scrub_passes), ``timed`` (job cycle, site) faults,
    ``stuck`` bits held every cycle, ``watch`` shown every cycle (``golden``).

    Updates ``path`` and the scratchpad (words and ECC counters) in place."""
    codes = start_twin(build, path, spm, config, counters)
    before = list(codes)
    twin = CycleTwin(build, path, codes, stuck)
    result = twin.run(twin_actions(timed, spm.layout), bound, watch=watch)
    return result, finish_twin(twin, result, spm, before, len(timed))


def run_from_idle(
    build: Build,
    path: PathState,
    spm: Scratchpad,
    config: dict[str, int],
    counters: dict[str, int],
    scrub: dict[str, int],
    bound: int,
    stuck: tuple[Held, ...] = (),
) -> tuple[TwinResult, Counters]:
    """Run the twin from an idle chip whose sequencer an upset voted out of IDLE, with no
    START: ``path.seq`` holds the sequencer as the upset left it (copies in agreement),
    ``config`` the voted configuration, ``counters`` and ``scrub`` the registers of
    ``scc_regs.v`` and ``scc_scrub.v`` by flop name. Runs until the sequencer is back in
    IDLE, or ``bound`` cycles (a hang); updates ``path`` and the scratchpad in place."""
    for name, value in config.items():
        path.cfg[name] = [to_storage(name, value)] * build.copies
    path.counters.update(counters)
    path.scrub.update(scrub)
    codes = codes_of(spm)
    before = list(codes)
    twin = CycleTwin(build, path, codes, stuck)
    result = twin.run({}, bound)
    return result, finish_twin(twin, result, spm, before, 0)


def start_twin(
    build: Build,
    path: PathState,
    spm: Scratchpad,
    config: dict[str, int],
    counters: tuple[int, int, int],
) -> list[int]:
    """Load ``path`` as START leaves it (see ``run_twin``); the scratchpad's codewords."""
    for name, value in config.items():
        path.cfg[name] = [to_storage(name, value)] * build.copies
    seq = {"state": 1, "status": 0}
    for name in SEQ_WIDTHS:
        value = seq.get(name, vote(path.seq[name]))
        path.seq[name] = [value] * build.copies
    mismatch, ptr, passes = counters
    path.counters.update(cycles_q=0, macs_q=0, corr_q=spm.corr, uncorr_q=spm.uncorr,
                         mismatch_q=mismatch)  # fmt: skip
    path.scrub.update(state_q=0, timer_q=0, ptr_q=ptr, passes_q=passes)
    return codes_of(spm)


def twin_actions(
    timed: Sequence[tuple[int, FaultSite]], layout: Layout
) -> dict[int, list[tuple[int, Action]]]:
    """The twin's actions of (job cycle, site) faults, by cycle, each with its index."""
    actions: dict[int, list[tuple[int, Action]]] = {}
    for ident, (x, site) in enumerate(timed):
        actions.setdefault(x, []).append((ident, action_of(site, layout)))
    return actions


def finish_twin(
    twin: CycleTwin,
    result: TwinResult,
    spm: Scratchpad,
    before: list[int],
    faults: int,
    words: Iterable[int] | None = None,
) -> Counters:
    """After ``twin.run``: settle, write the words that changed since ``before`` back
    (only ``words`` are looked at, every word if None) and read the counters."""
    path, codes, stuck = twin.st, twin.codes, twin.stuck
    applied = set(result.applied)
    result.skipped = [i for i in range(faults) if i not in applied]
    if not result.hung:
        twin.settle()
        hold(path, stuck)
    changed = [w for w in (range(spm.words) if words is None else words) if codes[w] != before[w]]
    spm.poke_many(changed, [codes[w] for w in changed])
    cnt = path.counters
    spm.corr, spm.uncorr = cnt["corr_q"], cnt["uncorr_q"]
    scrub_state = path.scrub["state_q"]
    return Counters(
        cycles=cnt["cycles_q"],
        macs=cnt["macs_q"],
        mismatch=cnt["mismatch_q"],
        status=vote(path.seq["status"]),
        scrub_ptr=path.scrub["ptr_q"],
        scrub_passes=path.scrub["passes_q"],
        # A stray encoding 3 returns to WAIT at the next edge without a step.
        scrub_state=scrub_state if scrub_state < 3 else 0,
        scrub_timer=path.scrub["timer_q"],
        config={name: from_storage(name, vote(c)) for name, c in path.cfg.items()},
    )


def c_before(spm: Scratchpad, d: Descriptor) -> tuple[np.ndarray, np.ndarray] | None:
    """The C region's codewords before a job, where a bank row holds several words (a
    read's row snapshot may predate the job's writes to its neighbours)."""
    if spm.layout.interleave == 1:
        return None
    lo, hi = d.c_addr, d.c_addr + d.c_words
    return spm.data[lo:hi].copy(), spm.check[lo:hi].copy()


def settle_after_check(path: PathState) -> None:
    """The sequencer counters after a job that failed CHECK: CHECK cleared them."""
    for name in ("rb", "cb", "t", "ecc"):
        path.seq[name] = [0] * path.b.copies


def settle_after_analytic(
    path: PathState,
    spm: Scratchpad,
    d: Descriptor,
    job: Job,
    before: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """The pipeline state the RTL holds some cycles after a job the analytic path ran.

    PE result registers hold the last tile's sums (accumulators 0 after FLUSH's FIRST; an
    ECC abort leaves the aborted tile's sums in them and the tile before's in the result
    registers), the tile counters the last tile, the bias buffers the last column
    blocks' bias, the bank read registers
    the rows of the last A and B words read as they stood then (``before``: the C region
    at START, from ``c_before``), the operand pipelines those words. PE upsets and cell
    flips scheduled in that job are not carried over into this state.
    """
    reads = job.reads
    if reads is None:
        return
    n, k, mb = d.n, d.k, d.mb
    last = d.tiles - 1 if reads.abort is None else reads.abort
    # The tile counters stay at the last tile; an abort leaves the ECC flag set.
    r_last, c_last = d.tile_rc(last)
    for name, value in (("rb", r_last), ("cb", c_last), ("t", 0),
                        ("ecc", int(reads.abort is not None))):  # fmt: skip
        path.seq[name] = [value] * path.b.copies
    words = reads.words

    def block(tile: int) -> np.ndarray:
        r, c = d.tile_rc(tile)
        a_t = words["a"][r * k : (r + 1) * k].copy()
        b_t = words["b"][c * k : (c + 1) * k].copy()
        for name, index, data in reads.override.get(tile, []):
            (a_t if name == "a" else b_t)[index % k] = data
        prod = a_t.view(np.int8).T.astype(np.int64) @ b_t.view(np.int8).astype(np.int64)
        return wrap32(prod)

    path.pipe[1:3] = 0
    path.skew[1:3] = 0
    if reads.abort is None:
        path.out = block(last)
        path.acc = np.zeros((n, n), dtype=np.int64)
    else:
        path.out = block(last - 1) if last >= 1 else path.acc.copy()
        path.acc = block(last)
    if d.bias_en:
        c_last = last // mb
        for c in range(max(c_last - 1, 0), c_last + 1):
            path.bias[c & 1] = words["bias"][4 * c : 4 * c + 4].reshape(-1)
    read_at = d.stream_start(last) + k - 1
    bw, il = d.bank_words, spm.layout.interleave
    last_words = [d.a_addr + r_last * k + k - 1, d.b_addr + c_last * k + k - 1]
    for bank, (word, row) in enumerate(codes_of_words(spm, last_words)):
        if before is not None:
            row = _row_at(spm, d, job.done, word, row, read_at, before)
        path.rrow[bank] = row
        path.rslot[bank] = (word % bw) % il
    twin = CycleTwin(path.b, path, [])
    twin.fill_operands()


def _row_at(
    spm: Scratchpad,
    d: Descriptor,
    done: int,
    word: int,
    row: tuple[int, ...],
    cycle: int,
    before: tuple[np.ndarray, np.ndarray],
) -> tuple[int, ...]:
    """A row's codewords as a read in job ``cycle`` saw them: C words the job wrote only
    in that cycle or later still hold what they held at START."""
    il = spm.layout.interleave
    base = word - word % il
    out = list(row)
    for slot in range(il):
        rel = base + slot - d.c_addr
        if not 0 <= rel < d.c_words:
            continue
        mw, q = divmod(rel, d.per_row)
        m, c = divmod(mw, d.nb)
        tile = c * d.mb + m // d.n
        written = d.write_start(tile) + (m % d.n) * d.per_row + q
        if tile >= done or written >= cycle:
            data, check = before
            value = int.from_bytes(data[rel].tobytes(), "little")
            out[slot] = value | (int(check[rel]) << spm.dw if spm.ecc else 0)
    return tuple(out)


def codes_of_words(spm: Scratchpad, words: list[int]) -> list[tuple[int, tuple[int, ...]]]:
    """(word, the codewords of its physical row) for each word."""
    il = spm.layout.interleave
    out = []
    for word in words:
        base = word - word % il
        row = tuple(
            int.from_bytes(spm.data[w].tobytes(), "little")
            | (int(spm.check[w]) << spm.dw if spm.ecc else 0)
            for w in range(base, base + il)
        )
        out.append((word, row))
    return out
