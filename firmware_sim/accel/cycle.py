"""A register-transfer-level twin of the SCC's job path, one clock edge at a time.

Written from ``scc_seq.v``, ``scc_array.v``, ``scc_pe.v``, ``scc_epilogue.v``,
``scc_spm.v``, ``scc_spm_bank.v``, ``scc_scrub.v``, ``scc_tmr_reg.v`` and the counters of
``scc_regs.v``: each cycle computes the combinational values from the flops
(``cycle_state.PathState``) as the RTL does, invalid state encodings and ``default``
branches included, then loads every flop once. It starts in CHECK (job cycle 0) from the
model's state at START and runs until the sequencer is back in IDLE, or until ``bound``
cycles have passed with the chip still BUSY: a hang. Once every fault is applied, a run
whose tile counters cannot reach FLUSH before the bound takes its STREAM periods a whole
period at a time (``LEAP``, ``CycleTwin._leap``), ending bit for bit as stepping them
would: counters, scratchpad words, every flop. Likewise a step counter flipped past the
end of its phase, which counts on to its wrap while nothing else moves, takes those
cycles at once (``CycleTwin._idle_run``).

Faults are applied at the start of their job cycle, as a deposit at the falling edge
inside the cycle is: the cycle's combinational logic and the edge that ends it see them.
A cycle in which the sequencer is already IDLE is not part of the job; faults scheduled
there are not applied. Stuck bits (``stuck``) are forced at the start of every job cycle,
after its faults; stuck state bits that vote IDLE out of IDLE keep the sequencer going
(until the bound: a hang). ``CycleTwin.set_bits`` holds single-event transients on the next
value of a TMR register (``scc_tmr_reg.v``'s ``next``, shared by the copies): every copy
loads the flipped value at the edge that ends the cycle.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np

from .cycle_state import Build, PathState
from .regs import MASK32
from .secded import Code, code_for
from .stuck import Held, hold

S_IDLE, S_CHECK, S_BIAS, S_STREAM, S_FLUSH, S_DONE = range(6)
ERR_ECC = 1
ERR_DESC = 2

#: Whether a run certain to hang advances whole STREAM periods at once (``CycleTwin._leap``);
#: off, every cycle is stepped (the reference the leaps are tested against).
LEAP = True

#: Flip actions a job cycle can carry: a flop bit (path, bit, copy), a codeword bit of a
#: scratchpad word ("mem", word, bit) or a transient on a TMR register's next value
#: ("set", path, bit).
Action = tuple


@dataclass
class TwinResult:
    """How the job ended: ``hung`` (still BUSY at the bound) or back in IDLE after
    ``cycles`` job cycles; ``applied`` and ``skipped`` count the fault actions.
    ``converged``: the run stopped at the start of job cycle ``cycles`` because a
    ``Watch`` found its state equal to a recorded run's (``golden``)."""

    hung: bool
    cycles: int
    applied: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    converged: bool = False


class Frame(NamedTuple):
    """The twin's flops at the start of a job cycle, before its faults.

    ``main``: every flop that steers the job or reaches its results; the rest is kept
    apart because a difference there may be harmless for the rest of a job (``golden``):
    ``counters`` (cycles, macs, corr, uncorr, mismatch; only ever counted on),
    ``scrub`` (the scrubber's pointer, passes and bank: read only while it steps),
    ``bias`` (the bias buffers: read only with BIAS_EN).
    """

    main: tuple
    counters: tuple[int, int, int, int, int]
    scrub: tuple[int, int, int]
    bias: bytes


class Watch(Protocol):
    """Sees the twin's state at the start of every job cycle from ``after`` on, and in
    cycle ``after - 1`` once more after its faults (unless they hold a transient, or
    bits are stuck)."""

    #: First job cycle shown to ``at``.
    after: int
    #: Whether ``read`` and ``write`` are called for every scratchpad access.
    records: bool

    def at(self, x: int, head: tuple, counters: tuple, twin: CycleTwin) -> bool:
        """Called before job cycle ``x``'s faults with the twin's sequencer and voted
        configuration (``head``) and counters, which it keeps in locals (``frame`` makes
        the whole frame of them); True stops the run there."""
        ...

    def read(self, x: int, row: int) -> None:
        """Row ``row`` (word address // INTERLEAVE) is read in job cycle ``x``."""
        ...

    def write(self, x: int, word: int, code: int, source: tuple[int, int, int] | None) -> None:
        """``word`` takes codeword ``code`` at the edge that ends job cycle ``x``: a result
        (``source`` = (wr_cb, u, wr_cols) of ``CycleTwin.result_code``) or a scrub
        write (None)."""
        ...


def load_frame(st: PathState, frame: Frame) -> None:
    """Put a recorded frame into ``st`` (TMR copies in agreement), so that a run started
    at that frame's cycle continues as the recorded one did."""
    b = st.b
    n = b.n
    (state, rb, cb, t, ecc, status, cfg, st.valid_q, st.first_q, rrow, rslot, rvalid,
     st.r0_bank_q, st.r1_bank_q, s_state, s_timer, pipe, acc, out, skew) = frame.main  # fmt: skip
    c = b.copies
    st.seq = {"state": [state] * c, "rb": [rb] * c, "cb": [cb] * c, "t": [t] * c,
              "ecc": [ecc] * c, "status": [status] * c}  # fmt: skip
    st.cfg = {name: [v] * c for name, v in cfg}
    st.rrow, st.rslot, st.rvalid = list(rrow), list(rslot), list(rvalid)
    st.pipe = np.frombuffer(pipe, dtype=np.int64).reshape(4, n, n).copy()
    st.acc = np.frombuffer(acc, dtype=np.int64).reshape(n, n).copy()
    st.out = np.frombuffer(out, dtype=np.int64).reshape(n, n).copy()
    st.skew = np.frombuffer(skew, dtype=np.int64).reshape(4, n, n).copy()
    st.bias = np.frombuffer(frame.bias, dtype=np.uint8).reshape(2, 4 * n).copy()
    st.counters = dict(zip(("cycles_q", "macs_q", "corr_q", "uncorr_q", "mismatch_q"),
                           frame.counters, strict=True))  # fmt: skip
    ptr, passes, st.scrub_bank_q = frame.scrub
    st.scrub = {"state_q": s_state, "timer_q": s_timer, "ptr_q": ptr, "passes_q": passes}


