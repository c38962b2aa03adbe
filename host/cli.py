"""``hil``: talk to a target from a shell.

    hil sim [--config T.yaml] [--array-n N ...] [--environment E.yaml]  simulated chip on a
        new pty (until Ctrl-C), with firmware-sim's build options
    hil ping  --port URL                      are you alive, and the round trip
    hil hk    --port URL [SID...] [--watch]   housekeeping with units (live with --watch)
    hil events --port URL [--follow]          event reports as they come
    hil load  --port URL MEMORY ADDRESS FILE  memory load, with a progress bar
    hil dump  --port URL MEMORY ADDRESS LENGTH [-o FILE]
    hil run   --port URL (A.npy B.npy | --random MxKxN) [--layer ...]
    hil inject --port URL KIND SITE [FIELD=VALUE...] | --list | --clear
    hil reset --port URL [--accel]
    hil mode  --port URL [MODE]
    hil param --port URL [NAME[=VALUE]...] [--raw]
    hil channel [--target PTY] [--baud B] [--latency-ms MS] [--ber P]...  a noisy line

``hil --config board.yaml COMMAND`` takes the port, baud rate and key of a board from a
target file (configs/targets, kind: board). A flag given as well wins over the file, and
the file over ``$HIL_PORT`` and ``$HIL_KEY``. Errors are one line on stderr and a non-zero
exit code: 1 when the target or the link failed, 2 for bad usage or a bad file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np

from host import channel, infer_cli, key_cli, serve_cli
from host.arguments import MAX_BAUD, check_int, integer, number, parse_int, writable
from host.campaign import cli as campaign_cli
from host.commands import Authenticator
from host.errors import CommandFailed, HostError, UsageError
from host.failures import MAX_DIM, in_units
from host.history import Received
from host.keys import parse_key
from host.link import Link
from host.link_api import LinkApi
from host.parameters import physical, raw_value
from host.progress import Progress
from host.served import SharedLink, find_server, running_servers
from host.sim import SIM_KEY, SIM_KEY_ID, SimulatedTarget
from host.target import (
    FIRMWARE_RAM_SIZE,
    Target,
    check_memory_range,
    integer_array,
    job_layout,
)
from host.telemetry import EventReport
from protocol.codes import EventId, FailureCode, FaultKind, FunctionId, MemoryId, Mode, Service
from protocol.link import DEFAULT_BAUD
from protocol.payloads import (
    FAULT_SITES,
    FAULT_WIDTHS,
    MAX_SITE_NAME,
    NEXT_JOB_KINDS,
    NEXT_JOB_SITES,
    ONE_BIT_SITES,
    PARAM_SPECS,
    SITE_FIELD_RANGES,
    SITE_FIELDS,
    ClusterShape,
    FaultRecord,
    FaultSiteClass,
    FaultTiming,
    HkStructure,
    JobPhase,
    ParamId,
    ParamType,
)
from testbed.build_options import (
    add_build_options,
    add_config_option,
    build_error,
    build_flags,
    build_of,
)
from testbed.config import (
    BACKENDS,
    BOOT_MODES,
    BoardTarget,
    ConfigError,
    SimTarget,
    load_environment,
    load_target,
)
from testbed.rtl_sim import SIMULATORS
from testbed.sitemap import SiteMap, SiteMapError
from testbed.sitemap_builds import Build as SiteMapBuild
from testbed.sitemap_builds import BuildError

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
MEMORY_ALIASES = {
    "ram": MemoryId.FIRMWARE_RAM,
    "spm": MemoryId.ACCEL_SCRATCHPAD,
    "scratchpad": MemoryId.ACCEL_SCRATCHPAD,
}
AUTH_CODES = {FailureCode.AUTH_REQUIRED, FailureCode.AUTH_FAILED, FailureCode.AUTH_REPLAY}
DEFAULT_WIDTH = {FaultKind.MBU: 2, FaultKind.SEFI: 0, FaultKind.SEL: 0}
MAX_ADDRESS = ParamType.U32.bounds[1]
"""Largest octet address a TC carries (u32)."""
MAX_SECONDS = 3600.0
"""Longest wait, interval or timeout ``hil`` is given, in seconds."""
MAX_TIME_SCALE = 1e6
"""Fastest environment speed-up of ``hil sim``: a year of orbit in half a minute."""
MAX_ACCELERATION = 1e9
"""Largest factor on every radiation rate of ``hil sim``."""
LAYER_OPTIONS = ("bias", "relu", "shift", "int32")
"""``hil run`` options of the layer epilogue: with --layer only."""


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line like every other error of ``hil``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (`{self.prog} --help` shows usage)\n")


def _enum_arg(kind: type, text: str, aliases: dict[str, object] | None = None):
    key = text.strip().lower()
    if aliases and key in aliases:
        return aliases[key]
    try:
        return kind(int(text, 0))
    except ValueError:
        pass
    try:
        return kind[key.upper().replace("-", "_")]
    except KeyError:
        names = sorted([*(aliases or {}), *(m.name.lower() for m in kind)])
        raise UsageError(f"{text!r} is not a {kind.__name__}: one of {', '.join(names)}") from None


# --- the link options -----------------------------------------------------------------------


def _link_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("link")
    g.add_argument("--port",
                   help="pyserial URL of the target: /dev/ttyUSB0, /dev/pts/N, socket://host:port "
                   "(default: the --config board's, else $HIL_PORT)")  # fmt: skip
    g.add_argument("--baud", type=integer(1, MAX_BAUD),
                   help=f"baud rate, 1..{MAX_BAUD} (default: the --config board's, else "
                   f"{DEFAULT_BAUD})")  # fmt: skip
    g.add_argument("--key", metavar="ID:HEX",
                   help="key that signs hazardous commands (default: the --config board's "
                   "key_file, else $HIL_KEY; without one the null key, which a target accepts "
                   "in TEST mode only)")  # fmt: skip
    g.add_argument(
        "--ack-timeout",
        type=number(0, MAX_SECONDS, "s", above=True),
        default=None,
        metavar="S",
        help="acceptance timeout per transmission (default: the ICD's for the baud)",
    )
    g.add_argument("--log", type=Path, default=None, help="append a session log of every frame")
    return p


def _board(args: argparse.Namespace) -> BoardTarget | None:
    """The board file of the global ``--config``, if one was given."""
    if args.config is None:
        return None
    target = load_target(args.config)
    if isinstance(target, SimTarget):
        raise ConfigError(
            str(args.config),
            f"'kind' is sim: a simulated chip has no port until it runs; start it with "
            f"`hil sim --config {args.config}` and give its --port",
        )
    return target


def _link_settings(args: argparse.Namespace) -> tuple[str, int, Authenticator | None]:
    """Port, baud and key of the link options. A flag wins over the board file, the file
    over the environment variables. The key is None when none was given."""
    board = _board(args)
    port = args.port or (board.port if board else None) or os.environ.get("HIL_PORT")
    if not port:
        servers = running_servers()
        if len(servers) == 1:  # one hil serve runs: it is the target meant
            port = servers[0].port
    if not port:
        raise UsageError("no target: give --port URL (or set HIL_PORT); `hil sim` starts one")
    baud = args.baud if args.baud is not None else (board.baud if board else DEFAULT_BAUD)
    auth = None
    board_key = board.key_pair() if board and not args.key else None
    if board_key is not None:
        auth = Authenticator(*board_key)
    elif args.key or os.environ.get("HIL_KEY"):
        try:
            auth = Authenticator(*parse_key(args.key or os.environ["HIL_KEY"]))
        except ValueError as exc:
            raise UsageError(f"--key: {exc}") from None
    return port, baud, auth


def _open(args: argparse.Namespace) -> LinkApi:
    port, baud, auth = _link_settings(args)
    served = find_server(port)
    if served is not None:
        # The server's link has its own timeouts and session log: these do not apply.
        for option, value in (("--ack-timeout", args.ack_timeout), ("--log", args.log)):
            if value is not None:
                raise UsageError(
                    f"{option}: {port} is served by hil serve (pid {served.pid}), whose link "
                    f"sets it; give it to hil serve"
                )
        return SharedLink(served, auth=auth, client=f"hil {args.command}").open()
    link = Link(port, baud, auth=auth or Authenticator(), acceptance_timeout_s=args.ack_timeout,
                session_log=args.log)  # fmt: skip
    return link.open()


def _with_target(
    run: Callable[[Target, argparse.Namespace], int],
    check: Callable[[argparse.Namespace], None] | None = None,
):
    """A command on an open target; ``check`` refuses bad values (and reads the files
    they name) before the link is opened, so that nothing is sent for them."""

    def command(args: argparse.Namespace) -> int:
        if args.log is not None:
            writable(args.log, "--log")
        if check is not None:
            check(args)
        link = _open(args)
        try:
            return run(Target(link), args)
        finally:
            link.close()

    return command


# --- commands -----------------------------------------------------------------------------


def _sim_target(args: argparse.Namespace) -> tuple[Path | None, SimTarget | None]:
    """The target file of ``hil sim --config`` (or of the global ``--config``)."""
    path = args.sim_config or args.config
    if path is None:
        return None, None
    target = load_target(path)
    if isinstance(target, BoardTarget):
        raise ConfigError(
            str(path), "'kind' is board: `hil sim` starts a simulated chip and takes kind: sim"
        )
    return path, target


def cmd_sim(args: argparse.Namespace) -> int:
    # Check every file here, so that a bad one is a usage error before anything starts;
    # the flags then go to the firmware, where they win over the file as they do here.
    path, target = _sim_target(args)
    try:
        build = build_of(args, target)
    except BuildError as exc:
        raise UsageError(build_error(exc, args)) from None
    if args.log is not None:
        writable(args.log, "--log")
    try:
        keys = dict(parse_key(k) for k in args.key) if args.key else {SIM_KEY_ID: SIM_KEY}
    except ValueError as exc:
        raise UsageError(f"--key: {exc}") from None
    if not args.key and target is not None and target.key_pair() is not None:
        keys = dict([target.key_pair()])
    mode = args.mode or (target.mode if target else None) or "test"
    extra = ["--seed", str(args.seed), "--time-scale", str(args.time_scale)]
    if args.master_key is not None:
        try:
            master_id, _ = parse_key(args.master_key)
        except ValueError as exc:
            raise UsageError(f"--master-key: {exc}") from None
        if master_id in keys:
            raise UsageError(f"--master-key: key id {master_id} is also a --key")
        extra += ["--master-key", args.master_key]
    if args.simulator is not None:
        extra += ["--simulator", args.simulator]
    if args.environment is not None:
        load_environment(args.environment)
        extra += ["--environment", str(args.environment.resolve())]
        extra += ["--acceleration", repr(args.acceleration)]
    elif args.acceleration != 1.0:
        raise UsageError("--acceleration needs --environment FILE")
    # Ctrl-C stops it even when started in the background, where SIGINT starts ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    extra += build_flags(args)
    with SimulatedTarget(mode=mode, keys=keys, config=path, args=tuple(extra), log=args.log,
                         backend=args.backend) as sim:  # fmt: skip
        print(f"PTY {sim.port}", flush=True)
        key_id, key = next(iter(keys.items()))
        print(
            f"hil: simulated chip {build.name} in {mode.upper()} mode on {sim.port}, key {key_id}:"
            f"{key.hex()}\nhil: try `hil ping --port {sim.port}`; Ctrl-C stops it",
            file=sys.stderr, flush=True,
        )  # fmt: skip
        try:
            code = sim.wait()
        except KeyboardInterrupt:
            return 0
        raise HostError(f"the simulated chip stopped with code {code}: {sim.stderr_text()}")


def cmd_ping(target: Target, args: argparse.Namespace) -> int:
    for i in range(args.count):
        rtt = target.ping()
        print(f"pong from {target.link.port}: {1000 * rtt:.2f} ms")
        if i + 1 < args.count:
            time.sleep(args.interval)
    return 0


def _hk_block(target: Target, sids: list[HkStructure]) -> list[str]:
    lines: list[str] = []
    for sid, report in target.housekeeping_many(sids).items():
        lines.append(f"[{sid.name}]")
        lines += [f"  {line}" for line in report.lines()]
    return lines


def check_hk(args: argparse.Namespace) -> None:
    args.sids = [_enum_arg(HkStructure, s) for s in args.structure] or list(HkStructure)


def cmd_hk(target: Target, args: argparse.Namespace) -> int:
    sids = args.sids
    if not args.watch:
        print("\n".join(_hk_block(target, sids)))
        return 0
    tty = sys.stdout.isatty()
    shown = 0
    n = 0
    while args.count is None or n < args.count:
        lines = _hk_block(target, sids)
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        block = [f"housekeeping of {target.link.port} at {stamp} (Ctrl-C stops)", *lines]
        if tty and shown:
            sys.stdout.write(f"\x1b[{shown}F\x1b[J")  # back over the last block, clear it
        sys.stdout.write("\n".join(block) + "\n")
        sys.stdout.flush()
        shown = len(block)
        n += 1
        if args.count is None or n < args.count:
            time.sleep(args.interval)
    return 0


def _event_line(report: EventReport) -> str:
    stamp = "--:--:--.---"
    if report.time is not None:
        t = dt.datetime.fromtimestamp(report.time.to_unix(), dt.UTC)
        stamp = t.strftime("%H:%M:%S.%f")[:-3]
    return f"{stamp} {report}"


def check_events(args: argparse.Namespace) -> None:
    args.wanted = {int(_enum_arg(EventId, e)) for e in args.event}


def cmd_events(target: Target, args: argparse.Namespace) -> int:
    link = target.link
    wanted = args.wanted

    def is_event(item: Received) -> bool:
        return item.service == Service.EVENT_REPORTING and (not wanted or item.event_id in wanted)

    deadline = None if args.follow else time.monotonic() + args.timeout
    start: int | None = None
    seen = 0
    while args.count is None or seen < args.count:
        left = 3600.0 if deadline is None else deadline - time.monotonic()
        if left <= 0:
            break
        item = link.await_tm(is_event, left, start=start)
        if item is None:
            continue
        print(_event_line(EventReport.from_received(item)), flush=True)
        start = item.index + 1
        seen += 1
    if not seen:
        print(f"hil: no event within {args.timeout} s", file=sys.stderr)
    return 0


def _memory(text: str) -> MemoryId:
    return _enum_arg(MemoryId, text, MEMORY_ALIASES)


def _check_range(target: Target | None, memory: MemoryId, address: int, length: int) -> None:
    """A load's or dump's range against the memory, before its first chunk: the firmware
    RAM's size is the ICD's, the scratchpad's the target's (``target``; None: not yet)."""
    try:
        if memory == MemoryId.FIRMWARE_RAM:
            check_memory_range(memory, address, length, FIRMWARE_RAM_SIZE)
        elif target is not None:
            target.check_range(memory, address, length)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def check_load(args: argparse.Namespace) -> None:
    args.memory_id = _memory(args.memory)
    path = args.file
    try:
        args.data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    if not args.data:
        raise UsageError(f"{path}: empty, nothing to load")
    _check_range(None, args.memory_id, args.address, len(args.data))


def cmd_load(target: Target, args: argparse.Namespace) -> int:
    memory, data = args.memory_id, args.data
    _check_range(target, memory, args.address, len(data))
    started = time.monotonic()
    with Progress(f"load {memory.name}") as bar:
        target.load(memory, args.address, data, progress=bar, verify=args.verify)
    took = time.monotonic() - started
    checked = ", checked" if args.verify else ""
    print(f"loaded {len(data)} octets to {memory.name} at {args.address:#x} in {took:.2f} s"
          f"{checked}")  # fmt: skip
    return 0


def _hexdump(address: int, data: bytes) -> str:
    lines = []
    for pos in range(0, len(data), 16):
        row = data[pos : pos + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{address + pos:08x}  {row.hex(' '):<47}  {text}")
    return "\n".join(lines)


def _save(path: str, write: Callable[[], None]) -> None:
    """Write an output file checked before the command (it can still fail: a full disk)."""
    try:
        write()
    except OSError as exc:
        raise HostError(f"{path}: cannot write: {exc.strerror or exc}") from None


def check_dump(args: argparse.Namespace) -> None:
    args.memory_id = _memory(args.memory)
    if args.output:
        writable(args.output, "-o")
    _check_range(None, args.memory_id, args.address, args.length)


def cmd_dump(target: Target, args: argparse.Namespace) -> int:
    memory = args.memory_id
    _check_range(target, memory, args.address, args.length)
    with Progress(f"dump {memory.name}") as bar:
        data = target.dump(memory, args.address, args.length, progress=bar)
    if args.output:
        _save(args.output, lambda: Path(args.output).write_bytes(data))
        print(f"dumped {len(data)} octets of {memory.name} at {args.address:#x} to {args.output}")
    else:
        print(_hexdump(args.address, data))
    return 0


def _load_npy(path: str, what: str, dtype: type[np.integer]) -> np.ndarray:
    """An integer array from a .npy file; never a pickle, never a float truncated."""
    try:
        array = np.load(path, allow_pickle=False)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise UsageError(
                f"{path}: holds Python objects (a pickled object array), which hil does not "
                f"load: save {what} as an array of {np.dtype(dtype).name}"
            ) from None
        raise UsageError(f"{path}: not a .npy array: {exc}") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise UsageError(f"{path}: an .npz archive; give {what} as one .npy array")
    try:
        return integer_array(f"{what} ({path})", array, dtype)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _random_shape(text: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    try:
        dims = [parse_int(x) for x in parts]
    except ValueError:
        dims = []
    if len(dims) != 3:
        raise UsageError(f"--random {text!r}: expected MxKxN, e.g. 16x32x8")
    for name, value in zip("MKN", dims, strict=True):
        check_int(f"--random {text}: {name}", value, 1, MAX_DIM)
    m, k, n = dims
    return m, k, n


def _operands(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    if args.random:
        if args.matrices:
            raise UsageError(
                f"give A.npy B.npy or --random MxKxN, not both: {' '.join(args.matrices)} "
                "would not be used"
            )
        m, k, n = _random_shape(args.random)
        rng = np.random.default_rng(args.seed)
        return (rng.integers(-128, 128, (m, k), dtype=np.int8),
                rng.integers(-128, 128, (k, n), dtype=np.int8))  # fmt: skip
    if len(args.matrices) != 2:
        raise UsageError("give A.npy and B.npy, or --random MxKxN")
    a, b = (_load_npy(path, name, np.int8) for path, name in zip(args.matrices, "AB", strict=True))
    return a, b


def check_run(args: argparse.Namespace) -> None:
    if not args.layer:
        given = [f"--{o}" for o in LAYER_OPTIONS if getattr(args, o) not in (None, False)]
        if given:
            raise UsageError(
                f"{' '.join(given)} applies to a layer only: add --layer (a GEMM is "
                "A . B in int32, with no epilogue)"
            )
    args.a, args.b = _operands(args)
    args.bias_values = _load_npy(args.bias, "the bias", np.int32) if args.bias else None
    if args.output:
        # np.save adds the suffix a name lacks: check, and name, the file it writes.
        if not args.output.endswith(".npy"):
            args.output += ".npy"
        writable(args.output, "-o")
    fid = FunctionId.RUN_LAYER if args.layer else FunctionId.RUN_GEMM
    try:
        job_layout(fid, args.a, args.b, args.bias_values, out_int32=args.int32 or not args.layer)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_run(target: Target, args: argparse.Namespace) -> int:
    a, b, bias = args.a, args.b, args.bias_values
    shift = args.shift or 0
    out_int32 = args.int32 or not args.layer
    job_id = target.next_job_id()
    mark = target.link.history.mark()
    try:
        with Progress("operands") as bar:
            if args.layer:
                c = target.run_layer(a, b, bias, relu=args.relu, shift=shift,
                                     out_int32=out_int32, job_id=job_id, progress=bar)  # fmt: skip
            else:
                c = target.run_gemm(a, b, job_id=job_id, progress=bar)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    done = target.await_event(
        EventId.JOB_COMPLETED, timeout=1.0, start=mark, where=lambda e: e.args["job_id"] == job_id
    )
    what = "layer" if args.layer else "GEMM"
    stats = ""
    if done is not None:
        stats = f", {done.args['cycles']} cycles, {done.args['macs']} MACs"
    print(f"job {job_id}: {what} {a.shape[0]}x{a.shape[1]}x{b.shape[1]} -> C {c.shape} {c.dtype}"
          f"{stats}")  # fmt: skip
    if args.verify:
        from workload.reference import GemmJob, run_reference  # the chip's arithmetic

        m, k = a.shape
        job = GemmJob("hil run", m, k, b.shape[1], b, bias, args.relu, shift, out_int32)
        expected = run_reference(job, a)
        reference = "the layer's reference" if args.layer else "A . B"
        if not np.array_equal(c, expected):
            wrong = int(np.count_nonzero(c != expected))
            raise HostError(f"job {job_id}: {wrong} of {c.size} elements of C differ from "
                            f"{reference}")  # fmt: skip
        print(f"C equals {reference}")
    if args.output:
        _save(args.output, lambda: np.save(args.output, c))
        print(f"C written to {args.output}")
    elif not args.quiet:
        print(np.array2string(c, threshold=200))
    return 0


def _site_value(site: FaultSiteClass, name: str, fmt: str, value: int) -> int:
    """A site field's value in the range the ICD fixes for it (a firmware RAM address in
    the RAM), else in its wire type's."""
    lo, hi = SITE_FIELD_RANGES.get(site, {}).get(name, ParamType(fmt).bounds)
    if site in (FaultSiteClass.FW_RAM, FaultSiteClass.FW_RAM_CLUSTER) and name == "address":
        hi = FIRMWARE_RAM_SIZE - 1
    return check_int(f"{site.name} {name}", value, lo, hi)


