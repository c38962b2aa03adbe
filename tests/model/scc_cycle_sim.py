"""docs/REGISTERS.md's job, read literally and run cycle by cycle, for the model's tests.

Slow on purpose and independent of ``firmware_sim.accel.job``: the states, the reads and
writes of each cycle, the bias buffers, and PEs with an accumulator and a result register
fed by beats that reach PE (i, j) i + j + 1 cycles after they are issued. Faults are
deposited at the falling edge inside their cycle: before the reads, writes and register
updates of that cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_sim.accel.secded import code_for

M32 = 0xFFFF_FFFF


def sx(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def epilogue_doc(acc: int, bias: int | None, relu: bool, shift: int, out32: bool) -> int:
    """docs/REGISTERS.md "Arithmetic", one element, in Python integers."""
    x = sx(acc + bias, 32) if bias is not None else sx(acc, 32)
    if relu:
        x = max(x, 0)
    if out32:
        return x
    if shift:
        x = (x + (1 << (shift - 1))) >> shift
    return min(127, max(-128, x))


@dataclass
class Result:
    mem: list[tuple[int, int]]
    err: int
    cycles: int
    macs: int
    corr: int = 0
    uncorr: int = 0
    #: (kind, tile, phase, cycle) -> job cycle, CHECK = 0, for every point of the job.
    points: dict = field(default_factory=dict)


def timeline(n, regs):
    """[(state, tile, cycle in state)] for every job cycle from CHECK to DONE, with no
    ECC abort, and the job cycle of every fault point (tile, phase, cycle)."""
    m, k, ncols = regs["m"], regs["k"], regs["ncols"]
    mb, nb = -(-m // n), -(-ncols // n)
    w = 4 if regs["out32"] else 1
    period = max(k + 1, (w + 1) * n + 1)
    cycles = [("CHECK", None, 0)]
    for c in range(nb):
        if regs["bias_en"]:
            cycles += [("BIAS", c * mb, q) for q in range(5)]
        for r in range(mb):
            cycles += [("STREAM", c * mb + r, t) for t in range(period)]
    v_last = min(n, m - (mb - 1) * n)
    cycles += [("FLUSH", mb * nb - 1, t) for t in range(n + 1 + w * v_last)]
    cycles.append(("DONE", None, 0))
    points = {}
    for g, (state, tile, x) in enumerate(cycles):
        if state in ("BIAS", "STREAM", "FLUSH"):
            points[(tile, state.lower(), x)] = g
        # writes: word u of the previous tile (or of the last, in FLUSH) in cycle N+1+u
        prev = tile - 1 if state == "STREAM" else tile
        if state in ("STREAM", "FLUSH") and prev >= 0 and x >= n + 1:
            u = x - n - 1
            if u < w * min(n, m - (prev % mb) * n):
                points[(prev, "write", u)] = g
    return cycles, points


def simulate(mem, n, bank_words, regs, ecc=True, faults=()):
    """Run one job. ``mem``: [(data, check)] per word. ``faults``: [((tile, phase, cycle),
    site)] with site ("word", w, bit) (codeword bit), ("acc", i, j, bit) or
    ("out", i, j, bit)."""
    mem = list(mem)
    code = code_for(8 * n) if ecc else None
    m, k, ncols = regs["m"], regs["k"], regs["ncols"]
    bias_en, relu, out32, shift = regs["bias_en"], regs["relu"], regs["out32"], regs["shift"]
    mb, nb = -(-m // n), -(-ncols // n)
    w = 4 if out32 else 1
    spm = 2 * bank_words
    c_words = m * nb * w

    def overlaps(lo, size):
        return lo < regs["c"] + c_words and regs["c"] < lo + size

    ok = (
        m >= 1
        and k >= 1
        and ncols >= 1
        and regs["a"] + mb * k <= bank_words
        and regs["b"] >= bank_words
        and regs["b"] + nb * k <= spm
        and (not bias_en or regs["bias"] + 4 * nb <= spm)
        and regs["c"] + c_words <= spm
        and not overlaps(regs["a"], mb * k)
        and not overlaps(regs["b"], nb * k)
        and not (bias_en and overlaps(regs["bias"], 4 * nb))
    )
    if not ok:
        return Result(mem, 2, 2, 0)
    cycles, points = timeline(n, regs)
    at: dict[int, list] = {}
    for point, site in faults:
        at.setdefault(points[tuple(point)], []).append(site)

    res = Result(mem, 0, 0, 0, points=points)
    acc = [[0] * n for _ in range(n)]
    out = [[0] * n for _ in range(n)]
    bias_buf = [[0] * 4, [0] * 4]
    beats = []  # (issue cycle, first, a bytes, b bytes)
    ecc_seen = False

    def read(addr):
        data, check = mem[addr]
        if code is None:
            return data
        fixed, _, status = code.decode(data, check)
        if status == 1:
            res.corr += 1
        elif status == 2:
            res.uncorr += 1
        return fixed

    def write(addr, data):
        mem[addr] = (data, code.encode(data) if code else 0)

    def result_word(tile, u):
        r, c = tile % mb, tile // mb
        v, q = divmod(u, w)
        raw = sum(bias_buf[c % 2][p] << (8 * n * p) for p in range(4))
        vals = []
        for j in range(n):
            if c * n + j >= ncols:
                vals.append(0)
                continue
            bias = sx(raw >> (32 * j), 32) if bias_en else None
            vals.append(epilogue_doc(out[v][j], bias, relu, shift, out32))
        if out32:
            vec = sum((x & M32) << (32 * j) for j, x in enumerate(vals))
            addr = regs["c"] + 4 * ((r * n + v) * nb + c) + q
            return addr, (vec >> (8 * n * q)) & ((1 << (8 * n)) - 1)
        word = sum((x & 0xFF) << (8 * j) for j, x in enumerate(vals))
        return regs["c"] + (r * n + v) * nb + c, word

    period = max(k + 1, (w + 1) * n + 1)
    for g, (state, tile, x) in enumerate(cycles):
        res.cycles = g + 1
        if state == "DONE":
            break
        for site in at.get(g, []):  # falling edge
            kind, *args = site
            if kind == "word":
                word, bit = args
                data, check = mem[word]
                if bit < 8 * n:
                    mem[word] = (data ^ (1 << bit), check)
                else:
                    mem[word] = (data, check ^ (1 << (bit - 8 * n)))
            elif kind == "acc":
                i, j, bit = args
                acc[i][j] = sx(acc[i][j] ^ (1 << bit), 32)
            else:
                i, j, bit = args
                out[i][j] = sx(out[i][j] ^ (1 << bit), 32)
        if state == "BIAS" and x < 4:
            c = tile // mb
            before = res.uncorr
            bias_buf[c % 2][x] = read(regs["bias"] + 4 * c + x)
            ecc_seen |= res.uncorr > before
        if state == "STREAM":
            r, c = tile % mb, tile // mb
            if x < k:
                before = res.uncorr
                a = read(regs["a"] + r * k + x)
                b = read(regs["b"] + c * k + x)
                ecc_seen |= res.uncorr > before
                beats.append((g, x == 0, a, b))
        if state == "FLUSH" and x == 0:
            beats.append((g, True, 0, 0))
        prev = tile - 1 if state == "STREAM" else tile
        if state in ("STREAM", "FLUSH") and prev >= 0 and x >= n + 1:
            u = x - n - 1
            if u < w * min(n, m - (prev % mb) * n):
                write(*result_word(prev, u))
        # end of the cycle: beats reaching PEs
        for issued, first, a, b in beats:
            for i in range(n):
                for j in range(n):
                    if issued + 1 + i + j != g:
                        continue
                    prod = sx(a >> (8 * i), 8) * sx(b >> (8 * j), 8)
                    if first:
                        out[i][j] = acc[i][j]
                        acc[i][j] = prod
                    else:
                        acc[i][j] = sx(acc[i][j] + prod, 32)
        beats = [bt for bt in beats if bt[0] + 2 * n - 1 > g]
        if state == "STREAM" and x == period - 1:
            if ecc_seen:
                res.err = 1
                res.cycles = g + 2  # DONE follows
                break
            r, c = tile % mb, tile // mb
            res.macs += min(n, m - r * n) * min(n, ncols - c * n) * k
    res.mem = mem
    return res
