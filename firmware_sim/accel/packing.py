"""Matrices to and from the scratchpad word layout, and where a job's operands go.

Words are ``uint8[words, n]`` arrays, byte ``i`` of a word in data bits ``8i .. 8i+7``
(docs/REGISTERS.md, "Data layout in the scratchpad"). Padding bytes are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _blocks(size: int, n: int) -> int:
    return -(-size // n)


def _int_matrix(x: np.ndarray, name: str, lo: int, hi: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(f"{name} must be a non-empty 2-D matrix, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.min() < lo or arr.max() > hi:
        raise ValueError(f"{name} values must lie in {lo} .. {hi}")
    return arr.astype(np.int64)


def pack_a(a: np.ndarray, n: int) -> np.ndarray:
    """A (M x K, int8) as MB*K words: word r*K + k holds A[r*n + i][k] in byte i."""
    a = _int_matrix(a, "A", -128, 127)
    m, k = a.shape
    mb = _blocks(m, n)
    padded = np.zeros((mb * n, k), dtype=np.int8)
    padded[:m] = a
    return (
        np.ascontiguousarray(padded.reshape(mb, n, k).transpose(0, 2, 1))
        .reshape(mb * k, n)
        .view(np.uint8)
    )


def pack_b(b: np.ndarray, n: int) -> np.ndarray:
    """B (K x Ncols, int8) as NB*K words: word c*K + k holds B[k][c*n + i] in byte i."""
    b = _int_matrix(b, "B", -128, 127)
    k, ncols = b.shape
    nb = _blocks(ncols, n)
    padded = np.zeros((k, nb * n), dtype=np.int8)
    padded[:, :ncols] = b
    return (
        np.ascontiguousarray(padded.reshape(k, nb, n).transpose(1, 0, 2))
        .reshape(nb * k, n)
        .view(np.uint8)
    )


def unpack_b(words: np.ndarray, k: int, ncols: int) -> np.ndarray:
    """B (K x Ncols, int8) from the NB*K words ``pack_b`` lays out; n is the word width."""
    words = np.ascontiguousarray(words, dtype=np.uint8)
    n = words.shape[1]
    nb = _blocks(ncols, n)
    full = words.reshape(nb, k, n).transpose(1, 0, 2).reshape(k, nb * n).view(np.int8)
    return np.ascontiguousarray(full[:, :ncols])


def unpack_bias(words: np.ndarray, ncols: int) -> np.ndarray:
    """The bias (Ncols, int32) from the 4*NB words ``pack_bias`` lays out."""
    octets = np.ascontiguousarray(words, dtype=np.uint8).reshape(-1)
    return octets.view("<i4")[:ncols].astype(np.int32)


def pack_bias(bias: np.ndarray, n: int) -> np.ndarray:
    """bias (Ncols, int32) as 4*NB words: word 4c + q holds byte q*n + i of bias[c*n ..]."""
    vec = np.asarray(bias)
    if vec.ndim != 1 or vec.size == 0 or not np.issubdtype(vec.dtype, np.integer):
        raise ValueError(
            f"bias must be a non-empty 1-D integer vector, got {vec.dtype} of shape {vec.shape}"
        )
    if vec.min() < -(1 << 31) or vec.max() >= 1 << 31:
        raise ValueError("bias values must fit in int32")
    nb = _blocks(vec.size, n)
    padded = np.zeros(nb * n, dtype="<i4")
    padded[: vec.size] = vec
    return padded.view(np.uint8).reshape(4 * nb, n)


def unpack_c(words: np.ndarray, m: int, ncols: int, int32: bool = False) -> np.ndarray:
    """C (M x Ncols) from its words (int8, or int32 with OUT_INT32); n is the word width."""
    words = np.ascontiguousarray(words, dtype=np.uint8)
    n = words.shape[1]
    nb = _blocks(ncols, n)
    per = 4 if int32 else 1
    if words.shape[0] != per * m * nb:
        raise ValueError(
            f"C of {m} x {ncols} at N={n} takes {per * m * nb} words, got {words.shape[0]}"
        )
    if int32:
        full = words.reshape(m, nb * 4 * n).view("<i4").astype(np.int32)
    else:
        full = words.reshape(m, nb * n).view(np.int8)
    return np.ascontiguousarray(full[:, :ncols])


def words_to_int(word: np.ndarray) -> int:
    """A word's data bits as an integer."""
    return int.from_bytes(np.asarray(word, dtype=np.uint8).tobytes(), "little")


def int_to_words(value: int, n: int) -> np.ndarray:
    """An integer's low 8n bits as one word (``uint8[1, n]``)."""
    return np.frombuffer(value.to_bytes(n, "little"), dtype=np.uint8).reshape(1, n).copy()


@dataclass(frozen=True)
class Placement:
    """Word addresses of a job's operands and how many words each takes."""

    a_addr: int
    b_addr: int
    bias_addr: int
    c_addr: int
    a_words: int
    b_words: int
    bias_words: int
    c_words: int


def place_operands(
    n: int,
    bank_words: int,
    m: int,
    k: int,
    ncols: int,
    *,
    bias: bool,
    out_int32: bool,
    a_addr: int | None = None,
    b_addr: int | None = None,
    bias_addr: int | None = None,
    c_addr: int | None = None,
) -> Placement:
    """Default addresses: A at 0, B at bank_words, then C and bias first-fit in what is left.

    Addresses that are given are kept as they are (the chip checks them).
    """
    spm_words = 2 * bank_words
    mb, nb = _blocks(m, n), _blocks(ncols, n)
    a_words, b_words = mb * k, nb * k
    bias_words = 4 * nb if bias else 0
    c_words = m * nb * (4 if out_int32 else 1)
    if a_addr is None:
        a_addr = 0
        if a_words > bank_words:
            raise ValueError(
                f"A ({m} x {k}) takes {a_words} words, more than bank 0 holds ({bank_words})"
            )
    if b_addr is None:
        b_addr = bank_words
        if b_words > bank_words:
            raise ValueError(
                f"B ({k} x {ncols}) takes {b_words} words, more than bank 1 holds ({bank_words})"
            )
    used = [(a_addr, a_addr + a_words), (b_addr, b_addr + b_words)]
    if bias_addr is not None and bias:
        used.append((bias_addr, bias_addr + bias_words))
    if c_addr is not None:
        used.append((c_addr, c_addr + c_words))

    def first_fit(size: int, what: str) -> int:
        for lo, hi in ((0, bank_words), (bank_words, spm_words)):
            start = lo
            for u_lo, u_hi in sorted(used):
                if u_hi <= start or u_lo >= hi:
                    continue
                if u_lo - start >= size:
                    break
                start = max(start, u_hi)
            if start + size <= hi:
                used.append((start, start + size))
                return start
        raise ValueError(
            f"no room for {what} ({size} words) next to A ({a_words} words at {a_addr}) "
            f"and B ({b_words} words at {b_addr}) in {spm_words} scratchpad words"
        )

    if c_addr is None:
        c_addr = first_fit(c_words, "C")
    if bias_addr is None:
        bias_addr = first_fit(bias_words, "the bias") if bias else 0
    for name, addr, size in (
        ("A", a_addr, a_words),
        ("B", b_addr, b_words),
        ("bias", bias_addr, bias_words),
        ("C", c_addr, c_words),
    ):
        if addr < 0 or addr + size > spm_words:
            raise ValueError(
                f"{name} at word {addr} takes {size} words, past the scratchpad's {spm_words} words"
            )
    return Placement(a_addr, b_addr, bias_addr, c_addr, a_words, b_words, bias_words, c_words)
