"""The scrubber between jobs (``scc_scrub.v`` and the bank read registers it reads through),
as ``Accelerator.idle`` runs it over many idle cycles at once.

Its registers are the model's ``_scrub_state``, ``_scrub_timer``, ``_scrub_ptr`` and
``_scrub_passes``; the banks' read registers are the job path's (``PathState.rrow``,
``rslot``, ``rvalid``, ``scrub_bank_q``), kept across scrub steps, jobs and bus reads as
the RTL keeps them. A step is two cycles: READ loads the row of word ``ptr`` into its
bank's read register, FIX writes back the word that register decodes to when the decoder
corrected it (the single-error flag of the bank the scrubber read in the cycle before),
then moves ``ptr`` on. FIX writes whatever the register holds: entered without its READ
(a flipped state), it writes the bank's last read word, corrected, over word ``ptr``. A
read is counted (ECC_CORR or ECC_UNCORR) at the edge after it, whatever the state is
then.

Stuck bits of these registers and of the ECC counters are held in every cycle: the
timer, pointer and counters count as ``stuck.count_on`` says, a stuck state bit at 0
turns the scrubber's round into a loop that never writes (its bit 0: it never reads;
its bit 1: it reads ``ptr`` forever, never moving on). A state bit stuck at 1 keeps the
scrubber off WAIT and the scratchpad port its own in every cycle; ``Accelerator.stick``
refuses it. Long idle spans are taken whole rounds at a time, exactly as stepping them.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from .cycle_job import codes_of_words
from .ecc import EccStatus
from .packing import int_to_words
from .regs import MASK32
from .secded import code_for
from .stuck import FREE, Bits, count_on, forced, idle_bits

if TYPE_CHECKING:
    from .model import Accelerator

WAIT, READ, FIX = 0, 1, 2

STATE = "g_scrub.u_scrub.state_q"
TIMER = "g_scrub.u_scrub.timer_q"
PTR = "g_scrub.u_scrub.ptr_q"
PASSES = "g_scrub.u_scrub.passes_q"
CORR = "u_regs.corr_q"
UNCORR = "u_regs.uncorr_q"

#: The state after each state (scc_scrub.v; the stray encoding 3 returns to WAIT).
NEXT_STATE = (READ, FIX, WAIT, WAIT)


def bits_of(chip: Accelerator, path: str) -> Bits:
    """The stuck bits of one of the chip's idle registers (``stuck.IDLE_REGISTERS``)."""
    return idle_bits(chip._held).get(path, FREE)


def count_ecc(chip: Accelerator, corr: int, uncorr: int) -> None:
    """The ECC counters after reads counted since they held (``corr``, ``uncorr``), one
    per cycle, their stuck bits held in each."""
    spm = chip.spm
    for path, before, name in ((CORR, corr, "corr"), (UNCORR, uncorr, "uncorr")):
        bits = bits_of(chip, path)
        if bits[0]:
            setattr(spm, name, count_on(before, (getattr(spm, name) - before) & MASK32, 32, bits))


@functools.lru_cache(maxsize=1024)
def fire_after(timer: int, period: int, bits: Bits) -> int | None:
    """WAIT cycles from ``timer`` up to the one whose edge starts READ (counted); None if
    the timer, its stuck bits held, never reaches ``period`` (which is not 0)."""
    if not bits[0]:
        if (timer + 1) & 0xFFFF >= period:
            return 1
        # The 16-bit timer + 1 wraps to 0 and counts from there.
        return 1 + period if timer == 0xFFFF else period - timer
    seen: set[int] = set()
    cycles = 0
    while timer not in seen:
        cycles += 1
        if (timer + 1) & 0xFFFF >= period:
            return cycles
        seen.add(timer)
        timer = forced((timer + 1) & 0xFFFF, bits)
    return None


def _status(chip: Accelerator, code: int) -> tuple[int, EccStatus]:
    """(data, status) of a codeword as the bank's decoder gives it."""
    spm = chip.spm
    data = code & ((1 << spm.dw) - 1)
    if not spm.ecc:
        return data, EccStatus.CLEAN
    fixed, _, status = code_for(spm.dw).decode(data, code >> spm.dw)
    return fixed, EccStatus(status)


def _read_out(chip: Accelerator, bank: int) -> tuple[int, EccStatus]:
    p = chip._path
    return _status(chip, p.rrow[bank][p.rslot[bank]])


def collect(chip: Accelerator) -> None:
    """Count the reads of the cycle before (``rvalid``) at the edge ending this one (not
    on a chip hung at its bound, whose registers stay as they were there)."""
    p = chip._path
    if not (p.rvalid[0] or p.rvalid[1]) or chip._hung:
        return
    corr, uncorr = chip.spm.corr, chip.spm.uncorr
    for bank in (0, 1):
        if p.rvalid[bank]:
            chip.spm.count(_read_out(chip, bank)[1], 1)
    p.rvalid = [0, 0]
    count_ecc(chip, corr, uncorr)


