"""The command lines with config files, as a user runs them: real processes on real ptys.

A file that cannot be used is one line on stderr and exit status 2, before anything
starts; a good target file builds the chip it describes; a board file gives ``hil`` its
port, baud rate and key, and a flag given as well wins over the file.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hil_process import ENV, HIL, REPO, HilSim

BAD_SIM = "kind: sim\ndescription: bad\nn: four\nbank_words: 1024\ninterleave: 1\n"


def run(*cmd: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(cmd), capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env={**ENV, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


def usage_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command printed; it must have exited 2 without a traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_SIM)
    return path


def test_firmware_with_a_bad_target_exits_2_with_one_line(bad: Path) -> None:
    line = usage_error(run(sys.executable, "-m", "firmware_sim", "--config", str(bad)))
    assert (
        line == f"firmware-sim: {bad}:3: 'n' must be a power of two 2..16, got 'four' (and 3 more)"
    )


def test_firmware_with_a_bad_environment_exits_2_with_one_line(tmp_path: Path) -> None:
    env = tmp_path / "env.yaml"
    env.write_text(
        "name: x\ndescription: y\nsram_upsets_per_bit_day: {value: -1, source: estimate}\n"
    )
    line = usage_error(run(sys.executable, "-m", "firmware_sim", "--environment", str(env)))
    assert line == (
        f"firmware-sim: {env}:3: 'sram_upsets_per_bit_day.value' must be a number >= 0, got -1 "
        "(and 5 more)"
    )


def test_firmware_refuses_a_board_file() -> None:
    board = REPO / "configs/targets/board.yaml"
    line = usage_error(run(sys.executable, "-m", "firmware_sim", "--config", str(board)))
    assert line == (
        f"firmware-sim: {board}: 'kind' is board: a board file is for hil; firmware-sim takes "
        "kind: sim"
    )


def test_hil_with_a_bad_board_file_exits_2_with_one_line(tmp_path: Path) -> None:
    board = tmp_path / "board.yaml"
    board.write_text("kind: board\nport: /dev/ttyUSB0\nbaud: fast\n")
    line = usage_error(run(HIL, "--config", str(board), "ping"))
    assert (
        line
        == f"hil ping: {board}:3: 'baud' must be a positive integer (default 115200), got 'fast'"
    )


def test_hil_sim_with_a_bad_target_exits_2_before_starting(bad: Path) -> None:
    line = usage_error(run(HIL, "sim", "--config", str(bad)))
    assert line == f"hil sim: {bad}:3: 'n' must be a power of two 2..16, got 'four' (and 3 more)"


def test_hil_refuses_a_simulated_chip_as_a_board() -> None:
    target = REPO / "configs/targets/sim-n8.yaml"
    line = usage_error(run(HIL, "--config", str(target), "hk"))
    assert line.startswith(f"hil hk: {target}: 'kind' is sim: a simulated chip has no port"), line


@pytest.fixture
def n8_in_orbit(tmp_path: Path) -> Iterator[HilSim]:
    """An N = 8 chip from its target file, NOMINAL, flying GEO a billion times faster.

    Without GEO's functional interrupts and latch-ups: at that acceleration a SEFI would
    come every second and its anomalies would put the target in SAFE mode."""
    geo = yaml.safe_load((REPO / "configs/environments/geo.yaml").read_text())
    geo["sefi_per_device_day"]["value"] = geo["sel_per_device_day"]["value"] = 0.0
    quiet = tmp_path / "geo-upsets-only.yaml"
    quiet.write_text(yaml.safe_dump(geo))
    sim = HilSim(
        "--config", "configs/targets/sim-n8.yaml", "--mode", "nominal",
        "--environment", str(quiet), "--acceleration", "1e9",
    )  # fmt: skip
    try:
        yield sim
    finally:
        sim.stop()


def hk_field(board: Path, name: str, *flags: str) -> int:
    result = run(HIL, "--config", str(board), "hk", "accelerator", *flags)
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        if line.split()[:1] == [name]:
            return int(line.split()[1])
    raise AssertionError(f"no {name} in {result.stdout}")


def test_a_board_file_gives_port_and_key_and_the_chip_is_the_files(
    n8_in_orbit: HilSim, tmp_path: Path
) -> None:
    board = tmp_path / "board.yaml"
    board.write_text(f"kind: board\nport: {n8_in_orbit.port}\nbaud: 115200\nkey_file: k.key\n")
    (tmp_path / "k.key").write_text(n8_in_orbit.key + "\n")
    (tmp_path / "k.key").chmod(0o600)
    assert hk_field(board, "array_n") == 8
    # A hazardous command in NOMINAL mode is accepted only when signed with the file's key.
    result = run(HIL, "--config", str(board), "mode", "nominal")
    assert result.returncode == 0 and result.stdout.strip() == "NOMINAL", result.stderr
    # Upsets from the environment reach the scratchpad, where SECDED corrects them.
    seen = run(HIL, "--config", str(board), "events", "edac_corrected", "--count", "1",
               "--timeout", "20")  # fmt: skip
    assert seen.returncode == 0 and "EDAC_CORRECTED" in seen.stdout, (seen.stdout, seen.stderr)
    assert hk_field(board, "ecc_corrected") > 0


def test_a_port_flag_wins_over_the_board_file(n8_in_orbit: HilSim, tmp_path: Path) -> None:
    board = tmp_path / "board.yaml"
    board.write_text("kind: board\nport: /dev/nonexistent-orbit-hil\n")
    assert hk_field(board, "array_n", "--port", n8_in_orbit.port) == 8
    refused = run(HIL, "--config", str(board), "ping")
    assert refused.returncode == 1 and "/dev/nonexistent-orbit-hil" in refused.stderr
