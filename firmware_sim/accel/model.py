"""Bit-exact model of the SCC accelerator as seen from its AXI4-Lite port.

``Accelerator`` implements docs/REGISTERS.md at transaction level: a bus access is
served at once, and a START runs the whole job before ``bus_write`` returns, so BUSY
reads 0 between calls unless a job hung (``hung``). Scratchpad, ECC counters, scrubber,
TMR and faults match the RTL bit for bit; ``faults`` documents the timing of faults
scheduled during a job. A job runs analytically (``job``) unless a scheduled fault needs
the cycle-level twin of the job path (``cycle``). Register bits stuck at 0 or 1
(``stick``) are held in every idle register and by the twin in every job cycle; the model
counts the idle cycles it is told of (``idle``), as for the scrubber (``scrubber``), whose
rounds and counters hold their stuck bits over many cycles at once.

A fault-injection campaign runs one job many times from one state: ``snapshot`` takes
the whole state and ``restore`` puts it back by copying arrays (``snapshot``);
``golden_job`` records the job's fault-free run from that state once, and
``run(faults, golden=...)`` reuses it (``golden``): an injection the analytic job never
sees takes the recorded end state, and a twin run starts at the fault's cycle from the
recorded flops and stops as soon as the rest of the job is the recorded one. Either way
the results are those of ``run(faults)``, bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from . import golden as golden_run
from . import packing, scrubber
from . import snapshot as snapshots
from .cycle import CycleTwin, TwinResult, Watch
from .cycle_job import (
    Counters,
    c_before,
    classic_site,
    codes_of_words,
    flop_of,
    hang_bound,
    run_from_idle,
    run_twin,
    settle_after_analytic,
    settle_after_check,
)
from .cycle_state import Build, PathState
from .ecc import EccStatus
from .faults import (
    AccBit,
    FaultSite,
    FlopBit,
    JobPoint,
    JobReport,
    NotModelled,
    OutBit,
    Phase,
    PhaseSpan,
    RegCopy,
    ScheduledFault,
    SeqCopy,
    SetBit,
    SpmCell,
)
from .golden import Golden
from .job import Descriptor, Job
from .layout import Layout
from .regs import (
    ADDR_BITS,
    CHIP_ID,
    CONFIG_STORAGE,
    ERR_CODE_SHIFT,
    FIELD_MASKS,
    FULL_STROBE,
    JOB_REGISTERS,
    MASK32,
    READ_ONLY,
    SEQ_WIDTHS,
    SHIFT_LSB,
    SHIFT_MASK,
    SPM_BASE,
    Ctrl,
    Epilogue,
    ErrCode,
    Reg,
    Resp,
    Status,
    from_storage,
    params_value,
    to_storage,
)
from .scratchpad import Scratchpad
from .snapshot import Snapshot, StateToken
from .stuck import IDLE_REGISTERS, Held, count_on, disagree, forced, hold, idle_bits, vote
from .tmr import TmrRegister

# The model module is a one-stop import for testbenches: its public names.
__all__ = [
    "AccBit",
    "Accelerator",
    "EccStatus",
    "ErrCode",
    "FaultSite",
    "FlopBit",
    "Golden",
    "JobPoint",
    "JobReport",
    "NotModelled",
    "OutBit",
    "Phase",
    "PhaseSpan",
    "Reg",
    "RegCopy",
    "Resp",
    "ScheduledFault",
    "SeqCopy",
    "SetBit",
    "Snapshot",
    "SpmCell",
]

#: Sites ``Accelerator.stick`` holds: register bits of the job path.
StuckSite = AccBit | OutBit | RegCopy | SeqCopy | FlopBit

#: Scheduling engines of ``Accelerator.run``.
ENGINES = ("auto", "analytic", "cycle")

_REG_BY_OFFSET = {int(r): r for r in Reg}
_CFG_NAMES = {f"u_regs.u_{name.lower()}.q_q": name for name in CONFIG_STORAGE}
_SEQ_NAMES = {f"u_seq.u_{name}.q_q": name for name in SEQ_WIDTHS}
#: Where the model keeps each of ``stuck.IDLE_REGISTERS`` while idle (``corr`` and
#: ``uncorr`` on its scratchpad).
_IDLE_ATTRS = {"u_regs.cycles_q": "_cycles", "u_regs.macs_q": "_macs", "u_regs.corr_q": "corr",
               "u_regs.uncorr_q": "uncorr", "u_regs.mismatch_q": "_tmr_mismatch",
               "g_scrub.u_scrub.state_q": "_scrub_state", "g_scrub.u_scrub.timer_q": "_scrub_timer",
               "g_scrub.u_scrub.ptr_q": "_scrub_ptr",
               "g_scrub.u_scrub.passes_q": "_scrub_passes"}  # fmt: skip


class Accelerator:
    """One build of the SCC: N x N array, two scratchpad banks, ECC, scrubber, TMR; the
    keywords are those of ``testbed.sitemap_builds.Build`` (with its defaults), which
    checks them: a bad option raises its ``BuildError`` (a ValueError)."""

    def __init__(
        self,
        n: int = 4,
        bank_words: int = 1024,
        interleave: int = 1,
        ecc: bool = True,
        scrub: bool = True,
        tmr: bool = True,
    ) -> None:
        # The one build description checks the options (BuildError names the bad one).
        self.build = Build(n, bank_words, interleave, ecc, scrub, tmr)
        self.n = n
        self.bank_words = bank_words
        self.spm_words = 2 * bank_words
        self.interleave = interleave
        self.ecc = ecc
        self.scrub = scrub
        self.tmr = tmr
        #: 32-bit bus parts per scratchpad word.
        self.parts = self.build.bus_parts
        self.spm = Scratchpad(n, bank_words, interleave, ecc)
        self._path = PathState(self.build)
        #: How the last job ran (engine, hang, faults not injected); None before any.
        self.last_job: JobReport | None = None
        #: How the last upset that moved the idle sequencer out of IDLE ran (its busy
        #: cycles, whether it hung); None before any.
        self.last_wake: JobReport | None = None
        self._stuck: dict[StuckSite, int] = {}
        self._held: tuple[Held, ...] = ()
        self._disagree = False
        #: The state token of a snapshot of the current state (None once it changed).
        self._token: StateToken | None = None
        self.reset()

    # --- state -----------------------------------------------------------------------

    def reset(self) -> None:
        """rst_ni / CTRL.SOFT_RESET: every register and counter to reset; memory kept."""
        self._token = None
        self._cfg = dict.fromkeys(CONFIG_STORAGE, 0)
        self._done = False
        self._error = False
        self._err_code = 0
        self._cycles = 0
        self._macs = 0
        self._tmr_mismatch = 0
        self._scrub_ptr = 0
        self._scrub_passes = 0
        # Scrubber timer and step in progress (0: waiting, 1: READ, 2: FIX).
        self._scrub_timer = 0
        self._scrub_state = 0
        self._stage = 0
        self._latch = 0
        self._hung = False
        # The bank read registers have no reset; every other job-path flop does.
        old = self._path
        self._path = PathState(self.build)
        self._path.rrow, self._path.rslot = list(old.rrow), list(old.rslot)
        self.spm.clear_counters()
        # A reset loads every flop, but a stuck bit keeps its value.
        self._hold()
        self._wake_stuck()

    def clear_counters(self) -> None:
        """CTRL.CLEAR_COUNTERS."""
        self._token = None
        self.spm.clear_counters()
        self._tmr_mismatch = 0
        self._scrub_ptr = 0
        self._scrub_passes = 0
        self._hold()

    def snapshot(self) -> Snapshot:
        """The whole state of the chip, to ``restore`` later (arrays copied, not shared)."""
        return snapshots.capture(self)

    def restore(self, snapshot: Snapshot) -> None:
        """Put the chip back in the state of ``snapshot`` (of a chip of this build)."""
        snapshots.restore(self, snapshot)

    def golden_job(self) -> Golden:
        """Run the job the registers describe once, fault-free, from the current state,
        recording what ``run(faults, golden=...)`` needs from this state; the chip is
        left as it was (``golden``)."""
        return golden_run.record(self)

    @property
    def hung(self) -> bool:
        """The last job was still BUSY at its hang bound: STATUS reads BUSY, START,
        configuration and scratchpad accesses are refused as while a job runs, until
        SOFT_RESET (or a power cycle). The model's registers and memory are the chip's
        at the bound (CYCLES stops there; the chip's would go on counting)."""
        return self._hung

    @property
    def layout(self) -> Layout:
        """Physical cell map of the scratchpad."""
        return self.spm.layout

    @property
    def irq(self) -> bool:
        """irq_o = IRQ_EN[0] & STATUS.DONE."""
        return bool(self._cfg["IRQ_EN"] & 1) and self._done

    @property
    def status(self) -> int:
        """The STATUS register."""
        return (
            Status.BUSY * self._hung
            | Status.DONE * self._done
            | Status.ERROR * self._error
            | self._err_code << ERR_CODE_SHIFT
        )

    def config(self, name: str) -> int:
        """Voted value of a configuration register, as a bus read returns it."""
        return self._cfg[name] & FIELD_MASKS[name]

    def descriptor(self) -> Descriptor:
        """The job the configuration registers describe."""
        epi = self._cfg["EPILOGUE"]
        return Descriptor(
            n=self.n,
            bank_words=self.bank_words,
            m=self.config("DIM_M"),
            k=self.config("DIM_K"),
            ncols=self.config("DIM_N"),
            a_addr=self.config("A_ADDR"),
            b_addr=self.config("B_ADDR"),
            bias_addr=self.config("BIAS_ADDR"),
            c_addr=self.config("C_ADDR"),
            bias_en=bool(epi & Epilogue.BIAS_EN),
            relu=bool(epi & Epilogue.RELU),
            out_int32=bool(epi & Epilogue.OUT_INT32),
            shift=(epi >> SHIFT_LSB) & SHIFT_MASK,
        )

    # --- bus -------------------------------------------------------------------------

    def bus_read(self, addr: int) -> tuple[int, Resp]:
        """One AXI4-Lite read: (data, response)."""
        self._token = None  # a scratchpad read loads the read registers
        self._check_bus(addr, 0)
        rvalid = self._path.rvalid
        if rvalid[0] or rvalid[1]:
            scrubber.collect(self)  # a read of the cycle before is counted by now
        addr &= ~3  # the two low address bits are ignored
        if addr >= SPM_BASE:
            return self._spm_read(addr)
        reg = _REG_BY_OFFSET.get(addr)
        if reg is None:
            return 0, Resp.SLVERR
        return self._reg_value(reg), Resp.OKAY

    def bus_write(self, addr: int, value: int, strobe: int = FULL_STROBE) -> Resp:
        """One AXI4-Lite write with its WSTRB; a refused write changes nothing, and every
        write whose strobe is not all four bytes is refused."""
        self._token = None
        self._check_bus(addr, value)
        if not 0 <= strobe <= FULL_STROBE:
            raise ValueError(f"bus write strobe {strobe:#x} is not a 4-bit WSTRB")
        rvalid = self._path.rvalid
        if rvalid[0] or rvalid[1]:
            scrubber.collect(self)
        if strobe != FULL_STROBE:
            return Resp.SLVERR
        resp = self._bus_write(addr, value)
        self._hold()  # the write loads the register, but not its stuck bits
        return resp

    def _bus_write(self, addr: int, value: int) -> Resp:
        self._check_bus(addr, value)
        addr &= ~3  # the two low address bits are ignored
        if addr >= SPM_BASE:
            return self._spm_write(addr, value)
        reg = _REG_BY_OFFSET.get(addr)
        if reg is None or reg in READ_ONLY:
            return Resp.SLVERR
        if reg.name in CONFIG_STORAGE:
            if self._hung:
                return Resp.SLVERR  # configuration writes are refused while BUSY
            self._cfg[reg.name] = value & FIELD_MASKS[reg.name]
        elif reg == Reg.STATUS:
            if value & Status.DONE:
                self._done = False
            if value & Status.ERROR:
                self._error = False
        elif reg == Reg.CTRL:
            if value & Ctrl.SOFT_RESET:
                self.reset()
                return Resp.OKAY
            if value & Ctrl.CLEAR_COUNTERS:
                self.clear_counters()
            if value & Ctrl.START and not self._hung:
                self.run()
        return Resp.OKAY

    def read_reg(self, reg: Reg) -> int:
        """Bus read of a register that must answer OKAY."""
        value, resp = self.bus_read(int(reg))
        if resp != Resp.OKAY:
            raise RuntimeError(f"read of {reg.name} answered {resp.name}")
        return value

    def write_reg(self, reg: Reg, value: int) -> None:
        """Bus write of a register that must answer OKAY."""
        resp = self.bus_write(int(reg), value)
        if resp != Resp.OKAY:
            raise RuntimeError(f"write of {value:#x} to {reg.name} answered {resp.name}")

    def _check_bus(self, addr: int, value: int) -> None:
        if not 0 <= addr < 1 << ADDR_BITS:
            raise ValueError(f"bus address {addr:#x} is not a 20-bit byte address")
        if not 0 <= value <= MASK32:
            raise ValueError(f"bus data {value:#x} is not a 32-bit value")

    def _reg_value(self, reg: Reg) -> int:
        match reg:
            case Reg.ID:
                return CHIP_ID
            case Reg.PARAMS:
                return params_value(self.n, self.ecc, self.scrub, self.tmr, self.interleave)
            case Reg.SPM_WORDS:
                return self.spm_words
            case Reg.CTRL:
                return 0
            case Reg.STATUS:
                return self.status
            case Reg.CYCLES:
                return self._cycles
            case Reg.MACS:
                return self._macs
            case Reg.ECC_CORR:
                return self.spm.corr
            case Reg.ECC_UNCORR:
                return self.spm.uncorr
            case Reg.TMR_MISMATCH:
                return self._tmr_mismatch
            case Reg.SCRUB_PTR:
                return self._scrub_ptr
            case Reg.SCRUB_PASSES:
                return self._scrub_passes
        return self.config(reg.name)

    def _spm_locate(self, addr: int) -> tuple[int, int] | None:
        word, part = divmod((addr - SPM_BASE) >> 2, self.parts)
        return None if word >= self.spm_words else (word, part)

    def _spm_read(self, addr: int) -> tuple[int, Resp]:
        loc = self._spm_locate(addr)
        if loc is None or self._hung:
            return 0, Resp.SLVERR
        word, part = loc
        if part:
            return (self._latch >> (32 * part)) & MASK32, Resp.OKAY
        # The bus reads through the bank's read port: its read registers take the row.
        bank = word // self.bank_words
        _, row = codes_of_words(self.spm, [word])[0]
        self._path.rrow[bank] = row
        self._path.rslot[bank] = word % self.interleave
        self._hold()
        corr, uncorr = self.spm.corr, self.spm.uncorr
        data, status = self.spm.read(word)
        scrubber.count_ecc(self, corr, uncorr)
        # The latch takes the decoded word (raw when uncorrectable), part 0 included.
        self._latch = packing.words_to_int(data)
        resp = Resp.SLVERR if status == EccStatus.UNCORRECTABLE else Resp.OKAY
        return self._latch & MASK32, resp

    def _spm_write(self, addr: int, value: int) -> Resp:
        loc = self._spm_locate(addr)
        if loc is None or self._hung:
            return Resp.SLVERR
        word, part = loc
        if part < self.parts - 1:
            shift = 32 * part
            self._stage = (self._stage & ~(MASK32 << shift)) | value << shift
        else:
            full = (value << (32 * part) | self._stage) & ((1 << (8 * self.n)) - 1)
            self.write_word(word, full)
        return Resp.OKAY

    # --- word level ------------------------------------------------------------------

    def _word(self, word_addr: int) -> int:
        if not 0 <= word_addr < self.spm_words:
            raise IndexError(f"word address {word_addr} outside 0 .. {self.spm_words - 1}")
        return word_addr

    def write_word(self, word_addr: int, data: int) -> None:
        """Write one scratchpad word (ECC encoded), as a bus write commits it."""
        self._token = None
        if not 0 <= data < 1 << (8 * self.n):
            raise ValueError(f"data {data:#x} does not fit a {8 * self.n}-bit word")
        self.spm.store(self._word(word_addr), packing.int_to_words(data, self.n))

    def read_word(self, word_addr: int) -> tuple[int, EccStatus]:
        """Read one word through the ECC decoder, counted like a bus read: (data, status)."""
        self._token = None
        corr, uncorr = self.spm.corr, self.spm.uncorr
        data, status = self.spm.read(self._word(word_addr))
        scrubber.count_ecc(self, corr, uncorr)
        return packing.words_to_int(data), status

    def peek(self, word_addr: int) -> tuple[int, int]:
        """Backdoor: the stored (data, check bits), neither decoded nor counted."""
        return self.spm.peek(self._word(word_addr))

    def poke(self, word_addr: int, data: int, check: int | None = None) -> None:
        """Backdoor: store a codeword; ``check=None`` stores the correct check bits."""
        self._token = None
        if not 0 <= data < 1 << (8 * self.n):
            raise ValueError(f"data {data:#x} does not fit a {8 * self.n}-bit word")
        if check is None:
            self.spm.store(self._word(word_addr), packing.int_to_words(data, self.n))
            return
        if not 0 <= check < 1 << self.spm.check_bits:
            raise ValueError(
                f"check bits {check:#x} do not fit {self.spm.check_bits} bits"
                + ("" if self.ecc else " (ECC is off: there are none)")
            )
        self.spm.poke(self._word(word_addr), data, check)

    def load(self, word_addr: int, words: np.ndarray) -> None:
        """Backdoor: store many words (``uint8[count, n]``) from ``word_addr``, ECC encoded."""
        self._token = None
        words = np.asarray(words, dtype=np.uint8)
        if words.ndim != 2 or words.shape[1] != self.n:
            raise ValueError(f"words must be uint8[count, {self.n}], got shape {words.shape}")
        if word_addr < 0 or word_addr + words.shape[0] > self.spm_words:
            raise IndexError(
                f"{words.shape[0]} words from {word_addr} run past {self.spm_words} words"
            )
        self.spm.store(word_addr, words)

    def dump(self, word_addr: int, count: int) -> np.ndarray:
        """Backdoor: stored data of ``count`` words (``uint8[count, n]``), not decoded."""
        if word_addr < 0 or count < 0 or word_addr + count > self.spm_words:
            raise IndexError(f"{count} words from {word_addr} run past {self.spm_words} words")
        return self.spm.data[word_addr : word_addr + count].copy()

    # --- jobs ------------------------------------------------------------------------

    def job_schedule(self, writes: bool = False) -> list[PhaseSpan]:
        """Parts of the job the registers describe (empty if it would fail CHECK).

        BIAS, STREAM and FLUSH spans in execution order, each with its first job cycle
        (CHECK = 0): they add up to CYCLES - 2. With ``writes``, each tile's WRITE span
        (its result words, inside the next STREAM span or FLUSH) is listed too, by start.
        Any ``JobPoint(span.tile, span.phase, x)`` with ``0 <= x < span.cycles`` is valid.
        """
        d = self.descriptor()
        return d.schedule(writes) if d.valid() else []

    def job_cycle(self, when: JobPoint | tuple) -> int:
        """Job cycle (CHECK = 0) of a point of the job the registers describe."""
        d = self.descriptor()
        when = when if isinstance(when, JobPoint) else JobPoint(*when)
        if not d.valid():
            raise ValueError("the registers describe a job that fails CHECK")
        d.check_point(when)
        return d.job_cycle(when)

    def run(
        self,
        faults: Iterable[ScheduledFault | tuple] = (),
        *,
        engine: str = "auto",
        golden: Golden | None = None,
    ) -> ErrCode | int:
        """CTRL.START, optionally with faults at points of the job or at raw job cycles
        (an int, CHECK = 0); returns ERR_CODE (an int if a fault made it no known code).

        ``engine`` "auto" runs the analytic job unless a fault needs the cycle-level
        twin (a control-path upset it cannot predict, a flop it has no site for, a raw
        cycle); "analytic" refuses those with NotModelled, "cycle" always runs the twin.
        ``last_job`` says how it ran; ``hung`` whether it is still BUSY.

        ``golden`` (from ``golden_job`` in this very state, see ``golden``) gives the
        same results faster; ValueError if the chip is not in the state it was
        recorded from (restore that state's snapshot first).
        """
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        if golden is not None and (self._token is None or golden.token is not self._token):
            raise ValueError(
                "golden was recorded from another state of the chip: restore the snapshot "
                "it was recorded from (Accelerator.restore) before run(..., golden=...)"
            )
        self._token = None
        if self._hung:
            return self._err_code  # the chip ignores START while BUSY
        # The golden run's descriptor is this state's (the token says so), with its
        # answers kept.
        d = self.descriptor() if golden is None else golden.descriptor
        scheduled = [ScheduledFault(self._when(w), self._canonical(s)) for w, s in faults]
        timed = self._timed(d, scheduled)
        twin = engine == "cycle" or bool(self._stuck) or self._needs_twin(d, timed)
        if twin and engine == "analytic":
            if self._stuck:
                raise NotModelled("stuck register bits: the analytic job cannot predict "
                                  "them (engine='cycle')")  # fmt: skip
            self._needs_twin(d, timed, explain=True)
        self._finish_scrub_step()
        self._scrub_timer = forced(0, scrubber.bits_of(self, scrubber.TIMER)) if self._held else 0
        if twin:
            # A recorded run carries counter offsets past its end by addition, which a
            # stuck counter bit does not follow: such a job runs from START.
            if golden is not None and not idle_bits(self._held):
                return golden_run.run_from(self, golden, scheduled, timed)
            return self._run_twin(d, scheduled, timed)
        if golden is not None and golden.analytic_end is not None and d.valid():
            cells = golden_run.unseen_cells(golden, timed, self.layout)
            if cells is not None:
                return golden_run.run_unseen(self, golden, scheduled, timed, cells)
            if len(timed) == 1 and isinstance(timed[0][1], AccBit | OutBit):
                err = golden_run.run_pe_flip(self, golden, scheduled, *timed[0])
            else:
                err = golden_run.run_outvoted(self, golden, timed)
            if err is not None:
                return err
        self._done = self._error = False
        self._err_code = 0
        self._cycles = self._macs = 0
        if d.valid():
            job = Job(self.spm, d, lambda sites: self._copy_flips(sites, True))
            before = c_before(self.spm, d)
            outcome = job.run(scheduled)
            settle_after_analytic(self._path, self.spm, d, job, before)
        else:
            outcome = (ErrCode.DESCRIPTOR, 2, 0)
            settle_after_check(self._path)
        err, self._cycles, self._macs = outcome
        self._err_code = int(err)
        self._done = True
        self._error = err != ErrCode.NONE
        end = self._cycles - 1
        skipped = tuple(
            f for f, (x, _) in zip(scheduled, timed, strict=True) if not 0 <= x < end
        )
        self.last_job = JobReport("analytic", False, self._cycles, skipped)
        return ErrCode(err)

    @staticmethod
    def _when(when: JobPoint | int | tuple) -> JobPoint | int:
        if isinstance(when, JobPoint):
            return when
        if isinstance(when, int):
            if when < 0:
                raise ValueError(f"a raw job cycle counts from 0 (CHECK), got {when}")
            return when
        return JobPoint(*when)

    def _canonical(self, site: FaultSite) -> FaultSite:
        """A flop bit as the model's own site kind where it has one; checked."""
        if isinstance(site, FlopBit):
            self.check_site(site)
            site = classic_site(site)
        self.check_site(site)
        return site

    def _timed(self, d: Descriptor, faults: list[ScheduledFault]) -> list[tuple[int, FaultSite]]:
        """(job cycle, site) of each fault, checked before anything happens. Job points
        of a job that fails CHECK name no cycle: -1, never reached."""
        out = []
        for when, site in faults:
            if isinstance(when, int):
                out.append((when, site))
            elif d.valid():
                d.check_point(when)
                out.append((d.job_cycle(when), site))
            else:
                out.append((-1, site))
        return out

    def _needs_twin(
        self, d: Descriptor, timed: list[tuple[int, FaultSite]], explain: bool = False
    ) -> bool:
        """Whether only the cycle-level twin predicts these faults (with ``explain``,
        raise NotModelled saying why instead of answering True)."""

        def need(why: str) -> bool:
            if explain:
                raise NotModelled(f"{why}: the analytic job cannot predict it (engine='cycle')")
            return True

        if not d.valid():
            return any(x >= 0 for x, _ in timed) and need("an upset in a job that fails CHECK")
        copies_at: dict[int, list[RegCopy | SeqCopy]] = {}
        for x, site in timed:
            if isinstance(site, FlopBit | SetBit):
                return not explain or need(f"{site}")
            if isinstance(site, SeqCopy) and not self.tmr:
                return not explain or need(f"{site} without TMR")
            if isinstance(site, RegCopy | SeqCopy):
                copies_at.setdefault(x, []).append(site)
        if any(x == 0 or x >= d.done_cycle(None) for x, _ in timed if x >= 0):
            return need("a fault in CHECK or DONE")
        for x, sites in copies_at.items():
            try:
                self._vote_copy_flips(sites, during_job=True)
            except NotModelled as exc:
                return need(f"job cycle {x}: {exc}")
        return False

    def _run_twin(
        self,
        d: Descriptor,
        scheduled: list[ScheduledFault],
        timed: list[tuple[int, FaultSite]],
        watch: Watch | None = None,
    ) -> ErrCode | int:
        """One job in the cycle-level twin; the model takes the state it ends in."""
        twin = CycleTwin(self.build, self._path, [])
        twin.fill_operands()
        result, out = run_twin(
            self.build,
            self._path,
            self.spm,
            {name: self._cfg[name] for name in CONFIG_STORAGE},
            (self._tmr_mismatch, self._scrub_ptr, self._scrub_passes),
            timed,
            hang_bound(d),
            self._held,
            watch,
        )
        return self._take_twin(result, out, scheduled)

    def _take_twin(
        self, result: TwinResult, out: Counters, scheduled: list[ScheduledFault]
    ) -> ErrCode | int:
        """Take the state a twin run ended in (``cycle_job.finish_twin``)."""
        self._take_state(result, out)
        skipped = tuple(scheduled[i] for i in result.skipped)
        self.last_job = JobReport("cycle", result.hung, result.cycles, skipped)
        code = self._err_code
        return ErrCode(code) if code in ErrCode._value2member_map_ else code

    def _take_state(self, result: TwinResult, out: Counters) -> None:
        """The registers of the state a twin run ended in."""
        self._cfg = out.config
        self._cycles, self._macs, self._tmr_mismatch = out.cycles, out.macs, out.mismatch
        self._done = bool(out.status & 1)
        self._error = bool(out.status >> 1 & 1)
        self._err_code = out.status >> 2
        if self.scrub:
            self._scrub_ptr, self._scrub_passes = out.scrub_ptr, out.scrub_passes
            self._scrub_state, self._scrub_timer = out.scrub_state, out.scrub_timer
        self._hung = result.hung
        self._hold()

    # --- scrubber --------------------------------------------------------------------

    def scrub_steps(self, count: int) -> None:
        """Perform ``count`` scrubber steps from SCRUB_PTR (the testbench reports them)."""
        self._token = None
        if not (self.scrub and self.ecc):
            raise RuntimeError("this build has no scrubber (needs scrub=True and ecc=True)")
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        scrubber.steps(self, count)

    def idle(self, cycles: int) -> None:
        """Let ``cycles`` clock cycles pass with no job and no bus traffic.

        The scrubber counts SCRUB_PERIOD idle cycles, then takes a two-cycle step
        (READ, FIX) that completes at the end of FIX: steps come every SCRUB_PERIOD + 2
        cycles. Its timer and a step in progress carry over between calls; a START
        completes a step in progress and restarts the timer from 0 after the job, as
        the RTL holds the timer at 0 while BUSY. Without a scrubber only a bank read of
        the cycle before is counted. Stuck bits of the counters and the scrubber's
        registers are held in every one of these cycles (``scrubber``).
        """
        if cycles < 0:
            raise ValueError(f"cycles must be >= 0, got {cycles}")
        if cycles == 0:
            return
        self._token = None
        if self._disagree:
            # A stuck TMR copy is outvoted in every one of these cycles.
            self._tmr_mismatch = self._count("u_regs.mismatch_q", self._tmr_mismatch, cycles)
        if self._hung:
            return  # a hung job keeps the scrubber waiting
        scrubber.collect(self)
        if self.scrub and self.ecc:
            scrubber.idle(self, cycles)

    def _finish_scrub_step(self) -> None:
        rvalid = self._path.rvalid
        if self._scrub_state or self._held or rvalid[0] or rvalid[1]:
            scrubber.finish_step(self)

    def _count(self, path: str, value: int, cycles: int) -> int:
        """Counter ``path`` holding ``value`` after ``cycles`` cycles that each add one,
        its stuck bits held in each (``stuck.count_on``)."""
        return count_on(value, cycles, IDLE_REGISTERS[path], scrubber.bits_of(self, path))

    # --- faults ----------------------------------------------------------------------

    def _copies(self) -> int:
        return 3 if self.tmr else 1

    def fault_site_counts(self) -> dict[type, int]:
        """How many sites of each kind the model predicts for this build."""
        return {
            SpmCell: self.spm_words * self.layout.codeword_bits,
            AccBit: self.n * self.n * 32,
            OutBit: self.n * self.n * 32,
            RegCopy: self._copies() * sum(len(bits) for bits in CONFIG_STORAGE.values()),
            SeqCopy: 3 * sum(SEQ_WIDTHS.values()) if self.tmr else 0,
        }

    def fault_site_count(self) -> int:
        """Number of fault sites (``fault_site(i)`` for i below it)."""
        return sum(self.fault_site_counts().values())

    def fault_site(self, index: int) -> FaultSite:
        """Site number ``index``: cells, accumulator bits, result register bits,
        configuration then sequencer copies."""
        counts = self.fault_site_counts()
        if not 0 <= index < sum(counts.values()):
            raise IndexError(f"fault site {index} outside 0 .. {sum(counts.values()) - 1}")
        if index < counts[SpmCell]:
            lay = self.layout
            bank, rest = divmod(index, lay.rows * lay.row_cells)
            row, cell = divmod(rest, lay.row_cells)
            return SpmCell(bank, row, cell)
        index -= counts[SpmCell]
        if index < counts[AccBit]:
            pe, bit = divmod(index, 32)
            return AccBit(pe // self.n, pe % self.n, bit)
        index -= counts[AccBit]
        if index < counts[OutBit]:
            pe, bit = divmod(index, 32)
            return OutBit(pe // self.n, pe % self.n, bit)
        index -= counts[OutBit]
        widths = [(RegCopy, name, len(bits)) for name, bits in CONFIG_STORAGE.items()]
        widths += [(SeqCopy, name, width) for name, width in SEQ_WIDTHS.items()]
        for kind, name, width in widths:
            copies = 3 if self.tmr else (1 if kind is RegCopy else 0)
            if index < width * copies:
                copy, bit = divmod(index, width)
                return kind(name, copy, bit)
            index -= width * copies
        raise AssertionError("unreachable")

    def fault_sites(self) -> Iterator[FaultSite]:
        """Every fault site the model predicts, lazily, in ``fault_site`` order."""
        lay = self.layout
        for bank in range(2):
            for row in range(lay.rows):
                for cell in range(lay.row_cells):
                    yield SpmCell(bank, row, cell)
        for i in range(self.n):
            for j in range(self.n):
                for bit in range(32):
                    yield AccBit(i, j, bit)
        for i in range(self.n):
            for j in range(self.n):
                for bit in range(32):
                    yield OutBit(i, j, bit)
        for name, bits in CONFIG_STORAGE.items():
            for copy in range(self._copies()):
                for bit in range(len(bits)):
                    yield RegCopy(name, copy, bit)
        if self.tmr:
            for name, width in SEQ_WIDTHS.items():
                for copy in range(3):
                    for bit in range(width):
                        yield SeqCopy(name, copy, bit)

    def check_site(self, site: FaultSite) -> None:
        """Raise ValueError if ``site`` does not exist in this build (or NotModelled)."""
        if isinstance(site, SpmCell):
            lay = self.layout
            if not (
                0 <= site.bank < 2 and 0 <= site.row < lay.rows and 0 <= site.cell < lay.row_cells
            ):
                raise ValueError(
                    f"{site}: cells are bank 0..1, row 0..{lay.rows - 1}, "
                    f"cell 0..{lay.row_cells - 1}"
                    + ("" if self.ecc else " (ECC off: no check-bit cells)")
                )
        elif isinstance(site, AccBit | OutBit):
            if not (0 <= site.i < self.n and 0 <= site.j < self.n and 0 <= site.bit < 32):
                raise ValueError(f"{site}: PEs are 0..{self.n - 1} square, bits 0..31")
        elif isinstance(site, RegCopy | SeqCopy):
            if isinstance(site, RegCopy):
                names = CONFIG_STORAGE
                width = len(CONFIG_STORAGE.get(site.name, ()))
            else:
                names = SEQ_WIDTHS
                width = SEQ_WIDTHS.get(site.name, 0)
            if site.name not in names:
                raise ValueError(f"{site}: registers are {', '.join(names)}")
            if not (0 <= site.copy < self._copies() and 0 <= site.bit < width):
                raise ValueError(f"{site}: copies 0..{self._copies() - 1}, bits 0..{width - 1}")
        elif isinstance(site, FlopBit):
            width = self._path.width_of(site.path)
            copies = self._copies() if site.path.endswith(".q_q") else None
            if copies is None and site.copy not in (None, 0):
                raise ValueError(f"{site}: {site.path} has one copy (copy None)")
            if copies is not None and not 0 <= (site.copy or 0) < copies:
                raise ValueError(f"{site}: copies 0..{copies - 1}")
            if not 0 <= site.bit < width:
                raise ValueError(f"{site}: {site.path} has bits 0..{width - 1}")
            if site.path.endswith(".rslot_q") and self.interleave == 1:
                raise NotModelled(
                    f"{site}: without interleaving a flipped slot reads a bit past the row "
                    "(undefined in the RTL)"
                )
        elif isinstance(site, SetBit):
            width = self._path.width_of(site.path)
            if not site.path.endswith(".q_q"):
                raise ValueError(f"{site}: transients are on the next value of a TMR register "
                                 "(u_seq.u_<name>.q_q, u_regs.u_<name>.q_q)")  # fmt: skip
            if not 0 <= site.bit < width:
                raise ValueError(f"{site}: {site.path} has bits 0..{width - 1}")
        else:
            raise TypeError(f"not a fault site: {site!r}")

    def flip(self, site: FaultSite) -> None:
        """Flip one site now, while idle (between bus transactions)."""
        self.flip_many([site])

    def flip_many(self, sites: Iterable[FaultSite]) -> None:
        """Flip several sites in the same clock cycle, while idle.

        A PE's accumulator or result bit flipped while idle keeps its value into the next
        job, where only a control-path upset can show it (``faults``): the model keeps it
        with the job path's other flops.
        """
        self._token = None
        sites = [self._canonical(s) for s in sites]
        copies = self._idle_copy_flips(sites)
        plan = self._vote_copy_flips(copies, during_job=False)
        flops = [s for s in sites if isinstance(s, FlopBit)]
        pe_bits = [flop_of(s) for s in sites if isinstance(s, AccBit | OutBit)]
        for site in sites:
            if isinstance(site, SpmCell):
                self.spm.flip_cell(site)
        self._apply_copy_flips(*plan)
        for site in flops:
            self._flip_idle_flop(site)
        for bit in pe_bits:
            self._path.flip(bit.path, bit.bit)
        if flops:
            # Idle cycles follow: operands and tags flow on, beats in flight land. A bank
            # read of this cycle (a flipped rvalid_q, the scrubber's READ) is still counted
            # at its edge, and the scrubber's bank flop still read, as the idle cycles
            # that follow take them (``scrubber``).
            p = self._path
            kept = list(p.rvalid), p.scrub_bank_q
            CycleTwin(self.build, p, []).settle()
            p.rvalid, p.scrub_bank_q = kept
        self._hold()
        if plan[2].get("state"):
            self._wake(plan[2]["state"])

    # --- stuck-at bits -----------------------------------------------------------------

    @property
    def stuck(self) -> dict[StuckSite, int]:
        """The register bits held stuck, each with its value (0 or 1), as ``stick`` took
        them (flop bits of the model's own site kinds as those kinds)."""
        return dict(self._stuck)

    def stick(self, site: StuckSite, value: int) -> None:
        """Hold a register bit at ``value`` (0 or 1) from this cycle on, whatever the logic
        drives, until ``unstick_all`` (or a new Accelerator: a power cycle); soft resets
        and writes do not change it.

        Any ``AccBit``, ``OutBit``, ``RegCopy``, ``SeqCopy`` or ``FlopBit`` of the job
        path, the counters or the scrubber of the build (ValueError naming the range
        otherwise). A stuck TMR copy that disagrees with the other two is outvoted in every
        cycle: TMR_MISMATCH counts this cycle, every job cycle and every cycle ``idle`` is
        told of. A stuck counter counts on with the bit held after every cycle's count, in
        jobs, while idle and through CLEAR_COUNTERS and SOFT_RESET (``stuck.count_on``);
        the scrubber's stuck bits are held over its idle rounds (``scrubber``). A bit that
        votes the idle sequencer out of IDLE starts it with no START, as an upset of its
        state does (``last_wake``), and again after every SOFT_RESET while it is stuck: the
        state, never IDLE again, keeps the chip BUSY (``hung``). NotModelled for a bit of
        the scrubber's state stuck at 1: the scrubber never waits again and keeps the
        scratchpad port in every cycle, so a bus access to the scratchpad never completes
        (the model answers whole bus transactions).
        """
        self._token = None
        if value not in (0, 1):
            raise ValueError(f"a stuck bit's value is 0 or 1, got {value!r}")
        if isinstance(site, SetBit):
            raise ValueError(f"{site}: a transient cannot be stuck; name the flop (FlopBit)")
        if isinstance(site, SpmCell):
            raise ValueError(
                f"{site}: scratchpad cells are held stuck by the flight software's backend "
                "(Backend.stick); Accelerator.stick takes register bits"
            )
        site = self._canonical(site)
        flop = flop_of(site)
        assert flop is not None
        if flop.path == scrubber.STATE and value == 1:
            raise NotModelled(
                f"{site} at 1: the scrubber never returns to WAIT and holds the scratchpad "
                "port in every cycle, so a bus access to the scratchpad never completes "
                "(the model answers whole bus transactions)"
            )
        self._stuck[site] = value
        self._held = tuple(self._held_of(s, v) for s, v in self._stuck.items())
        self._hold()
        if self._disagree:
            self._tmr_mismatch = self._count("u_regs.mismatch_q", self._tmr_mismatch, 1)
        self._wake_stuck()

    def _wake_stuck(self) -> None:
        """Run the idle sequencer from the state its stuck bits vote it into, if not IDLE."""
        state = vote(self._path.seq["state"])
        if state and not self._hung:
            self._wake(state)

    def unstick_all(self) -> int:
        """Release every stuck bit in this cycle (returns how many): each keeps its value
        until its flop next loads; a TMR copy is outvoted (TMR_MISMATCH + 1 for this
        cycle if one disagreed) and repaired at the edge that ends the cycle."""
        self._token = None
        released = len(self._stuck)
        if self._disagree:
            # Released in this cycle, the counter takes this count freely.
            self._tmr_mismatch = (self._tmr_mismatch + 1) & MASK32
        self._stuck.clear()
        self._held = ()
        p = self._path
        for regs in (p.cfg, p.seq):
            for name, copies in regs.items():
                regs[name] = [vote(copies)] * len(copies)
        self._hold()
        return released

    @staticmethod
    def _held_of(site: StuckSite, value: int) -> Held:
        flop = flop_of(site)
        assert flop is not None
        return (flop.path, flop.bit, flop.copy, value)

    def _hold(self) -> None:
        """Force the stuck bits into the registers the model holds while idle."""
        if not self._held:
            self._disagree = False
            return
        for path, bits in idle_bits(self._held).items():
            name = _IDLE_ATTRS[path]
            owner = self.spm if name in ("corr", "uncorr") else self
            setattr(owner, name, forced(getattr(owner, name), bits))
        p, copies = self._path, self._copies()
        for name in CONFIG_STORAGE:
            p.cfg[name] = [to_storage(name, self._cfg[name])] * copies
        status = int(self._done) | int(self._error) << 1 | self._err_code << 2
        p.seq["status"] = [status] * copies
        hold(p, self._held)
        for name in CONFIG_STORAGE:
            self._cfg[name] = from_storage(name, vote(p.cfg[name]))
        status = vote(p.seq["status"])
        self._done, self._error, self._err_code = bool(status & 1), bool(status & 2), status >> 2
        self._disagree = disagree(p)

    def _flip_idle_flop(self, site: FlopBit) -> None:
        """A flop outside the analytic sites, flipped while idle."""
        mask = 1 << site.bit
        match site.path:
            case "u_regs.cycles_q":
                self._cycles ^= mask
            case "u_regs.macs_q":
                self._macs ^= mask
            case "u_regs.corr_q":
                self.spm.corr ^= mask
            case "u_regs.uncorr_q":
                self.spm.uncorr ^= mask
            case "u_regs.mismatch_q":
                self._tmr_mismatch ^= mask
            case "g_scrub.u_scrub.ptr_q":
                self._scrub_ptr ^= mask
            case "g_scrub.u_scrub.passes_q":
                self._scrub_passes ^= mask
            case "g_scrub.u_scrub.timer_q":
                self._scrub_timer ^= mask
            case "g_scrub.u_scrub.state_q":
                self._scrub_state ^= mask
            case _:
                self._path.flip(site.path, site.bit, site.copy)

    def check_scheduled(self, when: JobPoint | int | None, sites: Iterable[FaultSite]) -> None:
        """Raise ValueError if a site is not in this build, NotModelled if the model cannot
        predict these sites flipped together at ``when`` of a job (None: now, while idle).

        During a job the cycle-level twin predicts every site but a read slot without
        interleaving (``check_site``); while idle, every site too. Nothing is applied.
        """
        sites = [self._canonical(s) for s in sites]
        if when is not None:
            return
        self._vote_copy_flips(self._idle_copy_flips(sites), False)

    def _plan_copy_flips(
        self, sites: list[RegCopy | SeqCopy], during_job: bool
    ) -> tuple[bool, dict[str, int], int]:
        """Whether one cycle of TMR copy flips can be predicted, without applying it.

        During a job every vote is predicted, by the cycle-level twin where the analytic
        job cannot (the plan of such a vote is empty); while idle every vote is predicted.
        """
        try:
            return self._vote_copy_flips(sites, during_job)
        except NotModelled:
            if during_job:
                return True, {}, 0
            raise

    def _vote_copy_flips(
        self, sites: list[RegCopy | SeqCopy], during_job: bool
    ) -> tuple[bool, dict[str, int], int]:
        """Vote one cycle of TMR copy flips, as the analytic job applies them, without
        applying it.

        Returns (a voter saw its copies disagree, new configuration values, XOR on the
        voted sequencer registers by name: only while idle); raises NotModelled for what
        the analytic job cannot predict.
        """
        voters: dict[tuple[type, str], TmrRegister] = {}
        for s in sites:
            key = (type(s), s.name)
            if key not in voters:
                if isinstance(s, RegCopy):
                    width = len(CONFIG_STORAGE[s.name])
                    voters[key] = TmrRegister(
                        width, to_storage(s.name, self._cfg[s.name]), self.tmr
                    )
                    if self._stuck:
                        voters[key].copies = list(self._path.cfg[s.name])
                else:
                    # Copies as XORs on the voted value; a stuck copy differs from it.
                    voters[key] = TmrRegister(SEQ_WIDTHS[s.name], 0, self.tmr)
                    if self._stuck:
                        copies = self._path.seq[s.name]
                        voters[key].copies = [c ^ vote(copies) for c in copies]
            voters[key].flip(s.copy, s.bit)
        for path, bit, copy, value in self._held:
            held = voters.get((RegCopy, _CFG_NAMES.get(path, "")))
            if held is not None:
                c = copy or 0
                held.copies[c] = held.copies[c] & ~(1 << bit) | value << bit
            name = _SEQ_NAMES.get(path)
            held = voters.get((SeqCopy, name)) if name else None
            if held is not None and name is not None:
                c, base = copy or 0, vote(self._path.seq[name]) >> bit & 1
                held.copies[c] = held.copies[c] & ~(1 << bit) | (value ^ base) << bit
        mismatch = any(v.mismatch for v in voters.values())
        config: dict[str, int] = {}
        seq: dict[str, int] = {}
        for (kind, name), voter in voters.items():
            if kind is RegCopy:
                value = from_storage(name, voter.value)
                if value == self._cfg[name]:
                    continue
                if during_job and not self.tmr:
                    raise NotModelled(
                        f"{name} flipped during a job without TMR (predicted only while idle)"
                    )
                if during_job and name in JOB_REGISTERS:
                    raise NotModelled(f"copies of {name} outvote the good one during a job")
                config[name] = value
            elif voter.value:
                if during_job:
                    raise NotModelled(f"copies of sequencer {name} outvote the good one")
                seq[name] = voter.value
        return mismatch, config, seq

    def _apply_copy_flips(
        self, mismatch: bool, config: dict[str, int], seq: dict[str, int]
    ) -> None:
        """Apply a voted plan (``_vote_copy_flips``); a changed state is left to ``_wake``."""
        if mismatch:
            self._tmr_mismatch = self._count("u_regs.mismatch_q", self._tmr_mismatch, 1)
        self._cfg.update(config)
        status = seq.get("status", 0)
        if status:
            self._done ^= bool(status & 1)
            self._error ^= bool(status & 2)
            self._err_code ^= status >> 2
        for name in ("rb", "cb", "t", "ecc"):
            if seq.get(name):
                value = vote(self._path.seq[name]) ^ seq[name]
                self._path.seq[name] = [value] * self._copies()

    def _idle_copy_flips(self, sites: list[FaultSite]) -> list[RegCopy | SeqCopy]:
        """The copy flips of idle ``sites``: a transient on a TMR register's shared next
        value is loaded by every copy at the edge, as flipping each copy is."""
        out: list[RegCopy | SeqCopy] = []
        for site in sites:
            if isinstance(site, RegCopy | SeqCopy):
                out.append(site)
            elif isinstance(site, SetBit):
                flop = classic_site(FlopBit(site.path, site.bit, 0))
                assert isinstance(flop, RegCopy | SeqCopy)
                kind = type(flop)
                out += [kind(flop.name, c, site.bit) for c in range(self._copies())]
        return out

    def _wake(self, state: int) -> None:
        """The idle sequencer voted into ``state`` (not IDLE) by an upset: the chip runs
        from there, unstarted, until it is back in IDLE or hangs (``last_wake``); the
        scrubber goes on from where it is, as it does while BUSY."""
        status = int(self._done) | int(self._error) << 1 | self._err_code << 2
        p = self._path
        p.seq["state"] = [state] * self._copies()
        p.seq["status"] = [status] * self._copies()
        counters = {"cycles_q": self._cycles, "macs_q": self._macs, "corr_q": self.spm.corr,
                    "uncorr_q": self.spm.uncorr, "mismatch_q": self._tmr_mismatch}  # fmt: skip
        scrub = {"state_q": self._scrub_state, "timer_q": self._scrub_timer,
                 "ptr_q": self._scrub_ptr, "passes_q": self._scrub_passes}  # fmt: skip
        config = {name: self._cfg[name] for name in CONFIG_STORAGE}
        d = self.descriptor()
        result, out = run_from_idle(
            self.build, p, self.spm, config, counters, scrub, hang_bound(d), self._held
        )
        self._take_state(result, out)
        self.last_wake = JobReport("cycle", result.hung, result.cycles)

    def _copy_flips(self, sites: list[RegCopy | SeqCopy], during_job: bool) -> None:
        """One cycle of TMR copy flips: vote, repair, count the mismatch."""
        self._apply_copy_flips(*self._vote_copy_flips(sites, during_job))

    # --- matrices --------------------------------------------------------------------

    def pack_a(self, a: np.ndarray) -> np.ndarray:
        """A (M x K, int8) as scratchpad words of this build."""
        return packing.pack_a(a, self.n)

    def pack_b(self, b: np.ndarray) -> np.ndarray:
        """B (K x Ncols, int8) as scratchpad words of this build."""
        return packing.pack_b(b, self.n)

    def pack_bias(self, bias: np.ndarray) -> np.ndarray:
        """bias (Ncols, int32) as scratchpad words of this build."""
        return packing.pack_bias(bias, self.n)

    @staticmethod
    def unpack_c(words: np.ndarray, m: int, ncols: int, int32: bool = False) -> np.ndarray:
        """C (M x Ncols) from its scratchpad words."""
        return packing.unpack_c(words, m, ncols, int32)

    def load_job(
        self,
        a: np.ndarray,
        b: np.ndarray,
        bias: np.ndarray | None = None,
        relu: bool = False,
        shift: int = 0,
        out_int32: bool = False,
        *,
        a_addr: int | None = None,
        b_addr: int | None = None,
        bias_addr: int | None = None,
        c_addr: int | None = None,
    ) -> packing.Placement:
        """Place the operands (backdoor) and program the job registers over the bus."""
        a_words, b_words = self.pack_a(a), self.pack_b(b)
        (m, k), (k2, ncols) = np.shape(a), np.shape(b)
        if k != k2:
            raise ValueError(f"A is {m} x {k} but B is {k2} x {ncols}: K differs")
        if max(m, k, ncols) > 0xFFF:
            raise ValueError(f"dimensions {m} x {k} x {ncols} exceed the 12-bit DIM fields")
        if not 0 <= shift <= SHIFT_MASK:
            raise ValueError(f"shift must be 0 .. 31, got {shift}")
        if bias is not None and np.shape(bias) != (ncols,):
            raise ValueError(f"bias must have {ncols} entries, got shape {np.shape(bias)}")
        place = packing.place_operands(
            self.n,
            self.bank_words,
            m,
            k,
            ncols,
            bias=bias is not None,
            out_int32=out_int32,
            a_addr=a_addr,
            b_addr=b_addr,
            bias_addr=bias_addr,
            c_addr=c_addr,
        )
        self.load(place.a_addr, a_words)
        self.load(place.b_addr, b_words)
        if bias is not None:
            self.load(place.bias_addr, self.pack_bias(bias))
        epi = (
            Epilogue.BIAS_EN * (bias is not None)
            | Epilogue.RELU * bool(relu)
            | Epilogue.OUT_INT32 * bool(out_int32)
            | shift << SHIFT_LSB
        )
        for reg, value in (
            (Reg.DIM_M, m),
            (Reg.DIM_K, k),
            (Reg.DIM_N, ncols),
            (Reg.A_ADDR, place.a_addr),
            (Reg.B_ADDR, place.b_addr),
            (Reg.BIAS_ADDR, place.bias_addr),
            (Reg.C_ADDR, place.c_addr),
            (Reg.EPILOGUE, int(epi)),
        ):
            self.write_reg(reg, value & FIELD_MASKS[reg.name])
        return place

    def run_gemm(
        self,
        a: np.ndarray,
        b: np.ndarray,
        bias: np.ndarray | None = None,
        relu: bool = False,
        shift: int = 0,
        out_int32: bool = False,
        *,
        a_addr: int | None = None,
        b_addr: int | None = None,
        bias_addr: int | None = None,
        c_addr: int | None = None,
        faults: Iterable[ScheduledFault | tuple] = (),
    ) -> tuple[np.ndarray, ErrCode]:
        """Load, program, START (with optional faults) and read C back through the backdoor."""
        place = self.load_job(
            a,
            b,
            bias,
            relu,
            shift,
            out_int32,
            a_addr=a_addr,
            b_addr=b_addr,
            bias_addr=bias_addr,
            c_addr=c_addr,
        )
        err = self.run(faults)
        m, ncols = np.shape(a)[0], np.shape(b)[1]
        words = self.dump(place.c_addr, place.c_words)
        return self.unpack_c(words, m, ncols, out_int32), err
