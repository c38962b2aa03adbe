"""The chip's build options and target file on a command line, defined once for
``firmware-sim`` and ``hil sim``.

Each option is checked by the one build description (``testbed.sitemap_builds``), so a
bad value reads the same from either command, the model or a target file. A flag given
wins over the target file, the file over the default build.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from testbed.config.target import SimTarget
from testbed.sitemap_builds import OPTION_RULES, Build, BuildError

DEFAULT_BUILD = Build()

FLAGS = {"n": "--array-n", "bank_words": "--bank-words", "interleave": "--interleave"}
"""The command-line flag of each numeric build option."""
SWITCHES = ("--no-ecc", "--no-scrub", "--no-tmr")


def _integer(text: str) -> int:
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def add_config_option(parser: argparse.ArgumentParser, dest: str = "config") -> None:
    """Add ``--config FILE``: a target file (kind: sim) that gives the build, boot mode, key."""
    parser.add_argument("--config", type=Path, metavar="FILE", dest=dest,
                        help="target file of the chip (kind: sim, configs/targets): build, "
                        "boot mode, key; a flag given as well wins over the file")


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--array-n``, ``--bank-words``, ``--interleave`` and the ``--no-*`` switches."""
    g = parser.add_argument_group("build (default: the --config file's, else the default)")
    g.add_argument("--array-n", type=_integer, metavar="N",
                   help=f"array size N, {OPTION_RULES['n']} (default {DEFAULT_BUILD.n})")
    g.add_argument("--bank-words", type=_integer, metavar="WORDS",
                   help=f"{OPTION_RULES['bank_words']} (default {DEFAULT_BUILD.bank_words})")
    g.add_argument("--interleave", type=_integer, metavar="WAYS",
                   help="scratchpad words bit-interleaved per physical row, "
                   f"{OPTION_RULES['interleave']} (default {DEFAULT_BUILD.interleave})")
    g.add_argument("--no-ecc", action="store_true",
                   help="build the chip without SECDED (and so without the scrubber)")
    g.add_argument("--no-scrub", action="store_true", help="build the chip without the scrubber")
    g.add_argument("--no-tmr", action="store_true",
                   help="build the chip without TMR on its control state")


def build_of(args: argparse.Namespace, target: SimTarget | None) -> Build:
    """The chip's build: a flag wins over the target file, the file over the defaults;
    BuildError if no SCC build has it."""
    base = DEFAULT_BUILD if target is None else target.build()
    ecc = base.ecc and not args.no_ecc
    return replace(
        base,
        n=base.n if args.array_n is None else args.array_n,
        bank_words=base.bank_words if args.bank_words is None else args.bank_words,
        interleave=base.interleave if args.interleave is None else args.interleave,
        ecc=ecc,
        scrub=base.scrub and ecc and not args.no_scrub,
        tmr=base.tmr and not args.no_tmr,
    )


def build_error(exc: BuildError, args: argparse.Namespace) -> str:
    """``cannot build the chip (--array-n): ...``, naming the flag when one was given."""
    flag = FLAGS.get(exc.option or "")
    given = flag is not None and getattr(args, flag[2:].replace("-", "_")) is not None
    where = f" ({flag})" if given else ""
    return f"cannot build the chip{where}: {exc}"


def build_flags(args: argparse.Namespace) -> list[str]:
    """The build options given in ``args``, as the command line that gives them again."""
    flags: list[str] = []
    for flag in FLAGS.values():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            flags += [flag, str(value)]
    return flags + [s for s in SWITCHES if getattr(args, s[2:].replace("-", "_"))]
