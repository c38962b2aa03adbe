"""An AXI4-Lite protocol checker on the chip's bus slave, sampled at every clock edge.

The rules of the AMBA AXI4-Lite protocol (ARM IHI 0022, sections A3.2 and B1) that a
slave and the bus between it and its master can break:

- once VALID is high on a channel it stays high, and the channel's payload stays the same,
  until the edge where READY is high too (the handshake);
- a write response (BVALID) only for a write whose address and data both handshook, one
  response per write; a read response (RVALID) only for a read whose address handshook,
  one per read;
- during reset the slave's BVALID and RVALID are low.

A violation is kept with the edge it happened at; ``check`` raises the first one.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import RisingEdge

CHANNELS = {
    "aw": ("awvalid", "awready", ("awaddr", "awprot")),
    "w": ("wvalid", "wready", ("wdata", "wstrb")),
    "b": ("bvalid", "bready", ("bresp",)),
    "ar": ("arvalid", "arready", ("araddr", "arprot")),
    "r": ("rvalid", "rready", ("rdata", "rresp")),
}


class AxiLiteChecker:
    """Watches the ``prefix`` bus of ``dut`` on ``clk`` (reset ``rst_n``, low active)."""

    def __init__(self, dut, clk, rst_n, prefix: str = "s_axil") -> None:
        self.clk = clk
        self.rst_n = rst_n
        self.signals = {
            name: (getattr(dut, f"{prefix}_{v}"), getattr(dut, f"{prefix}_{r}"),
                   [getattr(dut, f"{prefix}_{p}") for p in payload])
            for name, (v, r, payload) in CHANNELS.items()
        }  # fmt: skip
        self.violations: list[str] = []
        self.handshakes = dict.fromkeys(CHANNELS, 0)
        self.edges = 0

    def start(self) -> None:
        cocotb.start_soon(self._watch())

    def check(self) -> None:
        """Raise the first violation seen, if any."""
        if self.violations:
            raise AssertionError(
                f"AXI4-Lite protocol: {self.violations[0]}"
                + (f" (and {len(self.violations) - 1} more)" if len(self.violations) > 1 else "")
            )

    def _sample(self) -> dict[str, tuple[int, int, tuple[str, ...]]]:
        out = {}
        for name, (valid, ready, payload) in self.signals.items():
            out[name] = (
                int(valid.value) if valid.value.is_resolvable else -1,
                int(ready.value) if ready.value.is_resolvable else -1,
                tuple(str(p.value) for p in payload),
            )
        return out

    def _fail(self, what: str) -> None:
        self.violations.append(f"edge {self.edges}: {what}")

    async def _watch(self) -> None:
        previous: dict[str, tuple[int, int, tuple[str, ...]]] | None = None
        while True:
            await RisingEdge(self.clk)
            self.edges += 1
            now = self._sample()
            if not self.rst_n.value.is_resolvable or int(self.rst_n.value) == 0:
                for name in ("b", "r"):
                    if now[name][0] == 1:
                        self._fail(f"{name.upper()}VALID high during reset")
                self.handshakes = dict.fromkeys(CHANNELS, 0)
                previous = None
                continue
            if previous is not None:
                for name, (valid, ready, payload) in previous.items():
                    if valid == 1 and ready != 1:  # no handshake at the last edge
                        if now[name][0] != 1:
                            self._fail(f"{name.upper()}VALID dropped before its handshake")
                        elif now[name][2] != payload:
                            self._fail(
                                f"{name.upper()} payload changed while waiting for READY: "
                                f"{payload} -> {now[name][2]}"
                            )
            hs = self.handshakes
            writes = min(hs["aw"], hs["w"])
            if now["b"][0] == 1 and hs["b"] >= writes:
                self._fail(f"BVALID with no write waiting for its response ({hs})")
            if now["r"][0] == 1 and hs["r"] >= hs["ar"]:
                self._fail(f"RVALID with no read waiting for its response ({hs})")
            for name, (valid, ready, _) in now.items():
                if valid == 1 and ready == 1:
                    hs[name] += 1
            previous = now
