"""SECDED on the scratchpad: correction, detection, counting, scrubbing, interleaving."""

import numpy as np
import pytest

from firmware_sim.accel import (
    SPM_BASE,
    AccBit,
    Accelerator,
    EccStatus,
    ErrCode,
    FlopBit,
    JobPoint,
    Reg,
    SpmCell,
    gemm_reference,
)
from firmware_sim.accel.ecc import WordCodec
from firmware_sim.accel.secded import code_for

SEED = 4242
SENTINEL = 0x5A


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_vectorised_codec_agrees_with_the_generator(n):
    rng = np.random.default_rng(SEED + n)
    code, codec = code_for(8 * n), WordCodec(n)
    words = rng.integers(0, 256, (200, n)).astype(np.uint8)
    ints = [int.from_bytes(w.tobytes(), "little") for w in words]
    check = codec.encode(words)
    assert [int(c) for c in check] == [code.encode(x) for x in ints]
    cw = 8 * n + code.check_bits
    flips = [rng.choice(cw, size=int(rng.integers(1, 3)), replace=False) for _ in ints]
    data, chk = words.copy(), check.copy()
    for row, bits in enumerate(flips):
        for bit in bits:
            if bit < 8 * n:
                data[row, bit // 8] ^= 1 << (bit % 8)
            else:
                chk[row] ^= 1 << (bit - 8 * n)
    fixed, status = codec.decode(data, chk)
    for row, x in enumerate(ints):
        raw = int.from_bytes(data[row].tobytes(), "little")
        want_data, _, want_status = code.decode(raw, int(chk[row]))
        assert int(status[row]) == want_status == len(flips[row])
        assert int.from_bytes(fixed[row].tobytes(), "little") == want_data
        if want_status == 1:
            assert want_data == x


# M = 10 (MB = 3), K = 6, DIM_N = 5 (NB = 2): an A word is read twice (once per column
# block), a B word 3 times (once per tile of its column block), a bias word once (in the
# BIAS of its column block). Tile T = c*MB + r; a STREAM period has P = max(K + 1, 2N + 1)
# cycles (int8 output).
M, K, NCOLS, N = 10, 6, 5, 4
MB, NB = 3, 2
P = max(K + 1, 2 * N + 1)
SHIFT = 9


def _operands(seed=SEED):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (M, K))
    b = rng.integers(-128, 128, (K, NCOLS))
    bias = rng.integers(-2000, 2000, NCOLS)
    return a, b, bias


def _loaded(interleave=1, ecc=True):
    chip = Accelerator(n=N, bank_words=64, interleave=interleave, ecc=ecc, scrub=ecc)
    a, b, bias = _operands()
    place = chip.load_job(a, b, bias, shift=SHIFT)
    chip.load(place.c_addr, np.full((place.c_words, N), SENTINEL, dtype=np.uint8))
    return chip, place, (a, b, bias)


def _run(chip, place, ops, faults=()):
    err = chip.run(faults)
    c = chip.unpack_c(chip.dump(place.c_addr, place.c_words), M, NCOLS)
    return c, err, gemm_reference(*ops, shift=SHIFT)


@pytest.mark.parametrize(("operand", "reads"), [("a", NB), ("b", MB), ("bias", 1)])
@pytest.mark.parametrize("bit", [0, 13, 31, 32, 38])  # data bits, then check bits (DW = 32)
def test_single_bit_error_in_an_operand_is_corrected_once_per_read(operand, reads, bit):
    chip, place, ops = _loaded()
    word = {
        "a": place.a_addr + 1 * K + 2,
        "b": place.b_addr + 1 * K + 4,
        "bias": place.bias_addr + 4 * 1 + 3,
    }[operand]
    chip.flip(chip.layout.cell_of(word, bit))
    c, err, want = _run(chip, place, ops)
    assert err == ErrCode.NONE and np.array_equal(c, want)
    assert chip.read_reg(Reg.ECC_CORR) == reads
    assert chip.read_reg(Reg.ECC_UNCORR) == 0
    _run(chip, place, ops)
    assert chip.read_reg(Reg.ECC_CORR) == 2 * reads  # reads never write corrections back


def _rc(tile):
    c, r = divmod(tile, MB)
    return r, c


def _tile_words(place, tile):
    r, c = _rc(tile)
    return [place.c_addr + m * NB + c for m in range(r * N, min(M, r * N + N))]