def _vote(copies: list[int]) -> int:
    if len(copies) == 1:
        return copies[0]
    a, b, c = copies
    return (a & b) | (b & c) | (a & c)


def _votes(regs: dict[str, list[int]]) -> dict[str, int]:
    """``_vote`` of every register, inline (the twin votes them at every fault)."""
    return {name: c[0] if len(c) == 1 else (c[0] & c[1]) | (c[1] & c[2]) | (c[0] & c[2])
            for name, c in regs.items()}  # fmt: skip


class _Geometry:
    """What scc_seq.v derives from the voted configuration alone."""

    def __init__(self, b: Build, cfg: dict[str, int]) -> None:
        n, logn, bank = b.n, b.logn, b.bank_words
        self.m, self.k, self.ncols = cfg["DIM_M"], cfg["DIM_K"], cfg["DIM_N"]
        self.a_addr, self.b_addr = cfg["A_ADDR"], cfg["B_ADDR"]
        self.bias_addr, self.c_addr = cfg["BIAS_ADDR"], cfg["C_ADDR"]
        epi = cfg["EPILOGUE"]
        self.bias_en, self.relu, self.out32 = epi & 1, epi >> 1 & 1, epi >> 2 & 1
        self.shift = epi >> 3 & 0x1F
        m, k, nc = self.m, self.k, self.ncols
        self.mb = ((m + n - 1) >> logn) & MASK32
        self.nb = ((nc + n - 1) >> logn) & MASK32
        self.w = 4 if self.out32 else 1
        p_min = (self.w + 1) * n + 1
        self.period = max(k + 1, p_min)
        spm = 2 * bank
        a_lo, b_lo, bias_lo, c_lo = self.a_addr, self.b_addr, self.bias_addr, self.c_addr
        a_hi = a_lo + self.mb * k
        b_hi = b_lo + self.nb * k
        bias_hi = bias_lo + 4 * self.nb
        c_hi = c_lo + m * self.nb * self.w
        self.desc_ok = (
            m != 0 and k != 0 and nc != 0 and a_hi <= bank and b_lo >= bank and b_hi <= spm
            and (not self.bias_en or bias_hi <= spm) and c_hi <= spm
            and not (c_lo < a_hi and a_lo < c_hi) and not (c_lo < b_hi and b_lo < c_hi)
            and not (self.bias_en and c_lo < bias_hi and bias_lo < c_hi)
        )  # fmt: skip


#: ``_Geometry`` of (build, configuration) pairs the twins have met.
_GEOMETRIES: dict[tuple[Build, tuple], _Geometry] = {}


def _geometry(b: Build, cfg: dict[str, int]) -> _Geometry:
    """``_Geometry(b, cfg)``, made once per configuration (a campaign starts thousands of
    twins on one job)."""
    key = (b, tuple(cfg.items()))
    geo = _GEOMETRIES.get(key)
    if geo is None:
        geo = _GEOMETRIES[key] = _Geometry(b, cfg)
    return geo


@functools.cache
def _code_tables(dw: int, ecc: bool) -> tuple[Code | None, tuple[int, ...], dict[int, int]]:
    """The SECDED code of a data width, its check bits' masks and its syndrome of each
    data bit, made once (a golden run starts many twins)."""
    if not ecc:
        return None, (), {}
    code = code_for(dw)
    return code, code.masks, {col: i for i, col in enumerate(code.columns)}


