"""Errors of the ground side: ours (a port we cannot use, a bad option) and the target's
(a command it refused, or never answered). Each says what, where, and what was expected."""

from __future__ import annotations

from host.failures import explain
from host.stage import Stage
from protocol.codes import FailureCode
from protocol.request_id import RequestId


def describe_code(code: FailureCode | int) -> str:
    """``UNKNOWN_SERVICE (0x0010)``; an unknown code from a newer peer stays a number."""
    try:
        name = FailureCode(code).name
    except ValueError:
        name = "unknown code"
    return f"{name} ({int(code):#06x})"


class HostError(Exception):
    """Anything the ground side reports to its caller."""


class LinkError(HostError):
    """The serial link cannot be used as asked."""


class PortNotFound(LinkError):
    """The port names no device (or the URL no reachable endpoint)."""


class PortBusy(LinkError):
    """Another process holds the port (the exclusive lock failed)."""


class BadBaudRate(LinkError, ValueError):
    """The baud rate is not a positive integer the port accepts."""


class PortConfigError(LinkError):
    """The port opened but could not be configured (not a serial device, bad URL option)."""


class LinkClosed(LinkError):
    """The link was closed (or never opened) while a command needed it."""


class CommandError(HostError):
    """A command that did not complete: refused (``CommandFailed``) or unanswered
    (``CommandTimeout``). ``command`` reads like ``TC[17,1] TEST/PING``."""

    def __init__(
        self,
        message: str,
        *,
        command: str,
        stage: Stage,
        request_id: RequestId | None,
        port: str,
    ) -> None:
        super().__init__(message)
        self.command = command
        self.stage = stage
        self.request_id = request_id
        self.port = port


class CommandFailed(CommandError):
    """The target reported a failure (TM[1,2], [1,4], [1,6] or [1,8]). The message says it
    in ``words`` (``host.failures.explain`` of the TC it answers; by default the code's
    meaning), then the code and the failure data as received."""

    def __init__(
        self,
        *,
        command: str,
        stage: Stage,
        code: FailureCode | int,
        data: bytes,
        request_id: RequestId | None,
        port: str,
        step: int | None = None,
        note: str = "",
        words: str | None = None,
    ) -> None:
        where = f"{stage.value} step {step}" if step is not None else stage.value
        self.words = explain(code, data) if words is None else words
        message = (
            f"{command} ({request_id}) on {port} failed at {where}: {self.words} "
            f"({describe_code(code)}, failure data {data.hex(' ') if data else '(none)'})"
        )
        if note:
            message += f"; {note}"
        super().__init__(message, command=command, stage=stage, request_id=request_id, port=port)
        self.code = code
        self.data = data
        self.step = step


class CommandTimeout(CommandError):
    """No report came for ``stage`` in time, after every transmission the ICD allows."""

    def __init__(
        self,
        *,
        command: str,
        stage: Stage,
        request_id: RequestId | None,
        port: str,
        waited_s: float,
        transmissions: int,
        note: str = "",
    ) -> None:
        sent = f"sent {transmissions} time{'s' if transmissions != 1 else ''}"
        message = (
            f"{command} ({request_id}) on {port}: no {stage.value} report within "
            f"{waited_s:.2f} s ({sent})"
        )
        if note:
            message += f"; {note}"
        super().__init__(message, command=command, stage=stage, request_id=request_id, port=port)
        self.waited_s = waited_s
        self.transmissions = transmissions


class UsageError(Exception):
    """A value on the command line that cannot be used; exit code 2."""
