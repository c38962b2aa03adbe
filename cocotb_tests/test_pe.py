"""One processing element against the model's arithmetic: int8 products in a wrapping int32."""

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


@cocotb.test()
async def accumulates_valid_products_between_clears(dut):
    """Random operands, valid gaps and clears: acc_o equals the model's dot product."""
    rng = random.Random(cocotb.RANDOM_SEED)
    Clock(dut.clk_i, 10, unit="ns").start()
    dut.clear_i.value = 0
    dut.valid_i.value = 0
    dut.a_i.value = 0
    dut.b_i.value = 0
    dut.rst_ni.value = 0
    await ClockCycles(dut.clk_i, 2)
    dut.rst_ni.value = 1
    a_seen: list[int] = []
    b_seen: list[int] = []
    # Long runs of extreme operands make the int32 sum wrap.
    extremes = [-128, 127]
    for step in range(3000):
        await FallingEdge(dut.clk_i)
        clear = rng.random() < 0.01
        valid = rng.random() < 0.8
        pool = extremes if step % 1000 > 500 else list(range(-128, 128))
        a, b = rng.choice(pool), rng.choice(pool)
        dut.clear_i.value = int(clear)
        dut.valid_i.value = int(valid)
        dut.a_i.value = a & 0xFF
        dut.b_i.value = b & 0xFF
        if clear:
            a_seen, b_seen = [], []
        elif valid:
            a_seen.append(a)
            b_seen.append(b)
        await RisingEdge(dut.clk_i)
        await ReadOnly()
        if a_seen:
            expected = int(
                gemm_reference(np.array([a_seen]), np.array([b_seen]).T, out_int32=True)[0, 0]
            )
        else:
            expected = 0
        assert as_int32(int(dut.acc_o.value)) == expected, f"step {step}"
        assert as_int32(int(dut.a_o.value)) & 0xFF == a & 0xFF
        assert int(dut.valid_o.value) == int(valid)


@pytest.mark.rtl
def test_pe() -> None:
    run("scc_pe", "cocotb_tests.test_pe")
