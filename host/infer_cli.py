"""``hil infer [WORKLOAD]``: a workload's test set through the chip, checked and measured.

The workload modules are imported when the command runs, not with the parser: every
other ``hil`` command starts without loading them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from host.errors import HostError, UsageError
from host.progress import Progress
from host.target import Target
from testbed.config import ConfigError

if TYPE_CHECKING:
    from host.infer import InferenceResult

WORKLOADS = Path("configs") / "workloads"
SHIPPED = Path(__file__).resolve().parents[1] / WORKLOADS
DEFAULT_BATCH = 32


def workload_path(text: str) -> Path:
    """A workload directory or file, or the name of one under configs/workloads/."""
    path = Path(text)
    if path.exists():
        return path
    for root in (WORKLOADS, SHIPPED):
        if (root / text).is_dir():
            return root / text
    raise ConfigError(text, f"no such workload: give a directory or a name under {WORKLOADS}/")


def report(result: InferenceResult, float_acc: float | None) -> list[str]:
    """The lines ``hil infer`` prints: the figures a reader came for first."""
    n, count = result.array_n, result.count
    exact = count - result.mismatched
    lines = [
        f"accuracy on the chip   {100 * result.accuracy:.2f} % of {count} test images "
        f"({result.workload}, batches of {result.batch}, array N = {n})",
        f"int8 reference         {100 * result.reference_accuracy:.2f} %; logits equal bit for "
        f"bit in {exact} of {count}",
    ]
    if float_acc is not None:
        lines.append(f"float model            {100 * float_acc:.2f} %")
    lines += [
        f"latency per inference  {1e3 * result.latency_s:.2f} ms (wall time over the link, "
        "loads and reads included)",
        f"energy per inference   {result.energy_nj:.1f} nJ (accelerator, the firmware's energy "
        "model: an estimate)",
        "",
        f"{'layer':<8} {'M x K x N':>16} {'cycles':>10} {'MACs':>12} {'MAC utilization':>16}",
    ]
    for layer in result.layers:
        m, k, nc = layer.shape
        lines.append(
            f"{layer.name:<8} {f'{m} x {k} x {nc}':>16} {layer.cycles:>10} {layer.macs:>12} "
            f"{100 * layer.utilization(n):>15.1f}%"
        )
    return lines


def cmd_infer(args: argparse.Namespace, with_target: Callable) -> int:
    """Check the workload and the arguments, then open the link and run."""
    from host.infer import Inference, plan_memory
    from workload.float_model import float_accuracy
    from workload.format import load_workload

    workload = load_workload(workload_path(args.workload))
    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {args.batch}")
    if args.job_timeout is not None and args.job_timeout <= 0:
        raise UsageError(f"--job-timeout must be a positive number of seconds, got "
                         f"{args.job_timeout}")  # fmt: skip
    total = len(workload.test_labels)
    count = total if args.count is None else args.count
    if not 1 <= count <= total:
        raise UsageError(f"--count must be 1..{total}, got {count}")
    try:
        plan_memory(workload, args.batch)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    def infer(target: Target, args: argparse.Namespace) -> int:
        try:
            inference = Inference(target, workload, args.batch, args.job_timeout)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        bar = Progress("infer", "images")
        bar.console.print(f"{workload.name}: loading the weights of {len(workload.layers)} layers")
        inference.load()
        with bar:
            result = inference.run(workload.test_inputs[:count], workload.test_labels[:count],
                                   bar)  # fmt: skip
        float_acc = float_accuracy(workload) if count == total else None
        print("\n".join(report(result, float_acc)))
        if result.mismatched:
            raise HostError(
                f"{result.mismatched} of {count} inferences differ from the int8 reference"
            )
        return 0

    return with_target(infer)(args)


def add_parser(sub: argparse._SubParsersAction, link: argparse.ArgumentParser,
               wrap: Callable) -> None:  # fmt: skip
    """Register ``hil infer`` on the ``hil`` parser's subcommands."""
    s = sub.add_parser(
        "infer", parents=[link],
        help="run a workload's test set on the chip: accuracy, bit-exactness, latency, energy",
    )  # fmt: skip
    s.add_argument("workload", nargs="?", default="digits",
                   help=f"a workload directory, or a name under {WORKLOADS}/ (default digits)")
    s.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                   help=f"inputs per job (default {DEFAULT_BATCH})")  # fmt: skip
    s.add_argument("--count", type=int, help="the first COUNT test images (default all)")
    s.add_argument("--job-timeout", type=float, metavar="S",
                   help="seconds a layer's job may run without a report (default: the link's "
                   "progress timeout; a chip's RTL under simulation needs more, e.g. 120)")
    s.set_defaults(run=lambda args: cmd_infer(args, wrap))