def _record(args: argparse.Namespace) -> FaultRecord:
    kind = _enum_arg(FaultKind, args.kind)
    site = _enum_arg(FaultSiteClass, args.site)
    if site not in FAULT_SITES[kind]:
        hits = ", ".join(sorted(s.name.lower() for s in FAULT_SITES[kind]))
        raise UsageError(f"a {kind.name} cannot hit {site.name}: its sites are {hits}")
    specs = SITE_FIELDS[site]
    given: dict[str, int | str] = {}
    formats = {f.name: f.fmt for f in specs}
    for pos, item in enumerate(args.fields):
        name, eq, value = item.partition("=")
        if not eq:
            if pos >= len(specs):
                raise UsageError(f"{site.name} has {len(specs)} site fields, got more")
            name, value = specs[pos].name, item
        if formats.get(name) == "p":
            if not 1 <= len(value) <= MAX_SITE_NAME or not all(33 <= ord(c) < 127 for c in value):
                raise UsageError(f"{site.name} {name} {value!r}: 1..{MAX_SITE_NAME} printable "
                                 "ASCII characters, no spaces")  # fmt: skip
            given[name] = value
            continue
        if name == "shape":
            given[name] = int(_enum_arg(ClusterShape, value))
            continue
        try:
            parsed = parse_int(value)
        except ValueError:
            raise UsageError(f"{item!r}: the value is not an integer") from None
        if name in formats:  # an unknown name is reported with the missing ones below
            parsed = _site_value(site, name, formats[name], parsed)
        given[name] = parsed
    names = [f.name for f in specs]
    unknown = set(given) - set(names)
    missing = [n for n in names if n not in given]
    if unknown or missing:
        raise UsageError(
            f"{site.name} takes the site fields {' '.join(names) or '(none)'}: "
            f"unknown {sorted(unknown) or 'none'}, missing {missing or 'none'}"
        )
    lo, hi = FAULT_WIDTHS[kind]
    if site in ONE_BIT_SITES:
        hi = min(hi, 1)
    width = args.width if args.width is not None else DEFAULT_WIDTH.get(kind, 1)
    check_int(f"--width of a {kind.name} at {site.name}", width, lo, hi)
    timing, point = FaultTiming.NOW, (0, 0, 0)
    if args.next_job:
        if kind not in NEXT_JOB_KINDS or site not in NEXT_JOB_SITES:
            raise UsageError(f"a {kind.name} at {site.name} cannot wait for a job: no --next-job")
        parts = args.next_job.split(":")
        try:
            tile, cycle = parse_int(parts[0]), parse_int(parts[2])
        except (IndexError, ValueError):
            raise UsageError(f"--next-job {args.next_job!r}: expected TILE:PHASE:CYCLE") from None
        if len(parts) != 3:
            raise UsageError(f"--next-job {args.next_job!r}: expected TILE:PHASE:CYCLE")
        check_int(f"--next-job {args.next_job}: TILE", tile, *ParamType.U16.bounds)
        check_int(f"--next-job {args.next_job}: CYCLE", cycle, *ParamType.U16.bounds)
        phase = _enum_arg(JobPhase, parts[1])
        timing, point = FaultTiming.NEXT_JOB, (tile, int(phase), cycle)
    return FaultRecord(kind, site, width, tuple(given[n] for n in names), timing, point)


