"""The flops of the SCC's job path, as the cycle-level twin (``cycle``) holds them.

Every field is one RTL register, named by its hierarchical path below ``scc_top`` as
cocotb addresses it (``u_seq.u_state.q_q`` copy 1, ``u_array.g_row[0].g_col[1].u_pe.acc_q``).
``flop_list`` lists them for a build (path, width, TMR copies), so that a site map
generated from the RTL can be checked against what the twin holds, and ``PathState.flip``
inverts one bit of one of them, as a ``FlopBit`` fault site names it.

The scratchpad cells (``u_spm.u_bank{0,1}.mem_q``) are ``SpmCell`` sites of the scratchpad
model; the bus adapter's staging and latch registers are not on the job path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from testbed import sitemap_builds

from .regs import CONFIG_STORAGE, MASK32, SEQ_WIDTHS

#: PE registers of scc_pe.v and their widths.
PE_WIDTHS: dict[str, int] = {
    "a_q": 8,
    "valid_q": 1,
    "first_q": 1,
    "b_q": 8,
    "acc_q": 32,
    "out_q": 32,
}

#: Counters of scc_regs.v that a job updates.
COUNTERS = ("cycles_q", "macs_q", "corr_q", "uncorr_q", "mismatch_q")

#: Scrubber registers of scc_scrub.v and their widths.
SCRUB_WIDTHS: dict[str, int] = {"state_q": 2, "timer_q": 16, "ptr_q": 16, "passes_q": 32}


@dataclass(frozen=True, slots=True)
class Flop:
    """One register of the job path: its path below scc_top, width and TMR copies."""

    path: str
    width: int
    copies: int = 1


class Build(sitemap_builds.Build):
    """A build (``testbed.sitemap_builds.Build``: its options, defaults and checks) with
    the widths the twin's flops take from it."""

    __slots__ = ()

    @classmethod
    def of(cls, build: sitemap_builds.Build) -> Build:
        """The same build, with the twin's widths."""
        return build if isinstance(build, cls) else cls(**build.options())  # type: ignore[arg-type]

    @property
    def logn(self) -> int:
        return self.n.bit_length() - 1

    @property
    def dw(self) -> int:
        return 8 * self.n

    @property
    def check_bits(self) -> int:
        from .secded import code_for

        return code_for(self.dw).check_bits if self.ecc else 0

    @property
    def cw(self) -> int:
        return self.dw + self.check_bits

    @property
    def aw(self) -> int:
        return self.bank_words.bit_length() - 1

    @property
    def slot_bits(self) -> int:
        """Width of a bank's rslot_q (at least one bit, as in scc_spm_bank.v)."""
        return max(self.interleave.bit_length() - 1, 1)

    @property
    def copies(self) -> int:
        return 3 if self.tmr else 1


def flop_list(b: Build) -> list[Flop]:
    """Every flop the twin holds for a build, in a stable order."""
    flops = [Flop(f"u_regs.u_{name.lower()}.q_q", len(bits), b.copies)
             for name, bits in CONFIG_STORAGE.items()]  # fmt: skip
    flops += [Flop(f"u_regs.{name}", 32) for name in COUNTERS]
    flops += [Flop(f"u_seq.u_{name}.q_q", width, b.copies) for name, width in SEQ_WIDTHS.items()]
    flops += [Flop("u_seq.bias0_q", 32 * b.n), Flop("u_seq.bias1_q", 32 * b.n)]
    flops += [Flop("u_seq.valid_q", 1), Flop("u_seq.first_q", 1)]
    for i in range(1, b.n):
        flops.append(Flop(f"u_array.g_skew[{i}].g_delay.a_sr_q", 10 * i))
        flops.append(Flop(f"u_array.g_skew[{i}].g_delay.b_sr_q", 8 * i))
    for i in range(b.n):
        for j in range(b.n):
            for name, width in PE_WIDTHS.items():
                flops.append(Flop(f"u_array.g_row[{i}].g_col[{j}].u_pe.{name}", width))
    for bank in range(2):
        flops.append(Flop(f"u_spm.u_bank{bank}.rrow_q", b.interleave * b.cw))
        flops.append(Flop(f"u_spm.u_bank{bank}.rslot_q", b.slot_bits))
        flops.append(Flop(f"u_spm.u_bank{bank}.rvalid_q", 1))
    flops += [Flop(f"u_spm.{name}", 1) for name in ("r0_bank_q", "r1_bank_q", "scrub_bank_q")]
    if b.scrub:
        flops += [Flop(f"g_scrub.u_scrub.{name}", w) for name, w in SCRUB_WIDTHS.items()]
    return flops


