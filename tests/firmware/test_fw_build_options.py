"""One build description: a bad build option reads the same from the chip model, the
flight software's command line and a target file (``testbed.sitemap_builds.Build``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from firmware_sim.accel import Accelerator
from firmware_sim.chip import ModelChip
from testbed.config import ConfigError, load_target
from testbed.sitemap_builds import Build, BuildError
from testbed.sitemap_builds import Build as MapBuild

TARGET = """\
kind: sim
n: {n}
bank_words: {bank_words}
interleave: {interleave}
ecc: {ecc}
scrub: {scrub}
tmr: true
"""
GOOD = {"n": 4, "bank_words": 1024, "interleave": 1, "ecc": True, "scrub": True}

#: (bad options, the command-line flags that give them or None, the one message).
CASES = [
    ({"n": 3}, ["--array-n", "3"], "'n' must be a power of two 2..16, got 3"),
    ({"bank_words": 1000}, ["--bank-words", "1000"],
     "'bank_words' must be a power of two 1..32768 (words in each scratchpad bank), got 1000"),
    ({"interleave": 3}, ["--interleave", "3"], "'interleave' must be one of 1, 2, 4, 8, got 3"),
    ({"bank_words": 4, "interleave": 8}, ["--bank-words", "4", "--interleave", "8"],
     "'bank_words' (4) must be a multiple of 'interleave' (8)"),
    ({"ecc": False, "scrub": True}, None,
     "'scrub' true needs 'ecc' true (the scrubber rewrites ECC words)"),
]  # fmt: skip
IDS = ["n", "bank-words", "interleave", "interleave-past-bank", "scrub-without-ecc"]


def firmware_stderr(*args: str) -> list[str]:
    """The lines the flight software writes on stderr when it refuses to start."""
    proc = subprocess.run(
        [sys.executable, "-m", "firmware_sim", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    return proc.stderr.splitlines()


def write_target(tmp_path: Path, options: dict) -> Path:
    values = {k: str(v).lower() if isinstance(v, bool) else v for k, v in options.items()}
    path = tmp_path / "bad.yaml"
    path.write_text(TARGET.format(**values))
    return path


@pytest.mark.parametrize(("bad", "flags", "message"), CASES, ids=IDS)
def test_a_bad_build_option_reads_the_same_everywhere(
    tmp_path: Path, bad: dict, flags: list[str] | None, message: str
) -> None:
    options = {**GOOD, **bad}
    with pytest.raises(BuildError) as model:
        Accelerator(**options)
    assert str(model.value) == message
    with pytest.raises(BuildError) as backend:
        ModelChip(Build(**options))
    assert str(backend.value) == message
    path = write_target(tmp_path, options)
    with pytest.raises(ConfigError) as target:
        load_target(path)
    assert str(target.value).endswith(f": {message}")
    assert "\n" not in str(target.value)
    lines = firmware_stderr("--config", str(path))
    assert len(lines) == 1 and lines[0].endswith(f": {message}"), lines
    if flags is not None:
        lines = firmware_stderr(*flags)
        assert len(lines) == 1 and lines[0].endswith(f": {message}"), lines
        assert lines[0].startswith("firmware-sim: cannot build the chip (--"), lines


def test_the_model_the_backend_and_the_twin_share_one_build() -> None:
    chip = Accelerator(n=2, bank_words=256, interleave=2, ecc=False, scrub=False, tmr=False)
    assert isinstance(chip.build, MapBuild)
    assert chip.build.options() == MapBuild(2, 256, 2, False, False, False).options()
    assert Build is MapBuild
    assert Accelerator().build.options() == MapBuild().options()