def _show_record(rec: FaultRecord) -> str:
    specs = SITE_FIELDS[rec.site_class]
    fields = " ".join(
        str(v) if f.fmt == "p" else f"{f.name}={v}" for f, v in zip(specs, rec.site, strict=True)
    )
    kind = FaultKind(rec.kind).name if rec.kind in FaultKind._value2member_map_ else rec.kind
    when = (
        "now"
        if rec.timing == FaultTiming.NOW
        else "next job at tile:phase:cycle " + ":".join(str(p) for p in rec.point)
    )
    return f"{kind} at {rec.site_class.name} {fields} width {rec.width}, {when}".replace("  ", " ")


def _site_build(args: argparse.Namespace) -> SiteMapBuild:
    """The build whose site map ``hil inject --sites`` lists: --build, or the global
    --config of a simulated chip, or the default build."""
    if args.build:
        try:
            return SiteMapBuild.from_name(args.build)
        except BuildError as exc:
            raise UsageError(f"--build {args.build!r}: {exc}") from None
    if args.config is not None:
        target = load_target(args.config)
        if isinstance(target, SimTarget):
            return SiteMapBuild(target.n, target.bank_words, target.interleave, target.ecc,
                                target.scrub, target.tmr)  # fmt: skip
    return SiteMapBuild()


