"""``hil serve``'s live page in a real browser: ``hil sim`` and ``hil serve`` as their own
processes, Debian's Chromium driven by Playwright, and ``hil`` clients sharing the port while
the page watches. What the page shows is checked against the server's own /api/snapshot."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hil_process import ENV, HIL, REPO, HilServe, HilSim, board_campaign
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOT = REPO / "results" / "hil-serve.png"
WAIT_MS = 15_000
"""How long the page may take to show what the server already holds (the stream pushes it
within a fraction of a second; this is for a loaded machine)."""


@pytest.fixture
def serve(sim: HilSim, tmp_path: Path) -> Iterator[HilServe]:
    # The server's record in a directory of this test's own: only its clients find it.
    env = {**ENV, "HIL_SERVE_DIR": str(tmp_path / "serve")}
    s = HilServe(sim.port, "--http-port", "0", "--hk-interval", "0.5", env=env)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"needs Chromium at {CHROMIUM}: sudo apt-get install chromium "
                    "(or make chromium)")  # fmt: skip
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def client(serve: HilServe, *args: str) -> tuple[int, subprocess.CompletedProcess[str]]:
    """``hil ARGS``, a client of ``serve``, to its end: its pid (the page names a client by
    it) and its output."""
    proc = subprocess.Popen([HIL, *args], cwd=REPO, env=serve.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.pid, subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def last_hk(snapshot: dict, structure: str) -> dict:
    items = [h for h in snapshot["hk"] if h["structure"] == structure]
    assert items, f"no {structure} housekeeping in the snapshot"
    return items[-1]


def legend_value(page: Page, plot: str, series: str) -> dict:
    """What a plot's legend shows as the newest value of a line: text, value and its time."""
    return page.eval_on_selector(
        f"#{plot} .legend li[data-series='{series}'] .value",
        "e => ({text: e.textContent, value: e.dataset.value, t: e.dataset.t})",
    )


def points_drawn(page: Page, plot: str, series: str) -> int:
    path = page.locator(f"#{plot} svg path.series[data-series='{series}']")
    return int(path.get_attribute("data-n") or 0)


