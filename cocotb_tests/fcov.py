"""Functional coverage of the scc_top regression, declared once with cocotb-coverage.

Every cover point and cross is declared here, its bins derived from the model's tables
(``Reg``, ``Epilogue``, ``ErrCode``, the TMR registers of ``regs``, the sequencer states
of ``cycle``, the operand regions of ``Descriptor.regions``). ``SccTb`` calls the
``sample_*`` functions with what its monitors saw the RTL do: bus accesses as answered,
the sequencer's state when a reset hits it, the scratchpad decoders' verdicts with the
reader and bank of each read, the voters that disagreed, the edges of ``irq_o``, and each
job's descriptor, operands and outcome as the registers and memory held them.

Each simulator process writes its database to ``results/fcov/<build>-<module>.yml``
(``SCC_FCOV_FILE``, set by ``sim.run``). ``python -m cocotb_tests.fcov report`` merges
every file there, writes ``results/functional-coverage.{md,yml}`` and exits non-zero,
naming them, when a declared bin was never hit. Bins that need a build switch (ECC,
scrubber, TMR) or an array size are declared so that the union over the regression's
builds can hit each one: shapes are classed against the build's own N.
"""

from __future__ import annotations

import argparse
import ast
import atexit
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import yaml
from cocotb_coverage import coverage

