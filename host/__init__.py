"""orbit-hil ground side (EGSE): the serial link to a target, its errors and telemetry.

``host.channel`` (the channel emulator) is not imported here, so that
``python -m host.channel`` runs it without a second import.
"""

from host.commands import Authenticator, Command, Completion, Timing
from host.errors import (
    BadBaudRate,
    CommandError,
    CommandFailed,
    CommandTimeout,
    HostError,
    LinkClosed,
    LinkError,
    PortBusy,
    PortConfigError,
    PortNotFound,
)
from host.history import NOW, History, Received, TmPredicate, event, tm
from host.link import Link, LinkEvent, LinkStats
from host.session_log import SessionLog
from host.stage import Stage

__all__ = [
    "NOW",
    "Authenticator",
    "BadBaudRate",
    "Command",
    "CommandError",
    "CommandFailed",
    "CommandTimeout",
    "Completion",
    "History",
    "HostError",
    "Link",
    "LinkClosed",
    "LinkError",
    "LinkEvent",
    "LinkStats",
    "PortBusy",
    "PortConfigError",
    "PortNotFound",
    "Received",
    "SessionLog",
    "Stage",
    "Timing",
    "TmPredicate",
    "event",
    "tm",
]
