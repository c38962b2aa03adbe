"""Inference benchmark: a workload's whole test set through a simulated chip over a pty.

The chip (``python -m firmware_sim``, model backend) runs as a subprocess on a real
pseudo-terminal and the host drives it through the link with ``host.infer.Inference``,
as ``hil infer`` does. ``run()`` returns a dict of numbers; ``python -m bench.infer_bench``
prints it as JSON.

The figures: inferences per second (wall clock over the pty, the batches only: the
weights are loaded before and timed apart), accuracy on the chip, of the host's int8
reference and of the float model the workload was quantized from, how many logits equal
the reference bit for bit, energy per inference (the firmware's energy model) and, per
layer, the cycles, MACs and MAC utilization the target reported.
"""

from __future__ import annotations

import json
import time

from host import Authenticator, Link
from host.infer import Inference
from host.infer_cli import DEFAULT_BATCH, SHIPPED
from host.sim import SIM_KEY, SIM_KEY_ID, SimulatedTarget
from host.target import Target
from testbed.sitemap_builds import Build
from workload.float_model import float_accuracy
from workload.format import load_workload

WORKLOAD = "digits"
BACKEND = "model"
BUILD = Build()
"""The chip's build: the RTL's parameter defaults."""


def _build_args(build: Build) -> tuple[str, ...]:
    """``firmware_sim`` options that give the chip ``build``."""
    args = ["--bank-words", str(build.bank_words), "--interleave", str(build.interleave)]
    args += [flag for flag, on in (("--no-ecc", build.ecc), ("--no-tmr", build.tmr)) if not on]
    if build.ecc and not build.scrub:
        args.append("--no-scrub")
    return tuple(args)


def run(workload_name: str = WORKLOAD, batch: int = DEFAULT_BATCH, build: Build = BUILD) -> dict:
    """The workload's test set through the chip in batches of ``batch``, measured."""
    workload = load_workload(SHIPPED / workload_name)
    inputs, labels = workload.test_inputs, workload.test_labels
    with (
        SimulatedTarget(mode="test", array_n=build.n, args=_build_args(build),
                        backend=BACKEND) as sim,
        Link(sim.port, auth=Authenticator(SIM_KEY_ID, SIM_KEY)) as link,
    ):  # fmt: skip
        target = Target(link)
        array_n = target.array_n()
        if array_n != build.n:
            raise RuntimeError(f"the chip reports N = {array_n}, its build has {build.n}")
        inference = Inference(target, workload, batch)
        started = time.perf_counter()
        inference.load()
        load_s = time.perf_counter() - started
        result = inference.run(inputs, labels)
    count = result.count
    batches = -(-count // batch)
    return {
        "workload": workload.name,
        "target": f"simulated chip ({BACKEND} backend) on a pty",
        "build": build.name,
        "array_n": array_n,
        "batch": batch,
        "batches": batches,
        "images": count,
        "load_s": round(load_s, 3),
        "run_s": round(result.seconds, 3),
        "inferences_per_s": round(count / result.seconds, 1),
        "latency_ms_per_inference": round(1e3 * result.latency_s, 3),
        "latency_ms_per_batch": round(1e3 * result.seconds / batches, 3),
        "accuracy_chip": round(result.accuracy, 4),
        "accuracy_int8_reference": round(result.reference_accuracy, 4),
        "accuracy_float": round(float_accuracy(workload), 4),
        "logits_exact": count - result.mismatched,
        "energy_nj_per_inference": round(result.energy_nj, 2),
        "cycles_per_inference": round(sum(layer.cycles for layer in result.layers) / count, 1),
        "layers": [
            {
                "name": layer.name,
                "m": layer.shape[0],
                "k": layer.shape[1],
                "n": layer.shape[2],
                "cycles": layer.cycles,
                "macs": layer.macs,
                "energy_nj": layer.energy_nj,
                "mac_utilization": round(layer.utilization(array_n), 4),
            }
            for layer in result.layers
        ],
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
