"""``hil key rotate`` against ``hil sim`` in NOMINAL mode: a key replaced by one derived
from the master key, both ends agreeing, and key files that others can read refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from hil_process import HilSim, hil

MASTER = "9:" + bytes(range(100, 132)).hex()


@pytest.fixture
def keyed() -> HilSim:
    sim = HilSim("--mode", "nominal", "--master-key", MASTER)
    yield sim
    sim.stop()


def master_file(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "master.key"
    path.write_text(MASTER + "\n")
    path.chmod(mode)
    return path


def test_a_rotated_key_replaces_the_old_one(keyed: HilSim, tmp_path: Path) -> None:
    old_id = keyed.key.split(":")[0]
    out = tmp_path / "new.key"
    done = hil("key", "rotate", old_id, "--generation", "1", "--port", keyed.port,
               "--master-key-file", str(master_file(tmp_path)), "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"key {old_id} is generation 1 on {keyed.port}; written to {out}"
    )
    new = out.read_text().strip()
    assert out.stat().st_mode & 0o777 == 0o600
    assert new.split(":")[0] == old_id and new != keyed.key
    assert new.split(":")[1] not in done.stdout + done.stderr, "a key is never printed"
    refused = hil("param", "scrub_period=1000", "--port", keyed.port, "--key", keyed.key)
    assert refused.returncode == 1 and "AUTH_FAILED" in refused.stderr
    taken = hil("param", "scrub_period=1000", "--port", keyed.port, "--key", new)
    assert taken.returncode == 0, taken.stderr
    again = hil("key", "rotate", old_id, "--generation", "1", "--port", keyed.port,
                "--master-key-file", str(master_file(tmp_path)), "--out", str(out))  # fmt: skip
    assert again.returncode == 1 and "VALUE_OUT_OF_RANGE" in again.stderr
    assert out.read_text().strip() == new, "a refused rotation leaves the file alone"


def test_a_master_key_file_others_can_read_is_refused_before_sending(
    keyed: HilSim, tmp_path: Path
) -> None:
    path = master_file(tmp_path, 0o644)
    out = tmp_path / "new.key"
    refused = hil("key", "rotate", "1", "--generation", "1", "--port", keyed.port,
                  "--master-key-file", str(path), "--out", str(out))  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"hil key: --master-key-file: {path} can be read by others (mode 644): a key must "
        f"be its owner's alone; run chmod 600 {path}"
    )
    assert not out.exists()
    master = hil("key", "rotate", "9", "--generation", "1", "--port", keyed.port,
                 "--master-key-file", str(master_file(tmp_path)), "--out", str(out))  # fmt: skip
    assert master.returncode == 2 and "9 is the master key" in master.stderr
