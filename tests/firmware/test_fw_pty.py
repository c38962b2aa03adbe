"""Every service over a real pseudo-terminal, against ``python -m firmware_sim`` in its own
process, with a client written from the ICD (and one written with spacepackets alone)."""

from __future__ import annotations

import os
import pty
import select
import signal
import struct
import subprocess
import sys
import time
import tty

import numpy as np
from cobs import cobs
from fw_harness import KEY_ID, REPO, FirmwareProcess, PtyClient, completes, is_event, is_tm
from spacepackets.ecss.tc import PusTc
from spacepackets.ecss.tm import PusTm

from firmware_sim.accel import gemm_reference
from firmware_sim.services.housekeeping import HK_STRUCTURES, structure_format
from protocol.codes import EventId, FailureCode, FaultKind, FunctionId, MemoryId, Mode, Service
from protocol.framing import encode_frame
from protocol.link import APID_FSW
from protocol.packets import make_tc
from protocol.payloads import EventSelector, FaultSiteClass, HkStructure, ParamId
from protocol.verification import VerificationReport


def test_ping_round_trip(client: PtyClient) -> None:
    rid = client.tc(Service.TEST, 1)
    assert client.await_tm(is_tm(17, 2)) is not None
    completes(client, rid)


def test_housekeeping_one_shot(client: PtyClient) -> None:
    rid = client.tc(3, 27, struct.pack("!BH", 1, HkStructure.SYSTEM))
    tm = client.await_tm(is_tm(3, 25))
    assert tm is not None
    values = struct.unpack(structure_format(HkStructure.SYSTEM), tm.source_data)
    fields = dict(zip([f.name for f in HK_STRUCTURES[HkStructure.SYSTEM]], values[1:], strict=True))
    assert fields["mode"] == Mode.TEST and fields["tc_accepted"] >= 1
    completes(client, rid)


def test_events_disable_and_enable(client: PtyClient) -> None:
    completes(client, client.tc(5, 6, bytes([EventSelector.INFO])))
    completes(client, client.tc(20, 3, struct.pack("!BHI", 1, ParamId.JOB_TIMEOUT, 3000)))
    assert client.await_tm(is_event(EventId.PARAMETER_CHANGED), timeout=0.3) is None
    completes(client, client.tc(5, 5, bytes([EventSelector.ALL])))
    completes(client, client.tc(20, 3, struct.pack("!BHI", 1, ParamId.JOB_TIMEOUT, 2000)))
    assert client.await_tm(is_event(EventId.PARAMETER_CHANGED)) is not None


def test_memory_load_dump_and_check(client: PtyClient) -> None:
    data = bytes(range(200)) * 5
    load = struct.pack("!BIH", MemoryId.FIRMWARE_RAM, 2000, len(data)) + data
    completes(client, client.tc(6, 2, load))
    client.tc(6, 5, struct.pack("!BIH", MemoryId.FIRMWARE_RAM, 2000, len(data)))
    tm = client.await_tm(is_tm(6, 6))
    assert tm is not None and tm.source_data[9:] == data
    client.tc(6, 9, struct.pack("!BII", MemoryId.ACCEL_SCRATCHPAD, 0, 8192))
    tm = client.await_tm(is_tm(6, 10))
    assert tm is not None and struct.unpack("!BIIHH", tm.source_data)[4] == 0


def test_gemm_job_result_read_back_with_a_dump(client: PtyClient) -> None:
    rng = np.random.default_rng(11)
    a = rng.integers(-128, 128, (6, 9), dtype=np.int8)
    b = rng.integers(-128, 128, (9, 5), dtype=np.int8)
    job = struct.pack("!HHBHHHIII", FunctionId.RUN_GEMM, 77, 0, 6, 9, 5, 0, 0, 8000)
    completes(client, client.tc(8, 1, job + a.tobytes() + b.tobytes()))
    client.tc(6, 5, struct.pack("!BIH", MemoryId.FIRMWARE_RAM, 8000, 6 * 5 * 4))
    tm = client.await_tm(is_tm(6, 6))
    assert tm is not None
    c = np.frombuffer(tm.source_data[9:], dtype=">i4").reshape(6, 5)
    np.testing.assert_array_equal(c, gemm_reference(a, b, out_int32=True))