_PE = re.compile(r"u_array\.g_row\[(\d+)\]\.g_col\[(\d+)\]\.u_pe\.(\w+)")
_SKEW = re.compile(r"u_array\.g_skew\[(\d+)\]\.g_delay\.([ab])_sr_q")
_BANK = re.compile(r"u_spm\.u_bank([01])\.(rrow_q|rslot_q|rvalid_q)")
_TMR = re.compile(r"u_(regs|seq)\.u_(\w+)\.q_q")


def wrap32(x: int) -> int:
    """A Python int wrapped to the signed int32 range."""
    return ((x + (1 << 31)) & MASK32) - (1 << 31)


class PathState:
    """The job path's flops. Multi-bit fields are Python ints or numpy arrays:

    - TMR registers: ``cfg[name]`` / ``seq[name]``: lists of copies (storage bits);
    - ``bias[q]``: bias buffer q as 4N bytes (lane j = int32 at bytes 4j..4j+3);
    - PE registers: ``pipe``, int64 [4, N, N]: a_q[i, j], valid_q[i, j], first_q[i, j]
      and b_q of PE (i, j) at [3, j, i] (so that every operand moves along the last
      axis), a and b signed int8; ``acc``, ``out``: acc_q and out_q,
      int64 sums [N, N] that every reader wraps to int32;
      ``pe_view(name)`` shows one of them as [i, j];
    - skew registers: ``skew``, int64 [4, N, N]: a, valid, first of row i and b of
      column i at stage s in column s + 1 (stage 0 the newest; row i uses stages
      0..i-1, the RTL's a_sr_q bits [10s +: 10] = {first, valid, a}); column 0 holds
      the array's input of the cycle being computed;
    - bank read registers: ``rrow[bank]`` as the tuple of its INTERLEAVE codewords (row bit
      x is bit x // INTERLEAVE of codeword x % INTERLEAVE), ``rslot``, ``rvalid``.
    """

    def __init__(self, b: Build) -> None:
        self.b = b
        n = b.n
        self.cfg = {name: [0] * b.copies for name in CONFIG_STORAGE}
        self.seq = {name: [0] * b.copies for name in SEQ_WIDTHS}
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.bias = np.zeros((2, 4 * n), dtype=np.uint8)
        self.valid_q = 0
        self.first_q = 0
        self.pipe = np.zeros((4, n, n), dtype=np.int64)
        self.acc = np.zeros((n, n), dtype=np.int64)
        self.out = np.zeros((n, n), dtype=np.int64)
        self.skew = np.zeros((4, n, n), dtype=np.int64)
        self.rrow = [(0,) * b.interleave, (0,) * b.interleave]
        self.rslot = [0, 0]
        self.rvalid = [0, 0]
        # Reset values of scc_spm.v: channel 1 reads bank 1.
        self.r0_bank_q = 0
        self.r1_bank_q = 1
        self.scrub_bank_q = 0
        self.scrub = dict.fromkeys(SCRUB_WIDTHS, 0)

    def pe_view(self, name: str) -> np.ndarray:
        """One PE register of every PE as a writable [i, j] view."""
        match name:
            case "acc_q":
                return self.acc
            case "out_q":
                return self.out
            case "b_q":
                return self.pipe[3].T
        return self.pipe[("a_q", "valid_q", "first_q").index(name)]

    # --- faults ----------------------------------------------------------------------

    def flip(self, path: str, bit: int, copy: int | None = None) -> None:
        """Invert bit ``bit`` (of TMR copy ``copy``) of the flop at ``path``."""
        width = self.width_of(path)
        if not 0 <= bit < width:
            raise ValueError(f"{path}: bits 0..{width - 1}, got {bit}")
        m = _TMR.fullmatch(path)
        if m:
            regs = self.cfg if m.group(1) == "regs" else self.seq
            name = m.group(2) if m.group(1) == "seq" else m.group(2).upper()
            copies = regs[name]
            if copy is None or not 0 <= copy < len(copies):
                raise ValueError(f"{path}: copies 0..{len(copies) - 1}, got {copy}")
            copies[copy] ^= 1 << bit
            return
        if copy not in (None, 0):
            raise ValueError(f"{path} has one copy, got copy {copy}")
        if path.startswith("u_regs."):
            name = path.removeprefix("u_regs.")
            self.counters[name] ^= 1 << bit
        elif path in ("u_seq.bias0_q", "u_seq.bias1_q"):
            self.bias[int(path[10]), bit >> 3] ^= np.uint8(1 << (bit & 7))
        elif path == "u_seq.valid_q":
            self.valid_q ^= 1
        elif path == "u_seq.first_q":
            self.first_q ^= 1
        elif m := _PE.fullmatch(path):
            self._flip_pe(int(m.group(1)), int(m.group(2)), m.group(3), bit)
        elif m := _SKEW.fullmatch(path):
            self._flip_skew(int(m.group(1)), m.group(2), bit)
        elif m := _BANK.fullmatch(path):
            self._flip_bank(int(m.group(1)), m.group(2), bit)
        elif path in ("u_spm.r0_bank_q", "u_spm.r1_bank_q", "u_spm.scrub_bank_q"):
            name = path.removeprefix("u_spm.")
            setattr(self, name, getattr(self, name) ^ 1)
        elif path.startswith("g_scrub.u_scrub."):
            self.scrub[path.removeprefix("g_scrub.u_scrub.")] ^= 1 << bit
        else:
            raise AssertionError(f"unhandled flop {path}")

    def width_of(self, path: str) -> int:
        """Width of a flop of this build; ValueError naming the kinds if there is none."""
        widths = self._widths()
        if path not in widths:
            raise ValueError(
                f"no flop {path!r} in this build: see cycle_state.flop_list for the "
                "paths (u_seq.u_state.q_q, u_array.g_row[i].g_col[j].u_pe.acc_q, ...)"
            )
        return widths[path]

    def _widths(self) -> dict[str, int]:
        cached = getattr(self, "_width_cache", None)
        if cached is None:
            cached = {f.path: f.width for f in flop_list(self.b)}
            self._width_cache = cached
        return cached

    def _flip_pe(self, i: int, j: int, name: str, bit: int) -> None:
        arr = self.pe_view(name)
        v = int(arr[i, j]) ^ (1 << bit)
        if name in ("a_q", "b_q"):
            v = ((v + 128) & 0xFF) - 128
        elif name in ("acc_q", "out_q"):
            v = wrap32(v)
        arr[i, j] = v

    def _flip_skew(self, i: int, which: str, bit: int) -> None:
        sk = self.skew
        if which == "b":
            stage, b = divmod(bit, 8)
            v = int(sk[3, i, stage + 1]) ^ (1 << b)
            sk[3, i, stage + 1] = ((v + 128) & 0xFF) - 128
            return
        stage, b = divmod(bit, 10)
        if b < 8:
            v = int(sk[0, i, stage + 1]) ^ (1 << b)
            sk[0, i, stage + 1] = ((v + 128) & 0xFF) - 128
        else:
            sk[b - 7, i, stage + 1] ^= 1

    def _flip_bank(self, bank: int, name: str, bit: int) -> None:
        if name == "rvalid_q":
            self.rvalid[bank] ^= 1
        elif name == "rslot_q":
            self.rslot[bank] ^= 1 << bit
        else:
            slot, cbit = bit % self.b.interleave, bit // self.b.interleave
            row = list(self.rrow[bank])
            row[slot] ^= 1 << cbit
            self.rrow[bank] = tuple(row)

    def value(self, path: str, copy: int | None = None) -> int:
        """The bits of one flop as an unsigned int, as the RTL holds it (for tests)."""
        m = _TMR.fullmatch(path)
        if m:
            regs = self.cfg if m.group(1) == "regs" else self.seq
            name = m.group(2) if m.group(1) == "seq" else m.group(2).upper()
            return regs[name][copy or 0]
        if path.startswith("u_regs."):
            return self.counters[path.removeprefix("u_regs.")]
        if path in ("u_seq.bias0_q", "u_seq.bias1_q"):
            return int.from_bytes(self.bias[int(path[10])].tobytes(), "little")
        if path in ("u_seq.valid_q", "u_seq.first_q"):
            return getattr(self, path.removeprefix("u_seq."))
        if m := _PE.fullmatch(path):
            v = int(self.pe_view(m.group(3))[int(m.group(1)), int(m.group(2))])
            return v & ((1 << PE_WIDTHS[m.group(3)]) - 1)
        if m := _SKEW.fullmatch(path):
            i = int(m.group(1))
            out = 0
            sk = self.skew
            for s in range(i):
                if m.group(2) == "b":
                    out |= (int(sk[3, i, s + 1]) & 0xFF) << (8 * s)
                else:
                    stage = (int(sk[0, i, s + 1]) & 0xFF) | int(sk[1, i, s + 1]) << 8
                    out |= (stage | int(sk[2, i, s + 1]) << 9) << (10 * s)
            return out
        if m := _BANK.fullmatch(path):
            bank, name = int(m.group(1)), m.group(2)
            if name == "rvalid_q":
                return self.rvalid[bank]
            if name == "rslot_q":
                return self.rslot[bank]
            il = self.b.interleave
            out = 0
            for slot, code in enumerate(self.rrow[bank]):
                for cbit in range(self.b.cw):
                    out |= (code >> cbit & 1) << (cbit * il + slot)
            return out
        if path.startswith("u_spm."):
            return getattr(self, path.removeprefix("u_spm."))
        return self.scrub[path.removeprefix("g_scrub.u_scrub.")]
