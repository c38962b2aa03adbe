"""pytest plugin (entry point ``pytest11: orbit_hil``): a target for every test that asks.

Options: ``--hil-port URL`` (any pyserial URL; without it a simulated chip is started on a
fresh pty, in TEST mode, with the key ``host.sim.SIM_KEY``), ``--hil-baud``,
``--hil-key ID:HEX`` (signs hazardous TCs; default: the simulated chip's key, or the null
key with ``--hil-port``, which a target accepts only in TEST mode) and ``--hil-log FILE``
(a session log of every frame).

A port that ``hil serve`` owns is reached through it (its session log is the one kept;
``--hil-log`` is then refused), so a session can run beside other clients of the target.

Fixtures: ``hil_port`` (session: the URL), ``hil_link`` (session: the open link, a
``Link`` or, through ``hil serve``, a ``SharedLink``),
``hil_target`` (session: ``Target``), ``hil_key`` (session: key id and key, or None), and
``hil`` (per test: an ``IntegrationApi`` whose history starts empty).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from host.commands import Authenticator
from host.integration_api import IntegrationApi
from host.keys import parse_key
from host.link_api import LinkApi
from host.served import open_link
from host.sim import SIM_KEY, SIM_KEY_ID, SimulatedTarget
from host.target import Target
from protocol.link import DEFAULT_BAUD
from testbed.config import BACKENDS


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("orbit-hil", "orbit-hil target")
    group.addoption(
        "--hil-port", default=None, metavar="URL",
        help="pyserial URL of the target (/dev/ttyUSB0, socket://host:port...); "
        "default: start a simulated chip on a fresh pty",
    )  # fmt: skip
    group.addoption(
        "--hil-baud", type=int, default=DEFAULT_BAUD, metavar="BAUD",
        help=f"baud rate of --hil-port (default {DEFAULT_BAUD})",
    )  # fmt: skip
    group.addoption(
        "--hil-key", default=None, metavar="ID:HEX",
        help="key that signs hazardous TCs (default: the simulated chip's test key; "
        "with --hil-port the null key, accepted in TEST mode only)",
    )  # fmt: skip
    group.addoption("--hil-log", default=None, metavar="FILE", help="write a session log here")
    group.addoption(
        "--hil-backend", default="model", choices=BACKENDS,
        help="the simulated chip started without --hil-port: model (default) or rtl (the "
        "RTL under Icarus Verilog, the flight software inside the simulation)",
    )  # fmt: skip


@pytest.fixture(scope="session")
def hil_key(request: pytest.FixtureRequest) -> tuple[int, bytes] | None:
    """(key id, key) that signs hazardous TCs, or None for the null key."""
    text = request.config.getoption("--hil-key")
    if text:
        try:
            return parse_key(text)
        except ValueError as exc:
            raise pytest.UsageError(f"--hil-key: {exc}") from None
    if request.config.getoption("--hil-port"):
        return None
    return SIM_KEY_ID, SIM_KEY


@pytest.fixture(scope="session")
def hil_port(request: pytest.FixtureRequest) -> Iterator[str]:
    """The target's URL: ``--hil-port``, or a simulated chip started for the session."""
    port = request.config.getoption("--hil-port")
    if port:
        yield port
        return
    backend = request.config.getoption("--hil-backend")
    with SimulatedTarget(mode="test", keys={SIM_KEY_ID: SIM_KEY}, backend=backend) as sim:
        yield sim.port


@pytest.fixture(scope="session")
def hil_link(
    request: pytest.FixtureRequest, hil_port: str, hil_key: tuple[int, bytes] | None
) -> Iterator[LinkApi]:
    """The open link to the target for the whole session."""
    auth = Authenticator() if hil_key is None else Authenticator(*hil_key)
    link = open_link(
        hil_port, request.config.getoption("--hil-baud"), auth=auth, client="pytest",
        session_log=request.config.getoption("--hil-log"),
    )  # fmt: skip
    try:
        yield link
    finally:
        link.close()


@pytest.fixture(scope="session")
def hil_target(hil_link: LinkApi) -> Target:
    """``Target`` over the session's link."""
    return Target(hil_link)


@pytest.fixture
def hil(hil_link: LinkApi, hil_target: Target) -> IntegrationApi:
    """The integration-test API, with the TM history cleared for this test."""
    api = IntegrationApi(hil_link, hil_target)
    api.clear_histories()
    return api