def cmd_sites(args: argparse.Namespace) -> int:
    """``hil inject --sites [CLASS]``: the build's site-map entries, for SITE records."""
    build = _site_build(args)
    try:
        sitemap = SiteMap.load(build)
        if args.sites != "all":
            sitemap = sitemap.select(args.sites)
    except SiteMapError as exc:
        raise UsageError(str(exc)) from None
    print(f"build {build.name}: {len(sitemap)} entries, {sitemap.total_bits} bits "
          "(inject with: hil inject sbu site NAME bit=N)")  # fmt: skip
    width = max((len(e.name) for e in sitemap), default=4)
    for e in sitemap:
        shape = f"{e.width}" if e.depth == 1 else f"{e.depth} x {e.width} (bit = row*{e.width}+bit)"
        print(f"  {e.name:<{width}}  {e.cls.value:<22}  {shape}")
    return 0


def cmd_inject(target: Target, args: argparse.Namespace) -> int:
    if args.clear:
        target.clear_faults()
        print("every active fault cleared")
        return 0
    if args.list:
        active, records = target.list_faults()
        print(f"{active} active fault{'s' if active != 1 else ''}")
        for rec in records:
            print(f"  {_show_record(rec)}")
        return 0
    record = args.record
    target.inject([record])
    if record.timing == FaultTiming.NEXT_JOB:
        # Only the job can tell whether its point is reached: it reports the faults it
        # did not get (event FAULT_NOT_INJECTED, HK last_job_not_injected).
        print(f"armed {_show_record(record)}; the job reports it if it is not injected")
    else:
        print(f"injected {_show_record(record)}")
    return 0


