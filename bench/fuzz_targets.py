"""In-process fuzz targets: the frame decoder and the flight software's dispatcher.

One input drives one target. Its first octet chooses: even, the frame decoder
(``protocol.framing.FrameDecoder``), fed the rest in chunks whose sizes the octet seeds;
odd, the flight software (``firmware_sim.core.FlightSoftware`` in mode NOMINAL with one
key), fed the rest frame by frame on a simulated clock. Each target raises
``InvariantBroken`` (or lets the component's own exception out) when an invariant fails:

decoder
    it never raises; its events are those of ``bench.fuzz_model`` (COBS decoding, the
    length bound, and with a packet validator the receipt checks of ICD 7), whatever the
    chunking; it never holds more than ``MAX_FRAME_LEN`` octets of a frame; a valid frame
    sent after the input and one delimiter comes out whole.

dispatcher
    it never raises and never answers INTERNAL_ERROR; every frame rejected on receipt is
    answered as ICD 7 says (one TM[1,2] with the failure code and the first four octets,
    or nothing); every well-formed TC that asks for acceptance gets exactly one acceptance
    report (TM[1,1] or TM[1,2]) and one that does not gets at most a failure; refusals the
    model can predict (duplicate, service, subtype, authentication) carry its code; a
    hazardous TC without a valid tag changes nothing (parameters, mode, anti-replay
    numbers, firmware RAM) and raises no event of a hazardous action; every TM the target
    sends is a well-formed frame and packet.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import struct
import zlib

from spacepackets.ccsds.spacepacket import PacketType

from bench.fuzz_model import (
    MAX_FRAME_LEN,
    Refused,
    Rejected,
    TargetModel,
    Unpredictable,
    cobs_decode,
    crc16,
    is_hazardous,
    receipt,
)
from firmware_sim.chip import ModelChip
from firmware_sim.core import FlightSoftware, FswConfig, Log, Rebooted
from protocol.codes import EventId, FailureCode, Mode, RejectReason
from protocol.framing import NEED_DATA, Frame, FrameDecoder, FrameRejected, encode_frame
from protocol.packets import PacketValidator, make_tc, parse_tm
from protocol.payloads import ParamId

KEY_ID = 1
KEY = bytes.fromhex("8d3b5e0c1f2a4b6c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e")
"""The key the in-process target is provisioned with (a test key)."""
DECODER, DISPATCHER = 0, 1
REPAIR, SIGN, TEST = 2, 4, 8
"""Bits of a dispatcher input's first octet: repair each frame's length and CRC; and the
tag of its hazardous TCs (``repaired``); boot in mode TEST (null key allowed, service 148
runs)."""
STEP_S = 1e-6
"""Simulated time between two frames fed to the flight software."""
PING = make_tc(17, 1, b"", 0x1234)
HAZARD_EVENTS = frozenset(
    {EventId.PARAMETER_CHANGED, EventId.FAULT_INJECTED, EventId.FAULTS_CLEARED,
     EventId.MODE_CHANGED}
)  # fmt: skip


AUTH_CODES = frozenset(
    {FailureCode.AUTH_FAILED, FailureCode.AUTH_REPLAY, FailureCode.AUTH_REQUIRED}
)


class InvariantBroken(AssertionError):
    """A fuzz target found its component breaking an invariant."""


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise InvariantBroken(what)


def run_input(data: bytes) -> None:
    """One fuzz input: its first octet chooses the target (see the module's text)."""
    if not data:
        return
    if data[0] & 1 == DECODER:
        check_decoder(data[1:], data[0] >> 1)
    else:
        check_dispatcher(
            data[1:],
            repair=bool(data[0] & REPAIR),
            sign=bool(data[0] & SIGN),
            mode=Mode.TEST if data[0] & TEST else Mode.NOMINAL,
        )


# --- the frame decoder --------------------------------------------------------------------


def _chunks(stream: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(stream):
        n = rng.choice((1, 2, 3, 7, 64, 1000, 4096, len(stream)))
        out.append(stream[i : i + n])
        i += n
    return out


def _decode(stream: bytes, seed: int, validator=None) -> tuple[list, FrameDecoder]:
    decoder = FrameDecoder(validator=validator)
    events: list = []
    for chunk in _chunks(stream, seed):
        decoder.receive_data(chunk)
        while (event := decoder.next_event()) is not NEED_DATA:
            events.append(event)
            expect(decoder.frame_buffer_len <= MAX_FRAME_LEN, "decoder holds too much")
        expect(decoder.frame_buffer_len <= MAX_FRAME_LEN, "decoder holds too much")
    return events, decoder


def _shape(event: Frame | FrameRejected) -> tuple:
    if isinstance(event, Frame):
        return ("frame", event.payload)
    return ("rejected", event.reason)


def expected_frames(stream: bytes, validate: bool) -> list[tuple]:
    """The decoder's events for ``stream`` by the model, as ``_shape`` gives them."""
    parts = stream.split(b"\x00")
    out: list[tuple] = []
    for seg in parts[:-1]:
        if not seg:
            continue
        if validate:
            got = receipt(seg)
            out.append(("rejected", got.reason) if isinstance(got, Rejected) else ("frame", got))
        elif len(seg) > MAX_FRAME_LEN:
            out.append(("rejected", RejectReason.TOO_LONG))
        else:
            packet = cobs_decode(seg)
            bad = ("rejected", RejectReason.BAD_COBS)
            out.append(("frame", packet) if packet is not None else bad)
    if len(parts[-1]) > MAX_FRAME_LEN:  # reported as soon as it grows past the bound
        out.append(("rejected", RejectReason.TOO_LONG))
    return out


def check_decoder(stream: bytes, seed: int) -> None:
    for validate in (False, True):
        validator = PacketValidator(PacketType.TC) if validate else None
        events, decoder = _decode(stream, seed, validator)
        got = [_shape(e) for e in events]
        want = expected_frames(stream, validate)
        expect(got == want, f"decoder events {got[:4]}... differ from the model's {want[:4]}...")
        empty = sum(1 for seg in stream.split(b"\x00")[:-1] if not seg)
        counters = decoder.counters
        expect(counters.empty_frames == empty, "empty frames miscounted")
        expect(counters.frames_ok == sum(1 for g in got if g[0] == "frame"), "frames miscounted")
        expect(counters.rejected_total == len(got) - counters.frames_ok, "rejections miscounted")
    # Whatever came before, a delimiter and a valid frame bring that frame out whole.
    events, _ = _decode(stream + b"\x00" + encode_frame(PING), seed)
    expect(bool(events) and _shape(events[-1]) == ("frame", PING), "valid frame after garbage lost")


# --- the dispatcher -----------------------------------------------------------------------


def new_target(mode: Mode = Mode.NOMINAL) -> tuple[FlightSoftware, float]:
    fsw = FlightSoftware(ModelChip(), FswConfig(mode=mode, keys={KEY_ID: KEY}), now=0.0)
    fsw.step(0.0)
    return fsw, 0.0


def _state(fsw: FlightSoftware) -> tuple:
    return (
        {p: fsw.params[p] for p in ParamId},
        fsw.mode,
        {k: (w.last, w.seen) for k, w in fsw.nv.auth_replay.items()},
        dict(fsw.nv.key_generations),
        zlib.crc32(fsw.ram.data),
    )


def _tms(data: bytes) -> list:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    out = []
    while (event := decoder.next_event()) is not NEED_DATA:
        expect(isinstance(event, Frame), f"the target sent a bad frame: {event}")
        out.append(parse_tm(event.payload))
    return out


def _valid_tag(packet: bytes, keys: dict[int, bytes]) -> bool:
    if len(packet) < 13 + 22:
        return False
    start = len(packet) - 24
    key = keys.get(struct.unpack_from("!H", packet, start)[0])
    if key is None:
        return False
    tag = hmac.new(key, packet[: start + 6], hashlib.sha256).digest()[:16]
    return tag == packet[start + 6 : start + 22]


def repaired(segment: bytes, sign: bool) -> bytes:
    """``segment`` with its packet's length field and CRC made good and, with ``sign``, the
    tag of a hazardous TC that names the target's key made good too: so that mutations of
    a frame reach the packet checks, the dispatcher and the services behind it."""
    packet = cobs_decode(segment)
    if packet is None or len(packet) < 8:
        return segment
    p = bytearray(packet)
    struct.pack_into("!H", p, 4, (len(p) - 7) & 0xFFFF)
    if sign and len(p) >= 13 + 22 and is_hazardous(bytes(p)):
        start = len(p) - 24
        if struct.unpack_from("!H", p, start)[0] == KEY_ID:
            p[start + 6 : start + 22] = hmac.new(KEY, p[: start + 6], hashlib.sha256).digest()[:16]
    p[-2:] = struct.pack("!H", crc16(p[:-2]))
    return encode_frame(p)[:-1]


def _auth_event(packet: bytes, refused: Refused) -> bytes:
    """Auxiliary data of the AUTH_FAILURE event a refusal raises (ICD 11)."""
    if refused.code == FailureCode.AUTH_REQUIRED:
        key_id = 0
    elif len(packet) < 13 + 22:
        key_id = 0xFFFF
    else:
        key_id = struct.unpack_from("!H", packet, len(packet) - 24)[0]
    return packet[:4] + struct.pack("!HH", refused.code, key_id)


def check_dispatcher(
    stream: bytes, repair: bool = False, sign: bool = False, mode: Mode = Mode.NOMINAL
) -> None:
    """Feed ``stream`` frame by frame to a new flight software and check its answers;
    ``repair``: make each frame's length field and CRC good first (``repaired``)."""
    fsw, now = new_target(mode)
    model = TargetModel({KEY_ID: KEY})
    keys = {KEY_ID: KEY}
    events_disabled = False  # by an accepted TC[5,6]: events may then be missing
    pieces = stream.split(b"\x00")
    for i, seg in enumerate(pieces):
        last = i == len(pieces) - 1
        if repair and seg and not last:
            seg = repaired(seg, sign)
        piece = seg if last else seg + b"\x00"
        if not piece:
            continue
        test_mode = fsw.mode == Mode.TEST
        got = receipt(seg) if seg and not last else None
        unauthentic = (
            isinstance(got, bytes)
            and is_hazardous(got)
            and not _valid_tag(got, keys)
            and not (test_mode and len(got) >= 35 and got[-24:-22] == b"\x00\x00")
        )
        before = _state(fsw) if unauthentic else None
        now += STEP_S
        fsw.receive_data(piece)
        out = fsw.step(now)
        tms = _tms(out.data)
        for action in out.actions:
            if isinstance(action, Log):
                expect("INTERNAL ERROR" not in action.message, action.message)
        rebooted = any(isinstance(a, Rebooted) for a in out.actions)
        verification = [
            (tm.subtype, tm.source_data[:4], tm.source_data[4:6], tm.source_data[6:], tm.dest_id)
            for tm in tms
            if tm.service == 1
        ]
        for subtype, _, code, _, _ in verification:
            expect(
                subtype % 2 == 1 or struct.unpack("!H", code)[0] != FailureCode.INTERNAL_ERROR,
                "INTERNAL_ERROR reported",
            )
        acceptance = [v for v in verification if v[0] in (1, 2)]
        events = {struct.unpack_from("!H", tm.source_data)[0] for tm in tms if tm.service == 5}
        auth_events = [
            tm.source_data[2:] for tm in tms
            if tm.service == 5 and tm.source_data[:2] == struct.pack("!H", EventId.AUTH_FAILURE)
        ]  # fmt: skip
        if last or not seg:
            expect(not acceptance, "an acceptance report for no complete frame")
            continue
        assert got is not None
        if isinstance(got, Rejected):
            if got.code is None:
                expect(not acceptance, f"{got.reason} answered")
            else:
                packet = cobs_decode(seg) or b""
                # the source id is not trusted: destination 0 (ICD 7)
                want = (2, packet[:4], struct.pack("!H", got.code), got.data, 0)
                expect(
                    acceptance == [want],
                    f"{got.reason} answered with {acceptance}, not one TM[1,2] {want}",
                )
            continue
        packet = got
        model.test_mode = test_mode
        try:
            predicted = model.check_tc(packet, valid=False)
        except Unpredictable:
            predicted = None
        mine = [a for a in acceptance if a[1] == packet[:4]]
        expect(len(mine) == len(acceptance), f"acceptance reports of other TCs: {acceptance}")
        if packet[6] & 0b1000:
            expect(len(mine) == 1, f"{len(mine)} acceptance reports for a TC that asked for one")
        else:
            expect(len(mine) <= 1 and all(m[0] == 2 for m in mine), "unasked acceptance success")
        accepted = not mine or mine[0][0] == 1
        source_id = struct.unpack_from("!H", packet, 9)[0]
        expect(all(m[4] == source_id for m in mine), "a report not sent to the TC's source")
        if unauthentic:
            expect(not accepted, "a hazardous TC without a valid tag was accepted")
            expect(not rebooted and _state(fsw) == before, "a hazardous TC without a tag acted")
            expect(not events & HAZARD_EVENTS, "a hazardous TC without a tag raised its events")
        if isinstance(predicted, Refused):
            expect(
                not accepted
                and mine[0][2] == struct.pack("!H", predicted.code)
                and (predicted.data is None or mine[0][3] == predicted.data),
                f"refusal {mine} where the model says {predicted}",
            )
            if predicted.auth and not events_disabled:
                expect(auth_events == [_auth_event(packet, predicted)], "AUTH_FAILURE event")
        if not (isinstance(predicted, Refused) and predicted.auth):
            expect(not auth_events, "AUTH_FAILURE event for a TC that did not fail it")
        if mine and mine[0][2] == struct.pack("!H", FailureCode.DUPLICATE):
            stage = mine[0][3][:1]
            expect(len(mine[0][3]) == 3 and 1 <= stage[0] <= 8, "DUPLICATE data")
        authentic = is_hazardous(packet) and model._auth(packet) is None
        if authentic and not accepted:
            code = struct.unpack("!H", mine[0][2])[0]
            expect(code not in AUTH_CODES, f"an authentic TC refused with {code:#06x}")
            model.spend(packet)  # spent before the service checks the request (ICD 13)
        if accepted:
            model._accepted(packet)
            events_disabled |= (packet[7], packet[8]) == (5, 6)
        if rebooted:
            model.window.clear()
