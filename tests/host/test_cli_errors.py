"""Every error of ``hil`` is one line: bad input through the real CLI, as a subprocess,
against a simulated chip on a real pty.

A usage error (exit 2) names the field and what it may be, and is found before anything is
sent: the session log of ``--log`` is never opened for a value the host can check alone,
and holds only the read-only housekeeping request for one it checks against the target's
memory. A target's refusal (exit 1) is told in words, its failure data decoded.
"""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hil_process import HilSim, hil

from firmware_sim.jobs import JobSpec, KTooLarge, block_size
from host.failures import explain
from host.target import k_limit
from protocol.codes import FailureCode, FunctionId, MemoryId, Mode, Service
from protocol.payloads import LayerFlags, OperandSource, job, memory_dump

N, SPM_WORDS = 4, 2048
"""The default chip of ``hil sim``: array size and scratchpad words (HK ACCELERATOR)."""
READ_ONLY_TCS = {"TC[17,1]", "TC[149,3]", "TC[3,27]"}
"""What a command may send before refusing a value checked against the target: the link's
start (a ping, then the start of in-order execution) and the one-shot housekeeping that
gives the scratchpad's size."""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Operand files a user might give by mistake, and good ones to go with them."""
    d = tmp_path_factory.mktemp("operands")
    np.save(d / "a.npy", np.ones((N, N), np.int8))
    np.save(d / "b.npy", np.full((N, N), 2, np.int8))
    np.save(d / "float.npy", np.array([[1.7, 2.2, 0.5, 3.0]] * N))
    np.save(d / "objects.npy", np.array([[1, "x"]], dtype=object), allow_pickle=True)
    np.save(d / "wide.npy", np.full((N, N), 300, np.int64))
    np.save(d / "vector.npy", np.ones(N, np.int8))
    np.save(d / "tall.npy", np.ones((5000, 1), np.int8))
    np.save(d / "big_a.npy", np.ones((4000, 16), np.int8))
    np.save(d / "big_b.npy", np.ones((16, 4000), np.int8))
    np.save(d / "bias.npy", np.arange(N, dtype=np.int32))
    np.save(d / "float_bias.npy", np.full(N, 0.5))
    np.save(d / "short_bias.npy", np.arange(N - 1, dtype=np.int32))
    (d / "chunks.bin").write_bytes(bytes(40_000))
    (d / "small.bin").write_bytes(bytes(400))
    (d / "empty.bin").write_bytes(b"")
    return d


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The single stderr line of a failed ``hil``, which exited with ``code``."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def sent(log: Path) -> list[str]:
    """The TCs a session log shows sent (``TC[6,2]``...), in order."""
    return re.findall(r" -> (TC\[\d+,\d+\])", log.read_text())


def expect(line: str, *parts: str) -> None:
    for part in parts:
        assert part in line, f"{part!r} missing from {line!r}"


# --- usage errors found on the host alone: nothing is opened, nothing sent ------------------

NOWHERE = "/nonexistent/dir/x.log"

LOCAL = [
    # memory: addresses, lengths and the file written
    (["dump", "ram", "-1", "16"], ["argument address", "0..4,294,967,295", "got -1"]),
    (["dump", "ram", "0", "0"], ["argument length", "1..4,294,967,295", "got 0"]),
    (["dump", "ram", "0", "99999999999"], ["argument length", "1..4,294,967,295"]),
    (["dump", "ram", "0", "0x10001"], ["65,537 octets at 0", "FIRMWARE_RAM", "1..65,536"]),
    (["dump", "ram", "65530", "16"], ["16 octets at 65,530", "FIRMWARE_RAM", "1..6 from"]),
    (["dump", "ram", "70000", "1"], ["address 70,000", "FIRMWARE_RAM", "0..65,535"]),
    (["dump", "ram", "0", "16", "-o", "/nonexistent/dir/out.bin"], ["-o", "no such directory"]),
    (["dump", "ram", "0", "16", "-o", "{tmp}"], ["-o", "is a directory"]),
    (["load", "ram", "-1", "{files}/small.bin"], ["argument address", "0..4,294,967,295"]),
    (["load", "ram", "40000", "{files}/chunks.bin"], ["40,000 octets at 40,000", "1..25,536"]),
    (["load", "ram", "0", "{files}/missing.bin"], ["missing.bin", "cannot read"]),
    (["load", "ram", "0", "{files}/empty.bin"], ["empty.bin", "empty"]),
    # run: shapes, operand files and the options that apply
    (["run", "--random", "0x4x4"], ["--random 0x4x4: M", "1..4,095", "got 0"]),
    (["run", "--random=-1x4x4"], ["--random -1x4x4: M", "1..4,095", "got -1"]),
    (["run", "--random", "4x5000x4"], ["K must be 1..4,095", "got 5,000"]),
    (["run", "--random", "4x4x0"], ["N must be 1..4,095"]),
    (["run", "--random", "4x4"], ["--random '4x4'", "MxKxN"]),
    (["run", "--random", "4x4x4", "--seed", "-1"], ["argument --seed", "at least 0"]),
    (["run", "--random", "4x4x4", "--layer", "--shift", "-1"], ["--shift", "0..31", "got -1"]),
    (["run", "--random", "4x4x4", "--layer", "--shift", "32"], ["--shift", "0..31", "got 32"]),
    (["run", "{files}/float.npy", "{files}/b.npy", "--verify"],
     ["A (", "float.npy", "float64 values that are not whole numbers (1.7 at [0, 0])",
      "integers (-128..127)"]),
    (["run", "{files}/objects.npy", "{files}/b.npy"], ["objects.npy", "Python objects"]),
    (["run", "{files}/wide.npy", "{files}/b.npy"], ["A (", "int8 values (-128..127)", "300"]),
    (["run", "{files}/vector.npy", "{files}/b.npy"], ["A must be a 2-D matrix"]),
    (["run", "{files}/tall.npy", "{files}/vector.npy"], ["A has 5000 rows", "1..4095"]),
    (["run", "{files}/big_a.npy", "{files}/big_b.npy"], ["FIRMWARE_RAM", "it has 65,536"]),
    (["run", "{files}/a.npy", "{files}/b.npy", "--shift", "3"], ["--shift applies", "--layer"]),
    (["run", "{files}/a.npy", "{files}/b.npy", "--relu"], ["--relu applies", "--layer"]),
    (["run", "{files}/a.npy", "{files}/b.npy", "--int32"], ["--int32 applies", "--layer"]),
    (["run", "{files}/a.npy", "{files}/b.npy", "--bias", "{files}/bias.npy"],
     ["--bias applies", "--layer"]),
    (["run", "{files}/a.npy", "{files}/b.npy", "--random", "4x4x4"],
     ["not both", "a.npy", "would not be used"]),
    (["run", "{files}/a.npy", "{files}/b.npy", "--layer", "--bias", "{files}/float_bias.npy"],
     ["the bias (", "not whole numbers (0.5 at [0])", "-2147483648..2147483647"]),
    (["run", "{files}/a.npy", "{files}/b.npy", "--layer", "--bias", "{files}/short_bias.npy"],
     ["the bias must hold N = 4 values, got 3"]),
    (["run", "--random", "4x4x4", "-o", "/nonexistent/dir/c.npy"], ["-o", "no such directory"]),
    # inject: every site field in its wire type or the ICD's range, width, job point
    (["inject", "sbu", "spm_word", "word=99999", "bit=3"], ["SPM_WORD word", "0..65,535"]),
    (["inject", "sbu", "spm_word", "word=-1", "bit=3"], ["SPM_WORD word", "0..65,535", "-1"]),
    (["inject", "sbu", "spm_word", "word=1", "bit=256"], ["SPM_WORD bit", "0..255"]),
    (["inject", "sbu", "fw_ram", "address=70000", "bit=1"], ["FW_RAM address", "0..65,535"]),
    (["inject", "mbu", "fw_ram_cluster", "0", "8", "word_line"], ["FW_RAM_CLUSTER bit", "0..7"]),
    (["inject", "sbu", "acc_bit", "i=0", "j=0", "bit=-1"], ["ACC_BIT bit", "0..255"]),
    (["inject", "sbu", "site", "u_seq.u_state.q_q[1]", "bit=70000"], ["SITE bit", "0..65,535"]),
    (["inject", "sbu", "site", "", "bit=0"], ["SITE name", "1..255 printable"]),
    (["inject", "sbu", "site", "x" * 256, "bit=0"], ["SITE name", "1..255 printable"]),
    (["inject", "mbu", "spm_word", "1", "1", "--width", "0"], ["--width of a MBU", "2..8"]),
    (["inject", "mbu", "spm_word", "1", "1", "--width", "300"], ["argument --width", "0..255"]),
    (["inject", "mbu", "spm_word", "1", "1", "--width", "-1"], ["argument --width", "0..255"]),
    (["inject", "sbu", "spm_word", "1", "1", "--width", "2"], ["--width of a SBU", "1..1"]),
    (["inject", "sbu", "spm_word", "1", "1", "--next-job=-1:stream:1"], ["TILE", "0..65,535"]),
    (["inject", "sbu", "spm_word", "1", "1", "--next-job", "0:stream:70000"],
     ["CYCLE", "0..65,535"]),
    (["inject", "sel", "fw_ram", "1", "1"], ["a SEL cannot hit FW_RAM", "accel"]),
    (["inject", "stuck_at_0", "fw_ram", "1", "1", "--next-job", "0:stream:0"],
     ["cannot wait for a job"]),
    # parameters: each in its ICD range
    (["param", "scrub_period=-1"], ["SCRUB_PERIOD", "0..65,535 cycles", "got -1"]),
    (["param", "scrub_period=70000"], ["SCRUB_PERIOD", "0..65,535 cycles"]),
    (["param", "job_timeout=0"], ["JOB_TIMEOUT", "10..600,000 ms", "got 0"]),
    (["param", "job_timeout=99999999999"], ["JOB_TIMEOUT", "10..600,000 ms"]),
    (["param", "temp_low_limit=-200"], ["TEMP_LOW_LIMIT", "-100.00..150.00 degC", "got -200"]),
    (["param", "--raw", "temp_low_limit=-20000"], ["TEMP_LOW_LIMIT", "-10,000..15,000"]),
    (["param", "power_low_soc=20.05"], ["POWER_LOW_SOC", "a multiple of 0.1 %"]),
    # counts, intervals, timeouts and the link's options
    (["ping", "--count", "0"], ["argument --count", "at least 1", "got 0"]),
    (["ping", "--count", "-1"], ["argument --count", "at least 1"]),
    (["ping", "--interval", "-1"], ["argument --interval", "at least 0 and at most 3600 s"]),
    (["ping", "--interval", "1e300"], ["argument --interval", "at most 3600 s"]),
    (["ping", "--baud", "0"], ["argument --baud", "1..4,000,000", "got 0"]),
    (["ping", "--baud", "99999999999"], ["argument --baud", "1..4,000,000"]),
    (["ping", "--ack-timeout", "0"], ["argument --ack-timeout", "more than 0"]),
    (["ping", "--ack-timeout", "nan"], ["argument --ack-timeout", "more than 0"]),
    (["hk", "--watch", "--count", "0"], ["argument --count", "at least 1"]),
    (["hk", "--watch", "--interval", "-0.5"], ["argument --interval", "at least 0"]),
    (["events", "--timeout", "0"], ["argument --timeout", "more than 0"]),
    (["events", "--count", "-2"], ["argument --count", "at least 1"]),
    (["infer", "--batch", "0"], ["--batch", "at least 1"]),
    (["infer", "--count", "100000"], ["--count", "1..360"]),
]


@pytest.mark.parametrize(("args", "parts"), LOCAL, ids=lambda v: " ".join(v)[:60])
def test_a_bad_value_is_one_line_and_nothing_is_sent(
    sim: HilSim, files: Path, tmp_path: Path, args: list[str], parts: list[str]
) -> None:
    log = tmp_path / "session.log"
    argv = [a.format(files=files, tmp=tmp_path) for a in args]
    line = one_line(hil(argv[0], "--port", sim.port, "--log", str(log), *argv[1:]), 2)
    expect(line, f"hil {argv[0]}: ", *parts)
    assert not log.exists(), "the link was opened for a value the host can check alone"


@pytest.mark.parametrize(
    ("args", "parts"),
    [
        (["ping", "--log", NOWHERE], ["--log", NOWHERE, "no such directory /nonexistent/dir"]),
        (["sim", "--log", NOWHERE], ["--log", "no such directory"]),
        (["sim", "--time-scale", "0"], ["argument --time-scale", "more than 0"]),
        (["sim", "--time-scale", "1e300"], ["argument --time-scale", "at most 1e+06"]),
        (["sim", "--acceleration", "-1"], ["argument --acceleration", "more than 0"]),
        (["sim", "--array-n", "3"], ["--array-n", "a power of two 2..16, got 3"]),
        (["run", "--random", "-1x4x4"], ["argument --random", "expected one argument"]),
    ],
    ids=lambda v: " ".join(v)[:60],
)
def test_unwritable_logs_and_sim_options_are_one_line(args: list[str], parts: list[str]) -> None:
    port = ["--port", "/dev/null"] if args[0] != "sim" else []
    expect(one_line(hil(args[0], *port, *args[1:]), 2), *parts)


# --- usage errors checked against the target: only read-only TCs went -----------------------

REMOTE = [
    (["dump", "spm", "0", "100000"], ["ACCEL_SCRATCHPAD (8,192 octets)", "1..8,192"]),
    (["dump", "spm", "3", "4"], ["address 3", "whole number of 4-octet words"]),
    (["load", "spm", "8000", "{files}/small.bin"], ["ACCEL_SCRATCHPAD", "1..192 from"]),
    (["run", "--random", "4x3000x4"],
     ["does not fit in the scratchpad", "K = 3,000", "a bank has 1,024 words", "at most 1,008"]),
    (["run", "--random", "1x1023x1", "--layer", "--int32"],
     ["does not fit in the scratchpad", "4 of C", "at most 1,020"]),
]


@pytest.mark.parametrize(("args", "parts"), REMOTE, ids=lambda v: " ".join(v)[:60])
def test_a_value_checked_against_the_target_is_refused_before_it_is_sent(
    sim: HilSim, files: Path, tmp_path: Path, args: list[str], parts: list[str]
) -> None:
    log = tmp_path / "session.log"
    argv = [a.format(files=files) for a in args]
    line = one_line(hil(argv[0], "--port", sim.port, "--log", str(log), *argv[1:]), 2)
    expect(line, *parts)
    tcs = sent(log)
    assert "TC[3,27]" in tcs and set(tcs) <= READ_ONLY_TCS, tcs


def test_the_largest_k_that_fits_runs(sim: HilSim) -> None:
    k = k_limit(N, SPM_WORDS // 2, 4, 4, bias=False, out_int32=True)
    done = hil("run", "--port", sim.port, "--random", f"4x{k}x4", "--verify", "-q")
    assert done.returncode == 0 and "C equals A . B" in done.stdout, done.stderr


# --- the target's refusals, in words --------------------------------------------------------


def test_a_site_the_chip_lacks_names_the_record_and_field(sim: HilSim) -> None:
    line = one_line(hil("inject", "--port", sim.port, "sbu", "spm_word", "word=5000", "bit=3"), 1)
    expect(line, "record 0 (SBU at SPM_WORD) cannot be injected",
           "this build of the chip has no such site", "word = 5000", "FAULT_SITE_ABSENT")
    line = one_line(hil("inject", "--port", sim.port, "sbu", "spm_word", "0", "0",
                        "--next-job", "0:stream:60000"), 1)  # fmt: skip
    expect(line, "no job of this build has that point", "cycle = 60000")


def test_temperature_limits_that_would_cross_are_refused_in_words(sim: HilSim) -> None:
    line = one_line(hil("param", "--port", sim.port, "temp_low_limit=70"), 1)
    expect(line, "TEMP_LOW_LIMIT = 70.00 degC", "must stay below TEMP_HIGH_LIMIT",
           "VALUE_OUT_OF_RANGE")


def test_an_uncorrectable_error_is_told_in_words_and_its_result_withheld(
    sim: HilSim, tmp_path: Path
) -> None:
    zeros = tmp_path / "zeros.npy"
    np.save(zeros, np.zeros((N, N), np.int8))
    # Two bits of A's first word held at 1 while A is all zero: a double-bit error.
    stuck = hil("inject", "--port", sim.port, "stuck_at_1", "spm_word", "0", "0", "--width", "2")
    assert stuck.returncode == 0, stuck.stderr
    try:
        line = one_line(hil("run", "--port", sim.port, str(zeros), str(zeros)), 1)
        expect(line, "the job failed: an uncorrectable memory error (ECC)",
               "C was not delivered", "JOB_FAILED (0x0200), failure data 01")  # fmt: skip
        line = one_line(hil("dump", "--port", sim.port, "ram", "0", str(4 * N * N)), 1)
        expect(line, "a failed job's result, which is never delivered", "(ECC)")
    finally:
        assert hil("inject", "--port", sim.port, "--clear").returncode == 0


def test_a_target_in_safe_mode_says_so_and_how_to_leave_it(sim: HilSim) -> None:
    assert hil("mode", "--port", sim.port, "safe").stdout.strip() == "SAFE"
    try:
        line = one_line(hil("run", "--port", sim.port, "--random", "4x4x4"), 1)
        expect(line, "the target is in SAFE mode", "runs no jobs",
               "`hil mode nominal --key ID:HEX`", "WRONG_MODE (0x0100), failure data 02")
    finally:
        back = hil("mode", "--port", sim.port, "test", "--key", sim.key)
        assert back.stdout.strip() == "TEST", back.stderr


def test_fault_injection_outside_test_mode_says_how_to_enter_it(sim: HilSim) -> None:
    assert hil("mode", "--port", sim.port, "nominal").stdout.strip() == "NOMINAL"
    try:
        line = one_line(hil("inject", "--port", sim.port, "--list"), 1)
        expect(line, "fault injection runs in TEST mode only; the target is in NOMINAL",
               "`hil mode test --key ID:HEX`")
    finally:
        back = hil("mode", "--port", sim.port, "test", "--key", sim.key)
        assert back.stdout.strip() == "TEST", back.stderr


# --- what the options now do instead of being ignored ---------------------------------------


def test_a_layer_is_verified_against_the_reference(sim: HilSim, files: Path) -> None:
    done = hil("run", "--port", sim.port, str(files / "a.npy"), str(files / "b.npy"), "--layer",
               "--bias", str(files / "bias.npy"), "--relu", "--shift", "1", "--verify")
    assert done.returncode == 0, done.stderr
    assert "C equals the layer's reference" in done.stdout


# --- the words, from the failure data alone -------------------------------------------------


def _gemm(m: int, k: int, n: int) -> bytes:
    return job(FunctionId.RUN_GEMM, 1, OperandSource.FIRMWARE_RAM, m, k, n, c=64)


JOBS, MEMORY = Service.FUNCTION_MANAGEMENT, Service.MEMORY_MANAGEMENT


@pytest.mark.parametrize(
    ("code", "data", "service", "app", "words"),
    [
        (FailureCode.VALUE_OUT_OF_RANGE, struct.pack("!H", 7), JOBS, _gemm(4, 3000, 4),
         "the job does not fit in the scratchpad even in blocks: K = 3,000 is too large"),
        (FailureCode.VALUE_OUT_OF_RANGE, struct.pack("!H", 5), JOBS, _gemm(0, 4, 4),
         "M = 0 is outside 1..4,095"),
        (FailureCode.JOB_FAILED, b"\x02", JOBS, _gemm(4, 4, 4), "DESCRIPTOR"),
        (FailureCode.WRONG_MODE, bytes([Mode.SAFE]), JOBS, _gemm(4, 4, 4), "in SAFE mode"),
        (FailureCode.ADDRESS_OUT_OF_RANGE, struct.pack("!II", 65530, 16), MEMORY,
         memory_dump(MemoryId.FIRMWARE_RAM, 65530, 16),
         "16 octets at address 65,530 run past the end of FIRMWARE_RAM"),
        (0x0ABC, b"\x01", JOBS, b"", "a failure code this host does not know"),
        (FailureCode.WRONG_MODE, b"", JOBS, b"", "not allowed in the current mode"),
    ],
    ids=lambda v: getattr(v, "name", None),
)
def test_failure_data_is_decoded_into_words(
    code: int, data: bytes, service: Service, app: bytes, words: str
) -> None:
    assert words in explain(code, data, service, app)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("out_int32", [False, True])
def test_the_hosts_k_limit_is_the_flight_softwares(bias: bool, out_int32: bool) -> None:
    flags = (LayerFlags.BIAS if bias else 0) | (LayerFlags.OUT_INT32 if out_int32 else 0)
    for m, n, array_n, bank in [(1, 1, 4, 1024), (4, 4, 4, 1024), (9, 17, 4, 256), (3, 8, 8, 64)]:
        most = k_limit(array_n, bank, m, n, bias, out_int32)
        for k, fits in ((most, True), (most + 1, False)):
            spec = JobSpec(FunctionId.RUN_LAYER, 1, OperandSource.FIRMWARE_RAM, m, k, n,
                           flags=LayerFlags(flags))  # fmt: skip
            try:
                block_size(spec, array_n, bank)
            except KTooLarge:
                assert not fits, (m, k, n, array_n, bank)
            else:
                assert fits, (m, k, n, array_n, bank)
