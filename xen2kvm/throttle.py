"""The adaptive resync throttle's controller: pure, driven by one latency sample per interval.

Input: the guest's writer-visible tail over the last interval (p99 of the I/O latency from the
dm devices' statistics histograms; the mean write latency where there is none), or None when
the guest completed no write (nothing to protect then). Output: the resync rate (KiB/s per
disk) for the next interval.

It first learns the guest's own latency for a few intervals with the copy held at the floor
(before leg 1 joins, or with the copy all but paused), and aims at `factor` times that unless
the operator gave a target. Then it probes: a few intervals at full speed. If the copy at full
speed keeps the guest within the target, or costs it no more than the floor did (slowing
would buy nothing: on one CPU any copy costs a scheduler tick), the copy runs free. Only when
slowing demonstrably helps does it steer: multiplicative decrease in proportion to the
overshoot (a burst of guest load is felt within one interval), multiplicative increase while
well under the target (finishing fast is the other goal). A free copy under which the guest's
latency rises well past what the probe saw learns again; a steered copy held at the floor
that no longer beats full speed goes free.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Iterable, Optional

KERNEL_MIN_KIB = 1000  # the kernel's speed_limit_min default: our floor and "paused" rate
UNTHROTTLED_KIB = 4_000_000  # what the README measures as unthrottled


# The latency histogram of the dm statistics regions the throttle reads (`histogram:` bounds in
# ns with precise_timestamps): fine where guest writes live (tens of microseconds to a few ms),
# coarse above, where a tail is a tail whatever its exact height.
HISTOGRAM_US = (25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000,
                15000, 20000, 30000, 50000, 100000, 200000, 500000, 1000000)
STATS_ARGS = "2 precise_timestamps histogram:" + ",".join(str(u * 1000) for u in HISTOGRAM_US)
STATS_PROGRAM = "xen2kvm"  # the program id of this tool's dm statistics regions
# $1 = the region program, the rest: dm device names; removes each region of the program
# (devices already gone have none)
DM_IO_STOP = ('p=$1; shift; for n; do dmsetup message "$n" 0 "@stats_list $p" 2>/dev/null | '
              'sed "s/:.*//" | while read -r id; do '
              'dmsetup message "$n" 0 "@stats_delete $id"; done; done; true')


def stats_stop_argv(names) -> tuple[str, ...]:
    """The command that removes this tool's statistics regions of `names` (a host runs it under
    its dmsetup environment; the step that plans it prints it)."""
    return ("sh", "-c", DM_IO_STOP, "sh", STATS_PROGRAM, *names)
TAIL = 0.99  # the writer-visible tail the throttle steers on


@dataclass(frozen=True)
class IoCounters:
    """Cumulative write counters of a block device (/sys/block/dm-N/stat fields 5 and 8), and
    where the device has one, the dm statistics latency histogram of all its I/Os."""

    writes: int = 0
    write_ms: float = 0.0
    histogram: tuple[int, ...] = ()



def total(counters: Iterable[IoCounters]) -> IoCounters:
    """The counters of several devices as one (a histogram only when each has one)."""
    cs = list(counters)
    hists = [c.histogram for c in cs]
    same = bool(cs) and all(hists) and len({len(h) for h in hists}) == 1
    return IoCounters(sum(c.writes for c in cs), sum(c.write_ms for c in cs),
                      tuple(map(sum, zip(*hists))) if same else ())


def parse_stat(text: str) -> IoCounters:
    """The kernel's block stat line (Documentation/block/stat.rst)."""
    f = text.split()
    if len(f) < 8:
        raise ValueError(f"not a block stat line: {text!r}")
    return IoCounters(int(f[4]), float(f[7]))


def parse_dm_stats(line: str) -> IoCounters:
    """A `@stats_print` line of a dm statistics region made with `precise_timestamps`:
    `start+length`, the block stat fields with times in nanoseconds, and with `histogram:` the
    counts per latency bucket as `a:b:...`. The block stat file of a bio-based dm device counts
    whole jiffies per I/O, far too coarse for writes that take microseconds; these are exact."""
    f = line.split()
    if len(f) < 9 or "+" not in f[0]:
        raise ValueError(f"not a dm statistics line: {line!r}")
    hist = tuple(int(n) for n in f[-1].split(":")) if ":" in f[-1] else ()
    if hist and len(hist) != len(HISTOGRAM_US) + 1:
        hist = ()  # a region made with other bounds (by an older run): the mean only
    return IoCounters(int(f[5]), int(f[8]) / 1e6, hist)


def mean_write_ms(before: IoCounters, after: IoCounters) -> Optional[float]:
    """Mean latency of the writes completed between two readings; None when there were none.
    A device that was recreated in between (counters went back) gives no sample either."""
    n = after.writes - before.writes
    if n <= 0 or after.write_ms < before.write_ms:
        return None
    return (after.write_ms - before.write_ms) / n


