"""Key management (ICD 13, 15.11): keys derived on board from the master key, which signs
that and nothing else; the new key in force at once and after a reboot."""

from __future__ import annotations

import struct

from fw_harness import KEY, KEY_ID, Harness

from firmware_sim.core import FlightSoftware, FswConfig
from firmware_sim.health import NonVolatile
from protocol.auth import derive_key, sign_tc
from protocol.codes import EventId, FailureCode, FunctionId, Mode
from protocol.payloads import key_derivation

MASTER_ID = 9
assert MASTER_ID != KEY_ID
MASTER = bytes(range(100, 132))
SET_SCRUB = struct.pack("!BHH", 1, 0x0010, 1234)  # TC[20,3]: SCRUB_PERIOD = 1234


class Keyed:
    """The flight software with a master key, and TCs signed with any key."""

    def __init__(self, mode: Mode = Mode.NOMINAL, nv: NonVolatile | None = None) -> None:
        self.h = Harness(mode=mode)
        config = FswConfig(mode=mode, keys={KEY_ID: KEY, MASTER_ID: MASTER},
                           master_key_id=MASTER_ID)  # fmt: skip
        self.h.fsw = FlightSoftware(self.h.chip, config, nv=nv, now=self.h.now)
        self.h.run_for(0.01)
        self.numbers: dict[int, int] = {}

    def send(self, service: int, subtype: int, data: bytes, key_id: int, key: bytes | None):
        self.numbers[key_id] = self.numbers.get(key_id, 0) + 1
        self.h.seq = (self.h.seq + 1) % 16384
        packet = sign_tc(service, subtype, data, self.h.seq, key_id=key_id,
                         auth_seq=self.numbers[key_id], key=key)  # fmt: skip
        return self.h.raw_tc(packet)


def test_a_derived_key_replaces_the_old_one_at_once() -> None:
    k = Keyed()
    done = k.send(150, 1, key_derivation(KEY_ID, 1), MASTER_ID, MASTER)
    assert done.ok, done.failure
    assert done.events(EventId.KEY_CHANGED) == [struct.pack("!HI", KEY_ID, 1)]
    old = k.send(20, 3, SET_SCRUB, KEY_ID, KEY)
    assert old.failure[1] == FailureCode.AUTH_FAILED
    new_key = derive_key(MASTER, KEY_ID, 1)
    k.numbers[KEY_ID] = 0  # a new key: its anti-replay numbers start again
    assert k.send(20, 3, SET_SCRUB, KEY_ID, new_key).ok


def test_only_the_master_key_manages_keys_and_it_signs_nothing_else() -> None:
    k = Keyed(mode=Mode.TEST)
    by_other = k.send(150, 1, key_derivation(KEY_ID, 1), KEY_ID, KEY)
    assert by_other.failure == (2, FailureCode.KEY_NOT_ALLOWED, struct.pack("!H", KEY_ID))
    by_null = k.send(150, 1, key_derivation(KEY_ID, 1), 0, None)
    assert by_null.failure == (2, FailureCode.KEY_NOT_ALLOWED, struct.pack("!H", 0))
    by_master = k.send(20, 3, SET_SCRUB, MASTER_ID, MASTER)
    assert by_master.failure == (2, FailureCode.KEY_NOT_ALLOWED, struct.pack("!H", MASTER_ID))
    assert len(by_master.events(EventId.AUTH_FAILURE)) == 1


def test_a_derivation_names_a_key_and_a_newer_generation() -> None:
    k = Keyed()
    assert k.send(150, 1, key_derivation(KEY_ID, 2), MASTER_ID, MASTER).ok
    older = k.send(150, 1, key_derivation(KEY_ID, 2), MASTER_ID, MASTER)
    assert older.failure == (2, FailureCode.VALUE_OUT_OF_RANGE, struct.pack("!H", 2))
    master = k.send(150, 1, key_derivation(MASTER_ID, 5), MASTER_ID, MASTER)
    assert master.failure == (2, FailureCode.VALUE_OUT_OF_RANGE, struct.pack("!H", 0))
    short = k.send(150, 1, b"\x00\x01", MASTER_ID, MASTER)
    assert short.failure[1] == FailureCode.BAD_APP_DATA


def test_the_derived_key_outlasts_a_reboot_and_the_non_volatile_file(tmp_path) -> None:
    k = Keyed()
    assert k.send(150, 1, key_derivation(5, 3), MASTER_ID, MASTER).ok
    reset = k.send(8, 1, struct.pack("!H", FunctionId.RESET), MASTER_ID, MASTER)
    assert reset.failure[1] == FailureCode.KEY_NOT_ALLOWED  # the master does not reset
    assert k.send(8, 1, struct.pack("!H", FunctionId.RESET), KEY_ID, KEY).ok
    k.h.run_for(1.0)
    assert k.h.fsw.keys[5] == derive_key(MASTER, 5, 3)
    path = tmp_path / "nv.json"
    k.h.fsw.nv.save(path)
    again = Keyed(nv=NonVolatile.load(path))
    assert again.h.fsw.keys[5] == derive_key(MASTER, 5, 3)
    assert again.send(20, 3, SET_SCRUB, 5, derive_key(MASTER, 5, 3)).ok
