"""A short fuzz of the frame decoder and the dispatcher: the seed corpus replayed, then
hypothesis-drawn streams, each judged by the invariants of ``bench.fuzz_targets``. The
last tests break the decoder and the dispatcher on purpose and check that the invariants
catch it."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz_inprocess import CORPUS, seeds
from bench.fuzz_model import MAX_FRAME_LEN, TC_MIN_LEN, crc16
from bench.fuzz_targets import (
    DECODER,
    DISPATCHER,
    KEY,
    KEY_ID,
    InvariantBroken,
    check_decoder,
    check_dispatcher,
    run_input,
)
from firmware_sim.dispatcher import Dispatcher
from firmware_sim.services.verification import Request
from protocol.auth import HAZARDOUS, sign_tc
from protocol.codes import TC_TYPES, Mode
from protocol.framing import FrameDecoder, encode_frame
from protocol.packets import make_tc

FILES = sorted(CORPUS.iterdir())
SHORT = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_corpus_is_the_generated_one() -> None:
    """The committed corpus is what ``python -m bench.fuzz_inprocess --make-corpus`` makes."""
    made = seeds()
    assert sorted(p.name for p in FILES) == sorted(made)
    for path in FILES:
        assert path.read_bytes() == made[path.name], path.name
    assert {p.name.split("-")[0] for p in FILES} == {"decoder", "dispatcher"}


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_corpus(path: Path) -> None:
    run_input(path.read_bytes())


# --- drawn streams ------------------------------------------------------------------------

TYPES = sorted(TC_TYPES | HAZARDOUS | {(99, 1), (17, 9), (0, 0)})


@st.composite
def packets(draw: st.DrawFn) -> bytes:
    """A TC of any type, some signed with the target's key, maybe broken after."""
    service, subtype = draw(st.sampled_from(TYPES))
    data = draw(st.binary(max_size=64))
    seq = draw(st.integers(0, 16383))
    ack = draw(st.integers(0, 15))
    if draw(st.booleans()):
        key_id = draw(st.sampled_from([KEY_ID, 0, 5]))
        packet = sign_tc(
            service, subtype, data, seq, key_id=key_id, auth_seq=draw(st.integers(0, 2**32 - 1)),
            key=None if key_id == 0 else KEY if key_id == KEY_ID else bytes(32), ack_flags=ack,
        )  # fmt: skip
    else:
        packet = make_tc(service, subtype, data, seq, ack_flags=ack)
    how = draw(st.sampled_from(["as is", "flip", "cut", "length", "header"]))
    packet = bytearray(packet)
    if how == "flip":
        packet[draw(st.integers(0, len(packet) - 1))] ^= 1 << draw(st.integers(0, 7))
    elif how == "cut":
        packet = packet[: draw(st.integers(0, len(packet)))]
    elif how in ("length", "header"):
        if how == "length":
            struct.pack_into("!H", packet, 4, draw(st.integers(0, 0xFFFF)))
        else:
            packet[draw(st.sampled_from([0, 2, 6]))] ^= draw(st.integers(1, 255))
        packet[-2:] = struct.pack("!H", crc16(packet[:-2]))
    assert len(packet) < TC_MIN_LEN + 64 + 22 + 1
    return bytes(packet)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Frames, garbage, delimiters and repeats, as a target may receive them."""
    out = bytearray()
    sent: list[bytes] = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["packet", "packet", "garbage", "delimiters", "repeat"]))
        if kind == "packet":
            frame = encode_frame(draw(packets()))
            sent.append(frame)
            out += frame
        elif kind == "garbage":
            out += draw(st.binary(min_size=1, max_size=80))
        elif kind == "delimiters":
            out += b"\x00" * draw(st.integers(1, 3))
        elif sent:
            out += draw(st.sampled_from(sent))
    return bytes(out)


@SHORT
@given(stream=st.one_of(streams(), st.binary(max_size=600)), seed=st.integers(0, 127))
def test_decoder(stream: bytes, seed: int) -> None:
    check_decoder(stream, seed)


@SHORT
@given(stream=streams(), repair=st.booleans(), sign=st.booleans(), test_mode=st.booleans())
def test_dispatcher(stream: bytes, repair: bool, sign: bool, test_mode: bool) -> None:
    mode = Mode.TEST if test_mode else Mode.NOMINAL
    check_dispatcher(b"\x00" + stream, repair=repair, sign=sign, mode=mode)


# --- the invariants catch what they are for -----------------------------------------------


def _seed(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def test_catches_a_hazardous_tc_run_without_authentication(monkeypatch) -> None:
    run_input(_seed("dispatcher-hazard-bad-tag"))
    monkeypatch.setattr(Dispatcher, "_authenticate", lambda self, tc: tc.app_data[:-22])
    with pytest.raises(InvariantBroken, match="without a valid tag"):
        run_input(_seed("dispatcher-hazard-bad-tag"))


def test_catches_a_second_acceptance_report(monkeypatch) -> None:
    accept = Request.accept

    def twice(self: Request, now: float) -> None:
        accept(self, now)
        accept(self, now)

    monkeypatch.setattr(Request, "accept", twice)
    with pytest.raises(InvariantBroken, match="acceptance report"):
        run_input(_seed("dispatcher-ping"))


def test_catches_a_missing_failure_report(monkeypatch) -> None:
    monkeypatch.setattr(
        "firmware_sim.dispatcher.reject_unparsed", lambda tm, rid, code, data: None
    )
    with pytest.raises(InvariantBroken, match="answered with"):
        run_input(_seed("dispatcher-bad-crc"))


def test_catches_a_frame_bound_off_by_one(monkeypatch) -> None:
    init = FrameDecoder.__init__

    def one_short(self: FrameDecoder, max_frame_len: int = MAX_FRAME_LEN, validator=None) -> None:
        init(self, max_frame_len - 1, validator)

    run_input(_seed("decoder-exact-bound"))
    monkeypatch.setattr(FrameDecoder, "__init__", one_short)
    with pytest.raises(InvariantBroken, match="decoder events"):
        run_input(_seed("decoder-exact-bound"))


def test_catches_a_frame_lost_after_garbage(monkeypatch) -> None:
    decode = FrameDecoder._decode

    def forget_after_bad(self: FrameDecoder, raw: bytes):
        event = decode(self, raw)
        if not hasattr(event, "payload"):
            self._skipping = True  # wrongly drops the next frame too
        return event

    monkeypatch.setattr(FrameDecoder, "_decode", forget_after_bad)
    with pytest.raises(InvariantBroken):
        check_decoder(bytes([0x05, 0x01, 0x00]) + encode_frame(make_tc(17, 1)), 0)


def test_targets_are_chosen_by_the_first_octet() -> None:
    assert DECODER % 2 == 0 and DISPATCHER % 2 == 1
    assert _seed("dispatcher-ping")[0] == DISPATCHER
