"""``hil serve``: one process owns a simulated chip's pty and every client shares it.

Everything is real: ``hil sim`` and ``hil serve`` in their own processes, ``hil`` commands
as subprocesses, in-process clients over the server's socket, pytest and a campaign
through it, and its web view read over HTTP.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hil_process import ENV, HIL, REPO, HilServe, HilSim, board_campaign

from host.commands import Command
from host.errors import CommandFailed, LinkClosed
from host.served import SharedLink, find_server, open_link
from host.target import Target
from protocol.codes import Service
from protocol.payloads import ParamId


@pytest.fixture
def serve_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A serve directory of this test's own, for its servers and every client."""
    folder = str(tmp_path / "serve")
    monkeypatch.setenv("HIL_SERVE_DIR", folder)
    return {**ENV, "HIL_SERVE_DIR": folder}


@pytest.fixture
def sim() -> Iterator[HilSim]:
    s = HilSim("--mode", "test")
    yield s
    s.stop()


@pytest.fixture
def served(sim: HilSim, serve_env: dict[str, str], tmp_path: Path) -> Iterator[HilServe]:
    server = HilServe(sim.port, "--http-port", "0", "--log", str(tmp_path / "session.log"),
                      env=serve_env)  # fmt: skip
    yield server
    server.stop()


def snapshot(server: HilServe) -> dict:
    with urllib.request.urlopen(server.web + "api/snapshot", timeout=5) as answer:
        return json.load(answer)


def _when(value, test):
    return value if test(value) else None


