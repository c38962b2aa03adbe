"""Link reliability: 10,000 commands over a noisy, lossy line; every one must end, once,
with its outcome known (``unknown_outcomes``, target 0: a lost report is asked about), and
in the order sent (``out_of_order``, target 0: ICD 6.1).

The commands are parameter reports (TC[20,1]), which start in sequence-count order (a
ping would not wait for a missing count). The order the target started them in is read
from the start reports, which it sends as it starts each one; a lost report hides one
request but not the order of the others.

The flight software (``python -m firmware_sim``) runs in its own process; the channel
emulator (``host.channel``) sits between it and the host link with a bit error rate of
1e-4 and 5 % of frames dropped in each direction at 1 Mbaud. ``run()`` returns how each
command ended, what the line did, how many TCs the target accepted (housekeeping
counters, read over a clean line before and after) and the goodput.

    python -m bench.link_reliability [commands]
"""

from __future__ import annotations

import contextlib
import json
import struct
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

from host import Command, Completion, Link, Stage
from host.channel import TO_HOST, TO_TARGET, Channel
from host.errors import CommandTimeout, HostError
from host.history import Received
from host.impairment import Impairment
from host.sim import SimulatedTarget
from protocol.payloads import ParamId, parameter_ids
from protocol.request_id import RequestId
from protocol.sequence import seq_diff
from protocol.verification import VerificationReport

COMMAND = Command(20, 1, parameter_ids([ParamId.JOB_TIMEOUT]))
"""What the run sends: TC[20,1], one parameter's value."""


@contextlib.contextmanager
def firmware(*args: str) -> Iterator[str]:
    """Run the simulated chip in TEST mode (null key only) and yield its pty."""
    with SimulatedTarget(mode="test", keys={}, args=args) as sim:
        yield sim.port


def tc_counters(link: Link) -> dict[str, int]:
    """The target's TC counters from a one-shot HK SYSTEM report (ICD 15.3)."""
    done = link.send(3, 27, struct.pack("!BH", 1, 1))
    data = next(r.source_data for r in done.reports if (r.service, r.subtype) == (3, 25))
    names = ("tc_received", "tc_accepted", "tc_refused", "tc_duplicates")
    return dict(zip(names, struct.unpack_from("!IIII", data, 19), strict=True))


def accepted_bounds(results: list[Completion | HostError]) -> tuple[int, int]:
    """(TCs the target surely accepted, TCs it may have accepted) among ``results``: a TC
    that ended past acceptance was accepted (once, if duplicate detection holds); one that
    ended at acceptance after being sent may have been (its reports all lost, or a
    damaged copy answered BAD_CRC after a whole one was accepted); one never written was
    not."""
    surely = maybe = 0
    for r in results:
        if isinstance(r, Completion) or r.stage is not Stage.ACCEPTANCE:
            surely += 1
        elif not isinstance(r, CommandTimeout) or r.transmissions > 0:
            maybe += 1
    return surely, maybe


def start_order(
    received: list[Received], ours: set[RequestId]
) -> tuple[list[int], list[tuple[int, int]]]:
    """The sequence counts of ``ours`` in the order their start reports came, and each
    neighbouring pair of them whose second count is not above the first."""
    counts = [
        rid.seq_count
        for item in received
        if (item.service, item.subtype) == (1, 3)
        and (rid := VerificationReport.unpack(3, item.source_data).request_id) in ours
    ]
    late = [(a, b) for a, b in zip(counts, counts[1:], strict=False) if seq_diff(b, a) <= 0]
    return counts, late


def unknown(result: Completion | HostError) -> bool:
    """The host does not know whether the command ran: it timed out after the target
    accepted it, or after being sent with no answer at all."""
    if not isinstance(result, CommandTimeout):
        return False
    return result.stage is not Stage.ACCEPTANCE or result.transmissions > 0


