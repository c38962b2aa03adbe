"""Config files of orbit-hil (``configs/``): schemas, and loaders with one-line errors.

``load_target`` reads a target (a simulated chip and its build, or a board);
``load_environment`` a radiation environment. Both raise ``ConfigError`` (a ValueError)
whose text is one line: ``FILE:LINE: what was wrong and what is allowed``.
"""

from testbed.config.environment import ESTIMATE, Environment, Sourced, load_environment
from testbed.config.errors import ConfigError
from testbed.config.keys import parse_key
from testbed.config.target import (
    ARRAY_SIZES,
    BACKENDS,
    BOOT_MODES,
    INTERLEAVES,
    MAX_BANK_WORDS,
    BoardTarget,
    SimTarget,
    Target,
    load_target,
)

__all__ = [
    "ARRAY_SIZES",
    "BACKENDS",
    "BOOT_MODES",
    "ESTIMATE",
    "INTERLEAVES",
    "MAX_BANK_WORDS",
    "BoardTarget",
    "ConfigError",
    "Environment",
    "SimTarget",
    "Sourced",
    "Target",
    "load_environment",
    "load_target",
    "parse_key",
]