def wait_for(test, timeout: float = 10.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = test()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_commands_run_beside_a_follower_that_sees_their_events(served: HilServe) -> None:
    follower = subprocess.Popen(
        [HIL, "events", "--follow", "--port", served.port], cwd=REPO, env=served.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: "client hil events" in served.stderr(), what="the follower connected")
        ran = served.hil("run", "--random", "16x16x16", "--verify", "-q")
        assert ran.returncode == 0, ran.stderr
        assert "C equals A . B" in ran.stdout
        injected = served.hil("inject", "sbu", "spm_word", "word=100", "bit=3")
        assert injected.returncode == 0, injected.stderr
        time.sleep(0.5)  # the events reach the follower through the server
    finally:
        assert follower.stdout is not None
        follower.send_signal(signal.SIGINT)
        shown, errors = follower.communicate(timeout=10)
    assert follower.returncode in (0, 130), errors
    job = ran.stdout.split()[1].rstrip(":")
    assert f"JOB_COMPLETED job_id={job}" in shown, shown
    assert "FAULT_INJECTED kind=SBU site=SPM_WORD" in shown, shown


def test_clients_interleave_and_every_tm_reaches_each(served: HilServe) -> None:
    port = served.port
    with open_link(port, client="a") as a, open_link(port, client="b") as b:
        assert isinstance(a, SharedLink) and isinstance(b, SharedLink)
        mark_b = b.history.mark()
        results: dict[str, list] = {}

        def pings(link: SharedLink, name: str) -> None:
            results[name] = link.send_many([Command(Service.TEST, 1)] * 40)

        threads = [threading.Thread(target=pings, args=(lk, n)) for lk, n in ((a, "a"), (b, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for name in "ab":
            assert len(results[name]) == 40
            assert all(not isinstance(r, Exception) for r in results[name]), results[name]
        ids_a = {r.request_id for r in results["a"]}
        ids_b = {r.request_id for r in results["b"]}
        assert len(ids_a | ids_b) == 80, "one sequence count for both clients: no id twice"
        # b saw the pong of every one of a's pings as well as its own (a's last ones may
        # still be on their way to b when a's calls return).
        deadline = time.monotonic() + 10.0
        while True:
            pongs_b = {
                r.request_id for r in b.history.items(mark_b) if (r.service, r.subtype) == (17, 2)
            }
            if ids_a | ids_b <= pongs_b or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert ids_a | ids_b <= pongs_b
        # A job of a and a parameter of b interleave with the pings of neither.
        ta, tb = Target(a), Target(b)
        a_op, b_op = _operands()
        c = ta.run_gemm(a_op, b_op)
        assert (c == a_op.astype("int32") @ b_op.astype("int32")).all()
        tb.set_parameter(ParamId.SCRUB_PERIOD, 1234)
        assert ta.get_parameter(ParamId.SCRUB_PERIOD) == 1234


def _operands():
    import numpy as np

    rng = np.random.default_rng(5)
    return rng.integers(-128, 128, (4, 8), dtype=np.int8), rng.integers(
        -128, 128, (8, 4), dtype=np.int8
    )


def test_one_session_log_and_its_options_refused_to_clients(
    served: HilServe, tmp_path: Path
) -> None:
    for _ in range(2):
        assert served.hil("ping").returncode == 0  # no --port: the one server is the target
    logged = (tmp_path / "session.log").read_text()
    assert logged.count("TC[17,1]") >= 2, logged[-2000:]
    for option in (["--log", str(tmp_path / "mine.log")], ["--ack-timeout", "1"]):
        refused = served.hil("ping", *option)
        assert refused.returncode == 2, refused.stderr
        line = refused.stderr.strip()
        assert "\n" not in line and "Traceback" not in line
        assert option[0] in line and "served by hil serve" in line
    again = subprocess.run(
        [HIL, "serve", "--port", served.port, "--no-web"], capture_output=True,
        text=True, env=served.env, timeout=30,
    )  # fmt: skip
    assert again.returncode == 1 and "already served by hil serve" in again.stderr


def test_two_clients_with_one_key_never_spend_one_anti_replay_number(
    serve_env: dict[str, str],
) -> None:
    sim = HilSim("--mode", "nominal")
    server = HilServe(sim.port, "--no-web", env=serve_env)
    try:
        key = ["--key", sim.key]
        outs = []

        def set_param(value: int) -> None:
            outs.append(server.hil("param", f"scrub_period={value}", *key))

        threads = [threading.Thread(target=set_param, args=(v,)) for v in (1000, 2000, 3000)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert [o.returncode for o in outs] == [0, 0, 0], [o.stderr for o in outs]
        hk = server.hil("hk", "system")
        assert hk.returncode == 0
        failures = [ln for ln in hk.stdout.splitlines() if ln.split()[:1] == ["auth_failures"]]
        assert failures and failures[0].split()[-1] == "0", hk.stdout
        # Without a key the server signs with its own: the null key, refused in NOMINAL.
        refused = server.hil("param", "scrub_period=10")
        assert refused.returncode == 1 and "--key" in refused.stderr
    finally:
        server.stop()
        sim.stop()


def test_a_client_hears_when_the_server_ends_and_the_port_is_free_again(
    served: HilServe,
) -> None:
    port = served.port
    link = open_link(port, client="t")
    try:
        assert link.ping().stage is not None
        assert served.stop() == 0
        with pytest.raises(LinkClosed, match="hil serve .* ended|not open"):
            wait_for(lambda: link.state.value == "closed", what="the client saw the end")
            link.ping()
    finally:
        link.close()
    assert find_server(port) is None, "the record is gone with its server"
    direct = subprocess.run([HIL, "ping", "--port", port], capture_output=True, text=True,
                            env=served.env, timeout=30)  # fmt: skip
    assert direct.returncode == 0, direct.stderr


def test_pytest_and_a_campaign_run_through_the_server(
    sim: HilSim, served: HilServe, tmp_path: Path
) -> None:
    # The whole conformance suite, as a pytest session that is one client among others.
    session = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "tests/conformance", "--hil-port", served.port, "--hil-key", sim.key],
        capture_output=True, text=True, cwd=REPO, env=served.env, timeout=300,
    )  # fmt: skip
    assert session.returncode == 0, session.stdout[-3000:]
    assert " passed" in session.stdout and "skipped" not in session.stdout
    port = served.port
    campaign = board_campaign(tmp_path / "c.yaml", ["operand_memory", "configuration_register"],
                              injections=3)  # fmt: skip
    ran = served.hil("campaign", "run", str(campaign), "--out", str(tmp_path / "out"),
                     "--port", port, timeout=300)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    runs = (tmp_path / "out" / "runs.jsonl").read_text().splitlines()
    shown = wait_for(lambda: snapshot(served)["campaign"], what="the campaign on the view")
    assert shown["name"] == "served" and shown["done"] == shown["total"] == len(runs)
    assert sum(shown["counts"].values()) == len(runs)
    clients = {c["client"].split(" (")[0] for c in snapshot(served)["commands"]}
    assert {"pytest", "hil campaign"} <= clients, clients


def test_the_view_holds_housekeeping_events_and_each_command_s_stages(
    sim: HilSim, serve_env: dict[str, str]
) -> None:
    server = HilServe(sim.port, "--http-port", "0", "--hk-interval", "0.2", env=serve_env)
    try:
        view = wait_for(lambda: _when(snapshot(server), lambda v: len(v["hk"]) >= 6),
                        what="six housekeeping reports")  # fmt: skip
        structures = {h["structure"] for h in view["hk"]}
        assert structures == {"system", "environment", "accelerator"}
        env = next(h for h in view["hk"] if h["structure"] == "environment")
        assert env["fields"]["battery_soc"][1] == "%" and env["fields"]["board_temp"][1] == "degC"
        assert view["link"]["state"] == "up"
        reset = server.hil("reset")
        assert reset.returncode == 0, reset.stderr
        booted = lambda v: any(e["name"] == "BOOT" for e in v["events"])  # noqa: E731
        view = wait_for(lambda: _when(snapshot(server), booted), what="the BOOT event")
        rows = [c for c in view["commands"] if c["client"].startswith("hil reset")]
        assert rows and rows[-1]["state"] == "completed"
        assert [s["stage"] for s in rows[-1]["stages"]] == ["accepted", "started", "completed"]
        assert all(s["ok"] for s in rows[-1]["stages"])
        with urllib.request.urlopen(server.web, timeout=5) as page:
            assert b"<html" in page.read().lower()
    finally:
        server.stop()


def test_a_refused_command_shows_its_failure_in_words_on_the_view(served: HilServe) -> None:
    with open_link(served.port, client="t") as link:
        with pytest.raises(CommandFailed) as refused:
            link.send(Service.TEST, 99)  # a subtype service 17 does not have
    view = snapshot(served)
    row = next(c for c in reversed(view["commands"]) if c["client"].startswith("t "))
    assert row["state"] == "failed" and row["detail"] == refused.value.words
    assert row["stages"][-1] == {**row["stages"][-1], "stage": "failed", "of": "accepted",
                                 "ok": False}  # fmt: skip


def test_the_server_stops_in_one_line_when_its_simulated_chip_ends(
    serve_env: dict[str, str],
) -> None:
    sim = HilSim("--mode", "test")
    server = HilServe(sim.port, "--no-web", env=serve_env)
    try:
        assert find_server(sim.port) is not None
        sim.stop()
        server.proc.wait(timeout=30)
        assert server.proc.returncode == 1
        last = server.stderr().strip().splitlines()[-1]
        assert last.startswith("hil serve: ") and "pseudo-terminal is gone" in last, last
        assert "Traceback" not in server.stderr()
        assert find_server(sim.port) is None, "its record went with it"
    finally:
        server.stop()