def check_inject(args: argparse.Namespace) -> None:
    if args.clear or args.list:
        return
    if not args.kind or not args.site:
        raise UsageError("give KIND SITE [FIELD=VALUE...], or --list, or --clear")
    args.record = _record(args)


def _inject_or_sites(args: argparse.Namespace) -> int:
    # Listing the site map needs no target.
    if args.sites:
        return cmd_sites(args)
    return _with_target(cmd_inject, check_inject)(args)


def cmd_reset(target: Target, args: argparse.Namespace) -> int:
    if args.accel:
        target.reset_accelerator()
        print("accelerator reset")
        return 0
    boot = target.reset()
    print(f"rebooted: {boot}")
    return 0


def check_mode(args: argparse.Namespace) -> None:
    args.new_mode = _enum_arg(Mode, args.mode) if args.mode else None


def cmd_mode(target: Target, args: argparse.Namespace) -> int:
    if args.new_mode is not None:
        target.mode(args.new_mode)
    print(target.mode().name)
    return 0


def check_param(args: argparse.Namespace) -> None:
    args.sets, args.gets = [], []
    for item in args.params:
        name, eq, value = item.partition("=")
        pid = _enum_arg(ParamId, name)
        if not eq:
            args.gets.append(pid)
        elif args.raw:
            try:
                parsed = parse_int(value)
            except ValueError:
                raise UsageError(f"{item!r}: the value is not an integer") from None
            spec = PARAM_SPECS[pid]
            unit = in_units(spec.unit).strip()
            args.sets.append((pid, check_int(pid.name, parsed, spec.lo, spec.hi, unit)))
        else:
            try:
                args.sets.append((pid, raw_value(pid, value)))
            except ValueError as exc:
                raise UsageError(str(exc)) from None


