"""The DOS partition table written in front of a XEN filesystem.

One primary Linux partition [N, N + size). `patch` changes an existing sector 0 exactly as
sfdisk 2.38 does for `label: dos`, `label-id:` (the disk's own), `start=N, size=S, type=83`
(CHS from a 255-head, 63-sector geometry): the boot code (0-439) and the disk signature
(440-443) stay, bytes 444-509 are rewritten, 510-511 become 0x55AA. Nothing else on the disk
changes, so a KVM shell disk's boot loader survives.
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
BOOT_CODE = 440  # bytes 0-439; the disk signature follows (440-443)
ENTRIES = 444  # patch() rewrites bytes 444-511 only, the same bytes whatever sector 0 held


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
    """A fresh sector 0 (no boot code) with a signature derived from `signature_source`."""
    sector = bytearray(512)
    struct.pack_into("<I", sector, 440, zlib.crc32(signature_source.encode()) or 1)
    return patch(bytes(sector), start_sectors, size_sectors)


def patch(old: bytes, start_sectors: int, size_sectors: int) -> bytes:
    """`old` (sector 0 as it is) with only the partition entries and the 0x55AA mark
    rewritten, as sfdisk writes them; sfdisk also zeroes bytes 444-445."""
    if len(old) != 512:
        raise PlanError(f"sector 0 must be 512 bytes, not {len(old)}")
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
    sector = bytearray(old)
    sector[444:510] = bytes(66)
    sector[446:462] = entry
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def signature(sector: bytes) -> int:
    return struct.unpack_from("<I", sector, 440)[0]


def has_boot_code(sector: bytes) -> bool:
    """Whether bytes 0-439 hold anything: a zeroed area cannot start a boot loader."""
    return any(sector[:440])


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
