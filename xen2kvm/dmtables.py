"""Device-mapper tables, as the kernel takes them (all numbers in 512-byte sectors).

The raid1 always carries a metadata device per leg (docs/architecture.md §4): without them a
failed KVM leg freezes guest writes and every reload restarts the copy from zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .errors import PlanError

RATE_MAX = 2**31 - 1  # dm-raid and md take the rates as a C int


def check_rate(what: str, kib: int) -> None:
    """One rule for `tune` and the per-array rates of sync, assemble and fleet sync."""
    if not 0 < kib <= RATE_MAX:
        raise PlanError(f"{what} {kib} is out of range; give a positive number of KiB/s up "
                        f"to {RATE_MAX}")


def check_order(min_kib: Optional[int], max_kib: Optional[int]) -> None:
    if min_kib is not None and max_kib is not None and min_kib > max_kib:
        raise PlanError(f"the minimum resync rate {min_kib} must not exceed the maximum {max_kib} "
                        "KiB/s; give a minimum at or below the maximum")


@dataclass(frozen=True)
class Rates:
    """Per-array resync rates in KiB/s per disk (None: the global sysctls apply); checked
    when made, so a bad number is refused before anything changes."""

    min_kib: Optional[int] = None
    max_kib: Optional[int] = None

    def __post_init__(self) -> None:
        for what, kib in (("--min-rate", self.min_kib), ("--max-rate", self.max_kib)):
            if kib is not None:
                check_rate(what, kib)
        check_order(self.min_kib, self.max_kib)

    def params(self) -> list[str]:
        out: list[str] = []
        if self.min_kib is not None:
            out += ["min_recovery_rate", str(self.min_kib)]
        if self.max_kib is not None:
            out += ["max_recovery_rate", str(self.max_kib)]
        return out


NO_RATES = Rates()


def linear(kvm_dev: str, n_sectors: int, clone_dev: str, clone_sectors: int) -> str:
    """[KVM sectors 0..N) followed by the whole clone: the disk as KVM must see it."""
    return (
        f"0 {n_sectors} linear {kvm_dev} 0\n"
        f"{n_sectors} {clone_sectors} linear {clone_dev} 0"
    )


def raid1_one_leg(total: int, meta0: str, source: str, rates: Rates = NO_RATES) -> str:
    params = ["0", *rates.params()]
    return f"0 {total} raid raid1 {len(params)} {' '.join(params)} 1 {meta0} {source}"


def raid1_two_legs(
    total: int,
    meta0: str,
    source: str,
    meta1: str,
    kvm_dev: str,
    *,
    rebuild: bool,
    leg1_has_superblock: bool,
    rates: Rates = NO_RATES,
) -> str:
    """Leg 0 is the source view, leg 1 the KVM volume.

    Leg 1 joins for the first time only with `rebuild 1`; without it the kernel would take it as
    in sync and copy nothing. A reassembly may omit it only when leg 1's metadata records where
    the copy stood.
    """
    if not rebuild and not leg1_has_superblock:
        raise PlanError(
            "refusing a two-leg raid1 whose KVM leg has neither `rebuild 1` nor metadata: the "
            "kernel would assume it in sync and copy nothing"
        )
    params = ["0", *(["rebuild", "1"] if rebuild else []), *rates.params()]
    return (
        f"0 {total} raid raid1 {len(params)} {' '.join(params)} "
        f"2 {meta0} {source} {meta1} {kvm_dev}"
    )


@dataclass(frozen=True)
class RaidTable:
    total: int
    params: tuple[str, ...]
    legs: tuple[tuple[str, str], ...]

    @property
    def rebuild(self) -> list[int]:
        p = self.params
        return [int(p[i + 1]) for i, w in enumerate(p) if w == "rebuild"]

    def rate(self, key: str) -> Optional[int]:
        p = self.params
        for i, w in enumerate(p):
            if w == key:
                return int(p[i + 1])
        return None


def parse_raid(table: str) -> RaidTable:
    words = table.split()
    if len(words) < 7 or words[2] != "raid" or words[3] != "raid1":
        raise ValueError(f"not a raid1 table: {table!r}")
    nparams = int(words[4])
    params = tuple(words[5: 5 + nparams])
    ndevs = int(words[5 + nparams])
    devs = words[6 + nparams: 6 + nparams + 2 * ndevs]
    if len(devs) != 2 * ndevs:
        raise ValueError(f"raid1 table names {len(devs)} devices, expected {2 * ndevs}")
    legs = tuple((devs[2 * i], devs[2 * i + 1]) for i in range(ndevs))
    return RaidTable(int(words[1]), params, legs)


def parse_linear(table: str) -> list[tuple[int, int, str, int]]:
    """(start, length, device, offset) segments."""
    segs = []
    for line in table.strip().splitlines():
        w = line.split()
        if len(w) != 5 or w[2] != "linear":
            raise ValueError(f"not a linear table line: {line!r}")
        segs.append((int(w[0]), int(w[1]), w[3], int(w[4])))
    return segs