def cmd_param(target: Target, args: argparse.Namespace) -> int:
    sets: list[tuple[ParamId, int]] = args.sets
    gets: list[ParamId] = args.gets
    if sets:
        target.set_parameters(sets)
    shown = gets + [p for p, _ in sets] if args.params else list(ParamId)
    values = target.get_parameters(shown)
    width = max(len(p.name) for p in shown)
    for pid in shown:
        value = f"{values[pid]} {PARAM_SPECS[pid].unit}" if args.raw else physical(pid, values[pid])
        print(f"{pid.name:<{width}}  {value}")
    return 0


# --- the parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    link = _link_options()
    p = Parser(
        prog="hil", description="Talk to an orbit-hil target (simulated chip or board).",
        epilog="Errors: one line on stderr; exit 1 when the target or link failed, 2 for usage "
        "or a bad file. A flag wins over the --config file, the file over $HIL_PORT/$HIL_KEY.",
    )  # fmt: skip
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="a target file: a board (kind: board) gives --port, --baud and --key; "
                   "for `hil sim`, a simulated chip (kind: sim)")  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("sim", help="start a simulated chip on a new pty and print its port",
                       epilog="A flag given with --config wins over the file.")  # fmt: skip
    add_config_option(s, dest="sim_config")
    s.add_argument("--mode", choices=BOOT_MODES, help="boot mode (default: the file's, else test)")
    s.add_argument("--key", action="append", default=[], metavar="ID:HEX",
                   help=f"provision a key (default: the file's, else {SIM_KEY_ID}:<the test "
                   "key>)")  # fmt: skip
    s.add_argument("--master-key", metavar="ID:HEX",
                   help="provision a master key, which signs key management only "
                   "(`hil key rotate`)")  # fmt: skip
    s.add_argument("--backend", choices=BACKENDS,
                   help="the chip: model (the bit-exact model) or rtl (the RTL under Icarus "
                   "Verilog, the flight software inside the simulation; slower); default: "
                   "the file's, else model")  # fmt: skip
    s.add_argument("--simulator", choices=SIMULATORS,
                   help="with --backend rtl: icarus (default) or verilator (compiles longer, "
                   "runs faster)")  # fmt: skip
    s.add_argument("--seed", type=integer(), default=1, help="orbit phase and battery at start")
    s.add_argument(
        "--time-scale",
        type=number(0, MAX_TIME_SCALE, above=True),
        default=1.0,
        help=f"environment speed-up, above 0 and at most {MAX_TIME_SCALE:g}",
    )
    s.add_argument("--environment", type=Path, metavar="FILE",
                   help="fly this radiation environment (configs/environments)")  # fmt: skip
    s.add_argument("--acceleration", type=number(0, MAX_ACCELERATION, above=True), default=1.0,
                   metavar="X", help=f"multiply every radiation rate by X, above 0 and at most "
                   f"{MAX_ACCELERATION:g} (default 1)")  # fmt: skip
    s.add_argument("--log", type=Path, default=None, help="the simulated chip's log file")
    add_build_options(s)
    s.set_defaults(run=cmd_sim)

    s = sub.add_parser("ping", parents=[link], help="are-you-alive test (TC[17,1])")
    s.add_argument("--count", type=integer(1), default=1, help="pings to send")
    s.add_argument(
        "--interval", type=number(0, MAX_SECONDS, "s"), default=1.0, help="seconds between pings"
    )
    s.set_defaults(run=_with_target(cmd_ping))

    s = sub.add_parser("hk", parents=[link], help="housekeeping, with units")
    s.add_argument("structure", nargs="*", help="system, environment, accelerator (default all)")
    s.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    s.add_argument(
        "--interval",
        type=number(0, MAX_SECONDS, "s"),
        default=1.0,
        help="seconds between refreshes",
    )
    s.add_argument("--count", type=integer(1), default=None, help="stop after this many refreshes")
    s.set_defaults(run=_with_target(cmd_hk, check_hk))

    s = sub.add_parser("events", parents=[link], help="print event reports as they come")
    s.add_argument("event", nargs="*", help="only these events (names or ids)")
    s.add_argument(
        "--timeout",
        type=number(0, MAX_SECONDS, "s", above=True),
        default=10.0,
        help="listen this long (s)",
    )
    s.add_argument("--count", type=integer(1), default=None, help="stop after this many")
    s.add_argument("--follow", action="store_true", help="listen until Ctrl-C")
    s.set_defaults(run=_with_target(cmd_events, check_events))

    s = sub.add_parser("load", parents=[link], help="load a file into target memory")
    s.add_argument("memory", help="ram or spm (FIRMWARE_RAM, ACCEL_SCRATCHPAD)")
    s.add_argument("address", type=integer(0, MAX_ADDRESS), help="octet address")
    s.add_argument("file", help="file to load, - for stdin")
    s.add_argument("--verify", action="store_true", help="check the CRC afterwards (TC[6,9])")
    s.set_defaults(run=_with_target(cmd_load, check_load))

    s = sub.add_parser("dump", parents=[link], help="dump target memory")
    s.add_argument("memory", help="ram or spm")
    s.add_argument("address", type=integer(0, MAX_ADDRESS), help="octet address")
    s.add_argument("length", type=integer(1, MAX_ADDRESS), help="octets")
    s.add_argument("-o", "--output", help="write the octets to this file instead of a hex dump")
    s.set_defaults(run=_with_target(cmd_dump, check_dump))

    s = sub.add_parser("run", parents=[link], help="run a GEMM or NN layer on the accelerator")
    s.add_argument("matrices", nargs="*", metavar="A.npy B.npy", help="int8 operands")
    s.add_argument("--random", metavar="MxKxN", help="random int8 operands of this shape")
    s.add_argument("--seed", type=integer(0), default=0, help="seed of --random")
    s.add_argument("--layer", action="store_true", help="RUN_LAYER instead of RUN_GEMM")
    s.add_argument("--bias", help="int32 bias .npy (with --layer)")
    s.add_argument("--relu", action="store_true", help="ReLU (with --layer)")
    s.add_argument(
        "--shift",
        type=integer(0, 31),
        default=None,
        help="requantization shift, 0..31 (with --layer; default 0)",
    )
    s.add_argument("--int32", action="store_true", help="int32 output (with --layer)")
    s.add_argument(
        "--verify",
        action="store_true",
        help="compare C with the host's reference: A . B, or the layer's epilogue",
    )
    s.add_argument("-o", "--output", help="save C as .npy")
    s.add_argument("-q", "--quiet", action="store_true", help="do not print C")
    s.set_defaults(run=_with_target(cmd_run, check_run))

    s = sub.add_parser("inject", parents=[link], help="inject a fault (TEST mode)")
    s.add_argument("kind", nargs="?", help="sbu, mbu, set, stuck_at_0, stuck_at_1, sefi, sel")
    s.add_argument("site", nargs="?", help="spm_cell, spm_word, acc_bit, out_bit, reg_copy, "
                   "fw_ram, accel, fsw, site (a site-map entry by name), spm_cluster (bank row "
                   "cell shape), fw_ram_cluster (address bit shape): a cluster of --width "
                   "cells, shape word_line (0), bit_line (1) or block (2)")  # fmt: skip
    s.add_argument("fields", nargs="*", metavar="FIELD=VALUE",
                   help="site fields, e.g. word=100 bit=3 (or the values in order); for "
                   "site: NAME bit=N, e.g. u_seq.u_state.q_q[1] bit=2")  # fmt: skip
    s.add_argument(
        "--sites",
        nargs="?",
        const="all",
        metavar="CLASS",
        help="list the build's site-map entries (of one class), then exit",
    )
    s.add_argument(
        "--build",
        metavar="NAME",
        help="the build --sites lists, e.g. "
        "n4-bw1024-il1-ecc-scrub-tmr (default: --config's, or that one)",
    )
    s.add_argument(
        "--width",
        type=integer(0, 0xFF),
        default=None,
        help="cells or bits hit (the kind's range: sbu 1, mbu 2..8, ...)",
    )
    s.add_argument("--next-job", metavar="TILE:PHASE:CYCLE", help="act at this point of the "
                   "next job (phase 1 bias, 2 stream, 3 write, 4 flush; a number or "
                   "a name)")  # fmt: skip
    s.add_argument("--list", action="store_true", help="list the active faults")
    s.add_argument("--clear", action="store_true", help="clear every active fault")
    s.set_defaults(run=_inject_or_sites)

    s = sub.add_parser("reset", parents=[link], help="reboot the target (or --accel: the chip)")
    s.add_argument("--accel", action="store_true", help="soft-reset the accelerator only")
    s.set_defaults(run=_with_target(cmd_reset))

    s = sub.add_parser("mode", parents=[link], help="show or change the mode")
    s.add_argument("mode", nargs="?", help="nominal, safe or test")
    s.set_defaults(run=_with_target(cmd_mode, check_mode))

    s = sub.add_parser("param", parents=[link], help="read or set parameters")
    s.add_argument("params", nargs="*", metavar="NAME[=VALUE]",
                   help="default: all, read; a value in the unit shown (temp_low_limit=-20.5 "
                   "or -20.5degC)")  # fmt: skip
    s.add_argument(
        "--raw",
        action="store_true",
        help="values as the ICD carries them (15.7: 0.01 degC, 0.1 %%), not scaled",
    )
    s.set_defaults(run=_with_target(cmd_param, check_param))

    s = sub.add_parser("channel", help="a noisy serial line between the host and a target: "
                       "prints the host-side pty (PTY path) and runs until Ctrl-C",
                       description=channel.DESCRIPTION)  # fmt: skip
    channel.add_options(s)
    s.set_defaults(run=channel.run)

    infer_cli.add_parser(sub, link, _with_target)
    serve_cli.add_parser(sub, link, _link_settings)
    key_cli.add_parser(sub, link, _with_target)
    campaign_cli.add_parser(sub)
    return p