class CycleTwin:
    """One job of one build, run cycle by cycle over a ``PathState`` and the scratchpad's
    codewords (``codes[word] = check << DW | data``)."""

    def __init__(
        self, build: Build, state: PathState, codes: list[int], stuck: tuple[Held, ...] = ()
    ) -> None:
        self.b = build
        self.st = state
        self.codes = codes
        #: Bits held at a value every cycle (``stuck``), after the cycle's flips.
        self.stuck = stuck
        #: Whether stuck state bits vote IDLE out of IDLE: the sequencer never rests then.
        self.never_idle = _held_state(build, stuck, S_IDLE) != S_IDLE
        self.code, self._masks, self._syndromes = _code_tables(build.dw, build.ecc)
        self._decoded: dict[int, tuple[int, int, int]] = {}
        self._outputs: dict[int, tuple[int, int, int, np.ndarray]] = {}
        self.written: set[int] = set()

    # --- scratchpad words ------------------------------------------------------------

    def decode(self, code: int) -> tuple[int, int, int]:
        """(data, single, double) of a codeword, as scc_secded_dec.v decodes it."""
        hit = self._decoded.get(code)
        if hit is not None:
            return hit
        dmask = (1 << self.b.dw) - 1
        data = code & dmask
        if self.code is None:
            out = (data, 0, 0)
        else:
            syndrome = self._check(data) ^ (code >> self.b.dw)
            if syndrome == 0:
                out = (data, 0, 0)
            elif syndrome.bit_count() == 1:
                out = (data, 1, 0)
            elif syndrome in self._syndromes:
                out = (data ^ (1 << self._syndromes[syndrome]), 1, 0)
            else:
                out = (data, 0, 1)
        if len(self._decoded) < 65536:
            self._decoded[code] = out
        return out

    def encode(self, data: int) -> int:
        """The codeword scc_secded_enc.v stores for a data word."""
        if self.code is None:
            return data
        return self._check(data) << self.b.dw | data

    def _check(self, data: int) -> int:
        """The check bits of a data word (the parities of secded's masks)."""
        check = 0
        for p, mask in enumerate(self._masks):
            check |= ((data & mask).bit_count() & 1) << p
        return check

    def _bank_out(self, bank: int) -> tuple[int, int, int, np.ndarray]:
        """(data, single, double, data as int8 lanes) of a bank's read output."""
        return self._output_of(self.st.rrow[bank][self.st.rslot[bank]])

    def _output_of(self, code: int) -> tuple[int, int, int, np.ndarray]:
        """(data, single, double, data as int8 lanes) of a bank that read ``code``."""
        hit = self._outputs.get(code)
        if hit is None:
            data, single, double = self.decode(code)
            raw = np.frombuffer(data.to_bytes(self.b.n, "little"), dtype=np.int8)
            hit = (data, single, double, raw.astype(np.int64))
            if len(self._outputs) < 65536:
                self._outputs[code] = hit
        return hit

    # --- the job ---------------------------------------------------------------------

    def run(
        self,
        actions: dict[int, list[tuple[int, Action]]],
        bound: int,
        start: int = 0,
        watch: Watch | None = None,
    ) -> TwinResult:
        """Run from job cycle ``start`` (CHECK = 0; the state holds that cycle's start,
        TMR copies in agreement, as ``load_frame`` leaves it); ``actions[x]`` = [(id,
        action)] applied in job cycle x; ``watch`` sees every cycle's frame."""
        b, st = self.b, self.st
        rec = watch if watch is not None and watch.records else None
        n, logn, aw = b.n, b.logn, b.aw
        bank_words, il = b.bank_words, b.interleave
        amask = bank_words - 1
        smask = il - 1
        spm_words = 2 * bank_words
        result = TwinResult(False, 0)
        cfg_v = _votes(st.cfg)
        geo = _geometry(b, cfg_v)
        seq = _votes(st.seq)
        state, rb, cb, t = seq["state"], seq["rb"], seq["cb"], seq["t"]
        ecc, status = seq["ecc"], seq["status"]
        cnt = st.counters
        cycles_q, macs_q = cnt["cycles_q"], cnt["macs_q"]
        corr_q, uncorr_q, mismatch_q = cnt["corr_q"], cnt["uncorr_q"], cnt["mismatch_q"]
        scr = st.scrub
        out = [self._bank_out(0), self._bank_out(1)]
        # Leaps need every fault applied, no bit held and no watch looking (LEAP).
        leap_after = max(actions, default=-1) if LEAP and not self.stuck else bound
        x = start - 1
        while x < bound:
            x += 1
            if t == 0 and state == S_STREAM and x > leap_after and not ecc:
                if not hangs_past(geo, x, rb, cb, bound):
                    leap_after = bound  # regular periods reach FLUSH in time: no leap
                elif watch is None or watch.after > bound:
                    leapt = self._leap(geo, x, bound, rb, cb, status,
                                       (cycles_q, macs_q, corr_q, uncorr_q))  # fmt: skip
                    if leapt is not None:
                        x, state, rb, cb, ecc, status, cycles_q, macs_q, corr_q, uncorr_q = leapt
                        out = [self._bank_out(0), self._bank_out(1)]
                        x -= 1
                        continue
            if watch is not None and x >= watch.after:
                head = (state, rb, cb, t, ecc, status, tuple(cfg_v.items()))
                counters = (cycles_q & MASK32, macs_q & MASK32, corr_q & MASK32,
                            uncorr_q & MASK32, mismatch_q & MASK32)  # fmt: skip
                if watch.at(x, head, counters, self):
                    result.converged = True
                    break
            if state == S_IDLE and not self.never_idle:
                break
            if x == bound:
                result.hung = True
                break
            if t >= geo.period and x > leap_after and (watch is None or watch.after > bound):
                # A step counter past the end of its phase (each ends by the period) counts
                # on to its wrap, and nothing else moves: those cycles at once, bit for bit.
                idle = self._idle_run(geo, state, rb, t, bound - x)
                if idle:
                    x += idle - 1
                    t = (t + idle) & 0x1FFF
                    cycles_q += idle
                    continue
            mismatch = 0
            sets: dict[str, int] = {}
            todo = actions.get(x)
            if todo or self.stuck:
                # Counters live in locals between faults (wrapped when written back).
                cnt.update(cycles_q=cycles_q & MASK32, macs_q=macs_q & MASK32,
                           corr_q=corr_q & MASK32, uncorr_q=uncorr_q & MASK32,
                           mismatch_q=mismatch_q & MASK32)  # fmt: skip
                # Only TMR registers (``u_regs.u_*.q_q``, ``u_seq.u_*.q_q``) and stuck bits
                # reach the registers the loop keeps voted in locals.
                regs = bool(self.stuck) or any(
                    a[0] not in ("mem", "set") and a[0].endswith(".q_q") for _, a in todo or ()
                )
                if regs:
                    # Copies agree between cycles: spell them out, flip, vote again.
                    for name, v in (("state", state), ("rb", rb), ("cb", cb), ("t", t),
                                    ("ecc", ecc), ("status", status)):  # fmt: skip
                        st.seq[name] = [v] * b.copies
                    for name, v in cfg_v.items():
                        st.cfg[name] = [v] * b.copies
                for ident, act in todo or ():
                    self._apply(act, sets)
                    result.applied.append(ident)
                hold(st, self.stuck)
                cycles_q, macs_q = cnt["cycles_q"], cnt["macs_q"]
                corr_q, uncorr_q, mismatch_q = cnt["corr_q"], cnt["uncorr_q"], cnt["mismatch_q"]
                if regs:
                    for copies in list(st.cfg.values()) + list(st.seq.values()):
                        if len(copies) == 3 and not copies[0] == copies[1] == copies[2]:
                            mismatch = 1
                    new_cfg = _votes(st.cfg)
                    if new_cfg != cfg_v:
                        cfg_v = new_cfg
                        geo = _geometry(b, cfg_v)
                    seq = _votes(st.seq)
                    state, rb, cb, t = seq["state"], seq["rb"], seq["cb"], seq["t"]
                    ecc, status = seq["ecc"], seq["status"]
                out = [self._bank_out(0), self._bank_out(1)]
                if watch is not None and x + 1 == watch.after and not sets and not self.stuck:
                    # After the last faults, before their cycle: a fault that changed
                    # nothing the job acts on joins the watched run at once. This
                    # cycle's TMR_MISMATCH count is due already.
                    head = (state, rb, cb, t, ecc, status, tuple(cfg_v.items()))
                    counters = (cycles_q & MASK32, macs_q & MASK32, corr_q & MASK32,
                                uncorr_q & MASK32, (mismatch_q + mismatch) & MASK32)  # fmt: skip
                    if watch.at(x, head, counters, self):
                        result.converged = True
                        break
            g = geo
            k32, mb, nb, w32 = g.k, g.mb, g.nb, g.w
            # A fault in this cycle may have put the sequencer in IDLE already.
            busy = state != S_IDLE

            # ---- spm read outputs ---------------------------------------------------
            r0 = out[st.r0_bank_q]
            r1 = out[st.r1_bank_q]
            r0_valid = st.rvalid[st.r0_bank_q] if busy else 0
            r1_valid = st.rvalid[st.r1_bank_q] if busy else 0
            read_double = (r0_valid & r0[2]) | (r1_valid & r1[2])

            # ---- sequencer, combinational ---------------------------------------------
            last_row = rb + 1 == mb
            last_col = cb + 1 == nb
            first_tile = rb == 0 and cb == 0
            if state == S_FLUSH:
                wr_rb = rb
            else:
                wr_rb = (mb - 1) & MASK32 if rb == 0 else rb - 1
            wr_cb = cb if (state == S_FLUSH or rb != 0) else (cb - 1) & MASK32
            wr_tile = state == S_FLUSH or (state == S_STREAM and not first_tile)
            rows_v = min((g.m - (rb << logn)) & MASK32, n)
            cols_v = min((g.ncols - (cb << logn)) & MASK32, n)
            wr_rows = min((g.m - ((wr_rb << logn) & MASK32)) & MASK32, n)
            u = (t - (n + 1)) & MASK32
            writing = wr_tile and t >= n + 1 and u < (w32 * wr_rows) & MASK32
            flush_len = n + 1 + w32 * rows_v

            m0_en = m1_en = 0
            m0_addr = m1_addr = 0
            if state == S_BIAS:
                if t < 4:
                    m0_en = 1
                    m0_addr = (g.bias_addr + (cb << 2) + t) & 0xFFFF
            elif state == S_STREAM and t < k32:
                m0_en = m1_en = 1
                m0_addr = (g.a_addr + rb * k32 + t) & 0xFFFF
                m1_addr = (g.b_addr + cb * k32 + t) & 0xFFFF

            # ---- next state -------------------------------------------------------
            state_d, rb_d, cb_d, t_d, ecc_d, status_d = state, rb, cb, t, ecc, status
            if (state == S_BIAS or state == S_STREAM) and read_double:
                ecc_d = 1
            macs_en = False
            if state == S_CHECK:
                rb_d = cb_d = t_d = ecc_d = 0
                if not g.desc_ok:
                    status_d = (status_d & 3) | ERR_DESC << 2
                    state_d = S_DONE
                else:
                    state_d = S_BIAS if g.bias_en else S_STREAM
            elif state == S_BIAS:
                t_d = (t + 1) & 0x1FFF
                if t == 4:
                    t_d = 0
                    state_d = S_STREAM
            elif state == S_STREAM:
                t_d = (t + 1) & 0x1FFF
                if t + 1 == g.period:
                    t_d = 0
                    macs_en = not ecc_d
                    if ecc_d:
                        status_d = (status_d & 3) | ERR_ECC << 2
                        state_d = S_DONE
                    else:
                        ecc_d = 0
                        if not last_row:
                            rb_d = (rb + 1) & 0xFFF
                        elif not last_col:
                            rb_d = 0
                            cb_d = (cb + 1) & 0xFFF
                            state_d = S_BIAS if g.bias_en else S_STREAM
                        else:
                            state_d = S_FLUSH
            elif state == S_FLUSH:
                t_d = (t + 1) & 0x1FFF
                if t + 1 == flush_len:
                    t_d = 0
                    state_d = S_DONE
            elif state == S_DONE:
                status_d = (status & ~3) | 1 | (int(status >> 2 != 0) << 1)
                state_d = S_IDLE
            elif state != S_IDLE:
                state_d = S_IDLE

            # ---- scrubber ---------------------------------------------------------
            if b.scrub:
                s_state = scr["state_q"]
                s_active = s_state != 0
                s_read = s_state == 1
                s_ptr = scr["ptr_q"]
                s_bank = (s_ptr >> aw) & 1
                s_write = s_state == 2 and out[st.scrub_bank_q][1]
                period = cfg_v["SCRUB_PERIOD"]
            else:
                s_active = s_read = s_write = False
                s_ptr = s_bank = 0

            # ---- scratchpad ports -------------------------------------------------
            mw_bank = 0
            mw_addr = 0
            if writing:
                wrow = u >> 2 if g.out32 else u
                wq = u & 3 if g.out32 else 0
                c_index = (((wr_rb << logn) + wrow) * nb + wr_cb) & MASK32
                c_off = ((c_index << 2) + wq) & MASK32 if g.out32 else c_index
                mw_addr = (g.c_addr + c_off) & 0xFFFF
                mw_bank = (mw_addr >> aw) & 1
            reads: list[tuple[int, int] | None] = [None, None]
            writes: list[tuple[int, int] | None] = [None, None]
            for bank in (0, 1):
                if s_active:
                    if s_bank == bank:
                        if s_read:
                            reads[bank] = (s_ptr & amask, 0)
                        if s_write:
                            writes[bank] = (s_ptr & amask, out[bank][0])
                    continue
                if not busy:
                    continue  # the bus's turn, and it has no request
                pick0 = m0_en and ((m0_addr >> aw) & 1) == bank
                pick1 = m1_en and ((m1_addr >> aw) & 1) == bank
                if pick0 or pick1:
                    reads[bank] = ((m0_addr if pick0 else m1_addr) & amask, 0)
                if writing and mw_bank == bank:
                    writes[bank] = (mw_addr & amask, -1)

            # ---- counters (scc_regs.v) ----------------------------------------------
            if busy:
                cycles_q += 1
            if macs_en:
                macs_q += rows_v * cols_v * k32
            rv0, rv1 = st.rvalid
            if rv0 or rv1:
                corr_q += (rv0 & out[0][1]) + (rv1 & out[1][1])
                uncorr_q += (rv0 & out[0][2]) + (rv1 & out[1][2])
            mismatch_q += mismatch

            # ---- clock edge: banks ------------------------------------------------
            wdata = None
            source = None
            for bank in (0, 1):
                wr = writes[bank]
                if wr is not None and wr[1] == -1 and wdata is None:
                    source = (wr_cb, u, wr_cols_of(g, wr_cb, n, logn))
                    wdata = self._write_data(g, *source)
            rows_read: list[tuple[int, ...] | None] = [None, None]
            for bank in (0, 1):
                rd = reads[bank]
                if rd is not None:
                    base = bank * bank_words + (rd[0] & ~smask)
                    rows_read[bank] = tuple(self.codes[base : base + il])
                    if rec is not None:
                        rec.read(x, base // il)
            for bank in (0, 1):
                wr = writes[bank]
                if wr is not None:
                    data = wdata if wr[1] == -1 else wr[1]
                    word = bank * bank_words + wr[0]
                    self.codes[word] = self.encode(data)
                    self.written.add(word)
                    if rec is not None:
                        rec.write(x, word, self.codes[word], source if wr[1] == -1 else None)
            lanes0, lanes1 = out[0][3], out[1][3]
            bank_changed = False
            for bank in (0, 1):
                rd = reads[bank]
                st.rvalid[bank] = int(rd is not None)
                if rd is not None:
                    st.rrow[bank] = rows_read[bank]
                    st.rslot[bank] = rd[0] & smask
                    bank_changed = True
            st.r0_bank_q = (m0_addr >> aw) & 1
            st.r1_bank_q = (m1_addr >> aw) & 1
            st.scrub_bank_q = s_bank

            # ---- clock edge: sequencer ----------------------------------------------
            if state == S_BIAS and r0_valid and 1 <= t <= 4:
                q = t - 1
                st.bias[cb & 1, q * n : (q + 1) * n] = np.frombuffer(
                    r0[0].to_bytes(n, "little"), dtype=np.uint8
                )
            valid_in, first_in = st.valid_q, st.first_q
            st.valid_q = int(state == S_STREAM and t < k32)
            st.first_q = int((state == S_STREAM or state == S_FLUSH) and t == 0)
            if sets:
                state_d ^= sets.get("u_seq.u_state.q_q", 0)
                rb_d ^= sets.get("u_seq.u_rb.q_q", 0)
                cb_d ^= sets.get("u_seq.u_cb.q_q", 0)
                t_d ^= sets.get("u_seq.u_t.q_q", 0)
                ecc_d ^= sets.get("u_seq.u_ecc.q_q", 0)
                status_d ^= sets.get("u_seq.u_status.q_q", 0)
                for name in cfg_v:
                    mask = sets.get(f"u_regs.u_{name.lower()}.q_q", 0)
                    if mask:
                        cfg_v = dict(cfg_v)
                        cfg_v[name] ^= mask
                        geo = _geometry(b, cfg_v)
            state, rb, cb, t, ecc, status = state_d, rb_d, cb_d, t_d, ecc_d, status_d

            # ---- clock edge: scrubber -----------------------------------------------
            if b.scrub:
                if s_state == 0:
                    timer = scr["timer_q"]
                    if busy or period == 0:
                        scr["timer_q"] = 0
                    elif (timer + 1) & 0xFFFF >= period:
                        scr["timer_q"] = 0
                        scr["state_q"] = 1
                    else:
                        scr["timer_q"] = (timer + 1) & 0xFFFF
                elif s_state == 1:
                    scr["state_q"] = 2
                elif s_state == 2:
                    scr["state_q"] = 0
                    last = s_ptr == spm_words - 1
                    scr["ptr_q"] = 0 if last else (s_ptr + 1) & 0xFFFF
                    if last:
                        scr["passes_q"] = (scr["passes_q"] + 1) & MASK32
                else:
                    scr["state_q"] = 0

            # ---- clock edge: array --------------------------------------------------
            self._array_edge(valid_in, first_in, lanes0, lanes1)
            if bank_changed:
                out = [self._bank_out(0), self._bank_out(1)]

        result.cycles = max(x, start)
        cnt.update(cycles_q=cycles_q & MASK32, macs_q=macs_q & MASK32, corr_q=corr_q & MASK32,
                   uncorr_q=uncorr_q & MASK32, mismatch_q=mismatch_q & MASK32)  # fmt: skip
        for name, v in (("state", state), ("rb", rb), ("cb", cb), ("t", t), ("ecc", ecc),
                        ("status", status)):  # fmt: skip
            st.seq[name] = [v] * b.copies
        for name, v in cfg_v.items():
            st.cfg[name] = [v] * b.copies
        hold(st, self.stuck)
        return result

    def _leap(
        self, g: _Geometry, x: int, bound: int, rb: int, cb: int, status: int,
        counts: tuple[int, int, int, int],
    ) -> tuple[int, ...] | None:  # fmt: skip
        """Whole STREAM periods (and the BIAS between column blocks) from job cycle ``x``
        (t = 0, every fault applied) up to one that ends the tiles or would pass ``bound``,
        exactly as stepping them would end.

        Within a period nothing but the words read, the words written and the tile counters
        depends on anything but the geometry (scc_seq.v): reads at t < K of the A and B
        words (both from channel 0's bank when they share one), the previous tile's result
        rows written at t = N + 1 + u from the result registers its FIRST loaded, every
        beat's sums landing in the accumulators before the next FIRST (P >= K + 1,
        P >= (w + 1) N + 1). So a period reduces to its reads and writes in cycle order and
        one product of its beats. The flops the last period leaves (operand pipelines,
        accumulators part-summed, result registers, bank read registers) are rebuilt from
        its beats. Returns (cycle, state, rb, cb, ecc, status, cycles, macs, corr, uncorr)
        at the start of the cycle after the last period taken, None if none was taken.
        """
        b, st = self.b, self.st
        period, k = g.period, g.k
        if x + period > bound or st.valid_q or st.first_q or any(st.rvalid):
            return None
        if b.scrub and st.scrub["state_q"] != 0:
            return None
        n, logn, aw, bw, il = b.n, b.logn, b.aw, b.bank_words, b.interleave
        amask, smask, wmask = bw - 1, il - 1, 2 * bw - 1
        codes, written = self.codes, self.written
        output_of = self._output_of
        cycles_q, macs_q, corr_q, uncorr_q = counts
        lanes = [self._bank_out(0)[3], self._bank_out(1)[3]]
        kept: list[tuple[tuple[int, ...], int] | None] = [None, None]
        prev = self._drained_acc()  # what the first period's FIRST moves to the results
        older = prev
        state, ecc = S_STREAM, 0
        beats = (np.zeros((0, n), dtype=np.int64),) * 2
        while True:
            if state == S_BIAS and x + 5 + period <= bound:
                # BIAS: four bias words through channel 0, each loaded the cycle after.
                for q in range(4):
                    addr = (g.bias_addr + (cb << 2) + q) & 0xFFFF
                    bank, a = (addr >> aw) & 1, addr & amask
                    base = bank * bw + (a & ~smask)
                    row = tuple(codes[base : base + il])
                    hit = self._output_of(row[a & smask])
                    corr_q += hit[1]
                    uncorr_q += hit[2]
                    ecc |= hit[2]
                    lanes[bank] = hit[3]
                    kept[bank] = (row, a & smask)
                    st.bias[cb & 1, q * n : (q + 1) * n] = np.frombuffer(
                        hit[0].to_bytes(n, "little"), dtype=np.uint8
                    )
                cycles_q += 5
                x += 5
                state = S_STREAM
            elif state != S_STREAM or x + period > bound:
                break
            writes = self._period_writes(g, rb, cb, prev)
            a_rows, b_rows = [], []
            hits = []
            a_base, b_base = g.a_addr + rb * k, g.b_addr + cb * k
            done = 0  # writes applied: a read in cycle tau sees those of cycles < tau
            for tau in range(k):
                while done < len(writes) and n + 1 + done < tau:
                    word, code = writes[done]
                    codes[word] = code
                    written.add(word)
                    done += 1
                # A word's address below 2 * BANK_WORDS is its bank bit and its bank address.
                w0, w1 = (a_base + tau) & wmask, (b_base + tau) & wmask
                k0, k1 = w0 >> aw, w1 >> aw
                for bank, word in ((k0, w0), (k1, w1)) if k0 != k1 else ((k0, w0),):
                    row = (
                        (codes[word],)
                        if il == 1
                        else tuple(codes[word & ~smask : (word & ~smask) + il])
                    )
                    hit = output_of(row[word & smask])
                    hits.append(hit)
                    lanes[bank] = hit[3]
                    kept[bank] = (row, word & smask)
                a_rows.append(lanes[0])
                b_rows.append(lanes[1])
            for word, code in writes[done:]:
                codes[word] = code
                written.add(word)
            double = ecc
            for hit in hits:
                corr_q += hit[1]
                uncorr_q += hit[2]
                double |= hit[2]
            if k:
                beats = (np.array(a_rows), np.array(b_rows))
            cycles_q += period
            if double:
                ecc, state = 1, S_DONE
                status = (status & 3) | ERR_ECC << 2
            else:
                rows_v = min((g.m - (rb << logn)) & MASK32, n)
                cols_v = min((g.ncols - (cb << logn)) & MASK32, n)
                macs_q += rows_v * cols_v * k
                if rb + 1 != g.mb:
                    rb = (rb + 1) & 0xFFF
                elif cb + 1 != g.nb:
                    rb, cb = 0, (cb + 1) & 0xFFF
                    state = S_BIAS if g.bias_en else S_STREAM
                else:
                    state = S_FLUSH
            x += period
            older, prev = prev, beats[0].T @ beats[1]
        for bank in (0, 1):
            if kept[bank] is not None:
                st.rrow[bank], st.rslot[bank] = kept[bank]
        self._land_period(g, beats, lanes, older)
        st.rvalid = [0, 0]
        st.valid_q = st.first_q = 0
        st.r0_bank_q = st.r1_bank_q = 0
        if b.scrub:
            st.scrub["timer_q"] = 0
        return (x, state, rb, cb, ecc, status, cycles_q, macs_q, corr_q, uncorr_q)

    def _idle_run(self, g: _Geometry, state: int, rb: int, t: int, left: int) -> int:
        """How many cycles from here only count ``t`` on and the cycles (0 if that is not
        so, or not worth taking at once), at most ``left``.

        In BIAS, STREAM and FLUSH the sequencer acts at its step counter's values below
        the phase's end (reads below 4 or K, result writes, the last step); a ``t`` at or
        past that end, as a flipped bit leaves it, counts up to its wrap at 2^13 doing
        nothing else. The rest of the chip is idle then once no read is in flight, the
        scrubber waits (its timer held at 0 while busy) and the array's pipelines hold
        the banks' outputs with no tag, so that an edge leaves them as they are."""
        if state == S_BIAS:
            end = 5
        elif state == S_STREAM:
            end = g.period
        elif state == S_FLUSH:
            n = self.b.n
            end = n + 1 + g.w * min((g.m - (rb << self.b.logn)) & MASK32, n)
        else:
            return 0
        count = min(0x2000 - t, left)
        st = self.st
        if t < end or count < 2 or st.valid_q or st.first_q or any(st.rvalid):
            return 0
        if st.r0_bank_q or st.r1_bank_q:
            return 0
        if self.b.scrub:
            scr = st.scrub
            bank = (scr["ptr_q"] >> self.b.aw) & 1
            if scr["state_q"] or scr["timer_q"] or st.scrub_bank_q != bank:
                return 0
        elif st.scrub_bank_q:
            return 0
        # The array is idle if an edge with the banks' outputs and no tags changes nothing.
        kept = st.pipe, st.skew, st.acc, st.out
        st.pipe, st.skew = st.pipe.copy(), st.skew.copy()
        try:
            self._array_edge(0, 0, self._bank_out(0)[3], self._bank_out(1)[3])
            same = (
                st.acc is kept[2] and st.out is kept[3]
                and np.array_equal(st.pipe, kept[0]) and np.array_equal(st.skew, kept[1])
            )  # fmt: skip
        finally:
            st.pipe, st.skew, st.acc, st.out = kept
        return count if same else 0

    def _period_writes(
        self, g: _Geometry, rb: int, cb: int, sums: np.ndarray
    ) -> list[tuple[int, int]]:
        """(word, codeword) of the result writes of the STREAM period of tile (rb, cb),
        in order, with ``sums`` in the result registers (none in the first tile)."""
        if rb == 0 and cb == 0:
            return []
        b, st = self.b, self.st
        n, logn, aw = b.n, b.logn, b.aw
        wr_rb = (g.mb - 1) & MASK32 if rb == 0 else rb - 1
        wr_cb = cb if rb != 0 else (cb - 1) & MASK32
        wr_rows = min((g.m - ((wr_rb << logn) & MASK32)) & MASK32, n)
        wr_cols = wr_cols_of(g, wr_cb, n, logn)
        count = (g.w * wr_rows) & MASK32
        if not count:
            return []
        bias = st.bias[wr_cb & 1].view("<i4").tolist() if g.bias_en else None
        rows = sums.tolist()
        # Word u of the writes is bytes u*N .. u*N + N - 1 of the rows laid end to end.
        out = []
        for u in range(count):
            wrow = u >> 2 if g.out32 else u
            c_index = (((wr_rb << logn) + wrow) * g.nb + wr_cb) & MASK32
            c_off = ((c_index << 2) + (u & 3)) & MASK32 if g.out32 else c_index
            addr = (g.c_addr + c_off) & 0xFFFF
            word = ((addr >> aw) & 1) * b.bank_words + (addr & (b.bank_words - 1))
            data = epilogue_word(g, n, rows[wrow & (n - 1)], bias, u, wr_cols)
            out.append((word, self.encode(data)))
        return out

    def _drained_acc(self) -> np.ndarray:
        """The accumulators once the beats in flight have landed: what the next FIRST
        moves into the result registers (the twin's own state is left as it was)."""
        st = self.st
        kept = st.pipe, st.skew, st.acc, st.out
        st.pipe, st.skew, st.acc, st.out = (a.copy() for a in kept)
        zeros = np.zeros(self.b.n, dtype=np.int64)
        try:
            for _ in range(2 * self.b.n - 1):
                self._array_edge(0, 0, zeros, zeros)
            return st.acc
        finally:
            st.pipe, st.skew, st.acc, st.out = kept

    def _land_period(
        self, g: _Geometry, beats: tuple[np.ndarray, np.ndarray], lanes: list[np.ndarray],
        older: np.ndarray,
    ) -> None:  # fmt: skip
        """The array at the end of a STREAM period whose beats (bank 0 and bank 1 lanes
        after each read) were ``beats``, ``lanes`` the banks' outputs after it, ``older``
        the sums its FIRST moved into the result registers. PE (i, j) takes the array's
        input of edge e at edge e + i + j, so the pipelines hold the period's last 2N - 1
        inputs and the accumulators the beats up to t = P - 2 - i - j."""
        n, period, k = self.b.n, g.period, g.k
        a_beats, b_beats = beats
        for tau in range(period - 2 * n + 1, period):
            # The input of the edge ending cycle tau: the banks' outputs after cycle tau - 1.
            if tau - 1 < k:
                self._array_edge(1, 0, a_beats[tau - 1], b_beats[tau - 1])
            else:
                self._array_edge(0, 0, lanes[0], lanes[1])
        st = self.st
        st.out = older.copy()
        if k == 0:
            st.acc = np.zeros((n, n), dtype=np.int64)
            return
        sums = np.cumsum(a_beats[:, :, None] * b_beats[:, None, :], axis=0)
        i, j = np.indices((n, n))
        st.acc = sums[np.minimum(k - 1, period - 2 - i - j), i, j]

    def result_code(
        self, cfg: tuple, row: list[int], bias: bytes, source: tuple[int, int, int]
    ) -> int:
        """The codeword a result write stores with configuration ``cfg`` (``Frame.main``'s),
        ``row`` the sums in the row of result registers it writes out and ``bias`` the
        bias buffers (``Frame.bias``); ``source`` = (wr_cb, u, wr_cols) as ``Watch.write``
        reports them."""
        geo = _GEOMETRIES.get((self.b, cfg)) or _geometry(self.b, dict(cfg))
        wr_cb, u, wr_cols = source
        n = self.b.n
        lanes = None
        if geo.bias_en:
            at = (wr_cb & 1) * 4 * n
            lanes = np.frombuffer(bias, dtype="<i4", count=n, offset=at).tolist()
        return self.encode(epilogue_word(geo, n, row, lanes, u, wr_cols))

    def frame(self, head: tuple, counters: tuple[int, int, int, int, int]) -> Frame:
        """The frame of the state at the start of a cycle: ``head`` the sequencer's and
        the voted configuration's values (the twin keeps them in locals), ``counters``."""
        st = self.st
        scr = st.scrub
        main = head + (
            st.valid_q, st.first_q, tuple(st.rrow), tuple(st.rslot), tuple(st.rvalid),
            st.r0_bank_q, st.r1_bank_q, scr["state_q"], scr["timer_q"], st.pipe.tobytes(),
            st.acc.tobytes(), st.out.tobytes(), st.skew.tobytes(),
        )  # fmt: skip
        return Frame(main, counters, (scr["ptr_q"], scr["passes_q"], st.scrub_bank_q),
                     st.bias.tobytes())  # fmt: skip

    def fill_operands(self) -> None:
        """Operand pipelines as many idle cycles leave them: every a_q and skew stage of
        row i holds byte i of bank 0's output, every b_q and stage of column j byte j of
        bank 1's (no beat is in flight between jobs)."""
        st = self.st
        lanes0, lanes1 = self._bank_out(0)[3], self._bank_out(1)[3]
        st.pipe[0] = lanes0[:, None]
        st.pipe[3] = lanes1[:, None]
        st.skew[0] = lanes0[:, None]
        st.skew[3] = lanes1[:, None]
        st.pipe[1:3] = 0
        st.skew[1:3] = 0

    def settle(self) -> None:
        """The idle cycles after a job: beats in flight land, the operand pipelines fill
        with the banks' last outputs; no read is issued, both channels point at bank 0."""
        st = self.st
        st.valid_q = st.first_q = 0
        st.rvalid = [0, 0]
        lanes0, lanes1 = self._bank_out(0)[3], self._bank_out(1)[3]
        for _ in range(3 * self.b.n):
            self._array_edge(0, 0, lanes0, lanes1)
        st.r0_bank_q = st.r1_bank_q = 0
        st.scrub_bank_q = (st.scrub["ptr_q"] >> self.b.aw) & 1

    def _apply(self, act: Action, sets: dict[str, int]) -> None:
        kind = act[0]
        if kind == "mem":
            _, word, bit = act
            self.codes[word] ^= 1 << bit
        elif kind == "set":
            _, path, bit = act
            sets[path] = sets.get(path, 0) ^ (1 << bit)
        else:
            path, bit, copy = act
            self.st.flip(path, bit, copy)

    def _array_edge(self, valid_i: int, first_i: int, a_lanes: np.ndarray,
                    b_lanes: np.ndarray) -> None:  # fmt: skip
        """scc_array.v's skew registers and every scc_pe.v at one clock edge."""
        st = self.st
        pipe, sk = st.pipe, st.skew
        # Column 0 of the skew array is the array's input this cycle, column s + 1 skew
        # stage s: row (column) i enters the PEs from column i, row 0 directly.
        inp = sk[:, :, 0]
        inp[0] = a_lanes
        inp[1] = valid_i
        inp[2] = first_i
        inp[3] = b_lanes
        pipe[:, :, 1:] = pipe[:, :, :-1]
        pipe[:, :, 0] = sk.diagonal(0, 1, 2)
        sk[:, :, 1:] = sk[:, :, :-1]
        if not np.count_nonzero(pipe[1:3]):
            return
        term = pipe[0] * pipe[3].T * pipe[1]
        first = pipe[2] != 0
        acc = st.acc
        # acc and out are kept unwrapped (int64 sums); every reader wraps them to int32.
        summed = acc + term
        st.out = np.where(first, acc, st.out)
        st.acc = np.where(first, term, summed)

    def _write_data(self, g: _Geometry, wr_cb: int, u: int, wr_cols: int) -> int:
        """mw_wdata_o: the epilogue over row wrow[LOGN-1:0] of the result registers."""
        n = self.b.n
        wrow = u >> 2 if g.out32 else u
        bias = self.st.bias[wr_cb & 1].view("<i4").tolist() if g.bias_en else None
        return epilogue_word(g, n, self.st.out[wrow & (n - 1)].tolist(), bias, u, wr_cols)


def epilogue_word(
    g: _Geometry, n: int, row: list[int], bias: list[int] | None, u: int, wr_cols: int
) -> int:
    """scc_epilogue.v: result word ``u`` of a row of result registers (``row``, sums as
    the PEs hold them), through the bias lanes ``bias`` (None without BIAS_EN), ReLU and
    the requantizing shift; columns from ``wr_cols`` on are written as 0. In Python ints,
    lane by lane: an N-lane row is too short for numpy to pay."""
    half = 0 if g.shift == 0 else 1 << (g.shift - 1)
    word = 0
    for j in range(min(wr_cols, n)):
        x = ((row[j] + (1 << 31)) & MASK32) - (1 << 31)
        if bias is not None:
            x = ((x + bias[j] + (1 << 31)) & MASK32) - (1 << 31)
        if g.relu and x < 0:
            x = 0
        if g.out32:
            word |= (x & MASK32) << (32 * j)
        else:
            word |= min(max((x + half) >> g.shift, -128), 127) % 256 << (8 * j)
    if g.out32:
        # Word u & 3 of the row's 4N bytes.
        return word >> (8 * n * (u & 3)) & ((1 << 8 * n) - 1)
    return word


def _held_state(build: Build, stuck: tuple[Held, ...], state: int) -> int:
    """The voted sequencer state when every copy holds ``state`` and ``stuck`` is held."""
    copies = [state] * build.copies
    for path, bit, copy, value in stuck:
        if path == "u_seq.u_state.q_q":
            c = copy or 0
            copies[c] = copies[c] & ~(1 << bit) | value << bit
    return _vote(copies)


def hangs_past(g: _Geometry, x: int, rb: int, cb: int, bound: int) -> bool:
    """Whether a STREAM period starting in job cycle ``x`` at tile (rb, cb) leads, tile
    after tile, to FLUSH no sooner than ``bound`` (tile counters run on to 4095 and wrap;
    an M or N of 0 never meets its last block), so that only an ECC abort ends the job."""
    if g.mb == 0 or g.nb == 0:
        return True
    cycles = ((g.mb - 1 - rb) % 4096 + 1) * g.period
    if cb + 1 != g.nb:
        cycles += ((g.nb - 1 - cb) % 4096) * (g.mb * g.period + 5 * g.bias_en)
    return x + cycles >= bound


def wr_cols_of(g: _Geometry, wr_cb: int, n: int, logn: int) -> int:
    """wr_cols: valid columns of the column block being written."""
    return min((g.ncols - ((wr_cb << logn) & MASK32)) & MASK32, n)
