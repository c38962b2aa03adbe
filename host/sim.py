"""The simulated chip as a child process: ``python -m firmware_sim`` on a fresh pty.

``SimulatedTarget`` starts it, reads the ``PTY <path>`` line it prints first, and stops it
(SIGTERM, then SIGKILL) when the ``with`` block ends. The host never imports
``firmware_sim``: it only runs it, as it would run any target.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from host.errors import HostError

REPO = Path(__file__).resolve().parents[1]

SIM_KEY_ID = 1
"""Key id provisioned in a simulated target by default, so hazardous TCs can be signed."""
SIM_KEY = bytes.fromhex("6f7262697420686f6c2074657374206b6579206f6e6c7920666f722073696d21")
"""The key of ``SIM_KEY_ID`` (32 octets; a test key, never a flight key)."""
START_TIMEOUT_S = 20.0
RTL_START_TIMEOUT_S = 300.0
"""The RTL chip compiles its build first (once per build and RTL change)."""


class SimError(HostError):
    """The simulated target would not start."""


class SimulatedTarget:
    """``python -m firmware_sim`` on a new pty; ``port`` is the path to open.

    ``mode`` is the boot mode (``"test"`` or ``"nominal"``); ``keys`` maps key id to key;
    ``config`` is a target file (kind: sim) that gives the build, ``array_n`` overrides
    its N (default: the file's, else the firmware's); ``backend`` the chip (``model``, or
    ``rtl``: the RTL in a simulator; default the file's, else the model); ``args`` are more
    options of ``firmware_sim`` (``--seed``, ``--time-scale``, ``--environment``...).
    """

    def __init__(
        self,
        *,
        mode: str = "test",
        keys: dict[int, bytes] | None = None,
        array_n: int | None = None,
        config: str | Path | None = None,
        args: tuple[str, ...] = (),
        log: str | Path | None = None,
        backend: str | None = None,
    ) -> None:
        self.mode = mode
        self.backend = backend
        self.keys = {SIM_KEY_ID: SIM_KEY} if keys is None else dict(keys)
        self.array_n = array_n
        self.config = Path(config) if config is not None else None
        self.args = tuple(args)
        self.log = Path(log) if log is not None else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = ""
        self._stderr: IO[bytes] | None = None

    @property
    def command(self) -> list[str]:
        """The command line that starts the target."""
        cmd = [sys.executable, "-m", "firmware_sim", "--mode", self.mode]
        if self.config is not None:
            cmd += ["--config", str(self.config.resolve())]
        if self.array_n is not None:
            cmd += ["--array-n", str(self.array_n)]
        if self.backend is not None:
            cmd += ["--backend", self.backend]
        for key_id, key in self.keys.items():
            cmd += ["--key", f"{key_id}:{key.hex()}"]
        if self.log is not None:
            cmd += ["--log", str(self.log)]
        return cmd + list(self.args)

    def start(self, timeout: float | None = None) -> str:
        """Start the process and return its pty path; raises SimError if it does not come up."""
        if timeout is None:
            timeout = RTL_START_TIMEOUT_S if self.backend == "rtl" else START_TIMEOUT_S
        if self.proc is not None:
            raise RuntimeError(f"simulated target already running on {self.port}")
        self._stderr = tempfile.TemporaryFile()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
        )}  # fmt: skip
        self.proc = subprocess.Popen(
            self.command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._stderr, env=env,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )  # fmt: skip
        try:
            line = self._first_line(timeout)
        except BaseException:
            self.stop()
            raise
        kind, _, path = line.partition(" ")
        if kind != "PTY" or not path:
            self.stop()
            raise SimError(f"firmware_sim printed {line!r} first, expected 'PTY <path>'")
        self.port = path
        return path

    def _first_line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise SimError(f"firmware_sim printed no 'PTY <path>' line within {timeout} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1)
            if not chunk:
                code = self.proc.wait(timeout=5)
                raise SimError(f"firmware_sim exited with code {code}: {self.stderr_text()}")
            line += chunk
        return line.decode(errors="replace").strip()

    def stderr_text(self, limit: int = 2000) -> str:
        """The last ``limit`` characters the process wrote on stderr."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-limit:].strip()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self) -> int:
        """Block until the process ends (e.g. on Ctrl-C); its exit code."""
        assert self.proc is not None
        return self.proc.wait()

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stop the process (SIGTERM, then SIGKILL); its exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if proc.stdout is not None:
            proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return proc.returncode

    def __enter__(self) -> SimulatedTarget:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child, before the chip starts (Linux): kill it when the process that started
    it ends, so that a worker process that exits without stopping its chip (a campaign's
    worker pool ends its processes so) leaves no chip running. SIGKILL, as a chip whose
    stdout nobody reads any more may be blocked writing to it."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