def _bank_of(chip: Accelerator, ptr: int) -> int:
    return (ptr >> chip.build.aw) & 1


def read(chip: Accelerator) -> None:
    """READ: word ``ptr``'s bank loads its row at the edge (counted in the next cycle)."""
    p = chip._path
    word = chip._scrub_ptr & (chip.spm_words - 1)
    bank = word // chip.bank_words
    p.rrow[bank] = codes_of_words(chip.spm, [word])[0][1]
    p.rslot[bank] = word % chip.interleave
    p.rvalid = [int(bank == 0), int(bank == 1)]
    p.scrub_bank_q = bank


def fix(chip: Accelerator) -> None:
    """FIX: write back what word ``ptr``'s bank decodes when the bank read the cycle
    before says it corrected, then move ``ptr`` on (a pass ends at the last word)."""
    p, words = chip._path, chip.spm_words
    ptr = chip._scrub_ptr
    bank = _bank_of(chip, ptr)
    if _read_out(chip, p.scrub_bank_q)[1] == EccStatus.CORRECTED:
        data, _ = _read_out(chip, bank)
        chip.spm.store(ptr & (words - 1), int_to_words(data, chip.n))
    p.scrub_bank_q = bank
    chip._scrub_ptr = forced(0 if ptr == words - 1 else (ptr + 1) & 0xFFFF, bits_of(chip, PTR))
    if ptr == words - 1:
        chip._scrub_passes = count_on(chip._scrub_passes, 1, 32, bits_of(chip, PASSES))


def finish_step(chip: Accelerator) -> None:
    """At START: a step in progress ends within the job's first cycles, before any job
    read, and the scrubber waits (the model does it at once)."""
    collect(chip)
    state = chip._scrub_state
    if state == READ:
        read(chip)
        collect(chip)
        fix(chip)
    elif state == FIX:
        fix(chip)
    chip._scrub_state = forced(WAIT, bits_of(chip, STATE))


def idle(chip: Accelerator, cycles: int) -> None:
    """``cycles`` idle cycles of the scrubber (the chip has one, and no job is hung)."""
    period = chip.config("SCRUB_PERIOD")
    state_bits, timer_bits = bits_of(chip, STATE), bits_of(chip, TIMER)
    restart = forced(0, timer_bits)
    p = chip._path
    while cycles > 0:
        state = chip._scrub_state
        collect(chip)
        if state != WAIT:
            if state == READ:
                read(chip)
            elif state == FIX:
                fix(chip)
            else:
                p.scrub_bank_q = _bank_of(chip, chip._scrub_ptr)
            chip._scrub_state = forced(NEXT_STATE[state], state_bits)
            cycles -= 1
            continue
        p.scrub_bank_q = _bank_of(chip, chip._scrub_ptr)
        if period == 0:
            chip._scrub_timer = restart
            return
        timer = chip._scrub_timer
        fire = fire_after(timer, period, timer_bits)
        if fire is None or fire > cycles:
            chip._scrub_timer = count_on(timer, cycles, 16, timer_bits)
            return
        if timer == restart:
            if not state_bits[0]:
                # Whole steps: WAIT from a restarted timer, READ, FIX.
                rounds, rest = divmod(cycles, fire + 2)
                if rounds:
                    steps(chip, rounds)
                    cycles = rest
                    continue
            else:
                rounds = _rounds_without_fix(chip, cycles, fire, state_bits)
                if rounds:
                    cycles -= rounds
                    continue
        cycles -= fire
        chip._scrub_timer = restart
        chip._scrub_state = forced(READ, state_bits)


def _rounds_without_fix(chip: Accelerator, cycles: int, fire: int, state_bits: Bits) -> int:
    """With a state bit stuck at 0 the scrubber never reaches FIX, so it writes nothing:
    from WAIT with its timer restarted, each round is the same (its timer fires; a READ
    of word ``ptr`` if bit 0 is free, counted in the next round's first cycle). Takes as
    many whole rounds as ``cycles`` holds; returns the cycles they took."""
    reads = forced(READ, state_bits) == READ
    per = fire + reads
    rounds = cycles // per
    if rounds and reads:
        # The last round's read is left for the next cycle to count, as stepping leaves it.
        read(chip)
        status = _read_out(chip, chip._path.scrub_bank_q)[1]
        corr, uncorr = chip.spm.corr, chip.spm.uncorr
        chip.spm.count(status, rounds - 1)
        count_ecc(chip, corr, uncorr)
    return rounds * per


