"""``hil serve``: share one target's port with every client, and show it live on a web page.

It prints ``SERVING <port>`` and ``WEB <url>`` on stdout once clients may connect, then
logs one line per client and per change of the link's state on stderr until Ctrl-C or
SIGTERM, and exits 0; when the target's pseudo-terminal is gone for good (a simulated
chip that ended), it says so in one line and exits 1.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from host.arguments import number, writable
from host.commands import Authenticator
from host.errors import HostError, LinkError, UsageError
from host.link import Link
from host.serve import Server
from host.served import find_server

DEFAULT_HTTP_PORT = 8470
MAX_HK_INTERVAL_S = 3600.0
"""The ICD's range of a housekeeping interval: 100 ms .. 3,600,000 ms (section 15.3)."""


def add_parser(
    sub: argparse._SubParsersAction,
    link: argparse.ArgumentParser,
    settings: Callable[[argparse.Namespace], tuple[str, int, Authenticator | None]],
) -> None:
    """Register ``hil serve`` on the ``hil`` parser's subcommands."""
    s = sub.add_parser(
        "serve", parents=[link],
        help="own the target's port and share it with every hil command, pytest session and "
        "campaign; a live web view on localhost",
        description=__doc__,
    )  # fmt: skip
    s.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT, metavar="N",
                   help=f"port of the web view on 127.0.0.1, 0..65535 (0: any free one; "
                   f"default {DEFAULT_HTTP_PORT})")  # fmt: skip
    s.add_argument("--no-web", action="store_true", help="serve clients only, no web view")
    s.add_argument(
        "--hk-interval",
        type=number(0.1, MAX_HK_INTERVAL_S, "s"),
        metavar="S",
        help="ask the target for its housekeeping every S seconds, again after each of its "
        f"reboots, 0.1..{MAX_HK_INTERVAL_S:g} (default: leave its intervals as they are)",
    )
    s.set_defaults(run=lambda args: cmd_serve(args, settings))


def cmd_serve(
    args: argparse.Namespace,
    settings: Callable[[argparse.Namespace], tuple[str, int, Authenticator | None]],
) -> int:
    if not 0 <= args.http_port <= 65535:
        raise UsageError(f"--http-port: must be 0..65535, got {args.http_port}")
    if args.log is not None:
        writable(args.log, "--log")
    port, baud, auth = settings(args)
    running = find_server(port)
    if running is not None:
        raise HostError(f"{port} is already served by hil serve (pid {running.pid})")
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s hil serve: %(message)s"
    )
    link = Link(port, baud, auth=auth or Authenticator(), acceptance_timeout_s=args.ack_timeout,
                session_log=args.log)  # fmt: skip
    link.open()
    server = Server(link, log_path=str(Path(args.log).resolve()) if args.log else "",
                    hk_interval_s=args.hk_interval)  # fmt: skip
    try:
        server.start(http_port=None if args.no_web else args.http_port)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: server.stop())
        print(f"SERVING {port}", flush=True)
        if server.web_url:
            print(f"WEB {server.web_url}", flush=True)
        server.ask_for_housekeeping()
        while not server.wait(0.5):
            if link.gone:  # a simulated chip that ended: nothing is left to serve
                raise LinkError(f"{port}: {link.gone}; hil serve stops")
    finally:
        server.stop()
        link.close()
    return 0
