"""cocotb benchmark: cycles and MAC utilization of GEMM jobs on scc_top, checked against the model.

Run through ``python -m bench``; the shapes come in ``BENCH_SHAPES`` and the figures go
to the JSON file named by ``BENCH_OUT``.
"""

from __future__ import annotations

import json
import os
import time

import cocotb

from cocotb_tests.tb import SccTb
from cocotb_tests.test_scc import Job, job_done
from firmware_sim.accel import Reg


@cocotb.test()
async def gemm_shapes(dut):
    """Each shape once: the job must match the model; record cycles, MACs and wall time."""
    tb = SccTb(dut)
    await tb.start()
    rows = []
    for i, (m, k, ncols, bias) in enumerate(json.loads(os.environ["BENCH_SHAPES"])):
        job = Job(tb, m, k, ncols, seed=i, bias=bias, relu=bias, out_int32=False, shift=8)
        await job.program(tb)
        begin = time.perf_counter()
        await tb.start_job()
        await tb.wait_done()
        wall = time.perf_counter() - begin
        cycles = tb.model.read_reg(Reg.CYCLES)
        macs = tb.model.read_reg(Reg.MACS)
        await job_done(tb)
        rows.append({
            "m": m, "k": k, "n": ncols, "bias_relu": bias,
            "cycles": cycles, "macs": macs,
            "mac_utilization": round(macs / (cycles * tb.n * tb.n), 4),
            "sim_cycles_per_s": round(cycles / wall),
        })
        tb.log.info("%s", rows[-1])
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump({"array_n": tb.n, "bank_words": tb.bank_words, "jobs": rows}, out, indent=2)
