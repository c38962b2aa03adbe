"""A campaign backend that runs each injection on the chip's RTL in a simulator.

One simulation per build and worker serves every injection the worker is given
(``campaign.rtl_bench``: back to the pre-job state by reset and a few writes between
runs, never a new simulator per injection). The worker sends it each injection over a
Unix socket and reads back the outcome; the outcome classes are the model backend's, so
that a campaign run on both can be compared injection by injection
(``hil campaign crosscheck``). Sites the model lists as RTL-only are injected here.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
from pathlib import Path

from campaign.outcome import Outcome, Verdict
from campaign.plan import Injection, Plan
from campaign.rtl_bench import BUILD_ENV, SOCKET_ENV, WORKLOAD_ENV
from testbed import rtl_sim

START_TIMEOUT_S = 600.0
"""How long the simulation may take to be ready (a first build compiles the RTL)."""


class RtlBackendError(RuntimeError):
    """The simulation would not start, or ended under the campaign."""


class RtlBackend:
    """Injections of one build's plan on its RTL, in one simulation."""

    name = "rtl"

    def __init__(self, plan: Plan, simulator: str = "icarus") -> None:
        self.plan = plan
        build = plan.build
        tail = "" if simulator == "icarus" else f"-{simulator}"
        build_dir = rtl_sim.BUILD_ROOT / f"campaign-{build.name}{tail}"
        build_dir.mkdir(parents=True, exist_ok=True)
        runner = rtl_sim.build("scc_top", build.hdl_parameters(), build_dir,
                               simulator=simulator, log_file=build_dir / "build.log")  # fmt: skip
        self._dir = Path(tempfile.mkdtemp(prefix="orbit-hil-campaign-"))
        path = self._dir / "socket"
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        server.listen(1)
        server.settimeout(START_TIMEOUT_S)
        self.log = build_dir / f"sim-{os.getpid()}.log"
        env = {
            BUILD_ENV: json.dumps(build.options()),
            WORKLOAD_ENV: plan.workload.spec.model_dump_json(),
            SOCKET_ENV: str(path),
            "PYTHONPATH": rtl_sim.python_path(),
        }
        self._ended: list[BaseException | None] = []

        def simulate() -> None:
            saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
            try:
                runner.test(
                    test_module="campaign.rtl_bench", hdl_toplevel="scc_top",
                    build_dir=build_dir, test_dir=build_dir, extra_env=env,
                    log_file=self.log, results_xml=str(build_dir / f"results-{os.getpid()}.xml"),
                )  # fmt: skip
                self._ended.append(None)
            except BaseException as exc:  # noqa: BLE001  (reported on the next run)
                self._ended.append(exc)
            finally:
                if saved is not None:
                    os.environ["PYTEST_CURRENT_TEST"] = saved

        self._thread = threading.Thread(target=simulate, name=f"rtl-{build.name}", daemon=True)
        self._thread.start()
        try:
            conn, _ = server.accept()
        except TimeoutError:
            raise RtlBackendError(
                f"the RTL of {build.name} did not start within {START_TIMEOUT_S:.0f} s "
                f"(log: {self.log})"
            ) from None
        finally:
            server.close()
        self._conn = conn
        self._stream = conn.makefile("rw", encoding="utf-8")
        first = self._reply()
        if "error" in first:
            raise RtlBackendError(f"the RTL of {build.name}: {first['error']} (log: {self.log})")

    def _reply(self) -> dict:
        line = self._stream.readline()
        if not line:
            raise RtlBackendError(f"the simulation of {self.plan.build.name} ended "
                                  f"(log: {self.log})")  # fmt: skip
        return json.loads(line)

    def run(self, inj: Injection) -> Verdict:
        """Run one injection on the RTL; its outcome class and a line saying why."""
        self._stream.write(json.dumps(inj.to_json()) + "\n")
        self._stream.flush()
        reply = self._reply()
        return Verdict(Outcome(reply["outcome"]), reply["detail"], reply.get("changed"))

    def spent(self) -> dict:
        """Wall seconds of the runs so far by part (restore, job, read-back), and the clock
        cycles they simulated."""
        self._stream.write(json.dumps("spent") + "\n")
        self._stream.flush()
        return self._reply()

    def close(self) -> None:
        """End the simulation (it ends when the socket closes)."""
        try:
            self._stream.close()
            self._conn.close()
        except OSError:
            pass
        self._thread.join(30)
        for name in ("socket",):
            (self._dir / name).unlink(missing_ok=True)
        self._dir.rmdir()
