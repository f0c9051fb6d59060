"""The fake's guest: 4 KiB writes at a scheduled rate through a dm device, and the latency they
see as a function of the resync rate and the guest's own load.

The device is a single queue of capacity CAPACITY_KIB shared by the resync and the guest; a write
waits IDLE_MS / (1 - utilisation) (M/M/1), capped where the queue saturates. The counters are
the ones the kernel keeps in /sys/block/dm-N/stat, so the controller reads the fake exactly as
it reads a real host. Everything moves on the virtual clock: deterministic, no sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from xen2kvm.throttle import IoCounters

CAPACITY_KIB = 400 * 1024
IDLE_MS = 0.2
IO_KIB = 4
MAX_UTILISATION = 0.95


def latency_ms(resync_kib: float, iops: float) -> float:
    u = min(MAX_UTILISATION, (resync_kib + iops * IO_KIB) / CAPACITY_KIB)
    return IDLE_MS / (1.0 - u)


@dataclass
class GuestIo:
    schedule: list[tuple[float, float]] = field(default_factory=list)  # (from clock, writes/s)
    writes: float = 0.0
    write_ms: float = 0.0
    history: list[tuple[float, float, Optional[float]]] = field(default_factory=list)
    # (clock, resync KiB/s, write latency ms or None without writes) of every interval

    def plan(self, at: float, iops: float) -> None:
        """From virtual time `at` on, the guest writes `iops` blocks per second."""
        self.schedule = [s for s in self.schedule if s[0] < at] + [(at, float(iops))]

    def iops_at(self, clock: float) -> float:
        current = 0.0
        for start, iops in self.schedule:
            if start <= clock:
                current = iops
        return current

    def counters(self) -> IoCounters:
        return IoCounters(int(self.writes), self.write_ms)

    def account(self, start: float, seconds: float, resync_kib: float) -> None:
        """The writes of [start, start + seconds), split where the schedule changes."""
        cuts = sorted({start, start + seconds,
                       *(s for s, _ in self.schedule if start < s < start + seconds)})
        for lo, hi in zip(cuts, cuts[1:]):
            iops = self.iops_at(lo)
            lat = latency_ms(resync_kib, iops) if iops > 0 else None
            if lat is not None:
                self.writes += iops * (hi - lo)
                self.write_ms += iops * (hi - lo) * lat
            self.history.append((lo, resync_kib, lat))
