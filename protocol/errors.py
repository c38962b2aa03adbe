"""Errors from the peer's bytes (remote). Bad arguments from our own code raise ValueError."""

from __future__ import annotations

from protocol.codes import FAILURE_FOR_REJECT, FailureCode, RejectReason
from protocol.request_id import RequestId


class PacketError(ValueError):
    """A received packet broke the ICD; says what, where and what was expected.

    ``reason`` is set when the packet fails the receipt checks (header, length, CRC, APID)
    and is what a frame decoder reports; ``code`` is what a TM[1,x] failure report carries;
    ``request_id`` is the offending TC's, when its first four octets were readable;
    ``data`` is the failure data the ICD gives for ``code`` (empty when it gives none).
    """

    def __init__(
        self,
        message: str,
        *,
        code: FailureCode | None = None,
        reason: RejectReason | None = None,
        request_id: RequestId | None = None,
        data: bytes = b"",
    ) -> None:
        super().__init__(message)
        if code is None:
            if reason is None:
                raise ValueError("PacketError needs a failure code or a reject reason")
            code = FAILURE_FOR_REJECT.get(reason, FailureCode.BAD_HEADER)
        self.message = message
        self.code = code
        self.reason = reason
        self.request_id = request_id
        self.data = data