def tail_ms(before: IoCounters, after: IoCounters, q: float = TAIL) -> Optional[float]:
    """The q-quantile of the latency of the I/Os between two readings, interpolated inside its
    histogram bucket (the open top bucket counts as its lower bound); the mean write latency
    where there is no histogram. None when no write completed."""
    mean = mean_write_ms(before, after)
    if mean is None or len(after.histogram) != len(before.histogram) or not after.histogram:
        return mean
    counts = [a - b for a, b in zip(after.histogram, before.histogram)]
    if min(counts) < 0 or not sum(counts):
        return mean
    rank, seen = q * sum(counts), 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            lo = HISTOGRAM_US[i - 1] if i else 0
            hi = HISTOGRAM_US[i] if i < len(HISTOGRAM_US) else lo
            return (lo + (hi - lo) * (rank - seen) / n) / 1000
        seen += n
    return HISTOGRAM_US[-1] / 1000


@dataclass
class Controller:
    """Phases: "baseline" (the floor: the guest's own latency), "probe" (the ceiling: what a
    full-speed copy costs it), then "free" (the ceiling: the copy does not hurt the guest, or
    slowing it would not help) or "steer" (multiplicative steps toward the target)."""

    target_ms: Optional[float] = None  # None: factor x the measured idle latency
    floor: int = KERNEL_MIN_KIB
    ceiling: int = UNTHROTTLED_KIB
    factor: float = 1.5
    baseline_intervals: int = 3
    probe_intervals: int = 2
    helps: float = 1.5  # slowing "helps" when the floor's latency is this much below full speed's
    start: Optional[int] = None  # first steered rate (default: 1/64 of the ceiling)
    rate: int = 0
    phase: str = "baseline"
    idle_ms: Optional[float] = None  # the guest's own latency, learnt first (no copy yet)
    floor_ms: Optional[float] = None  # its latency at the floor, and at full speed, when the
    full_ms: Optional[float] = None  # throttle last learnt them
    _samples: list[float] = field(default_factory=list)
    _seen: int = 0
    _over: int = 0  # consecutive intervals over the bar of the current phase

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
        if self.phase in ("baseline", "probe"):
            self._learn(latency_ms)
        elif latency_ms is None:
            self._over, self.rate = 0, self._clamp(self.rate * 4)
        elif self.target is None:
            self._restart()  # the guest started writing and we never saw its idle latency
        elif self.phase == "free":
            self._free(latency_ms)
        else:
            self._steer(latency_ms)
        return self.rate

    def _learn(self, latency_ms: Optional[float]) -> None:
        self._seen += 1
        if latency_ms is not None:
            self._samples.append(latency_ms)
        if self._seen < (self.baseline_intervals if self.phase == "baseline"
                         else self.probe_intervals):
            return
        seen = statistics.median(self._samples) if self._samples else None
        self._samples, self._seen = [], 0
        if self.phase == "baseline":
            self.floor_ms = seen
            if self.idle_ms is None:
                self.idle_ms = seen
            self.phase, self.rate = "probe", self.ceiling
            if seen is not None and self.target is not None and seen >= self.target:
                self.phase, self.rate = "steer", self.floor  # missed even with no copy
        else:
            self.full_ms = seen
            self._decide()

    def _decide(self) -> None:
        """After a probe: full speed unless it hurts the guest and slowing demonstrably helps."""
        full, low, target = self.full_ms, self.floor_ms, self.target
        if full is None or low is None or target is None or full <= target \
                or full < self.helps * low:
            self.phase, self.rate = "free", self.ceiling
            return
        self.phase, self.rate = "steer", self._clamp(self.start or self.ceiling // 64)

    def _free(self, latency_ms: float) -> None:
        """Full speed until the guest's latency is well over what the probe saw (its load
        changed): then learn again."""
        bar = max(self.target or 0.0, self.full_ms or 0.0) * self.helps
        self._over = self._over + 1 if latency_ms > bar else 0
        if self._over >= 2:
            self._restart()

    def _steer(self, latency_ms: float) -> None:
        target = self.target or 0.0
        ratio = latency_ms / target if target > 0 else float("inf")
        self.rate = self._clamp(self.rate * self._gain(ratio))
        # held at the floor and still over the target: if the floor no longer beats full speed
        # by `helps`, slowing buys the guest nothing and only delays the copy
        stuck = self.rate == self.floor and ratio > 1.0
        self._over = self._over + 1 if stuck else 0
        if self._over >= self.baseline_intervals and self.full_ms is not None \
                and self.helps * latency_ms > self.full_ms:
            self.phase, self._over, self.rate = "free", 0, self.ceiling

    def _restart(self) -> None:
        self.phase, self._seen, self._samples, self._over = "baseline", 0, [], 0
        self.rate = self.floor

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
