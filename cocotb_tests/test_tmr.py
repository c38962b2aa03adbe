"""The TMR register against its reference: voting, repair and the mismatch flag."""

from __future__ import annotations

import random

import cocotb
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from cocotb_tests.sim import hdl_parameters, run
from firmware_sim.accel.tmr import TmrRegister


def copies(dut) -> list[int]:
    n = 3 if hdl_parameters()["TMR_EN"] else 1
    return [int(dut.q_q[k].value) for k in range(n)]


@cocotb.test()
async def random_writes_and_upsets_match_reference(dut):
    """Writes and single- or double-copy upsets vote, repair and flag as the reference does."""
    params = hdl_parameters()
    ref = TmrRegister(params["W"], tmr=bool(params["TMR_EN"]))
    rng = random.Random(cocotb.RANDOM_SEED)
    Clock(dut.clk_i, 10, unit="ns").start()
    dut.we_i.value = 0
    dut.d_i.value = 0
    dut.rst_ni.value = 0
    await ClockCycles(dut.clk_i, 2)
    dut.rst_ni.value = 1
    for _ in range(400):
        await FallingEdge(dut.clk_i)
        write = rng.random() < 0.3
        value = rng.getrandbits(ref.width)
        dut.we_i.value = int(write)
        dut.d_i.value = value
        upsets = rng.choice([0, 0, 1, 1, 2])
        for _ in range(upsets):
            copy, bit = rng.randrange(len(ref.copies)), rng.randrange(ref.width)
            ref.flip(copy, bit)
            dut.q_q[copy].value = ref.copies[copy]
        await ReadOnly()
        assert copies(dut) == ref.copies
        assert int(dut.q_o.value) == ref.value
        assert int(dut.mismatch_o.value) == int(ref.mismatch)
        ref.clock(value if write else None)


@pytest.mark.rtl
@pytest.mark.parametrize("tmr_en", [1, 0])
def test_tmr_reg(tmr_en: int) -> None:
    run("scc_tmr_reg", "cocotb_tests.test_tmr", {"W": 8, "TMR_EN": tmr_en})
