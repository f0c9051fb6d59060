"""Parsing `dmsetup status` of a dm-raid device and the `raid` target version.

Field history (dm-raid.rst): 1.0-1.4 print `type n health ratio`; sync_action and mismatch_cnt
came in 1.5.0, data_offset in 1.9.0, journal_char in 1.10.0. Before 1.13.0 the health stayed
`a` after a finished recover, so "in sync" cannot be read off those kernels and they are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from .errors import PlanError

MIN_RAID_VERSION = (1, 13, 0)
SUPERBLOCK_MAGIC = (0x64526D44).to_bytes(4, "little")  # dm-raid.c DM_RAID_MAGIC, offset 0


@dataclass(frozen=True)
class RaidStatus:
    total: int
    devices: int
    health: str
    done: int
    action: Optional[str]

    @property
    def in_sync(self) -> bool:
        return (
            set(self.health) == {"A"}
            and self.done == self.total
            and self.action in (None, "idle")
        )

    @property
    def failed_legs(self) -> list[int]:
        return [i for i, c in enumerate(self.health) if c == "D"]

    @property
    def percent(self) -> float:
        if not self.total or self.done >= self.total:
            return 100.0
        return min(99.9, int(1000 * self.done / self.total) / 10)


def parse_status(line: str) -> RaidStatus:
    w = line.split()
    try:
        if w[2] != "raid" or w[3] != "raid1":
            raise ValueError
        devices = int(w[4])
        health = w[5]
        done, total = (int(x) for x in w[6].split("/"))
        action = w[7] if len(w) > 7 else None
    except (IndexError, ValueError) as exc:
        raise ValueError(f"not a dm-raid raid1 status line: {line!r}") from exc
    if len(health) != devices or not re.fullmatch(r"[AaD-]+", health):
        raise ValueError(f"bad health field {health!r} in {line!r}")
    return RaidStatus(int(w[1]), devices, health, done, action)


def parse_version(text: str) -> tuple[int, ...]:
    """'v1.15.1' or '1.15.1' -> (1, 15, 1)."""
    m = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)", text.strip())
    if not m:
        raise ValueError(f"bad target version {text!r}")
    return tuple(int(x) for x in m.groups())


def parse_targets(text: str) -> dict[str, tuple[int, ...]]:
    """`dmsetup targets` output -> {name: version}."""
    out = {}
    for line in text.splitlines():
        w = line.split()
        if len(w) == 2:
            out[w[0]] = parse_version(w[1])
    return out


def check_raid_target(targets: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    version = targets.get("raid")
    if version is None:
        raise PlanError("the kernel has no dm `raid` target; load it with `modprobe dm-raid`")
    if version < MIN_RAID_VERSION:
        shown = ".".join(map(str, version))
        need = ".".join(map(str, MIN_RAID_VERSION))
        raise PlanError(
            f"dm raid target v{shown} cannot prove a safe rebuild (needs v{need} or later); "
            "migrate this disk on a host with a newer kernel"
        )
    return version
