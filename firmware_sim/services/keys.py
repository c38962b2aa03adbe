"""Service 150: keys derived on board from the master key (ICD sections 13 and 15.11)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from protocol.codes import EventId
from protocol.payloads import Reader, out_of_range

if TYPE_CHECKING:
    from firmware_sim.health import NonVolatile
    from firmware_sim.services.events import EventService
    from firmware_sim.services.verification import Request


class KeyService:
    """TC[150,1]: key ``key_id`` becomes generation ``generation`` of the keys derived
    from the master key; its anti-replay window starts afresh. Only the master key signs
    it (the dispatcher checks that); the generations are kept in the non-volatile store
    and the keys derived from them again at every boot."""

    def __init__(
        self,
        nv: NonVolatile,
        master_key_id: int | None,
        events: EventService,
        rekey: Callable[[], None],
        now: Callable[[], float],
    ) -> None:
        self.nv = nv
        self.master_key_id = master_key_id
        self.events = events
        self.rekey = rekey
        self.now = now

    def accept(self, subtype: int, data: bytes) -> tuple[int, int]:
        r = Reader(data)
        key_id, generation = r.u16("key id"), r.u32("generation")
        r.end()
        if key_id in (0, self.master_key_id):
            raise out_of_range(0, f"key id {key_id}: not the null key nor the master key")
        current = self.nv.key_generations.get(key_id, 0)
        if generation <= current:
            raise out_of_range(2, f"generation {generation} not above key {key_id}'s {current}")
        return key_id, generation

    def start(self, subtype: int, request: tuple[int, int]) -> None:
        pass

    def execute(self, subtype: int, request: tuple[int, int], req: Request) -> None:
        key_id, generation = request
        self.nv.key_generations[key_id] = generation
        self.nv.auth_replay.pop(key_id, None)  # a new key: its numbers start again
        self.rekey()
        self.events.raise_event(EventId.KEY_CHANGED, key_id, generation)
        req.complete(self.now())