def test_live_page_follows_the_target(
    sim: HilSim, serve: HilServe, browser: Browser, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.goto(serve.web)

    # Housekeeping arrives every 0.5 s and every plot draws it.
    for plot, series in [("plot-power", "solar_power"), ("plot-battery", "battery_soc"),
                         ("plot-temperature", "board_temp"), ("plot-edac", "ecc_corrected"),
                         ("plot-tmr", "tmr_mismatches")]:  # fmt: skip
        page.wait_for_function(
            "([p, s]) => Number(document.querySelector("
            "`#${p} svg path.series[data-series='${s}']`)?.dataset.n) >= 2",
            arg=[plot, series], timeout=WAIT_MS,
        )  # fmt: skip
        assert points_drawn(page, plot, series) >= 2
        d = page.locator(f"#{plot} svg path.series[data-series='{series}']").get_attribute("d")
        assert d is not None and d.startswith("M") and any(c in d for c in "LH"), d
        assert page.locator(f"#{plot} svg .axis text").count() >= 4, f"{plot}: no axis values"

    # The newest battery value written out is the newest the server holds. Samples keep
    # coming, so the page and the snapshot are compared once both name the same sample.
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        snap = serve.snapshot()
        env = last_hk(snap, "environment")
        shown = legend_value(page, "plot-battery", "battery_soc")
        if shown["t"] is not None and float(shown["t"]) == env["t"]:
            break
        assert time.monotonic() < deadline, f"page shows {shown}, server's newest is {env}"
        page.wait_for_timeout(100)
    value, unit = env["fields"]["battery_soc"]
    assert unit == "%"
    assert float(shown["value"]) == value
    assert shown["text"] == f"{value:g} %"
    assert points_drawn(page, "plot-battery", "battery_soc") >= 2

    # The header: port, link state and the target's mode.
    assert page.inner_text("#port") == snap["port"] == sim.port
    assert page.get_attribute("#link", "data-state") == snap["link"]["state"] == "up"
    mode = last_hk(snap, "system")["fields"]["mode"][0]
    page.wait_for_function("m => document.querySelector('#mode').textContent === m", arg=mode,
                           timeout=WAIT_MS)  # fmt: skip
    assert page.get_attribute("#campaign", "data-state") == "none"
    assert "No campaign running" in page.inner_text("#campaign")

    # A job from another client goes through the server, and the page follows its stages.
    pid, run = client(serve, "run", "--port", sim.port, "--random", "8x8x8", "--verify")
    assert run.returncode == 0, run.stdout + run.stderr
    page.wait_for_function(
        "pid => [...document.querySelectorAll('#commands tr[data-id]')].some(r =>"
        " r.querySelector('td.client').textContent.includes(`(pid ${pid})`)"
        " && ['accepted', 'started', 'completed'].every(s =>"
        " r.querySelector(`.badge[data-stage='${s}'][data-ok='true']`)))",
        arg=pid, timeout=WAIT_MS,
    )  # fmt: skip
    snap = serve.snapshot()
    mine = [c for c in snap["commands"] if f"(pid {pid})" in c["client"]]
    assert mine, f"no command of pid {pid} in {[c['client'] for c in snap['commands']]}"
    assert all(c["state"] == "completed" for c in mine), mine
    for c in mine:
        row = page.locator(f"#commands tr[data-id='{c['id']}']")
        page.wait_for_function(
            "([id, st]) => document.querySelector(`#commands tr[data-id='${id}']`)"
            "?.dataset.state === st", arg=[c["id"], c["state"]], timeout=WAIT_MS,
        )  # fmt: skip
        assert row.locator("td.client").text_content() == c["client"]
        assert row.locator("td.name .cmd").text_content() == c["name"]
        shown_stages = row.locator(".badge").evaluate_all("bs => bs.map(b => b.dataset.stage)")
        expected = [s["stage"] for s in c["stages"]]
        assert set(shown_stages) == set(expected), (shown_stages, expected)
    verified = {"accepted", "started", "completed"}
    job = [c for c in mine if verified <= {s["stage"] for s in c["stages"]}]
    assert job, f"no command of the run with accepted, started and completed stages: {mine}"
    clients = page.locator("#commands tr[data-id] td.client").all_text_contents()
    assert sum(f"(pid {pid})" in c for c in clients) == len(mine), clients

    # A campaign on the served chip shows its progress and outcome counts.
    campaign = board_campaign(tmp_path / "served.yaml", ["operand_memory", "accumulator"],
                              injections=4)  # fmt: skip
    _, ran = client(serve, "campaign", "run", str(campaign), "--out", str(tmp_path / "c"),
                    "--port", sim.port)  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    shown = serve.snapshot()["campaign"]
    assert shown is not None and shown["done"] == shown["total"] > 0
    page.wait_for_function(
        "() => document.querySelector('#campaign').dataset.state === 'finished'",
        timeout=WAIT_MS,
    )  # fmt: skip
    panel = page.inner_text("#campaign")
    assert "served" in panel and f"{shown['done']}" in panel
    for outcome, count in shown["counts"].items():
        if count:
            assert str(count) in panel, (outcome, count, panel)

    # A reboot shows as a BOOT event at the top of the log.
    boots = page.locator("#events li[data-name='BOOT']").count()
    pid, reset = client(serve, "reset", "--port", sim.port)
    assert reset.returncode == 0, reset.stdout + reset.stderr
    page.wait_for_function(
        "n => document.querySelectorAll(\"#events li[data-name='BOOT']\").length > n",
        arg=boots, timeout=WAIT_MS,
    )  # fmt: skip
    boot = page.locator("#events li[data-name='BOOT']").first
    assert boot.get_attribute("data-severity") == "INFO"
    snap = serve.snapshot()
    boot_events = [e for e in snap["events"] if e["name"] == "BOOT"]
    assert boot_events, snap["events"]
    assert boot.get_attribute("title") == boot_events[-1]["text"]
    assert boot_events[-1]["text"].endswith(boot.locator(".ev-text").inner_text())
    times = page.locator("#events li time").all_inner_texts()
    assert times == sorted(times, key=lambda s: [float(x) for x in s.split(":")], reverse=True)

    # Housekeeping goes on after the reboot, and the header follows the new boot count.
    deadline = time.monotonic() + WAIT_MS / 1000
    while (system := last_hk(serve.snapshot(), "system"))["t"] <= boot_events[-1]["t"]:
        assert time.monotonic() < deadline, f"no housekeeping after the reboot: {system}"
        page.wait_for_timeout(200)
    boot_count = str(system["fields"]["boot_count"][0])
    page.wait_for_function("n => document.querySelector('#boots').textContent === n",
                           arg=boot_count, timeout=WAIT_MS)  # fmt: skip

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert not errors, errors
