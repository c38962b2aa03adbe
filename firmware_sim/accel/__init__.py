"""Bit-exact numpy model of the SCC accelerator (docs/REGISTERS.md)."""

from .ecc import EccStatus
from .faults import (
    AccBit,
    FaultSite,
    FlopBit,
    JobPoint,
    JobReport,
    NotModelled,
    OutBit,
    Phase,
    PhaseSpan,
    RegCopy,
    ScheduledFault,
    SeqCopy,
    SetBit,
    SpmCell,
)
from .golden import Golden
from .job import Descriptor
from .layout import Cell, Layout
from .model import Accelerator
from .packing import Placement, pack_a, pack_b, pack_bias, place_operands, unpack_c
from .reference import gemm_reference
from .regs import SPM_BASE, Ctrl, Epilogue, ErrCode, Reg, Resp, Status
from .snapshot import Snapshot

__all__ = [
    "SPM_BASE",
    "AccBit",
    "Accelerator",
    "Cell",
    "Ctrl",
    "Descriptor",
    "EccStatus",
    "Epilogue",
    "ErrCode",
    "FaultSite",
    "FlopBit",
    "Golden",
    "JobPoint",
    "JobReport",
    "Layout",
    "NotModelled",
    "OutBit",
    "Phase",
    "PhaseSpan",
    "Placement",
    "Reg",
    "RegCopy",
    "Resp",
    "ScheduledFault",
    "SeqCopy",
    "SetBit",
    "Snapshot",
    "SpmCell",
    "Status",
    "gemm_reference",
    "pack_a",
    "pack_b",
    "pack_bias",
    "place_operands",
    "unpack_c",
]
