"""Coverage-guided fuzzing of the frame decoder and the dispatcher, in process, with atheris.

    python -m bench.fuzz_inprocess --seconds N     fuzz for N seconds (libFuzzer under atheris)
    python -m bench.fuzz_inprocess --make-corpus   write the seed corpus, tests/fuzz/corpus/
    python -m bench.fuzz_inprocess --replay PATH   run one input (a crash file) or a directory

The targets and their invariants are in ``bench.fuzz_targets``; an input's first octet
chooses the target. Fuzzing starts from the committed corpus and keeps what it finds in a
work directory (``--work``, default a new temporary one), so the committed corpus only
changes through ``--make-corpus``. An input that breaks an invariant is written to
``--artifacts`` (default results/fuzz/) and the exit status is non-zero.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "fuzz" / "corpus"
ARTIFACTS = REPO / "results" / "fuzz"
MAX_LEN = 4400
"""Longest input tried: room for a frame past the length bound and a valid one after it."""
INSTRUMENTED = [
    "protocol",
    "cobs",
    "firmware_sim.dispatcher",
    "firmware_sim.services",
    "bench.fuzz_model",
]
"""Modules whose branches guide the fuzzer: the decoder, the packet checks, the dispatcher,
the services behind it, and the model the inputs are judged by."""


def seeds() -> dict[str, bytes]:
    """The seed inputs by file name: valid frames of every service, and broken ones."""
    from bench.fuzz_targets import DECODER, DISPATCHER, KEY, KEY_ID, REPAIR, SIGN, TEST
    from protocol.auth import sign_tc
    from protocol.codes import FunctionId, MemoryId, Mode
    from protocol.crc import crc16_ccitt_false
    from protocol.framing import encode_frame
    from protocol.packets import make_tc
    from protocol.payloads import (
        EventSelector,
        FaultRecord,
        FaultSiteClass,
        HkStructure,
        OperandSource,
        ParamId,
        event_selection,
        fault_records,
        function,
        hk_intervals,
        hk_structures,
        job,
        memory_check,
        memory_dump,
        memory_load,
        parameter_ids,
        parameter_values,
    )

    counter = iter(range(1, 10_000))

    def tc(service: int, subtype: int, data: bytes = b"", **kw) -> bytes:
        return make_tc(service, subtype, data, next(counter), **kw)

    def signed(service: int, subtype: int, data: bytes = b"", key_id: int = KEY_ID,
               auth_seq: int | None = None, key: bytes | None = KEY) -> bytes:  # fmt: skip
        seq = next(counter)
        return sign_tc(service, subtype, data, seq, key_id=key_id,
                       auth_seq=seq if auth_seq is None else auth_seq, key=key)  # fmt: skip

    def recrc(packet: bytes | bytearray) -> bytes:
        body = bytes(packet[:-2])
        return body + crc16_ccitt_false(body).to_bytes(2, "big")

    ram = MemoryId.FIRMWARE_RAM
    valid = {
        "ping": tc(17, 1),
        "hk-one-shot": tc(3, 27, hk_structures(list(HkStructure))),
        "hk-enable": tc(3, 5, hk_structures([HkStructure.SYSTEM])),
        "hk-disable": tc(3, 6, hk_structures([HkStructure.ENVIRONMENT])),
        "hk-interval": tc(3, 31, hk_intervals([(HkStructure.ACCELERATOR, 1000)])),
        "events-disable": tc(5, 6, event_selection(EventSelector.LISTED, [0x0010])),
        "events-enable": tc(5, 5, event_selection(EventSelector.INFO)),
        "memory-dump": tc(6, 5, memory_dump(ram, 0x100, 32)),
        "memory-check": tc(6, 9, memory_check(MemoryId.ACCEL_SCRATCHPAD, 0, 64)),
        "memory-load-signed": signed(6, 2, memory_load(ram, 0x100, bytes(range(16)))),
        "function-scrub": tc(8, 1, function(FunctionId.SCRUB_NOW)),
        "function-clear-counters": tc(8, 1, function(FunctionId.CLEAR_COUNTERS)),
        "function-abort": tc(8, 1, function(FunctionId.ABORT_JOB)),
        "function-gemm": tc(8, 1, job(1, 7, OperandSource.INLINE, 2, 2, 2, inline=bytes(8))),
        "function-set-mode-signed": signed(8, 1, function(FunctionId.SET_MODE, bytes([Mode.TEST]))),
        "function-reset-accel-signed": signed(8, 1, function(FunctionId.RESET_ACCEL)),
        "params-report": tc(20, 1, parameter_ids([ParamId.SCRUB_PERIOD, ParamId.JOB_TIMEOUT])),
        "params-set-signed": signed(20, 3, parameter_values([(ParamId.SCRUB_PERIOD, 1000)])),
        "faults-list": tc(148, 3),
        "faults-inject-signed": signed(148, 1, fault_records(
            [FaultRecord(1, FaultSiteClass.FW_RAM, 1, (0x200, 3))])),
        "faults-clear-signed": signed(148, 2),
    }  # fmt: skip
    ping = valid["ping"]
    broken = {
        "bad-crc": ping[:-1] + bytes([ping[-1] ^ 1]),
        "truncated": valid["params-report"][:9],
        "short-3": b"\x18\xc8\xc0",
        "bad-length": recrc(ping[:4] + b"\x00\x40" + ping[6:]),
        "bad-apid": tc(17, 1, apid=0x123),
        "bad-version": recrc(bytes([ping[0] | 0x20]) + ping[1:]),
        "tm-type": recrc(bytes([ping[0] & ~0x10]) + ping[1:]),
        "pus-a": recrc(ping[:6] + bytes([0x1F]) + ping[7:]),
        "unknown-service": tc(99, 1),
        "unknown-subtype": tc(17, 9),
        "bad-app-data": tc(3, 27, b"\x05\x00"),
        "hazard-no-trailer": tc(20, 3, parameter_values([(ParamId.SCRUB_PERIOD, 1)])),
        "hazard-bad-tag": recrc(valid["params-set-signed"][:-3] + b"\x55\x00\x00"),
        "hazard-null-key": signed(148, 2, key_id=0, key=None),
        "hazard-stale": signed(6, 2, memory_load(ram, 0, b"\x01"), auth_seq=0),
        "hazard-unknown-key": signed(8, 1, function(FunctionId.RESET), key_id=9, key=bytes(32)),
        "no-ack": tc(17, 1, ack_flags=0),
    }
    out: dict[str, bytes] = {}
    for name, packet in {**valid, **broken}.items():
        out[f"dispatcher-{name}"] = bytes([DISPATCHER]) + b"\x00" + encode_frame(packet)
    for name, packet in valid.items():  # mutated, these keep a good CRC and tag
        out[f"dispatcher-repaired-{name}"] = bytes([DISPATCHER | REPAIR | SIGN]) + b"\x00" + (
            encode_frame(packet))  # fmt: skip
    test = bytes([DISPATCHER | REPAIR | TEST])
    for name in ("memory-load", "params-set", "faults-inject", "faults-clear"):
        service, subtype = valid[f"{name}-signed"][7:9]
        data = valid[f"{name}-signed"][11:-24]
        out[f"dispatcher-test-mode-{name}-null-key"] = test + b"\x00" + encode_frame(
            signed(service, subtype, data, key_id=0, key=None))  # fmt: skip
    frame = encode_frame(ping)
    out["dispatcher-duplicate"] = bytes([DISPATCHER]) + frame + frame
    out["dispatcher-load-then-replay"] = bytes([DISPATCHER]) + encode_frame(
        valid["memory-load-signed"]) + b"\x00" + encode_frame(valid["memory-load-signed"])
    out["dispatcher-test-mode-null-key"] = bytes([DISPATCHER]) + encode_frame(
        valid["function-set-mode-signed"]) + encode_frame(broken["hazard-null-key"])
    out["dispatcher-garbage-then-ping"] = bytes([DISPATCHER]) + b"\x13\x37\xff\x00" + frame
    out["decoder-frames"] = bytes([DECODER]) + b"".join(
        encode_frame(p) for p in list(valid.values())[:6])
    out["decoder-bad-cobs"] = bytes([DECODER | 2]) + b"\x05\x01\x02\x00" + frame
    out["decoder-too-long"] = bytes([DECODER | 4]) + b"\x01" * 2058 + b"\x00" + frame
    out["decoder-too-long-unfinished"] = bytes([DECODER | 6]) + b"\xff" * 2100
    out["decoder-empty-frames"] = bytes([DECODER | 8]) + b"\x00\x00\x00" + frame + b"\x00"
    out["decoder-largest"] = bytes([DECODER | 10]) + encode_frame(
        tc(6, 2, bytes(range(256)) * 7 + bytes(2035 - 7 * 256)))
    out["decoder-exact-bound"] = bytes([DECODER | 14]) + _largest_frame(make_tc) + frame
    out["decoder-split-frame"] = bytes([DECODER | 12]) + frame[:5]
    return out  # fmt: skip


def _largest_frame(make_tc) -> bytes:
    """A frame of a largest packet with no 0x00 in it: exactly MAX_FRAME_LEN octets before
    its delimiter."""
    from protocol.framing import encode_frame

    for seq in range(1, 300):
        packet = make_tc(6, 2, b"\x5a" * 2035, seq, source_id=0x0101)
        if 0 not in packet:
            return encode_frame(packet)
    raise RuntimeError("no largest packet without a 0x00")


def make_corpus(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*"):
        old.unlink()
    made = seeds()
    for name, data in made.items():
        (directory / name).write_bytes(data)
    print(f"{len(made)} seed inputs in {directory}", file=sys.stderr)
    return 0


def replay(path: Path) -> int:
    from bench.fuzz_targets import run_input

    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for file in files:
        try:
            run_input(file.read_bytes())
        except BaseException:
            print(f"{file}: an invariant is broken", file=sys.stderr)
            raise
    print(f"{len(files)} inputs replayed without an invariant broken", file=sys.stderr)
    return 0


def fuzz(seconds: int, work: Path | None, artifacts: Path) -> int:
    try:
        import atheris
    except ImportError:
        print("atheris is not installed: pip install atheris (dev extra)", file=sys.stderr)
        return 2
    with atheris.instrument_imports(include=INSTRUMENTED):
        from bench import fuzz_targets
    work = work or Path(tempfile.mkdtemp(prefix="fuzz-corpus-"))
    work.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    print(f"fuzzing for {seconds} s; new inputs in {work}, failures in {artifacts}",
          file=sys.stderr)  # fmt: skip
    args = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        f"-max_len={MAX_LEN}",
        "-timeout=20",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/",
        str(work),
        str(CORPUS),
    ]
    atheris.Setup(args, fuzz_targets.run_input)
    atheris.Fuzz()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fuzz_inprocess", description=__doc__)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--seconds", type=int, help="fuzz for this long")
    what.add_argument("--make-corpus", action="store_true", help=f"write {CORPUS}")
    what.add_argument("--replay", type=Path, help="run an input file, or every file of a dir")
    p.add_argument("--work", type=Path, help="directory for the inputs fuzzing finds")
    p.add_argument("--artifacts", type=Path, default=ARTIFACTS, help="where failures go")
    args = p.parse_args(argv)
    if args.make_corpus:
        return make_corpus(CORPUS)
    if args.replay is not None:
        return replay(args.replay)
    return fuzz(args.seconds, args.work, args.artifacts)


if __name__ == "__main__":
    sys.exit(main())
