"""What the first sectors of a volume say about it: a bare filesystem (a XEN guest's disk, which
OnApp formats without a partition table) or a disk with a DOS label. Used to catch swapped
`-x`/`-k` before the KVM side's first change would grow and overwrite the XEN disk."""

from __future__ import annotations

from typing import Optional

from . import mbr

# (name, byte offset, magic): the superblocks blkid also looks for, nearest the start first
FILESYSTEMS = (
    ("xfs", 0, b"XFSB"),
    ("LVM2 physical volume", 536, b"LVM2 001"),
    ("ext2/3/4", 1080, b"\x53\xef"),
    ("swap", 4086, b"SWAPSPACE2"),
    ("swap", 4086, b"SWAP-SPACE"),
    ("btrfs", 65600, b"_BHRfS_M"),
)
HEAD_BYTES = 65600 + 8


def bare_filesystem(head: bytes) -> Optional[str]:
    """The filesystem found at the start of a disk without a partition table, else None."""
    if mbr.parse(head[:512]):
        return None
    for name, offset, magic in FILESYSTEMS:
        if head[offset: offset + len(magic)] == magic:
            return name
    return None
