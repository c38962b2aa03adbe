"""What the flight software remembers of the requests it received (ICD sections 6 and 15.10).

``RequestMemory`` keeps the request id, CRC and outcome of the last ``DUPLICATE_WINDOW``
TCs that passed the receipt checks, accepted or refused at acceptance (outcome queries
and answers to duplicates aside). It lives in the non-volatile store, so it outlasts a
reboot: a retransmission that arrives after one is still recognised and not run twice,
and the host can still ask what became of a request. A request that was running when the
target rebooted ended there: it is remembered as failed with ``INTERRUPTED``.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protocol.codes import FailureCode
from protocol.codes import VerificationSubtype as V
from protocol.link import DUPLICATE_WINDOW
from protocol.payloads import Outcome
from protocol.request_id import RequestId

if TYPE_CHECKING:
    from firmware_sim.services.verification import Request
    from protocol.packets import Telecommand


@dataclass(slots=True)
class Remembered:
    """One request: its CRC, and its last stage and failure as of the last boot (while
    ``live`` is set, the running ``Request`` of this boot says them)."""

    crc: bytes
    stage: int = 0
    code: int = 0
    data: bytes = b""
    live: Request | None = None

    def state(self) -> tuple[int, int, bytes]:
        """(last service 1 subtype reached, failure code, failure data)."""
        req = self.live
        if req is None:
            return self.stage, self.code, self.data
        return req.last_subtype, req.failure_code, req.failure_data

    @property
    def accepted(self) -> bool:
        stage, _, _ = self.state()
        return stage not in (0, V.ACCEPTANCE_FAILURE)

    def duplicate_data(self) -> bytes:
        """Failure data of a DUPLICATE answer: last subtype reached u8, its failure code u16."""
        stage, code, _ = self.state()
        return struct.pack("!BH", stage, code)


class RequestMemory:
    """The last ``size`` requests received, by request id (see the module docstring)."""

    def __init__(self, size: int = DUPLICATE_WINDOW) -> None:
        self.size = size
        self._entries: OrderedDict[int, Remembered] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, req: Request) -> None:
        """``req`` passed the receipt checks and is not a duplicate: keep it (its outcome
        follows it); the oldest goes when there are more than ``size``."""
        key = req.request_id.as_u32()
        self._entries.pop(key, None)
        self._entries[key] = Remembered(bytes(req.tc.raw[-2:]), live=req)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def duplicate_of(self, tc: Telecommand) -> Remembered | None:
        """The accepted request ``tc`` is a copy of (same request id and CRC), or None."""
        entry = self._entries.get(tc.request_id.as_u32())
        if entry is None or entry.crc != bytes(tc.raw[-2:]) or not entry.accepted:
            return None
        return entry

    def outcome(self, request_id: RequestId) -> Outcome:
        """What became of ``request_id`` (stage 0: not remembered)."""
        entry = self._entries.get(request_id.as_u32())
        if entry is None:
            return Outcome(request_id, 0)
        stage, code, data = entry.state()
        return Outcome(request_id, stage, code, data)

    def reboot(self) -> int:
        """The target rebooted: freeze every request of the last boot; those not ended are
        failed with INTERRUPTED, at start if they had not started, else at completion.
        How many were interrupted."""
        interrupted = 0
        for entry in self._entries.values():
            req = entry.live
            if req is None:
                continue
            entry.stage, entry.code, entry.data = entry.state()
            entry.live = None
            if not req.finished:
                interrupted += 1
                entry.stage = V.COMPLETION_FAILURE if req.started else V.START_FAILURE
                entry.code, entry.data = FailureCode.INTERRUPTED, b""
        return interrupted

    def to_json(self) -> list[list]:
        """The entries, oldest first, as ``[request id, crc hex, stage, code, data hex]``."""
        out = []
        for key, entry in self._entries.items():
            stage, code, data = entry.state()
            out.append([key, entry.crc.hex(), stage, code, data.hex()])
        return out

    @classmethod
    def from_json(cls, rows: list[list], size: int = DUPLICATE_WINDOW) -> RequestMemory:
        memory = cls(size)
        for key, crc, stage, code, data in rows[-size:]:
            memory._entries[int(key)] = Remembered(
                bytes.fromhex(crc), int(stage), int(code), bytes.fromhex(data)
            )
        return memory