def _cycles_until(tile):
    """The doc's CYCLES of a job ended by ECC at ``tile``, with BIAS_EN."""
    return 2 + 5 * (_rc(tile)[1] + 1) + P * (tile + 1)


@pytest.mark.parametrize(
    ("operand", "block", "first_tile"),
    # A block r is first read by tile r; B and bias block c by tile c*MB.
    [("a", 1, 1), ("a", 2, 2), ("b", 1, MB), ("b", 0, 0), ("bias", 1, MB), ("bias", 0, 0)],
)
def test_double_bit_error_ends_the_job_at_the_first_tile_that_reads_it(operand, block, first_tile):
    chip, place, ops = _loaded()
    base = {"a": place.a_addr, "b": place.b_addr, "bias": place.bias_addr}[operand]
    word = base + block * (4 if operand == "bias" else K) + 1
    chip.flip_many([chip.layout.cell_of(word, 2), chip.layout.cell_of(word, 9)])
    c, err, want = _run(chip, place, ops)
    assert err == ErrCode.ECC
    assert chip.read_reg(Reg.STATUS) == 0b110 | ErrCode.ECC << 4
    assert chip.read_reg(Reg.ECC_UNCORR) == 1 and chip.read_reg(Reg.ECC_CORR) == 0
    assert chip.read_reg(Reg.CYCLES) == _cycles_until(first_tile)
    done_macs = sum(
        min(N, M - _rc(t)[0] * N) * min(N, NCOLS - _rc(t)[1] * N) * K for t in range(first_tile)
    )
    assert chip.read_reg(Reg.MACS) == done_macs
    written = {w for t in range(first_tile) for w in _tile_words(place, t)}
    for w in range(place.c_addr, place.c_addr + place.c_words):
        if w not in written:
            assert chip.peek(w)[0] == int.from_bytes(bytes([SENTINEL] * N), "little"), w
    for t in range(first_tile):
        r, cb = _rc(t)
        rows = slice(r * N, min(M, r * N + N))
        cols = slice(cb * N, min(NCOLS, cb * N + N))
        assert np.array_equal(c[rows, cols], want[rows, cols])


def test_errors_in_an_abandoned_tile_and_before_are_all_counted():
    chip, place, ops = _loaded()
    # Single error in A block 0 (read by tiles 0 and 3), double in B block 1 (first read by
    # tile 3 = 1*MB + 0, where the job ends), single in bias block 1 (read once, in the BIAS
    # before tile 3).
    chip.flip(chip.layout.cell_of(place.a_addr + 0, 5))
    chip.flip_many(
        [chip.layout.cell_of(place.b_addr + K, 1), chip.layout.cell_of(place.b_addr + K, 2)]
    )
    chip.flip(chip.layout.cell_of(place.bias_addr + 4, 7))
    _, err, _ = _run(chip, place, ops)
    assert err == ErrCode.ECC
    assert chip.read_reg(Reg.ECC_CORR) == 2 + 1
    assert chip.read_reg(Reg.ECC_UNCORR) == 1


def test_two_flipped_check_bits_are_uncorrectable():
    chip, place, ops = _loaded()
    word = place.a_addr + 3
    chip.flip_many([chip.layout.cell_of(word, 32), chip.layout.cell_of(word, 33)])
    assert chip.read_word(word)[1] == EccStatus.UNCORRECTABLE
    _, err, _ = _run(chip, place, ops)
    assert err == ErrCode.ECC


def _random_dirty(chip, rng, place, count):
    """Single (mostly) and double errors in words of the job's operands and C."""
    cw = chip.layout.codeword_bits
    spans = [
        (place.a_addr, place.a_words),
        (place.b_addr, place.b_words),
        (place.bias_addr, place.bias_words),
        (place.c_addr, place.c_words),
    ]
    spans = [s for s in spans if s[1]]
    for _ in range(count):
        lo, size = spans[int(rng.integers(0, len(spans)))]
        w = lo + int(rng.integers(0, size))
        bits = rng.choice(cw, size=1 if rng.random() < 0.85 else 2, replace=False)
        chip.flip_many([chip.layout.cell_of(w, int(b)) for b in bits])


