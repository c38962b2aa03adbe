"""SECDED encoder and decoder against the generator that defines the code."""

from __future__ import annotations

import itertools
import random

import cocotb
import pytest
from cocotb.triggers import Timer

from cocotb_tests.sim import hdl_parameters, run
from firmware_sim.accel.secded import code_for


async def settle() -> None:
    await Timer(1, unit="ns")


@cocotb.test()
async def encoder_matches_model(dut):
    """The RTL encoder writes the check bits the model computes, for random words."""
    code = code_for(hdl_parameters()["DW"])
    rng = random.Random(cocotb.RANDOM_SEED)
    for data in [0, (1 << code.data_bits) - 1] + [
        rng.getrandbits(code.data_bits) for _ in range(200)
    ]:
        dut.enc_data_i.value = data
        await settle()
        expected = (code.encode(data) << code.data_bits) | data
        assert int(dut.enc_code_o.value) == expected, f"data {data:#x}"


@cocotb.test()
async def every_single_bit_error_is_corrected(dut):
    """Each of the codeword's bits flipped alone is corrected, as the model decodes it."""
    code = code_for(hdl_parameters()["DW"])
    rng = random.Random(cocotb.RANDOM_SEED)
    for _ in range(8):
        data = rng.getrandbits(code.data_bits)
        word = (code.encode(data) << code.data_bits) | data
        for bit in range(code.codeword_bits):
            bad = word ^ (1 << bit)
            dut.dec_code_i.value = bad
            await settle()
            fixed, syndrome, status = code.decode(
                bad & ((1 << code.data_bits) - 1), bad >> code.data_bits
            )
            assert status == 1 and fixed == data
            assert int(dut.dec_data_o.value) == fixed, f"bit {bit} of {word:#x}"
            assert int(dut.dec_syndrome_o.value) == syndrome
            assert int(dut.dec_single_o.value) == 1
            assert int(dut.dec_double_o.value) == 0


@cocotb.test()
async def every_double_bit_error_is_detected(dut):
    """Every pair of flipped bits is flagged uncorrectable, as the model decodes it."""
    code = code_for(hdl_parameters()["DW"])
    rng = random.Random(cocotb.RANDOM_SEED)
    for _ in range(2):
        data = rng.getrandbits(code.data_bits)
        word = (code.encode(data) << code.data_bits) | data
        for i, j in itertools.combinations(range(code.codeword_bits), 2):
            bad = word ^ (1 << i) ^ (1 << j)
            dut.dec_code_i.value = bad
            await settle()
            _, syndrome, status = code.decode(
                bad & ((1 << code.data_bits) - 1), bad >> code.data_bits
            )
            assert status == 2, f"model calls bits {i},{j} correctable"
            assert int(dut.dec_double_o.value) == 1, f"bits {i},{j} of {word:#x}"
            assert int(dut.dec_single_o.value) == 0
            assert int(dut.dec_syndrome_o.value) == syndrome


@pytest.mark.rtl
@pytest.mark.parametrize("dw", [16, 32, 64, 128])
def test_secded(dw: int) -> None:
    run("scc_secded_pair", "cocotb_tests.test_secded", {"DW": dw})