def run(
    commands: int = 10_000,
    *,
    baud: int = 1_000_000,
    ber: float = 1e-4,
    frame_drop: float = 0.05,
    acceptance_timeout_s: float | None = 0.3,
    fast_retransmit: bool = False,
    seed: int = 1,
    session_log: str | Path | None = None,
    firmware_log: str | Path | None = None,
) -> dict:
    """Send ``commands`` TC[20,1] through the window over the impaired line; count the
    endings and check their order.

    ``acceptance_timeout_s`` None uses the ICD formula (1.33 s at 1 Mbaud); 0.3 s is ample
    for a pty target and keeps the run short. ``session_log`` and ``firmware_log`` are
    paths to write the link's session log and the flight software's log to.
    """
    noisy = Impairment(ber=ber, frame_drop=frame_drop)
    with (
        firmware(*(("--log", str(firmware_log)) if firmware_log else ())) as pty,
        Channel(pty, baud=baud, seed=seed) as channel,
        Link(
            channel.host_path, baud, acceptance_timeout_s=acceptance_timeout_s,
            fast_retransmit=fast_retransmit, session_log=session_log,
        ).open() as link,
    ):  # fmt: skip
        before = tc_counters(link)
        pings_before = replace(link.stats)
        received: list[Received] = []
        link.watch(lambda note: received.append(note) if isinstance(note, Received) else None)
        channel.set_impairment(TO_TARGET, noisy)
        channel.set_impairment(TO_HOST, noisy)
        start = time.monotonic()
        results = link.send_many([COMMAND] * commands)
        elapsed = time.monotonic() - start
        channel.set_impairment(TO_TARGET, Impairment())
        channel.set_impairment(TO_HOST, Impairment())
        # A TC that exhausts its retransmissions takes the link down; the link then starts
        # again with pings of its own (ICD 14), which the target may accept too: let them end.
        started = link.await_started(timeout=30.0)
        after = tc_counters(link)
        stats = replace(link.stats)
        line = channel.counters()
    endings = Counter(
        "completed" if isinstance(r, Completion) else f"{type(r).__name__} at {r.stage.value}"
        for r in results
    )
    completed = endings["completed"]
    seen, late = start_order(
        received, {r.request_id for r in results if isinstance(r, Completion)}
    )
    surely, maybe = accepted_bounds(results)
    restart_tcs = stats.start_tcs - pings_before.start_tcs
    surely += stats.start_tcs_accepted - pings_before.start_tcs_accepted
    maybe += stats.start_tcs_maybe - pings_before.start_tcs_maybe
    # The outcome queries the link sent when reports were lost (ICD 14) are TCs too.
    asked = stats.outcome_queries - pings_before.outcome_queries
    answered = stats.outcomes_answered - pings_before.outcomes_answered
    surely += answered
    maybe += asked - answered
    # A query's copies are each answered (the target does not remember queries, ICD 6).
    maybe += stats.outcome_query_resends - pings_before.outcome_query_resends
    accepted = after["tc_accepted"] - before["tc_accepted"] - 1  # less the second HK TC
    return {
        "commands": commands,
        "command": COMMAND.name,
        "baud": baud,
        "ber": ber,
        "frame_drop": frame_drop,
        "acceptance_timeout_s": link.timing.acceptance_s,
        "fast_retransmit": fast_retransmit,
        "endings": dict(endings),
        "all_ended": sum(endings.values()) == commands,
        "starts_seen": len(seen),
        "out_of_order": len(late),
        "unknown_outcomes": sum(unknown(r) for r in results),
        "outcome_queries": asked,
        "outcomes_answered": answered,
        "recovered_by_query": sum(isinstance(r, Completion) and r.recovered for r in results),
        "sequence_collisions": stats.seq_collisions - pings_before.seq_collisions,
        "target_accepted": accepted,
        "surely_accepted": surely,
        "maybe_accepted": maybe,
        "restart_tcs": restart_tcs,
        "accepted_once": started and surely <= accepted <= surely + maybe,
        "duplicates_answered": after["tc_duplicates"] - before["tc_duplicates"],
        "retransmissions": stats.retransmissions,
        "fast_retransmissions": stats.fast_retransmissions,
        "gap_retransmissions": stats.gap_retransmissions - pings_before.gap_retransmissions,
        "tm_received": stats.tm_received,
        "tm_lost": stats.tm_lost,
        "frames_rejected": stats.rejected_total,
        "line": {name: asdict(c) for name, c in line.items()},
        "elapsed_s": round(elapsed, 3),
        "completed_per_s": round(completed / elapsed, 1),
        "line_use_to_target": round(line[TO_TARGET].stream.bytes_in / elapsed / (baud / 10), 4),
        "line_use_to_host": round(line[TO_HOST].stream.bytes_in / elapsed / (baud / 10), 4),
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(json.dumps(run(n), indent=2))
