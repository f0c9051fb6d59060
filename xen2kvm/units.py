"""Sizes: bytes and 512-byte sectors, never a bare number of unknown unit."""

from __future__ import annotations

import re

SECTOR = 512
KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
TIB = 1024 * GIB
_SUFFIX = {"": 1, "B": 1, "K": KIB, "M": MIB, "G": GIB, "T": TIB, "S": SECTOR}


def bytes_to_sectors(size_bytes: int) -> int:
    if size_bytes % SECTOR:
        raise ValueError(f"{size_bytes} bytes is not a whole number of 512-byte sectors")
    return size_bytes // SECTOR


def sectors_to_bytes(sectors: int) -> int:
    return sectors * SECTOR


def parse_size(text: str) -> int:
    """'10G' -> bytes. Suffixes K M G T are binary; S means 512-byte sectors."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGTBS]?)(?:I?B)?\s*", text.upper())
    if not m:
        raise ValueError(f"bad size {text!r}; use a number with K, M, G, T or S (sectors)")
    return int(m.group(1)) * _SUFFIX[m.group(2)]


def human(size_bytes: int) -> str:
    """Largest binary unit that divides exactly, as the storpool CLI takes it: 16384 -> '16K'."""
    for suffix, unit in (("T", TIB), ("G", GIB), ("M", MIB), ("K", KIB)):
        if size_bytes and size_bytes % unit == 0:
            return f"{size_bytes // unit}{suffix}"
    return str(size_bytes)
