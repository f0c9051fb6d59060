"""The DOS partition table written in front of a XEN filesystem.

One primary Linux partition [N, N + size). The bytes equal what sfdisk 2.38 writes for
`start=N, size=S, type=83` (CHS from a 255-head, 63-sector geometry), except the disk
signature, which is derived from the volume name so a rerun writes the same sector.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Optional

from .errors import PlanError

HEADS = 255
SECTORS_PER_TRACK = 63
MAX_SECTORS = 2**32
LINUX = 0x83


@dataclass(frozen=True)
class Partition:
    start_sectors: int
    size_sectors: int
    type_id: int


def chs(lba: int) -> bytes:
    cyl = lba // (HEADS * SECTORS_PER_TRACK)
    if cyl > 1023:
        return b"\xfe\xff\xff"
    head = (lba // SECTORS_PER_TRACK) % HEADS
    sector = lba % SECTORS_PER_TRACK + 1
    return bytes([head, sector | ((cyl >> 2) & 0xC0), cyl & 0xFF])


def build(start_sectors: int, size_sectors: int, signature_source: str = "") -> bytes:
    if start_sectors <= 0 or size_sectors <= 0:
        raise PlanError("a partition needs a positive start and size")
    if start_sectors + size_sectors > MAX_SECTORS:
        raise PlanError(
            f"the partition would end at sector {start_sectors + size_sectors}, past the DOS "
            f"partition table's 2 TiB limit ({MAX_SECTORS} sectors); use case-1 or GPT by hand"
        )
    entry = struct.pack(
        "<B3sB3sII",
        0x00,
        chs(start_sectors),
        LINUX,
        chs(start_sectors + size_sectors - 1),
        start_sectors,
        size_sectors,
    )
    sector = bytearray(512)
    struct.pack_into("<I", sector, 440, zlib.crc32(signature_source.encode()) or 1)
    sector[446:462] = entry
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def parse(sector: bytes) -> Optional[list[Partition]]:
    """Partitions of an MBR, or None when the sector holds no DOS label."""
    if len(sector) < 512 or sector[510:512] != b"\x55\xaa":
        return None
    parts = []
    for i in range(4):
        raw = sector[446 + 16 * i: 462 + 16 * i]
        _, _, type_id, _, start, size = struct.unpack("<B3sB3sII", raw)
        if type_id and size:
            parts.append(Partition(start, size, type_id))
    return parts