from firmware_sim.accel import cycle
from firmware_sim.accel.job import Descriptor
from firmware_sim.accel.packing import unpack_b, unpack_bias
from firmware_sim.accel.reference import gemm_reference
from firmware_sim.accel.regs import (
    CONFIG_STORAGE,
    FIELD_MASKS,
    SEQ_WIDTHS,
    SHIFT_MASK,
    Epilogue,
    ErrCode,
    Reg,
    Resp,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
#: Where each simulator run leaves its coverage database.
FCOV_DIR = RESULTS / "fcov"
#: Environment variable naming the database file of one simulator run.
FILE_ENV = "SCC_FCOV_FILE"

TOP = "scc"

# ---- bins, from the model's tables ---------------------------------------------------

REGISTERS = [reg.name for reg in Reg]

#: Sequencer state codes (scc_seq.v, ``cycle.S_*``) by name.
SEQ_STATES: dict[int, str] = {
    cycle.S_IDLE: "IDLE",
    cycle.S_CHECK: "CHECK",
    cycle.S_BIAS: "BIAS",
    cycle.S_STREAM: "STREAM",
    cycle.S_FLUSH: "FLUSH",
    cycle.S_DONE: "DONE",
}
RESETS = ["soft", "hard"]

#: Every register held in three voted copies: the configuration and the sequencer's state.
TMR_REGISTERS = list(CONFIG_STORAGE) + [f"seq.{name}" for name in SEQ_WIDTHS]

#: The largest value a dimension register holds.
DIM_LARGEST = FIELD_MASKS["DIM_M"]
#: A dimension against the array size N, in the order ``dim_class`` tries them.
DIM_CLASSES = ["largest", "one", "below_n", "equal_n", "multiple_of_n", "not_multiple_of_n"]

EPILOGUE_FLAGS = list(Epilogue)
EPILOGUE_MODES = [
    "+".join(f.name.lower() for f in EPILOGUE_FLAGS if mode & f) or "plain"
    for mode in range(1 << len(EPILOGUE_FLAGS))
]
SHIFT_LARGEST = SHIFT_MASK
SHIFT_CLASSES = ["zero", "between", "largest"]
SATURATION = ["above_127", "below_minus_128"]

INT8_MIN, INT8_MAX = -128, 127
OPERAND_EXTREMES = [
    "a_min", "a_max", "b_min", "b_max", "product_min_min", "product_min_max",
]  # fmt: skip

OUTCOMES = [code.name for code in ErrCode]
#: What a START found: the last job's outcome with DONE still set (jobs chained without
#: clearing), DONE cleared, or a job still running (the START is ignored).
STARTS = [f"after_{code}" for code in OUTCOMES] + ["after_cleared", "while_busy"]

#: Who read a scratchpad word, and which part of the scratchpad: a job's operand regions,
#: the scrubber's and the bus's banks.
JOB_REGIONS = [
    name
    for name, _, _ in Descriptor(
        n=2, bank_words=2, m=1, k=1, ncols=1, a_addr=0, b_addr=0, bias_addr=0, c_addr=0,
        bias_en=True, relu=False, out_int32=False, shift=0,
    ).regions()
]  # fmt: skip
ECC_WHERE = [f"job.{r}" for r in JOB_REGIONS] + [
    f"{reader}.bank{bank}" for reader in ("scrubber", "bus") for bank in (0, 1)
]
ECC_KINDS = ["corrected", "uncorrectable"]

IRQ_RAISES = [f"done_{code}" for code in OUTCOMES] + ["irq_en_set_while_done"]
IRQ_DROPS = ["status_w1c", "irq_en_cleared", "start", "soft_reset", "hard_reset"]


def _point(name: str, bins: list[str]) -> coverage.CoverPoint:
    return coverage.CoverPoint(f"{TOP}.{name}", vname="value", bins=bins)


def _cross_points(
    name: str,
    first: tuple[str, list[str]],
    second: tuple[str, list[str]],
    impossible: list[tuple[str, str]] | None = None,
):
    """Two cover points sampled together and their cross, without the ``impossible``
    pairs."""
    a = coverage.CoverPoint(f"{TOP}.{name}.{first[0]}", xf=lambda x, y: x, bins=first[1])
    b = coverage.CoverPoint(f"{TOP}.{name}.{second[0]}", xf=lambda x, y: y, bins=second[1])
    cross = coverage.CoverCross(
        f"{TOP}.{name}.cross",
        items=[f"{TOP}.{name}.{first[0]}", f"{TOP}.{name}.{second[0]}"],
        ign_bins=impossible or [],
    )
    return lambda f: a(b(cross(f)))


@_point("csr.read", REGISTERS)
def _csr_read(value: str) -> None: ...


@_point("csr.write", REGISTERS)
def _csr_write(value: str) -> None: ...


@_point("job.dim_m", DIM_CLASSES)
def _dim_m(value: str) -> None: ...


@_point("job.dim_k", DIM_CLASSES)
def _dim_k(value: str) -> None: ...


@_point("job.dim_n", DIM_CLASSES)
def _dim_n(value: str) -> None: ...


@_point("job.epilogue", EPILOGUE_MODES)
def _epilogue(value: str) -> None: ...


@_point("job.shift", SHIFT_CLASSES)
def _shift(value: str) -> None: ...


@_point("job.saturation", SATURATION)
def _saturation(value: str) -> None: ...


@_point("job.operands", OPERAND_EXTREMES)
def _operands(value: str) -> None: ...


@_point("job.outcome", OUTCOMES)
def _outcome(value: str) -> None: ...


@_point("job.start", STARTS)
def _start(value: str) -> None: ...


#: A SOFT_RESET write reaches the registers three cycles after the START write's at the
#: earliest (one transaction at a time), never in CHECK (job cycle 0).
SOFT_RESET_NEVER = [("soft", SEQ_STATES[cycle.S_CHECK])]


@_cross_points("reset", ("kind", RESETS), ("state", list(SEQ_STATES.values())),
               SOFT_RESET_NEVER)  # fmt: skip
def _reset(kind: str, state: str) -> None: ...


@_cross_points("ecc", ("where", ECC_WHERE), ("kind", ECC_KINDS))
def _ecc(where: str, kind: str) -> None: ...


@_point("tmr.mismatch", TMR_REGISTERS)
def _tmr(value: str) -> None: ...


@_point("irq.raise", IRQ_RAISES)
def _irq_raise(value: str) -> None: ...


@_point("irq.drop", IRQ_DROPS)
def _irq_drop(value: str) -> None: ...


# ---- sampling ---------------------------------------------------------------------------


def sample_bus(write: bool, addr: int, resp: int) -> None:
    """A register access as the bus answered it (a scratchpad access is not a CSR's)."""
    try:
        name = Reg(addr & ~3).name
    except ValueError:
        return
    # A refused read is no read of the register (a write is sampled either way: the
    # refusal of a read-only register is its behaviour).
    if write:
        _csr_write(name)
    elif resp == Resp.OKAY:
        _csr_read(name)


def dim_class(value: int, n: int) -> str:
    """A dimension against the array size ``n`` (``DIM_CLASSES``)."""
    if value == DIM_LARGEST:
        return "largest"
    if value == 1:
        return "one"
    if value < n:
        return "below_n"
    if value == n:
        return "equal_n"
    return "multiple_of_n" if value % n == 0 else "not_multiple_of_n"


def epilogue_mode(bias_en: bool, relu: bool, out_int32: bool) -> str:
    """The name of an EPILOGUE mode (``EPILOGUE_MODES``)."""
    flags = {Epilogue.BIAS_EN: bias_en, Epilogue.RELU: relu, Epilogue.OUT_INT32: out_int32}
    return EPILOGUE_MODES[sum(int(f) for f, on in flags.items() if on)]


def shift_class(shift: int) -> str:
    """EPILOGUE.SHIFT against its range (``SHIFT_CLASSES``)."""
    return "zero" if shift == 0 else "largest" if shift == SHIFT_LARGEST else "between"


def operands(d: Descriptor, dump) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A, B and the bias of a job from ``dump(word, count)`` (the scratchpad's words as
    ``uint8[count, n]``), by the layout of docs/REGISTERS.md."""
    words = np.ascontiguousarray(dump(d.a_addr, d.mb * d.k), dtype=np.uint8)
    a = words.reshape(d.mb, d.k, d.n).transpose(0, 2, 1).reshape(d.mb * d.n, d.k)
    a = a.view(np.int8)[: d.m]
    b = unpack_b(dump(d.b_addr, d.nb * d.k), d.k, d.ncols)
    bias = unpack_bias(dump(d.bias_addr, 4 * d.nb), d.ncols) if d.bias_en else None
    return a, b, bias


def sample_job(d: Descriptor, dump) -> None:
    """A job that ran to its end with ERR_CODE NONE: its shape against N, epilogue and
    operand extremes, and with int8 output its shift and whether it saturated."""
    _dim_m(dim_class(d.m, d.n))
    _dim_k(dim_class(d.k, d.n))
    _dim_n(dim_class(d.ncols, d.n))
    _epilogue(epilogue_mode(d.bias_en, d.relu, d.out_int32))
    a, b, bias = operands(d, dump)
    for name, x in (("a", a), ("b", b)):
        if (x == INT8_MIN).any():
            _operands(f"{name}_min")
        if (x == INT8_MAX).any():
            _operands(f"{name}_max")
    a_min, b_min = (a == INT8_MIN).astype(np.int64), (b == INT8_MIN).astype(np.int64)
    if (a_min @ b_min).any():
        _operands("product_min_min")
    if (a_min @ (b == INT8_MAX)).any() or ((a == INT8_MAX) @ b_min).any():
        _operands("product_min_max")
    if d.out_int32:
        return
    _shift(shift_class(d.shift))
    x = gemm_reference(a, b, bias, relu=d.relu, out_int32=True).astype(np.int64)
    y = (x + (1 << (d.shift - 1))) >> d.shift if d.shift else x
    if (y > INT8_MAX).any():
        _saturation("above_127")
    if (y < INT8_MIN).any():
        _saturation("below_minus_128")


def code_name(code: int) -> str:
    """An ERR_CODE by name; a value no job sets (an upset status) matches no bin."""
    return ErrCode(code).name if code in ErrCode._value2member_map_ else f"invalid {code}"


def sample_outcome(code: int) -> None:
    """A job's ERR_CODE as the sequencer set it in its DONE cycle."""
    _outcome(code_name(code))


def sample_start(busy: bool, done: bool, code: int) -> None:
    """A START reaching the registers, with what the sequencer held then."""
    if busy:
        _start("while_busy")
    elif done:
        _start(f"after_{code_name(code)}")
    else:
        _start("after_cleared")


def sample_reset(kind: str, state: int) -> None:
    """A reset (``RESETS``) taken with the sequencer in ``state``."""
    _reset(kind, SEQ_STATES.get(state, f"invalid {state}"))


def sample_ecc(where: str, uncorrectable: bool) -> None:
    """A decoded read with an error: reader and region (``ECC_WHERE``), and its kind."""
    _ecc(where, ECC_KINDS[uncorrectable])


def sample_tmr(register: str) -> None:
    """A voter of ``register`` (``TMR_REGISTERS``) saw its copies disagree."""
    _tmr(register)


def sample_irq(rose: bool, cause: str) -> None:
    """An edge of ``irq_o`` and its cause (``IRQ_RAISES``, ``IRQ_DROPS``)."""
    (_irq_raise if rose else _irq_drop)(cause)


def export(path: str | os.PathLike | None = None) -> None:
    """Write this process's coverage database (to ``SCC_FCOV_FILE`` when not given)."""
    path = path or os.environ.get(FILE_ENV)
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    coverage.coverage_db.export_to_yaml(str(path))


_recording = False


def record() -> None:
    """Write this process's database when it ends (the simulator ends it after its last
    test); a testbench that samples calls this, so a run that samples nothing leaves no
    file."""
    global _recording
    if not _recording:
        atexit.register(export)
        _recording = True


# ---- merging and the report -------------------------------------------------------------


def declared() -> dict[str, list[str]]:
    """Every cover point and cross declared here, with its bins (as exported)."""
    db = coverage.coverage_db
    return {
        name: [str(b) for b in item.detailed_coverage]
        for name, item in sorted(db.items())
        if isinstance(item, coverage.CoverPoint | coverage.CoverCross)
    }


def merge(files: Iterable[Path]) -> dict[str, dict[str, int]]:
    """Hits per bin of each declared cover item, summed over coverage databases; an item
    or bin a database does not hold counts 0 there, one it holds that is not declared
    here is an error (a database of another coverage model)."""
    hits = {name: dict.fromkeys(bins, 0) for name, bins in declared().items()}
    for path in files:
        db = yaml.safe_load(Path(path).read_text()) or {}
        for name, item in db.items():
            if "bins:_hits" not in item:
                continue  # a group: its figures are its items'
            if name not in hits:
                raise ValueError(f"{path}: cover item {name!r} is not declared in {__name__}")
            for b, count in item["bins:_hits"].items():
                if str(b) not in hits[name]:
                    raise ValueError(f"{path}: {name} has no bin {b!r}")
                hits[name][str(b)] += int(count)
    return hits


def label(b: str) -> str:
    """A bin as the report names it: a cross's pair of bins as ``a x b``."""
    if b.startswith("("):
        return " x ".join(str(part) for part in ast.literal_eval(b))
    return b


def missed(hits: dict[str, dict[str, int]]) -> dict[str, list[str]]:
    """The bins never hit, by cover item (items with none left out)."""
    return {name: [label(b) for b, n in bins.items() if not n] for name, bins in hits.items()
            if not all(bins.values())}  # fmt: skip


def markdown(hits: dict[str, dict[str, int]], files: int) -> str:
    """The report: per cover item, bins hit of declared, and those never hit."""
    total = sum(len(bins) for bins in hits.values())
    hit = sum(sum(1 for n in bins.values() if n) for bins in hits.values())
    lines = [
        "# Functional coverage of the cocotb regression",
        "",
        f"{hit} of {total} declared bins hit over {len(hits)} cover points and crosses, "
        f"merged from {files} simulator runs (`results/fcov/`).",
        "",
        "| cover item | hit / declared | never hit |",
        "| --- | --- | --- |",
    ]
    for name, bins in hits.items():
        never = [label(b) for b, n in bins.items() if not n]
        got = len(bins) - len(never)
        lines.append(f"| `{name}` | {got} / {len(bins)} | {', '.join(never) or '-'} |")
    return "\n".join(lines) + "\n"


def report(fcov_dir: Path = FCOV_DIR, out_dir: Path = RESULTS) -> int:
    """Merge every database in ``fcov_dir``, write the report beside it; 1 when a declared
    bin was never hit (or there is no database), else 0."""
    files = sorted(fcov_dir.glob("*.yml")) if fcov_dir.is_dir() else []
    hits = merge(files)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "functional-coverage.yml").write_text(yaml.safe_dump(hits, sort_keys=False))
    (out_dir / "functional-coverage.md").write_text(markdown(hits, len(files)))
    if not files:
        print(f"functional coverage: no coverage database in {fcov_dir}", file=sys.stderr)
        return 1
    never = missed(hits)
    for name, bins in never.items():
        print(f"functional coverage: {name}: never hit: {', '.join(bins)}", file=sys.stderr)
    total = sum(len(bins) for bins in hits.values())
    left = sum(len(bins) for bins in never.values())
    print(f"functional coverage: {total - left} of {total} bins hit over {len(hits)} cover "
          f"items, {len(files)} runs; {out_dir / 'functional-coverage.md'}")  # fmt: skip
    return 1 if never else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cocotb_tests.fcov", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="merge results/fcov/ and fail on a bin never hit")
    rep.add_argument("--dir", type=Path, default=FCOV_DIR, help="coverage databases")
    rep.add_argument("--out", type=Path, default=RESULTS, help="where the report goes")
    args = parser.parse_args(argv)
    return report(args.dir, args.out)


if __name__ == "__main__":
    sys.exit(main())
