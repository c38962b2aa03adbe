"""HK ENVIRONMENT of a flown environment over a real pseudo-terminal: ``python -m
firmware_sim --environment`` in its own process, fast enough that passes through the
South Atlantic Anomaly come and go while the test watches."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fw_harness import REPO, FirmwareProcess, PtyClient, completes

from firmware_sim.services.housekeeping import HK_STRUCTURES, structure_format
from protocol.codes import HousekeepingSubtype, Service
from protocol.payloads import HkStructure

TIME_SCALE = 4000.0
"""Mission seconds per wall second: an orbit of 92.56 min in about 1.4 s."""
ACCELERATION = 1e6
WATCH_S = 7.0
ENV = HkStructure.ENVIRONMENT


@pytest.fixture
def anomaly_env(tmp_path: Path) -> Path:
    """ISS-like LEO with long passes: 30 % of the time in the anomaly, 15 passes a day, so
    a pass lasts about 0.4 s of wall time; no SEFIs or SELs to keep the chip answering."""
    env = yaml.safe_load((REPO / "configs/environments/leo-iss.yaml").read_text())
    env["saa"]["f_t"] = {"value": 0.3, "source": "estimate"}
    env["saa"]["passes_per_day"] = {"value": 15, "source": "estimate"}
    env["sefi_per_device_day"] = env["sel_per_device_day"] = {"value": 0, "source": "estimate"}
    path = tmp_path / "leo-long-passes.yaml"
    path.write_text(yaml.safe_dump(env))
    return path


@pytest.fixture
def flying(anomaly_env: Path) -> Iterator[PtyClient]:
    fw = FirmwareProcess(
        "--mode", "test", "--environment", str(anomaly_env),
        "--acceleration", str(ACCELERATION), "--time-scale", str(TIME_SCALE),
    )  # fmt: skip
    try:
        yield fw.client
    finally:
        fw.close()


def is_environment_report(tm) -> bool:
    report = (tm.service, tm.subtype) == (Service.HOUSEKEEPING, HousekeepingSubtype.HK_REPORT)
    return report and struct.unpack_from("!H", tm.source_data)[0] == ENV


def watch(client: PtyClient, seconds: float) -> list[dict[str, int]]:
    """Every ENVIRONMENT report received for ``seconds``, decoded by name."""
    names = [f.name for f in HK_STRUCTURES[ENV]]
    reports, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        tm = client.await_tm(is_environment_report, timeout=left)
        if tm is not None:
            values = struct.unpack(structure_format(ENV), tm.source_data)[1:]
            reports.append(dict(zip(names, values, strict=True)))
    return reports


def test_housekeeping_shows_upsets_rising_and_the_anomaly_coming_and_going(
    flying: PtyClient,
) -> None:
    interval = struct.pack("!BHI", 1, ENV, 100)  # the shortest period, 100 ms
    completes(flying, flying.tc(Service.HOUSEKEEPING, HousekeepingSubtype.MODIFY_INTERVAL,
                                interval))  # fmt: skip
    reports = watch(flying, WATCH_S)
    assert len(reports) > 30
    in_saa = [r["in_saa"] for r in reports]
    entries = sum(1 for a, b in zip(in_saa, in_saa[1:], strict=False) if b and not a)
    exits = sum(1 for a, b in zip(in_saa, in_saa[1:], strict=False) if a and not b)
    assert entries >= 2 and exits >= 2, in_saa
    for name in ("upsets_spm", "upsets_flipflop", "upsets_fw_ram", "upsets_not_landed"):
        series = [r[name] for r in reports]
        assert series == sorted(series), f"{name} went down: {series}"
    for name in ("upsets_spm", "upsets_flipflop", "upsets_fw_ram"):
        assert reports[-1][name] > reports[0][name], name
    # Upsets bunch in the anomaly: f_u / f_t = 3 times the average inside, 1/7 outside.
    inside, outside = [], []
    for a, b in zip(reports, reports[1:], strict=False):
        landed = b["upsets_spm"] + b["upsets_fw_ram"] - a["upsets_spm"] - a["upsets_fw_ram"]
        if a["in_saa"] and b["in_saa"]:
            inside.append(landed)
        elif not a["in_saa"] and not b["in_saa"]:
            outside.append(landed)
    assert inside and outside
    assert sum(inside) / len(inside) > 3 * sum(outside) / len(outside), (inside, outside)
