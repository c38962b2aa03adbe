"""Scratchpad layout of operands (docs/REGISTERS.md, "Data layout") and operand placement."""

import numpy as np
import pytest

from firmware_sim.accel import pack_a, pack_b, pack_bias, place_operands, unpack_c

RNG_SEED = 20240611


def _byte(word: np.ndarray, i: int) -> int:
    return int(word[i])


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_pack_a_puts_column_of_row_block_in_each_word(n):
    rng = np.random.default_rng(RNG_SEED + n)
    m, k = 2 * n + 1, 5
    a = rng.integers(-128, 128, (m, k))
    words = pack_a(a, n)
    mb = -(-m // n)
    assert words.shape == (mb * k, n) and words.dtype == np.uint8
    for r in range(mb):
        for kk in range(k):
            for i in range(n):
                row = r * n + i
                want = a[row, kk] & 0xFF if row < m else 0
                assert _byte(words[r * k + kk], i) == want


@pytest.mark.parametrize("n", [2, 4, 8])
def test_pack_b_puts_row_of_column_block_in_each_word(n):
    rng = np.random.default_rng(RNG_SEED + 10 + n)
    k, ncols = 3, 3 * n - 1
    b = rng.integers(-128, 128, (k, ncols))
    words = pack_b(b, n)
    nb = -(-ncols // n)
    assert words.shape == (nb * k, n)
    for c in range(nb):
        for kk in range(k):
            for i in range(n):
                col = c * n + i
                want = b[kk, col] & 0xFF if col < ncols else 0
                assert _byte(words[c * k + kk], i) == want


@pytest.mark.parametrize("n", [2, 4, 8])
def test_pack_bias_spreads_little_endian_int32_over_four_words(n):
    rng = np.random.default_rng(RNG_SEED + 20 + n)
    ncols = n + 1
    bias = rng.integers(-(2**31), 2**31, ncols)
    words = pack_bias(bias, n)
    nb = -(-ncols // n)
    assert words.shape == (4 * nb, n)
    for c in range(nb):
        block = b"".join(words[4 * c + q].tobytes() for q in range(4))
        for i in range(n):
            col = c * n + i
            value = int.from_bytes(block[4 * i : 4 * i + 4], "little", signed=True)
            assert value == (int(bias[col]) if col < ncols else 0)


@pytest.mark.parametrize("n", [2, 4, 8])
@pytest.mark.parametrize("int32", [False, True])
def test_unpack_c_reads_the_documented_words(n, int32):
    rng = np.random.default_rng(RNG_SEED + 30 + n + int32)
    m, ncols = 3, 2 * n - 1
    nb = -(-ncols // n)
    per = 4 if int32 else 1
    words = rng.integers(0, 256, (per * m * nb, n)).astype(np.uint8)
    c = unpack_c(words, m, ncols, int32=int32)
    assert c.shape == (m, ncols)
    assert c.dtype == (np.int32 if int32 else np.int8)
    for mm in range(m):
        for col in range(ncols):
            cb, i = divmod(col, n)
            if int32:
                block = b"".join(words[4 * (mm * nb + cb) + q].tobytes() for q in range(4))
                want = int.from_bytes(block[4 * i : 4 * i + 4], "little", signed=True)
            else:
                want = int(np.int8(words[mm * nb + cb, i].astype(np.int8)))
            assert int(c[mm, col]) == want


def test_unpack_c_inverts_the_int32_layout():
    rng = np.random.default_rng(RNG_SEED + 40)
    n, ncols = 4, 7
    nb = -(-ncols // n)
    for m in (1, 4, 9):
        c = rng.integers(-(2**31), 2**31, (m, ncols)).astype(np.int32)
        blocks = np.zeros((m, nb * n), dtype="<i4")
        blocks[:, :ncols] = c
        words = blocks.view(np.uint8).reshape(-1, n)
        assert np.array_equal(unpack_c(words, m, ncols, int32=True), c)


def test_bias_words_read_as_int32_c_give_the_bias_back():
    # One C row in int32 has the bias block's layout: 4 words per column block.
    rng = np.random.default_rng(RNG_SEED + 41)
    for n in (2, 4, 8):
        bias = rng.integers(-(2**31), 2**31, 2 * n + 1)
        got = unpack_c(pack_bias(bias, n), 1, bias.size, int32=True)
        assert np.array_equal(got[0], bias)


def test_unpack_c_rejects_wrong_word_count():
    with pytest.raises(ValueError, match="takes 6 words"):
        unpack_c(np.zeros((5, 4), dtype=np.uint8), 3, 5)


def test_pack_rejects_values_outside_int8():
    with pytest.raises(ValueError, match="-128 .. 127"):
        pack_a(np.array([[128]]), 4)


def test_default_placement_keeps_operands_apart_and_in_their_banks():
    p = place_operands(4, 64, 10, 6, 9, bias=True, out_int32=False)
    assert (p.a_addr, p.b_addr) == (0, 64)
    spans = [
        (p.a_addr, p.a_words),
        (p.b_addr, p.b_words),
        (p.bias_addr, p.bias_words),
        (p.c_addr, p.c_words),
    ]
    taken = set()
    for start, size in spans:
        cells = set(range(start, start + size))
        assert not cells & taken
        taken |= cells
    assert max(taken) < 128


def test_placement_moves_c_to_bank_1_when_bank_0_is_full():
    p = place_operands(4, 64, 8, 30, 4, bias=False, out_int32=False)  # A takes 60 words
    assert p.c_addr >= 64 + p.b_words


def test_placement_says_what_does_not_fit():
    with pytest.raises(ValueError, match="A .* takes 80 words"):
        place_operands(4, 64, 16, 20, 4, bias=False, out_int32=False)
    with pytest.raises(ValueError, match="no room for C"):
        place_operands(4, 64, 60, 1, 64, bias=False, out_int32=True)