def _hint(exc: HostError) -> str:
    """What a person at the command line can do about a refusal."""
    if not isinstance(exc, CommandFailed):
        return ""
    if exc.code in AUTH_CODES:
        return "; hazardous commands outside TEST mode need --key ID:HEX (or $HIL_KEY)"
    if exc.code == FailureCode.WRONG_MODE and exc.data == bytes([Mode.SAFE]):
        return "; run `hil mode nominal --key ID:HEX` (or test); `hil hk system` counts anomalies"
    if exc.code == FailureCode.NOT_IN_TEST_MODE:
        return "; `hil mode test --key ID:HEX` enters TEST mode"
    return ""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    notes = getattr(exc, "__notes__", None) or []
    return "; ".join([text, *notes])


def _usage_errors() -> tuple[type[Exception], ...]:
    """The errors that are a bad value or file: exit 2. A campaign's is among them once
    its module is loaded, which it must be to have raised one (``hil`` starts without it)."""
    runner = sys.modules.get("campaign.runner")
    return (UsageError, ConfigError) + ((runner.CampaignError,) if runner else ())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hil`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(EXIT_INTERRUPTED))
    try:
        return args.run(args)
    except _usage_errors() as exc:
        print(f"hil {args.command}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except HostError as exc:
        print(f"hil {args.command}: {_one_line(exc)}{_hint(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (hil hk --watch | head): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
