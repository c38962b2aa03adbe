"""Link parameters shared by both ends: sizes, rates, timeouts, retries, windows.

Each value is specified in docs/ICD.md; change both together.
"""

from __future__ import annotations

from typing import Final

APID_FSW: Final[int] = 0x0C8
"""APID of the flight software: TCs to it and TM from it."""
APID_IDLE: Final[int] = 0x7FF
"""Reserved by CCSDS for idle packets; never sent on this link."""
DEFAULT_APIDS: Final[frozenset[int]] = frozenset({APID_FSW})

SOURCE_ID_HOST: Final[int] = 0x0001
"""PUS source id of the EGSE host in TCs (and destination id of the TM answering them)."""

MAX_PACKET_LEN: Final[int] = 2048
"""Largest space packet on the link, primary header to CRC included."""


def cobs_max_encoded_len(payload_len: int) -> int:
    """Upper bound on the COBS-encoded length of ``payload_len`` bytes (delimiter excluded)."""
    return payload_len + payload_len // 254 + 1


MAX_FRAME_LEN: Final[int] = cobs_max_encoded_len(MAX_PACKET_LEN)
"""Largest encoded frame (between two 0x00 delimiters, delimiters excluded): 2057."""

DEFAULT_BAUD: Final[int] = 115_200
BITS_PER_BYTE_ON_LINE: Final[int] = 10
"""8-N-1: start bit, 8 data bits, stop bit."""

ACCEPTANCE_TIMEOUT_S: Final[float] = 1.0
"""Host waits this long (plus queueing time, see acceptance_timeout) for TM[1,1]/[1,2]."""
COMPLETION_TIMEOUT_S: Final[float] = 5.0
"""Default wait for TM[1,7]/[1,8] after acceptance, for requests without progress reports."""
PROGRESS_INTERVAL_S: Final[float] = 1.0
"""A running request that asked for progress reports gets one at least this often."""
PROGRESS_TIMEOUT_S: Final[float] = 3.0 * PROGRESS_INTERVAL_S
"""Host gives up on a request that asked for progress after this long without a report."""
MAX_RETRANSMISSIONS: Final[int] = 3
"""Retransmissions of one TC (same bytes) before the host declares the link down."""
MAX_OUTCOME_QUERIES: Final[int] = 8
"""Outcome queries (TC[149,1]) in a row the host sends about one request before giving up."""
MAX_OUTSTANDING: Final[int] = 8
"""TCs the host may have sent without their acceptance report yet (the sliding window)."""
DUPLICATE_WINDOW: Final[int] = 1024
"""TCs the flight software remembers, accepted or refused at acceptance, with their outcome
(ICD 6): duplicates among the accepted ones are not run again, and TC[149,1] asks about any."""


def frame_time_s(n_bytes: int, baud: int = DEFAULT_BAUD) -> float:
    """Seconds to send ``n_bytes`` on an 8-N-1 line at ``baud``."""
    return n_bytes * BITS_PER_BYTE_ON_LINE / baud


def acceptance_timeout(baud: int = DEFAULT_BAUD, outstanding: int = MAX_OUTSTANDING) -> float:
    """Acceptance timeout for a TC with ``outstanding`` max-size frames queued each way."""
    return ACCEPTANCE_TIMEOUT_S + 2 * outstanding * frame_time_s(MAX_FRAME_LEN + 1, baud)


HOLD_WINDOW: Final[int] = 64
"""How far ahead of the next expected sequence count a TC may arrive and wait for the
counts before it (ICD 6.1). The host sends no TC this far or further past one awaiting
acceptance (ICD 14), so every count in its window is within reach; 8 TCs in the window
leave room for the pings and outcome queries that do not wait and end meanwhile."""


def gap_timeout(baud: int = DEFAULT_BAUD) -> float:
    """How long the flight software holds TCs behind a missing sequence count (ICD 6): until
    half an acceptance timeout after the host's last copy of the missing TC could arrive,
    so a gap is skipped only when the host has stopped sending it."""
    return (MAX_RETRANSMISSIONS + 0.5) * acceptance_timeout(baud)
