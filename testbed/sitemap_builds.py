"""Builds of the SCC: their options, their names and the builds whose site maps are kept.

A build name spells every option, so a config file (or a person) can name a build and
the name alone says which RTL it is: ``n4-bw1024-il1-ecc-scrub-tmr`` is N = 4,
BANK_WORDS = 1024, INTERLEAVE = 1 with ECC, scrubber and TMR; ``noecc``, ``noscrub``
and ``notmr`` leave a protection out.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

#: Allowed values of the options (docs/REGISTERS.md, "Build parameters").
ARRAY_SIZES = (2, 4, 8, 16)
INTERLEAVES = (1, 2, 4, 8)
MAX_BANK_WORDS = 32768
#: 32-bit bus words in the scratchpad window (bytes 0x80000-0xFFFFF): both banks' words,
#: each ``bus_parts(n)`` bus words long, must fit in it.
WINDOW_PARTS = 0x80000 // 4

_NAME = re.compile(
    r"n(?P<n>\d+)-bw(?P<bw>\d+)-il(?P<il>\d+)-(?P<ecc>ecc|noecc)-(?P<scrub>scrub|noscrub)"
    r"-(?P<tmr>tmr|notmr)"
)
NAME_FORM = "n<N>-bw<BANK_WORDS>-il<INTERLEAVE>-{ecc|noecc}-{scrub|noscrub}-{tmr|notmr}"


#: What each numeric option allows, as a person reads it: every bad option gives the same
#: message, from the model, the firmware's command line or a target file.
OPTION_RULES: dict[str, str] = {
    "n": f"a power of two {ARRAY_SIZES[0]}..{ARRAY_SIZES[-1]}",
    "bank_words": f"a power of two 1..{MAX_BANK_WORDS} (words in each scratchpad bank)",
    "interleave": f"one of {', '.join(map(str, INTERLEAVES))}",
}


class BuildError(ValueError):
    """A build name or option that no SCC build has; ``option`` names the option at fault
    (None for a malformed name)."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


def _integer(value: object) -> bool:
    """Whether ``value`` is an integer (a Python or numpy int, not a bool or a float)."""
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)  # type: ignore[call-overload]
    except TypeError:
        return False
    return True


