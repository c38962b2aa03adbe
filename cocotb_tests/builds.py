"""The scc_top builds the cocotb regression simulates, listed once.

Each top-level test module parametrizes its pytest function over one of these tables
(name shown by pytest -> ``scc_top`` parameters, RTL defaults for the ones left out), and
``hdl/lint.sh`` lints every build in them: ``python -m cocotb_tests.builds`` prints one
line of Verilator ``-G`` options per distinct build. A new table belongs in ``TABLES``.
"""

from __future__ import annotations

from collections.abc import Mapping

Params = Mapping[str, int]

#: test_scc: every feature on each array size and protection set.
SCC: dict[str, Params] = {
    "n2": {"N": 2, "BANK_WORDS": 2048},
    "n4": {"N": 4, "BANK_WORDS": 1024},
    "n8": {"N": 8, "BANK_WORDS": 1024},
    "n16": {"N": 16, "BANK_WORDS": 512},
    "n4-bare": {"N": 4, "BANK_WORDS": 1024, "ECC_EN": 0, "SCRUB_EN": 0, "TMR_EN": 0},
    "n8-no-tmr": {"N": 8, "BANK_WORDS": 1024, "TMR_EN": 0},
    "n2-no-scrub": {"N": 2, "BANK_WORDS": 2048, "SCRUB_EN": 0},
    "n8-il4": {"N": 8, "BANK_WORDS": 512, "INTERLEAVE": 4},
}

#: test_scc_limits: the largest scratchpads the register map allows, for N = 16 (four
#: bus words per scratchpad word) and for N = 8 (the full 16-bit word address).
LIMITS: dict[str, Params] = {
    "n16-bw16384": {"N": 16, "BANK_WORDS": 16384},
    "n8-bw32768": {"N": 8, "BANK_WORDS": 32768},
}

#: test_scc_control_faults: small scratchpads, with and without each protection.
CONTROL_FAULTS: dict[str, Params] = {
    "n4": {"N": 4, "BANK_WORDS": 256},
    "n4-no-tmr": {"N": 4, "BANK_WORDS": 256, "TMR_EN": 0, "SCRUB_EN": 0},
    "n2-bare-il2": {"N": 2, "BANK_WORDS": 256, "INTERLEAVE": 2, "ECC_EN": 0, "SCRUB_EN": 0,
                    "TMR_EN": 0},  # fmt: skip
    "n8-no-tmr-il4": {"N": 8, "BANK_WORDS": 256, "INTERLEAVE": 4, "TMR_EN": 0, "SCRUB_EN": 0},
}

#: test_scc_stuck: with and without TMR.
STUCK: dict[str, Params] = {
    "n4": {"N": 4, "BANK_WORDS": 256},
    "n4-no-tmr": {"N": 4, "BANK_WORDS": 256, "TMR_EN": 0, "SCRUB_EN": 0},
}

#: test_scc_edges: the build that mutation testing (testbed/mutate.py) mutates.
EDGES: dict[str, Params] = {
    "n4": {"N": 4, "BANK_WORDS": 256},
}

#: Every table, by the test module that runs it.
TABLES: dict[str, dict[str, Params]] = {
    "cocotb_tests.test_scc": SCC,
    "cocotb_tests.test_scc_limits": LIMITS,
    "cocotb_tests.test_scc_control_faults": CONTROL_FAULTS,
    "cocotb_tests.test_scc_stuck": STUCK,
    "cocotb_tests.test_scc_edges": EDGES,
}


def every_build() -> list[dict[str, int]]:
    """Every distinct parameter set the regression simulates, in table order."""
    seen: dict[tuple[tuple[str, int], ...], dict[str, int]] = {}
    for table in TABLES.values():
        for params in table.values():
            seen.setdefault(tuple(sorted(params.items())), dict(params))
    return list(seen.values())


def verilator_options(params: Params) -> str:
    """The build as Verilator parameter options, e.g. ``-GBANK_WORDS=512 -GN=16``."""
    return " ".join(f"-G{name}={value}" for name, value in sorted(params.items()))


if __name__ == "__main__":
    for build in every_build():
        print(verilator_options(build))
