"""``hil`` and ``hil sim`` as a user runs them: real processes, lines read with deadlines."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HIL = shutil.which("hil", path=str(Path(sys.executable).parent)) or "hil"
ENV = {k: v for k, v in os.environ.items() if k not in ("HIL_PORT", "HIL_KEY")}
"""The environment of a user who has set no port or key."""
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def read_line(fd: int, timeout: float) -> str:
    """One line from ``fd`` within ``timeout`` seconds (a process's stdout or stderr)."""
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete line within {timeout} s, got {line!r}")
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 1)
            if not chunk:
                raise EOFError(f"stream closed after {line!r}")
            line += chunk
    return line.decode().strip()


def end_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
    """Stop ``proc`` with ``sig`` (killed if it outlives ``timeout``), close its pipes; its
    exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return proc.returncode


def hil(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``hil`` to its end; stdout and stderr as text."""
    return subprocess.run(
        [HIL, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=ENV
    )


class HilSim:
    """``hil sim`` in its own process: the pty it printed and the key it announced."""

    def __init__(self, *args: str, timeout: float = 20.0) -> None:
        self.proc = subprocess.Popen(
            [HIL, "sim", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=ENV,
        )  # fmt: skip
        try:
            assert self.proc.stdout is not None and self.proc.stderr is not None
            kind, _, self.port = read_line(self.proc.stdout.fileno(), timeout).partition(" ")
            assert kind == "PTY", kind
            self.key = read_line(self.proc.stderr.fileno(), timeout).rsplit(" key ", 1)[1]
        except BaseException:
            self.stop()
            raise

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; its exit status."""
        return end_process(self.proc, signal.SIGINT, timeout=10)


class HilServe:
    """``hil serve`` in its own process, owning ``port``: ``web`` is its view's URL (empty
    with ``--no-web``). ``env`` is the environment of it and its clients (``HIL_SERVE_DIR``
    keeps a test's servers apart from any other)."""

    def __init__(self, port: str, *args: str, env: dict[str, str], timeout: float = 20.0) -> None:
        self.env = env
        self.port = port
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [HIL, "serve", "--port", port, *args], cwd=REPO, stdout=subprocess.PIPE,
            stderr=self._log, env=env,
        )  # fmt: skip
        self.web = ""
        try:
            assert self.proc.stdout is not None
            kind, _, served = read_line(self.proc.stdout.fileno(), timeout).partition(" ")
            assert (kind, served) == ("SERVING", port), (kind, served)
            if "--no-web" not in args:
                kind, _, self.web = read_line(self.proc.stdout.fileno(), timeout).partition(" ")
                assert kind == "WEB", kind
        except BaseException:
            self.stop()
            raise

    def hil(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """A ``hil`` command as a client of this server sees it."""
        return subprocess.run(
            [HIL, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=self.env
        )

    def snapshot(self) -> dict:
        """Its web view's state (``GET /api/snapshot``), fetched past any proxy."""
        with _DIRECT.open(self.web + "api/snapshot", timeout=10) as response:
            assert response.headers.get_content_type() == "application/json"
            return json.load(response)

    def stderr(self) -> str:
        """What it has logged so far."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> int:
        """Ctrl-C; its exit status."""
        return end_process(self.proc, signal.SIGINT, timeout=10)


def board_campaign(path: Path, sites: list[str], injections: int) -> Path:
    """A small campaign file for the protected chip at a serial port (``--port``): an 8x8x8
    layer under single-bit upsets in ``sites``."""
    path.write_text(json.dumps({
        "name": "served", "target": str(REPO / "configs/targets/sim-protected.yaml"),
        "builds": ["n4-bw1024-il1-ecc-scrub-tmr"],
        "workload": {"kind": "gemm", "m": 8, "k": 8, "n": 8, "bias": True, "relu": True,
                     "shift": 7},
        "faults": ["sbu"], "sites": sites, "injections": injections, "seed": 3,
    }))  # fmt: skip
    return path
