"""``hil key rotate``: a key replaced by one the target derives from its master key.

The master key (ICD section 13) signs key management and nothing else. ``hil key rotate
ID --generation G --master-key-file FILE --out FILE`` asks the target to put generation G
of key ID in force, derives the same key here and writes it to ``--out`` (``ID:HEX``,
readable by its owner only), where a board file's ``key_file`` can name it. No key
travels on the link, and none is printed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from host.arguments import integer, writable
from host.commands import Authenticator
from host.errors import UsageError
from host.target import Target
from testbed.config.keys import MAX_KEY_ID, read_key_file, write_key_file

MAX_GENERATION = 0xFFFFFFFF


def add_parser(sub: argparse._SubParsersAction, link: argparse.ArgumentParser,
               wrap: Callable) -> None:  # fmt: skip
    """Register ``hil key`` on the ``hil`` parser's subcommands."""
    s = sub.add_parser("key", help="key management: replace a key by one derived from the "
                       "master key (ICD section 13)", description=__doc__)  # fmt: skip
    actions = s.add_subparsers(dest="key_action", required=True, metavar="ACTION")
    r = actions.add_parser("rotate", parents=[link], help="put a new generation of a key in "
                           "force on the target and write it to a file")  # fmt: skip
    r.add_argument("key_id", type=integer(1, MAX_KEY_ID), metavar="KEY_ID",
                   help=f"the key to replace, 1..{MAX_KEY_ID} (not the master key)")
    r.add_argument("--generation", type=integer(1, MAX_GENERATION), required=True,
                   help=f"its new generation, above the one in force, 1..{MAX_GENERATION}")
    r.add_argument("--master-key-file", type=Path, required=True, metavar="FILE",
                   help="the master key, one line ID:HEX, readable by its owner only")
    r.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help="where the new key is written (ID:HEX, mode 600)")
    r.set_defaults(run=wrap(cmd_rotate, check_rotate))


def check_rotate(args: argparse.Namespace) -> None:
    try:
        args.master = read_key_file(args.master_key_file)
    except ValueError as exc:
        raise UsageError(f"--master-key-file: {exc}") from None
    if args.master[0] == args.key_id:
        raise UsageError(f"KEY_ID: {args.key_id} is the master key, which is not derived")
    writable(args.out, "--out")


def cmd_rotate(target: Target, args: argparse.Namespace) -> int:
    master = Authenticator(*args.master)
    key = target.derive_key(args.key_id, args.generation, master)
    write_key_file(args.out, args.key_id, key)
    print(f"key {args.key_id} is generation {args.generation} on {target.link.port}; "
          f"written to {args.out}")
    return 0
