"""``python -m firmware_sim`` / ``firmware-sim``: the flight software on a serial line.

Creates a pseudo-terminal, prints ``PTY <path>`` as the first line on stdout, and serves
the protocol on it until SIGTERM or SIGINT; with ``--device`` it serves a serial device
instead (and prints ``SERIAL <device> <baud>``). The loop is the edge of the sans-I/O
core: it waits for bytes or the core's next deadline, feeds the core, writes its output.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import time
from pathlib import Path

from firmware_sim.backend import Build, ModelBackend
from firmware_sim.core import FlightSoftware, FswConfig, Log, Output, Rebooted
from firmware_sim.environment import EnvironmentConfig
from firmware_sim.health import NonVolatile
from firmware_sim.serial_port import DevicePort, Port, PtyPort
from protocol.codes import Mode
from protocol.link import DEFAULT_BAUD

MAX_WAIT_S = 0.5
log = logging.getLogger("firmware_sim")


def _key(text: str) -> tuple[int, bytes]:
    kid, _, hexkey = text.partition(":")
    try:
        key_id, key = int(kid, 0), bytes.fromhex(hexkey)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--key {text!r}: expected ID:HEX, e.g. 1:00112233445566778899aabbccddeeff"
        ) from None
    if not 1 <= key_id <= 0xFFFF or len(key) < 16:
        raise argparse.ArgumentTypeError(
            f"--key {text!r}: key id must be 1..65535 and the key at least 16 octets, "
            f"got id {key_id} and {len(key)} octets"
        )
    return key_id, key


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="firmware-sim", description="orbit-hil flight software on a pty or serial device"
    )
    p.add_argument("--device", help="serve this serial device instead of a new pty")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="baud rate with --device")
    p.add_argument("--backend", choices=["model"], default="model", help="accelerator backend")
    p.add_argument("--array-n", type=int, default=4, choices=[2, 4, 8, 16], help="array size N")
    p.add_argument("--interleave", type=int, default=1, choices=[1, 2, 4, 8],
                   help="scratchpad words bit-interleaved per physical row")  # fmt: skip
    p.add_argument("--no-ecc", action="store_true",
                   help="build the chip without SECDED (and so without the scrubber)")  # fmt: skip
    p.add_argument("--no-scrub", action="store_true", help="build the chip without the scrubber")
    p.add_argument("--no-tmr", action="store_true",
                   help="build the chip without TMR on its control state")  # fmt: skip
    p.add_argument("--mode", choices=["nominal", "test"], default="nominal", help="boot mode")
    p.add_argument("--seed", type=int, default=1, help="initial orbit phase and battery charge")
    p.add_argument(
        "--time-scale", type=float, default=1.0,
        help="simulated environment seconds per wall second",
    )  # fmt: skip
    p.add_argument("--key", type=_key, action="append", default=[], metavar="ID:HEX",
                   help="an authentication key (ICD section 13); repeatable")  # fmt: skip
    p.add_argument("--nv-file", type=Path, help="keep the non-volatile store in this JSON file")
    p.add_argument("--log", type=Path, help="write a log to this file")
    args = p.parse_args(argv)
    if args.time_scale <= 0:
        p.error(f"--time-scale must be positive, got {args.time_scale}")
    return args


def serve(fsw: FlightSoftware, port: Port, stop_fd: int, nv_file: Path | None) -> None:
    """Feed the core from the port until ``stop_fd`` becomes readable."""
    fd = port.fileno()
    while True:
        now = time.monotonic()
        timeout = min(max(fsw.next_deadline() - now, 0.0), MAX_WAIT_S)
        writers = [fd] if port.backlog else []
        readable, writable, _ = select.select([fd, stop_fd], writers, [], timeout)
        if stop_fd in readable:
            return
        if fd in readable:
            fsw.receive_data(port.read())
        if writable:
            port.send_some()
        try:
            out = fsw.step(time.monotonic())
        except Exception:  # the core guards its parts; this is the last net
            log.exception("flight software step failed; going on")
            continue
        emit(fsw, out, port, nv_file)


def emit(fsw: FlightSoftware, out: Output, port: Port, nv_file: Path | None) -> None:
    """Send what the core produced and act on what it reported."""
    port.write(out.data)
    for action in out.actions:
        if isinstance(action, Log):
            log.info(action.message)
        elif isinstance(action, Rebooted):
            log.warning("rebooted: %s", action.cause.name)
            if nv_file is not None:
                fsw.nv.save(nv_file)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.log:
        logging.basicConfig(
            filename=args.log, level=logging.INFO,
            format="%(asctime)s %(levelname)s %(message)s",
        )  # fmt: skip
    nv = NonVolatile.load(args.nv_file) if args.nv_file else NonVolatile()
    config = FswConfig(
        mode=Mode.TEST if args.mode == "test" else Mode.NOMINAL,
        keys=dict(args.key),
        time_scale=args.time_scale,
        epoch_unix=time.time(),
        env=EnvironmentConfig.from_seed(args.seed),
    )
    backend = ModelBackend(
        Build(
            n=args.array_n,
            interleave=args.interleave,
            ecc=not args.no_ecc,
            scrub=not (args.no_ecc or args.no_scrub),
            tmr=not args.no_tmr,
        )
    )
    port: Port = DevicePort(args.device, args.baud) if args.device else PtyPort()
    stop_r, stop_w = os.pipe()
    os.set_blocking(stop_w, False)

    def stop(signum: int, frame: object) -> None:
        try:
            os.write(stop_w, b"x")
        except BlockingIOError:
            pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        fsw = FlightSoftware(backend, config, nv, now=time.monotonic())
        emit(fsw, fsw.step(time.monotonic()), port, args.nv_file)
        if args.device:
            print(f"SERIAL {args.device} {args.baud}", flush=True)
        else:
            print(f"PTY {port.path}", flush=True)
        log.info("serving on %s", port.path)
        serve(fsw, port, stop_r, args.nv_file)
    finally:
        port.close()
        if args.nv_file:
            nv.save(args.nv_file)
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
