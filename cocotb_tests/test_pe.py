"""One processing element against the model's arithmetic: int8 products in a wrapping int32,
and the FIRST tag that moves a finished sum to the result register."""

from __future__ import annotations

import random

import cocotb
import numpy as np
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from cocotb_tests.sim import run
from firmware_sim.accel.reference import gemm_reference


def as_int32(value: int) -> int:
    return value - (1 << 32) if value & (1 << 31) else value


def dot(a: list[int], b: list[int]) -> int:
    """The model's int32 sum of int8 products (0 for no products)."""
    if not a:
        return 0
    return int(gemm_reference(np.array([a]), np.array([b]).T, out_int32=True)[0, 0])


@cocotb.test()
async def accumulates_and_moves_sums_on_first(dut):
    """Random operands, valid gaps and FIRST tags (with and without operands): acc_q holds
    the sum since the last FIRST and out_q the sum before it, as the model computes them."""
    rng = random.Random(cocotb.RANDOM_SEED)
    Clock(dut.clk_i, 10, unit="ns").start()
    for signal in (dut.first_i, dut.valid_i, dut.a_i, dut.b_i):
        signal.value = 0
    dut.rst_ni.value = 0
    await ClockCycles(dut.clk_i, 2)
    dut.rst_ni.value = 1
    run_a: list[int] = []
    run_b: list[int] = []
    result = 0
    for step in range(3000):
        await FallingEdge(dut.clk_i)
        first = rng.random() < 0.02
        valid = rng.random() < 0.8
        # Long runs of extreme operands make the int32 sum wrap.
        pool = [-128, 127] if step % 1000 > 500 else list(range(-128, 128))
        a, b = rng.choice(pool), rng.choice(pool)
        dut.first_i.value = int(first)
        dut.valid_i.value = int(valid)
        dut.a_i.value = a & 0xFF
        dut.b_i.value = b & 0xFF
        if first:
            result = dot(run_a, run_b)
            run_a, run_b = [], []
        if valid:
            run_a.append(a)
            run_b.append(b)
        await RisingEdge(dut.clk_i)
        await ReadOnly()
        assert as_int32(int(dut.acc_q.value)) == dot(run_a, run_b), f"acc at step {step}"
        assert as_int32(int(dut.out_o.value)) == result, f"result at step {step}"
        assert int(dut.a_o.value) == a & 0xFF
        assert (int(dut.valid_o.value), int(dut.first_o.value)) == (int(valid), int(first))


@pytest.mark.rtl
def test_pe() -> None:
    run("scc_pe", "cocotb_tests.test_pe")