def test_parameters_read_and_set(client: PtyClient) -> None:
    completes(client, client.tc(20, 3, struct.pack("!BHH", 1, ParamId.SCRUB_PERIOD, 1234)))
    client.tc(20, 1, struct.pack("!BH", 1, ParamId.SCRUB_PERIOD))
    tm = client.await_tm(is_tm(20, 2))
    assert tm is not None and tm.source_data == struct.pack("!BHH", 1, ParamId.SCRUB_PERIOD, 1234)


def test_fault_injection_detected_by_a_dump(client: PtyClient) -> None:
    completes(
        client, client.tc(6, 2, struct.pack("!BIH", MemoryId.ACCEL_SCRATCHPAD, 400, 4) + bytes(4))
    )
    mbu = struct.pack("!BBBBBHB", 1, FaultKind.MBU, FaultSiteClass.SPM_WORD, 2, 0, 100, 0)
    completes(client, client.tc(148, 1, mbu))
    assert client.await_tm(is_event(EventId.FAULT_INJECTED)) is not None
    client.tc(6, 5, struct.pack("!BIH", MemoryId.ACCEL_SCRATCHPAD, 400, 4))
    tm = client.await_tm(is_tm(6, 6))
    assert tm is not None and struct.unpack_from("!BIHH", tm.source_data)[3] == 1
    assert client.await_tm(is_event(EventId.EDAC_UNCORRECTABLE)) is not None
    completes(
        client, client.tc(6, 2, struct.pack("!BIH", MemoryId.ACCEL_SCRATCHPAD, 400, 4) + bytes(4))
    )


def test_fault_injection_refused_outside_test_mode_and_back_with_a_key(client: PtyClient) -> None:
    set_mode = struct.pack("!HB", FunctionId.SET_MODE, Mode.NOMINAL)
    completes(client, client.tc(8, 1, set_mode))
    rid = client.tc(148, 3)
    report = client.await_completion(rid)
    assert report is not None
    assert (report.subtype, report.failure_code) == (4, FailureCode.NOT_IN_TEST_MODE)
    back = struct.pack("!HB", FunctionId.SET_MODE, Mode.TEST)
    report = client.await_completion(client.tc(8, 1, back))
    assert report is not None and report.failure_code == FailureCode.AUTH_REQUIRED
    completes(client, client.tc(8, 1, back, key_id=KEY_ID))


def test_bad_input_is_dropped_and_the_firmware_answers_on(client: PtyClient) -> None:
    client.port.write(b"\x09\x01\x02\x00" + bytes([1] * 3000) + b"\x00" + os.urandom(300) + b"\x00")
    rid = client.tc(99, 1)
    report = client.await_completion(rid)
    assert report is not None and report.failure_code == FailureCode.UNKNOWN_SERVICE
    completes(client, client.tc(17, 1))


def test_a_packet_made_with_spacepackets_alone_is_answered(firmware_process: FirmwareProcess):
    port = firmware_process.port
    ping = PusTc(
        service=17, message_subtype=1, apid=APID_FSW, seq_count=321, source_id=1, ack_flags=0b1111
    )
    port.write(b"\x00" + cobs.encode(ping.pack()) + b"\x00")
    buf = b""
    kinds = []
    deadline = time.monotonic() + 5
    while (17, 2) not in kinds and time.monotonic() < deadline:
        buf += port.read(max(1, port.in_waiting))
        *frames, buf = buf.split(b"\x00")
        for frame in filter(None, frames):
            tm = PusTm.unpack(cobs.decode(frame), timestamp_len=7)
            kinds.append((tm.service, tm.message_subtype))
            if tm.service == 1:
                assert tm.source_data[:4] == ping.pack()[:4]
    assert (17, 2) in kinds and (1, 1) in kinds


def test_sigterm_stops_the_process_cleanly() -> None:
    fw = FirmwareProcess()
    try:
        rid = fw.client.tc(17, 1)
        completes(fw.client, rid)
        fw.port.close()
        fw.proc.send_signal(signal.SIGTERM)
        assert fw.proc.wait(timeout=5) == 0
    finally:
        fw.close()