def steps(chip: Accelerator, count: int) -> None:
    """``count`` whole steps (READ, FIX) from ``ptr``: each word read is counted and, if
    corrected, written back; the banks' read registers keep the rows last read."""
    if count <= 0:
        return
    spm = chip.spm
    corr, uncorr = spm.corr, spm.uncorr
    ptr_bits = bits_of(chip, PTR)
    if not ptr_bits[0] and chip._scrub_ptr < chip.spm_words:
        ptr, wraps, last, newest = _run(chip, chip._scrub_ptr, count)
    else:
        ptr, wraps, last, newest = _walk(chip, chip._scrub_ptr, count, ptr_bits)
    count_ecc(chip, corr, uncorr)
    chip._scrub_ptr = ptr
    chip._scrub_passes = count_on(chip._scrub_passes, wraps, 32, bits_of(chip, PASSES))
    p = chip._path
    for bank, (word, code) in last.items():
        row = list(codes_of_words(spm, [word])[0][1])
        row[word % chip.interleave] = code
        p.rrow[bank] = tuple(row)
        p.rslot[bank] = word % chip.interleave
    p.rvalid = [0, 0]
    p.scrub_bank_q = _bank_of(chip, newest)  # what the last FIX's cycle pointed at


def _code(chip: Accelerator, word: int) -> int:
    data, check = chip.spm.peek(word)
    return data | (check << chip.spm.dw if chip.spm.ecc else 0)


def _run(
    chip: Accelerator, ptr: int, count: int
) -> tuple[int, int, dict[int, tuple[int, int]], int]:
    """Steps from ``ptr`` (below SPM_WORDS, no pointer bit stuck) through the words in
    order: (new ptr, passes ended, {bank: (last word it read, that word's codeword
    when read)}, the pointer of the last step)."""
    spm, words, bank_words = chip.spm, chip.spm_words, chip.bank_words
    newest = (ptr + count - 1) % words
    # The last word each bank read: the newest one, and the other bank's last word before
    # the newest one's bank began, if the steps reach back that far. A word read once is
    # read as it stood before these steps; one read again, as its first step left it (a
    # step leaves a word as the next step finds it).
    last: dict[int, tuple[int, int | None]] = {}
    for word in (newest, (newest - newest % bank_words - 1) % words):
        if (newest - word) % words < count:
            once = count // words + ((word - ptr) % words < count % words) == 1
            last[word // bank_words] = (word, _code(chip, word) if once else None)
    first = min(count, words)
    ptr, wraps = _sweep(spm, ptr, first, words)
    # After a full pass only uncorrectable words are left: each pass counts them again.
    passes, rest = divmod(count - first, words)
    if passes:
        spm.count(EccStatus.UNCORRECTABLE, passes * len(spm.dirty))
    ptr, more = _sweep(spm, ptr, rest, words)
    wraps += passes + more
    return ptr, wraps, {bank: (word, _code(chip, word) if code is None else code)
                        for bank, (word, code) in last.items()}, newest  # fmt: skip


def _walk(
    chip: Accelerator, ptr: int, count: int, bits: Bits
) -> tuple[int, int, dict[int, tuple[int, int]], int]:
    """Steps from any ``ptr`` with pointer bits stuck (or a pointer past the last word,
    which reads word ``ptr mod SPM_WORDS`` and wraps only at 0xFFFF): the pointer's path,
    its stuck bits forced at every step, runs into a loop of at most 65536 values; the
    steps up to it are taken one by one, the loop's rounds whole. Returns as ``_run``."""
    spm, words, bank_words = chip.spm, chip.spm_words, chip.bank_words
    path: list[int] = []
    seen: dict[int, int] = {}
    p = forced(ptr, bits)
    while len(path) < count and p not in seen:
        seen[p] = len(path)
        path.append(p)
        p = forced(0 if p == words - 1 else (p + 1) & 0xFFFF, bits)
    last: dict[int, tuple[int, int]] = {}
    wraps = 0
    for q in path:
        word = q & (words - 1)
        last[word // bank_words] = (word, _code(chip, word))
        if word in spm.dirty:
            spm.scrub(word, 1)
        wraps += q == words - 1
    rest = count - len(path)
    if rest:
        loop = path[seen[p] :]
        rounds, part = divmod(rest, len(loop))
        # Every word of the loop was scrubbed on the way in: what is still dirty is
        # uncorrectable, and counted again at each read.
        bad = sum((q & (words - 1)) in spm.dirty for q in loop)
        bad_part = sum((q & (words - 1)) in spm.dirty for q in loop[:part])
        spm.count(EccStatus.UNCORRECTABLE, rounds * bad + bad_part)
        wraps += rounds * loop.count(words - 1) + loop[:part].count(words - 1)
        tail = loop[:part] if rounds == 0 else loop[part:] + loop[:part]
        for q in tail:
            word = q & (words - 1)
            last[word // bank_words] = (word, _code(chip, word))
        return loop[part], wraps, last, tail[-1]
    return p, wraps, last, path[-1]


def _sweep(spm, ptr: int, count: int, words: int) -> tuple[int, int]:
    """Scrub ``count`` (at most ``words``) words from ``ptr`` on, wrapping at the end;
    the pointer after them and how often it wrapped."""
    wraps = 0
    while count:
        seg = min(count, words - ptr)
        spm.scrub(ptr, seg)
        ptr += seg
        count -= seg
        if ptr == words:
            ptr, wraps = 0, wraps + 1
    return ptr, wraps
