"""The adaptive resync throttle's controller: pure, driven by one latency sample per interval.

Input: the guest's mean write latency over the last interval (from the dm devices' I/O
counters), or None when the guest completed no write (nothing to protect then). Output: the
resync rate (KiB/s per disk) for the next interval.

It first holds the resync at the floor for a few intervals to learn the guest's own latency
(leg 1 joined, the copy all but paused: writes to two legs cost more than to one, whatever the
copy does), and aims at `factor` times that unless the operator gave a target. Then it
steers: multiplicative decrease in proportion to the overshoot (a burst of
guest load is felt within one interval), multiplicative increase while well under the target
(reaching the ceiling from the floor in a few intervals: finishing fast is the other goal).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Optional

KERNEL_MIN_KIB = 1000  # the kernel's speed_limit_min default: our floor and "paused" rate
UNTHROTTLED_KIB = 4_000_000  # what the README measures as unthrottled


@dataclass(frozen=True)
class IoCounters:
    """Cumulative write counters of a block device (/sys/block/dm-N/stat fields 5 and 8)."""

    writes: int = 0
    write_ms: float = 0.0

    def __add__(self, other: IoCounters) -> IoCounters:
        return IoCounters(self.writes + other.writes, self.write_ms + other.write_ms)


def parse_stat(text: str) -> IoCounters:
    """The kernel's block stat line (Documentation/block/stat.rst)."""
    f = text.split()
    if len(f) < 8:
        raise ValueError(f"not a block stat line: {text!r}")
    return IoCounters(int(f[4]), float(f[7]))


def parse_dm_stats(line: str) -> IoCounters:
    """A `@stats_print` line of a dm statistics region made with `precise_timestamps`:
    `start+length` and then the block stat fields, with times in nanoseconds. The block stat
    file of a bio-based dm device counts whole jiffies per I/O, far too coarse for writes that
    take microseconds; these are exact."""
    f = line.split()
    if len(f) < 9 or "+" not in f[0]:
        raise ValueError(f"not a dm statistics line: {line!r}")
    return IoCounters(int(f[5]), int(f[8]) / 1e6)


def mean_write_ms(before: IoCounters, after: IoCounters) -> Optional[float]:
    """Mean latency of the writes completed between two readings; None when there were none.
    A device that was recreated in between (counters went back) gives no sample either."""
    n = after.writes - before.writes
    if n <= 0 or after.write_ms < before.write_ms:
        return None
    return (after.write_ms - before.write_ms) / n


@dataclass
class Controller:
    target_ms: Optional[float] = None  # None: factor x the measured idle latency
    floor: int = KERNEL_MIN_KIB
    ceiling: int = UNTHROTTLED_KIB
    factor: float = 1.5
    baseline_intervals: int = 3
    start: Optional[int] = None  # first steered rate (default: 1/64 of the ceiling)
    rate: int = 0
    phase: str = "baseline"
    idle_ms: Optional[float] = None
    _samples: list[float] = field(default_factory=list)
    _seen: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.floor <= self.ceiling:
            raise ValueError("the throttle's floor must be positive and not above its ceiling")
        self.rate = self.floor

    @property
    def target(self) -> Optional[float]:
        if self.target_ms is not None:
            return self.target_ms
        return None if self.idle_ms is None else self.factor * self.idle_ms

    def step(self, latency_ms: Optional[float]) -> int:
        if self.phase == "baseline":
            self._learn(latency_ms)
        elif latency_ms is None:
            self.rate = self._clamp(self.rate * 4)
        elif self.target is None:
            self._pause()  # the guest started writing and we never saw its idle latency
        else:
            ratio = latency_ms / self.target if self.target > 0 else float("inf")
            self.rate = self._clamp(self.rate * self._gain(ratio))
        return self.rate

    def _learn(self, latency_ms: Optional[float]) -> None:
        self._seen += 1
        if latency_ms is not None:
            self._samples.append(latency_ms)
        if self._seen < self.baseline_intervals:
            return
        self.phase = "steer"
        if not self._samples:
            self.rate = self.ceiling
            return
        self.idle_ms = statistics.median(self._samples)
        over = self.target is not None and self.idle_ms >= self.target  # even with no copy
        self.rate = self.floor if over else self._clamp(self.start or self.ceiling // 64)

    def _pause(self) -> None:
        self.phase, self._seen, self._samples, self.rate = "baseline", 0, [], self.floor

    @staticmethod
    def _gain(ratio: float) -> float:
        """Rate multiplier for latency / target."""
        if ratio > 1.0:
            return max(0.5, min(0.9, 1.0 / ratio ** 2))  # latency grows faster than rate
        if ratio < 0.5:
            return 2.0
        if ratio < 0.8:
            return 1.25
        return 1.05 if ratio < 0.95 else 1.0

    def _clamp(self, rate: float) -> int:
        return int(max(self.floor, min(self.ceiling, rate)))