@pytest.mark.parametrize("seed", range(16))
def test_bulk_and_tile_by_tile_paths_agree_on_dirty_memory(seed):
    """Faults that cannot matter make the model redo tiles alone; everything must match.

    Variants: no fault (all tiles in bulk), a no-op fault at some tiles, and at every tile.
    """
    rng = np.random.default_rng(SEED + 1000 + seed)
    n = [2, 4, 8][seed % 3]
    m, k, ncols = (int(x) for x in rng.integers(1, 3 * n, 3))
    ops = (rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, ncols)))
    bias = rng.integers(-1000, 1000, ncols) if seed % 2 else None
    out32 = seed % 4 == 1
    dirty = int(rng.integers(1, 8))
    tiles = -(-m // n) * -(-ncols // n)
    some = sorted({int(t) for t in rng.integers(0, tiles, 3)})

    def noop(ts):  # the same accumulator bit flipped twice in a cycle: tiles redone alone
        return [(JobPoint(t, "stream", 1 + s), AccBit(0, 0, 5)) for t in ts for s in (0, 0)]

    results = []
    for faults in ([], noop(some), noop(range(tiles))):
        chip = Accelerator(n=n, bank_words=256)
        chip.load(0, np.random.default_rng(seed).integers(0, 256, (512, n)).astype(np.uint8))
        place = chip.load_job(*ops, bias, out_int32=out32)
        _random_dirty(chip, np.random.default_rng(seed), place, dirty)
        chip.run(faults)
        regs = [
            chip.read_reg(r)
            for r in (Reg.STATUS, Reg.CYCLES, Reg.MACS, Reg.ECC_CORR, Reg.ECC_UNCORR)
        ]
        results.append((regs, [chip.peek(w) for w in range(512)]))
    assert results[1] == results[0], f"no-op faults at tiles {some}"
    assert results[2] == results[0]


# --- scrubber ---------------------------------------------------------------------------


def _scrub_chip(bank_words=64):
    chip = Accelerator(n=4, bank_words=bank_words)
    rng = np.random.default_rng(SEED + 7)
    chip.load(0, rng.integers(0, 256, (2 * bank_words, 4)).astype(np.uint8))
    return chip


def test_scrubber_repairs_single_errors_and_counts_doubles_every_pass():
    chip = _scrub_chip()
    good = {w: chip.peek(w) for w in range(chip.spm_words)}
    singles = [3, 17, 64, 100, 127]
    for w, bit in zip(singles, [0, 31, 32, 38, 7], strict=True):
        chip.flip(chip.layout.cell_of(w, bit))
    chip.flip_many([chip.layout.cell_of(50, 1), chip.layout.cell_of(50, 2)])
    chip.scrub_steps(10)
    assert chip.read_reg(Reg.SCRUB_PTR) == 10 and chip.read_reg(Reg.ECC_CORR) == 1
    chip.scrub_steps(chip.spm_words - 10)
    assert chip.read_reg(Reg.SCRUB_PTR) == 0 and chip.read_reg(Reg.SCRUB_PASSES) == 1
    assert chip.read_reg(Reg.ECC_CORR) == 5 and chip.read_reg(Reg.ECC_UNCORR) == 1
    for w in singles:
        assert chip.peek(w) == good[w]
    assert chip.peek(50) != good[50]
    chip.scrub_steps(chip.spm_words)
    assert chip.read_reg(Reg.ECC_CORR) == 5 and chip.read_reg(Reg.ECC_UNCORR) == 2
    for w in singles:
        assert chip.read_word(w) == (good[w][0], EccStatus.CLEAN)


def test_many_scrub_passes_at_once_equal_step_by_step():
    bulk, steps = _scrub_chip(16), _scrub_chip(16)
    for chip in (bulk, steps):
        chip.flip(chip.layout.cell_of(5, 4))
        chip.flip_many([chip.layout.cell_of(9, 1), chip.layout.cell_of(9, 3)])
        chip.flip_many([chip.layout.cell_of(30, 0), chip.layout.cell_of(30, 35)])
        chip.scrub_steps(7)
    bulk.scrub_steps(10 * 32 + 13)
    for _ in range(10 * 32 + 13):
        steps.scrub_steps(1)
    for reg in (Reg.SCRUB_PTR, Reg.SCRUB_PASSES, Reg.ECC_CORR, Reg.ECC_UNCORR):
        assert bulk.read_reg(reg) == steps.read_reg(reg), reg.name
    # Words 9 and 30 are read in 7..31, in nine full passes, and 9 again in 0..19.
    assert bulk.read_reg(Reg.ECC_UNCORR) == 2 + 2 * 9 + 1


def test_idle_steps_the_scrubber_every_period_plus_two_cycles():
    chip = _scrub_chip()
    chip.idle(1000)
    assert chip.read_reg(Reg.SCRUB_PTR) == 0  # SCRUB_PERIOD = 0 stops it
    chip.write_reg(Reg.SCRUB_PERIOD, 3)
    chip.idle(5 * 5)
    assert chip.read_reg(Reg.SCRUB_PTR) == 5
    chip.idle(4)
    assert chip.read_reg(Reg.SCRUB_PTR) == 5
    chip.idle(1)
    assert chip.read_reg(Reg.SCRUB_PTR) == 6
    other = _scrub_chip()
    other.write_reg(Reg.SCRUB_PERIOD, 3)
    for _ in range(30):
        other.idle(1)
    assert other.read_reg(Reg.SCRUB_PTR) == 6


def test_idle_scrubbing_wraps_and_counts_passes():
    chip = _scrub_chip(16)
    chip.write_reg(Reg.SCRUB_PERIOD, 1)
    chip.idle(3 * (32 * 4 + 2))
    # One step every 3 cycles: 130 steps over 32 words.
    assert chip.read_reg(Reg.SCRUB_PASSES) == 4 and chip.read_reg(Reg.SCRUB_PTR) == 2


def test_start_finishes_a_step_in_progress_and_restarts_the_timer():
    chip = _scrub_chip()
    chip.write_reg(Reg.SCRUB_PERIOD, 10)
    chip.idle(11)  # 10 waiting cycles, then READ
    assert chip.read_reg(Reg.SCRUB_PTR) == 0
    chip.write_reg(Reg.DIM_M, 0)
    chip.write_reg(Reg.CTRL, 1)  # a job (failing CHECK) still stops the scrubber
    assert chip.read_reg(Reg.SCRUB_PTR) == 1
    chip.idle(11)
    assert chip.read_reg(Reg.SCRUB_PTR) == 1
    chip.idle(1)
    assert chip.read_reg(Reg.SCRUB_PTR) == 2


@pytest.mark.parametrize("interleave", [1, 4])
def test_fix_entered_without_its_read_writes_the_banks_last_read_word_over_ptr(interleave):
    """Bit 1 of the scrubber's state flipped while it waits: FIX without READ writes the
    word the pointer's bank read last (a bus read here), corrected, over word ``ptr``."""
    chip = Accelerator(n=4, bank_words=64, interleave=interleave)
    rng = np.random.default_rng(SEED + 8)
    chip.load(0, rng.integers(0, 256, (128, 4)).astype(np.uint8))
    good = {w: chip.peek(w) for w in (0, 1, 2, 21, 40)}
    chip.flip(chip.layout.cell_of(21, 9))
    chip.bus_read(SPM_BASE + 4 * 21)  # bank 0's read register takes word 21's row
    assert chip.read_reg(Reg.ECC_CORR) == 1 and chip.read_reg(Reg.SCRUB_PTR) == 0
    chip.flip(FlopBit("g_scrub.u_scrub.state_q", 1))
    chip.idle(1)
    assert chip.peek(0) == good[21]  # word 21's data, corrected and encoded, in word 0
    assert chip.peek(21) != good[21]  # word 21 itself keeps its error
    assert chip.read_reg(Reg.SCRUB_PTR) == 1
    assert chip.read_reg(Reg.ECC_CORR) == 1  # FIX reads nothing: nothing more is counted
    # The last read decoded clean (word 40): FIX writes nothing, and moves on.
    chip.bus_read(SPM_BASE + 4 * 40)
    chip.flip(FlopBit("g_scrub.u_scrub.state_q", 1))
    chip.idle(5)
    assert chip.peek(1) == good[1] and chip.read_reg(Reg.SCRUB_PTR) == 2
    # Flipped back to WAIT in FIX after a real READ: no write, no move, the read counted.
    chip.flip(chip.layout.cell_of(2, 0))
    chip.flip(FlopBit("g_scrub.u_scrub.state_q", 0))
    chip.idle(1)  # READ
    chip.flip(FlopBit("g_scrub.u_scrub.state_q", 1))
    chip.idle(3)
    assert chip.read_reg(Reg.SCRUB_PTR) == 2 and chip.read_reg(Reg.ECC_CORR) == 2
    assert chip.peek(2) != good[2]  # not written back


def test_without_scrubber_scrub_steps_is_refused_and_idle_does_nothing():
    chip = Accelerator(scrub=False)
    chip.write_reg(Reg.SCRUB_PERIOD, 1)
    chip.idle(100)
    assert chip.read_reg(Reg.SCRUB_PTR) == 0
    with pytest.raises(RuntimeError, match="no scrubber"):
        chip.scrub_steps(1)
    with pytest.raises(ValueError, match="'scrub' true needs 'ecc' true"):
        Accelerator(ecc=False, scrub=True)


# --- interleaving -----------------------------------------------------------------------


@pytest.mark.parametrize("interleave", [2, 4, 8])
def test_adjacent_cell_upset_becomes_single_errors_in_different_words(interleave):
    chip = Accelerator(n=4, bank_words=64, interleave=interleave)
    cells = chip.layout.adjacent(SpmCell(1, 3, 40), interleave)
    words = {chip.layout.word_bit_of(cell)[0] for cell in cells}
    assert len(words) == interleave
    for w in words:
        chip.write_word(w, 0x1234_5678 + w)
    chip.flip_many(cells)
    for w in words:
        assert chip.read_word(w) == (0x1234_5678 + w, EccStatus.CORRECTED)
    assert chip.read_reg(Reg.ECC_CORR) == interleave
    assert chip.read_reg(Reg.ECC_UNCORR) == 0


def test_adjacent_cell_upset_without_interleaving_is_a_double_error():
    chip = Accelerator(n=4, bank_words=64)
    cells = chip.layout.adjacent(SpmCell(0, 7, 10), 2)
    chip.flip_many(cells)
    assert chip.read_word(7)[1] == EccStatus.UNCORRECTABLE


def test_interleaved_upset_across_a_operand_rows_is_corrected_in_a_job():
    chip, place, ops = _loaded(interleave=4)
    row = place.a_addr // 4
    chip.flip_many(chip.layout.adjacent(SpmCell(0, row, 20), 4))
    c, err, want = _run(chip, place, ops)
    assert err == ErrCode.NONE and np.array_equal(c, want)
    assert chip.read_reg(Reg.ECC_CORR) == 4 * NB


# --- ECC off ----------------------------------------------------------------------------


def _sx8(v):
    return int(v) - 256 if v >= 128 else int(v)


def test_without_ecc_flips_corrupt_results_silently():
    chip, place, ops = _loaded(ecc=False)
    chip.flip(chip.layout.cell_of(place.a_addr + 2, 6))
    chip.flip_many(chip.layout.adjacent(chip.layout.cell_of(place.b_addr + 1, 8), 2))
    c, err, want = _run(chip, place, ops)
    assert err == ErrCode.NONE and chip.read_reg(Reg.STATUS) == 0b010
    assert not np.array_equal(c, want)
    a, b, bias = ops
    a, b = a.copy(), b.copy()
    a[0, 2] = _sx8((a[0, 2] & 0xFF) ^ 0x40)  # word (r=0, k=2), byte 0, bit 6
    b[1, 1] = _sx8((b[1, 1] & 0xFF) ^ 0x03)  # word (c=0, k=1), byte 1, bits 0 and 1
    assert np.array_equal(c, gemm_reference(a, b, bias, shift=SHIFT))
    for reg in (Reg.ECC_CORR, Reg.ECC_UNCORR):
        assert chip.read_reg(reg) == 0


def test_without_ecc_there_are_no_check_bits():
    chip = Accelerator(n=4, bank_words=64, ecc=False, scrub=False)
    assert chip.layout.codeword_bits == 32
    with pytest.raises(ValueError, match="no check-bit cells"):
        chip.flip(SpmCell(0, 0, 32))
    with pytest.raises(ValueError, match="ECC is off"):
        chip.poke(0, 1, 1)
    chip.poke(0, 0xFFFF_FFFF, 0)
    assert chip.peek(0) == (0xFFFF_FFFF, 0)
    assert chip.read_word(0) == (0xFFFF_FFFF, EccStatus.CLEAN)


def test_poke_with_chosen_check_bits_is_decoded_on_read():
    chip = Accelerator(n=2, bank_words=64)
    code = code_for(16)
    chip.poke(9, 0xBEEF, code.encode(0xBEEF) ^ 0b101)
    assert chip.read_word(9)[1] == EccStatus.UNCORRECTABLE
    chip.poke(9, 0xBEEF ^ 0x100, code.encode(0xBEEF))
    assert chip.read_word(9) == (0xBEEF, EccStatus.CORRECTED)
    chip.poke(9, 0xBEEF)
    assert chip.peek(9) == (0xBEEF, code.encode(0xBEEF))
    assert chip.read_word(9) == (0xBEEF, EccStatus.CLEAN)
    assert chip.read_reg(Reg.ECC_CORR) == 1 and chip.read_reg(Reg.ECC_UNCORR) == 1