def test_reset_over_the_pty_reboots_and_counts_boots() -> None:
    fw = FirmwareProcess("--mode", "test")
    try:
        c = fw.client
        completes(c, c.tc(8, 1, struct.pack("!H", FunctionId.RESET)))
        boot = c.await_tm(is_event(EventId.BOOT))
        assert boot is not None and boot.seq_count == 0
        assert struct.unpack("!HIBB", boot.source_data)[1:] == (2, 1, Mode.TEST)
    finally:
        fw.close()


def test_serving_a_serial_device_given_on_the_command_line() -> None:
    """--device: the firmware opens a tty with pyserial, as it would a board's UART."""
    master, slave = pty.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    path = os.ttyname(slave)
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_sim", "--device", path, "--baud", "115200"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, "no first line from firmware_sim --device"
        assert proc.stdout.readline().decode().split()[:2] == ["SERIAL", path]
        client = PtyClient(_FdPort(master))  # type: ignore[arg-type]
        completes(client, client.tc(17, 1))
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            stream.close()
        os.close(master)
        os.close(slave)


class _FdPort:
    """The subset of pyserial a PtyClient uses, over a raw file descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.timeout = 0.2

    @property
    def in_waiting(self) -> int:
        ready, _, _ = select.select([self.fd], [], [], 0)
        return 4096 if ready else 0

    def read(self, n: int) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], self.timeout)
        return os.read(self.fd, n) if ready else b""

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def flush(self) -> None:
        pass


def test_the_non_volatile_store_keeps_the_boot_count_across_runs(tmp_path) -> None:
    store = tmp_path / "nv.json"
    ask = make_tc(3, 27, struct.pack("!BH", 1, HkStructure.SYSTEM), 1234)
    for boot in (1, 2):
        fw = FirmwareProcess("--nv-file", str(store))
        try:
            if boot == 2:
                # The same octets again after the target's restart: a retransmission,
                # recognised from the store, not run twice (ICD 6).
                rid = fw.client.send(ask)
                refused = fw.client.await_tm(is_tm(1, 2))
                assert refused is not None
                report = VerificationReport.unpack(2, refused.source_data)
                assert report.request_id == rid and report.failure_code == FailureCode.DUPLICATE
                assert report.failure_data == struct.pack("!BH", 7, 0)  # it had completed
                assert fw.client.await_tm(is_tm(3, 25), timeout=0.5) is None
                fw.client.seq = 2000
                fw.client.tc(3, 27, struct.pack("!BH", 1, HkStructure.SYSTEM))
            else:
                fw.client.send(ask)
            tm = fw.client.await_tm(is_tm(3, 25))
            assert tm is not None
            values = struct.unpack(structure_format(HkStructure.SYSTEM), tm.source_data)
            assert values[3] == boot  # SID, uptime, mode, boot_count
        finally:
            fw.close()


def test_tm_the_host_does_not_read_is_dropped_oldest_first_and_said(
    firmware_process: FirmwareProcess,
) -> None:
    client = firmware_process.client
    # 4,000 pings written without reading a TM: 16,000 reports, far more than the
    # target's bounded output backlog holds (serial_port.MAX_BACKLOG).
    packets = b"".join(encode_frame(make_tc(17, 1, b"", client.next_seq())) for _ in range(4000))
    client.port.write(packets)
    client.port.flush()
    time.sleep(2.0)  # the target answers all of them meanwhile
    received: list = []
    while batch := client.poll(1.0):  # everything it kept, until it has nothing more
        received += batch
    overflows = [t for t in received if is_event(EventId.TM_OVERFLOW)(t)]
    assert overflows, "the overflow is said"
    since, total = struct.unpack("!II", overflows[0].source_data[2:])
    assert 0 < since <= total
    pongs = sum((t.service, t.subtype) == (17, 2) for t in received)
    assert 0 < pongs < 4000, "the oldest were dropped, the newest kept"
    completes(client, client.tc(17, 1))  # and it answers on