def bus_parts(n: int) -> int:
    """32-bit bus words per scratchpad word of an N x N build: ceil(8 N / 32)."""
    return -(-8 * n // 32)


def max_bank_words(n: int) -> int:
    """The largest BANK_WORDS of array size ``n``: at most ``MAX_BANK_WORDS``, and both
    banks within the bus window (``2 * BANK_WORDS * bus_parts(n) <= WINDOW_PARTS``)."""
    return min(MAX_BANK_WORDS, WINDOW_PARTS // (2 * bus_parts(n)))


def _bad(option: str, value: object) -> BuildError:
    return BuildError(f"'{option}' must be {OPTION_RULES[option]}, got {value!r}", option)


@dataclass(frozen=True, slots=True)
class Build:
    """One parameter set of ``scc_top``, in the model's terms (``Accelerator`` keywords).

    The one description of a build: the defaults are the RTL's parameter defaults, and
    constructing one checks every option (``BuildError``). The model (``Accelerator``,
    the twin's ``cycle_state.Build``), the flight software's backend and command line and
    the target files all build through it.
    """

    n: int = 4
    bank_words: int = 1024
    interleave: int = 1
    ecc: bool = True
    scrub: bool = True
    tmr: bool = True

    def __post_init__(self) -> None:
        if not _integer(self.n) or self.n not in ARRAY_SIZES:
            raise _bad("n", self.n)
        bw = self.bank_words
        if not _integer(bw) or bw < 1 or bw & (bw - 1) or bw > MAX_BANK_WORDS:
            raise _bad("bank_words", bw)
        if bw > max_bank_words(self.n):
            raise BuildError(
                f"'bank_words' must be at most {max_bank_words(self.n)} with 'n' {self.n} "
                f"(2 * bank_words * {bus_parts(self.n)} bus words in the {WINDOW_PARTS} of "
                f"the scratchpad window), got {bw}",
                "bank_words",
            )
        if not _integer(self.interleave) or self.interleave not in INTERLEAVES:
            raise _bad("interleave", self.interleave)
        if bw % self.interleave:
            raise BuildError(
                f"'bank_words' ({bw}) must be a multiple of 'interleave' ({self.interleave})",
                "bank_words",
            )
        if self.scrub and not self.ecc:
            raise BuildError(
                "'scrub' true needs 'ecc' true (the scrubber rewrites ECC words)", "scrub"
            )

    @property
    def name(self) -> str:
        """The build's name, e.g. ``n4-bw1024-il1-ecc-scrub-tmr``."""
        # Formatted from the options checked at construction: a campaign asks for it
        # per injection.
        return (
            f"n{self.n}-bw{self.bank_words}-il{self.interleave}-"
            f"{'ecc' if self.ecc else 'noecc'}-{'scrub' if self.scrub else 'noscrub'}-"
            f"{'tmr' if self.tmr else 'notmr'}"
        )

    @property
    def bus_parts(self) -> int:
        """32-bit bus words per scratchpad word (``bus_parts``)."""
        return bus_parts(self.n)

    def options(self) -> dict[str, int | bool]:
        """The options as keywords of ``Build``, ``SiteMap.for_build`` and ``Accelerator``."""
        return {
            "n": self.n,
            "bank_words": self.bank_words,
            "interleave": self.interleave,
            "ecc": self.ecc,
            "scrub": self.scrub,
            "tmr": self.tmr,
        }

    def hdl_parameters(self) -> dict[str, int]:
        """The ``scc_top`` parameters of this build."""
        return {
            "N": self.n,
            "BANK_WORDS": self.bank_words,
            "INTERLEAVE": self.interleave,
            "ECC_EN": int(self.ecc),
            "SCRUB_EN": int(self.scrub),
            "TMR_EN": int(self.tmr),
        }

    @classmethod
    def from_hdl_parameters(cls, params: dict[str, int]) -> Build:
        """The build of ``scc_top`` parameters; a parameter left out takes its RTL default."""
        unknown = set(params) - {"N", "BANK_WORDS", "INTERLEAVE", "ECC_EN", "SCRUB_EN", "TMR_EN"}
        if unknown:
            raise BuildError(f"not scc_top parameters: {', '.join(sorted(unknown))}")
        full = {**cls().hdl_parameters(), **params}
        return cls(
            n=full["N"],
            bank_words=full["BANK_WORDS"],
            interleave=full["INTERLEAVE"],
            ecc=bool(full["ECC_EN"]),
            scrub=bool(full["SCRUB_EN"]),
            tmr=bool(full["TMR_EN"]),
        )

    @classmethod
    def from_name(cls, name: str) -> Build:
        """The build a name spells; a malformed name raises ``BuildError`` naming the form."""
        match = _NAME.fullmatch(name)
        if match is None:
            raise BuildError(f"build name {name!r} is not of the form {NAME_FORM}")
        return cls(
            n=int(match["n"]),
            bank_words=int(match["bw"]),
            interleave=int(match["il"]),
            ecc=match["ecc"] == "ecc",
            scrub=match["scrub"] == "scrub",
            tmr=match["tmr"] == "tmr",
        )


def build_name(
    *,
    n: int = 4,
    bank_words: int = 1024,
    interleave: int = 1,
    ecc: bool = True,
    scrub: bool = True,
    tmr: bool = True,
) -> str:
    """The name of the build with these options (checked), e.g. ``n4-bw1024-il1-ecc-scrub-tmr``."""
    return Build(n, bank_words, interleave, ecc, scrub, tmr).name


#: The builds whose site maps are kept in ``testbed/sitemaps/``: the default build, every
#: parameter set of the cocotb test_scc regression (array sizes 2, 4, 8, 16; without any
#: protection, without TMR, without the scrubber; interleaved by 4), and a small build
#: interleaved by 2 in which a simulation resolves every site by name.
STANDARD_BUILDS: tuple[Build, ...] = (
    Build(n=2, bank_words=2048),
    Build(n=4, bank_words=1024),
    Build(n=8, bank_words=1024),
    Build(n=16, bank_words=512),
    Build(n=4, bank_words=1024, ecc=False, scrub=False, tmr=False),
    Build(n=8, bank_words=1024, tmr=False),
    Build(n=2, bank_words=2048, scrub=False),
    Build(n=8, bank_words=512, interleave=4),
    Build(n=4, bank_words=256, interleave=2),
)
