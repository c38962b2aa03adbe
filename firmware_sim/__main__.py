"""``python -m firmware_sim`` / ``firmware-sim``: the flight software on a serial line.

Creates a pseudo-terminal, prints ``PTY <path>`` as the first line on stdout, and serves
the protocol on it until SIGTERM or SIGINT; with ``--device`` it serves a serial device
instead (and prints ``SERIAL <device> <baud>``). The loop is the edge of the sans-I/O
core: it waits for bytes or the core's next deadline, feeds the core, writes its output.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from firmware_sim.chip import Chip, ModelChip
from firmware_sim.core import FlightSoftware, FswConfig, Log, Output, Rebooted
from firmware_sim.environment import EnvironmentConfig
from firmware_sim.health import NonVolatile
from firmware_sim.radiation import ArrivalProcess, exposed_bits
from firmware_sim.ram import FirmwareRam
from firmware_sim.serial_port import DevicePort, Port, PtyPort
from protocol.codes import Mode
from protocol.link import DEFAULT_BAUD
from testbed.build_options import add_build_options, add_config_option, build_error, build_of
from testbed.config import (
    BACKENDS,
    BOOT_MODES,
    ConfigError,
    SimTarget,
    load_environment,
    load_target,
    parse_key,
)
from testbed.rtl_sim import SIMULATORS
from testbed.sitemap import SiteMapError
from testbed.sitemap_builds import BuildError

MAX_WAIT_S = 0.5
log = logging.getLogger("firmware_sim")


def _key(text: str) -> tuple[int, bytes]:
    try:
        return parse_key(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--key {text!r}: {exc}") from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="firmware-sim", description="orbit-hil flight software on a pty or serial device",
        epilog="--config FILE gives the build, the boot mode and the key from a target file "
        "(configs/targets, kind: sim); a flag given as well wins over the file. "
        "--environment FILE flies the chip through a radiation environment "
        "(configs/environments). A file that cannot be used is one line on stderr, exit 2.",
    )  # fmt: skip
    add_config_option(p)
    p.add_argument("--device", help="serve this serial device instead of a new pty")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="baud rate with --device")
    p.add_argument("--backend", choices=BACKENDS, help="accelerator backend (default model)")
    p.add_argument("--simulator", choices=SIMULATORS, default="icarus",
                   help="the simulator of --backend rtl (default icarus)")  # fmt: skip
    add_build_options(p)
    p.add_argument("--mode", choices=BOOT_MODES, help="boot mode (default nominal)")
    p.add_argument("--seed", type=int, default=1,
                   help="orbit phase and battery charge at start; the radiation draws")  # fmt: skip
    p.add_argument(
        "--time-scale", type=float, default=1.0,
        help="simulated environment seconds per wall second",
    )  # fmt: skip
    p.add_argument("--environment", type=Path, metavar="FILE",
                   help="fly this radiation environment: upsets land as time passes")  # fmt: skip
    p.add_argument("--acceleration", type=_positive, default=1.0, metavar="X",
                   help="multiply every radiation rate by X (default 1)")  # fmt: skip
    p.add_argument("--key", type=_key, action="append", default=[], metavar="ID:HEX",
                   help="an authentication key (ICD section 13); repeatable")  # fmt: skip
    p.add_argument("--master-key", type=_key, metavar="ID:HEX",
                   help="the master key, which signs key management (TC[150,1]) and nothing "
                   "else (ICD section 13)")  # fmt: skip
    p.add_argument("--nv-file", type=Path, help="keep the non-volatile store in this JSON file")
    p.add_argument("--log", type=Path, help="write a log to this file")
    args = p.parse_args(argv)
    if args.time_scale <= 0:
        p.error(f"--time-scale must be positive, got {args.time_scale}")
    return args


def sim_target(path: Path | None) -> SimTarget | None:
    """The target file ``path`` if given; raises ConfigError unless it is a simulated chip."""
    if path is None:
        return None
    target = load_target(path)
    if not isinstance(target, SimTarget):
        raise ConfigError(
            str(path), "'kind' is board: a board file is for hil; firmware-sim takes kind: sim"
        )
    return target


def _radiation(args: argparse.Namespace, chip: Chip, ram_bytes: int):
    if args.environment is None:
        return None, None
    env = load_environment(args.environment)
    bits = exposed_bits(chip, FirmwareRam(ram_bytes))
    return env, ArrivalProcess(env, bits, args.acceleration, args.seed)


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
    lost = port.frames_dropped - fsw.tm_overflow_total
    if lost > 0:  # the host has not read its TM for a while: say how much was lost
        fsw.tm_overflowed(lost)
    for action in out.actions:
        if isinstance(action, Log):
            log.info(action.message)
        elif isinstance(action, Rebooted):
            log.warning("rebooted: %s", action.cause.name)
            if nv_file is not None:
                fsw.nv.save(nv_file)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except ConfigError as exc:
        print(f"firmware-sim: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """Build the chip from the arguments, then fly the flight software on it until stopped."""
    target = sim_target(args.config)
    try:
        build = build_of(args, target)
    except BuildError as exc:  # a bad flag, or flags that contradict the file
        print(f"firmware-sim: {build_error(exc, args)}", file=sys.stderr)
        return 2
    backend = args.backend or (target.backend if target else None) or "model"
    if backend == "rtl":
        from firmware_sim.rtl.launch import launch

        return launch(args, build)
    return fly(args, target, ModelChip(build), announce=_print_line, own_signals=True)


def _print_line(line: str) -> None:
    print(line, flush=True)


def fly(
    args: argparse.Namespace,
    target: SimTarget | None,
    chip: Chip,
    announce: Callable[[str], None],
    own_signals: bool,
) -> int:
    """Serve the flight software, driving ``chip``, on a new pty or the device given, until
    SIGTERM or SIGINT (``own_signals``; else until the process ends); ``announce`` is told
    the first line (``PTY <path>`` or ``SERIAL <device> <baud>``) once it serves."""
    mode = args.mode or (target.mode if target else None) or "nominal"
    keys = dict(args.key)
    if not keys and target is not None and target.key_pair() is not None:
        keys = dict([target.key_pair()])
    master = None
    if args.master_key is not None:
        master = args.master_key[0]
        if master in keys and keys[master] != args.master_key[1]:
            raise SystemExit(f"--master-key: key id {master} is also given by --key")
        keys[master] = args.master_key[1]
    env_config = EnvironmentConfig.from_seed(args.seed)
    config = FswConfig(
        mode=Mode.TEST if mode == "test" else Mode.NOMINAL,
        keys=keys,
        master_key_id=master,
        time_scale=args.time_scale,
        epoch_unix=time.time(),
        env=env_config,
        baud=args.baud,
    )
    try:
        environment, radiation = _radiation(args, chip, config.ram_bytes)
    except SiteMapError as exc:  # the exposed bits come from the build's site map
        print(f"firmware-sim: cannot fly {args.environment}: {exc}", file=sys.stderr)
        return 2
    if environment is not None and environment.saa is not None:
        # One orbit: the eclipse follows the period the environment file gives.
        config = replace(
            config, env=replace(env_config, orbit_period_s=environment.saa.orbit_period_s)
        )
    if args.log:
        logging.basicConfig(
            filename=args.log, level=logging.INFO,
            format="%(asctime)s %(levelname)s %(message)s",
        )  # fmt: skip
    nv = NonVolatile.load(args.nv_file) if args.nv_file else NonVolatile()
    port: Port = DevicePort(args.device, args.baud) if args.device else PtyPort()
    stop_r, stop_w = os.pipe()
    os.set_blocking(stop_w, False)

    def stop(signum: int, frame: object) -> None:
        try:
            os.write(stop_w, b"x")
        except BlockingIOError:
            pass

    if own_signals:
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    try:
        fsw = FlightSoftware(chip, config, nv, now=time.monotonic(), radiation=radiation)
        emit(fsw, fsw.step(time.monotonic()), port, args.nv_file)
        announce(f"SERIAL {args.device} {args.baud}" if args.device else f"PTY {port.path}")
        log.info("serving on %s (%s chip, build %s)", port.path, chip.name, chip.build.name)
        if environment is not None:
            log.info("flying %s at acceleration %g", environment.name, args.acceleration)
        serve(fsw, port, stop_r, args.nv_file)
    finally:
        port.close()
        if args.nv_file:
            nv.save(args.nv_file)
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
