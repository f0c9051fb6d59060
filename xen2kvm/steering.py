"""The adaptive throttle on a host: the controller (throttle.py) steers the md resync sysctls from
the guests' write latency on their raid1 devices, and the operator's values come back.

Host-wide through `dev.raid.speed_limit_min/max` (min = max = the rate) rather than per array
through the table: a sysctl write takes effect at once, while a table reload suspends the
guest's device for every change. Arrays whose table fixes its own rate are not steered (md
prefers the table's rate) and are named.

The operator's values are written to a note beside the run lock before the first change and
removed after they are back: on a normal end, an error, Ctrl-C or SIGTERM (try/finally). After
a kill -9 the note survives and the next `sync` or `tune` plans the restore as ordinary steps
(so its dry-run shows it). The note lives in /run: a reboot clears it with the sysctls it
describes.
"""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import dataclass
from typing import Optional, Sequence

from . import naming as nm
from .actions import Action, Remove, Run
from .dmtables import parse_raid
from .plans import Plan
from .steps import Step, SysctlSet
from .throttle import Controller, IoCounters, stats_stop_argv, tail_ms, total

SPEED_MIN, SPEED_MAX = "dev.raid.speed_limit_min", "dev.raid.speed_limit_max"
NOTE = "speed-limits.json"


@dataclass(frozen=True)
class ForgetLimits(Step):
    """The operator's values are back: the record of them goes."""

    host: str
    path: str  # the note on that host (HostBackend.note_path)

    def actions(self) -> tuple[Action, ...]:
        return (Remove(self.path, f"on {self.host}: the record of the operator's resync limits"),)

    def apply(self, ctx) -> None:
        ctx.host.note_set(NOTE, None)


@dataclass(frozen=True)
class StopStats(Step):
    """The dm statistics regions the throttle read its latencies from go."""

    names: tuple[str, ...]

    def actions(self) -> tuple[Action, ...]:
        return (Run(stats_stop_argv(self.names),
                    note="each region '@stats_list xen2kvm' lists is deleted"),)

    def apply(self, ctx) -> None:
        ctx.host.dm_io_stop(list(self.names))


def restore_steps(current: dict[str, int], saved: dict[str, int]) -> list[Step]:
    """Back to `saved`, min never above max on the way."""
    order = (SPEED_MIN, SPEED_MAX) if saved[SPEED_MIN] <= current[SPEED_MAX] \
        else (SPEED_MAX, SPEED_MIN)
    return [SysctlSet(k, saved[k]) for k in order if current[k] != saved[k]]


def read_limits(host) -> dict[str, int]:
    return {k: host.sysctl_get(k) for k in (SPEED_MIN, SPEED_MAX)}


def leftover_plan(host) -> Plan:
    """What an adaptive run killed without its cleanup left: its note and its limits."""
    text = host.note_get(NOTE)
    if text is None:
        return Plan()
    saved = {k: int(v) for k, v in json.loads(text).items() if k in (SPEED_MIN, SPEED_MAX)}
    plan = Plan(restore_steps(read_limits(host), saved), [
        f"{host.name}: an adaptive sync was interrupted before it restored the resync limits; "
        f"back to the operator's {SPEED_MIN}={saved[SPEED_MIN]} {SPEED_MAX}={saved[SPEED_MAX]}"])
    ours = tuple(n for n in host.dm_tables() if (p := nm.parse_dm_name(n)) and not p[2])
    if ours:
        plan.add(StopStats(ours))
    plan.add(ForgetLimits(host.name, host.note_path(NOTE)))
    return plan


def unsteerable(w, vm: Optional[str]) -> list[str]:
    """The raid devices whose own table rate md prefers to the sysctl."""
    out = []
    for _, _, name in w.vm_devices(vm):
        table = parse_raid(w.dm[name])
        if table.rate("max_recovery_rate") or table.rate("min_recovery_rate"):
            out.append(name)
    return out


class HeldLimits:
    """`with HeldLimits(ctx):` the resync sysctls may change inside; the operator's come back."""

    def __init__(self, ctx):
        self.ctx, self.host = ctx, ctx.host
        self.saved: dict[str, int] = {}
        self._sigterm = None

    def __enter__(self):
        self.ctx.ensure_lock()  # a note of a live run must not be taken for a leftover
        self.saved = read_limits(self.host)
        self.host.note_set(NOTE, json.dumps(self.saved))
        if threading.current_thread() is threading.main_thread():
            self._sigterm = signal.signal(signal.SIGTERM, _interrupt)
        self.ctx.say(f"{self.host.name}: {SPEED_MIN}={self.saved[SPEED_MIN]} "
                     f"{SPEED_MAX}={self.saved[SPEED_MAX]} come back at the end")
        return self

    def __exit__(self, *exc) -> None:
        try:
            for step in restore_steps(read_limits(self.host), self.saved):
                step.apply(self.ctx)
            self.host.note_set(NOTE, None)
        finally:
            if self._sigterm is not None:
                signal.signal(signal.SIGTERM, self._sigterm)
        self.ctx.say(f"{self.host.name}: {SPEED_MIN}={self.saved[SPEED_MIN]} "
                     f"{SPEED_MAX}={self.saved[SPEED_MAX]} restored")

    def set_rate(self, rate: int, low: Optional[int] = None) -> None:
        want = {SPEED_MIN: rate if low is None else low, SPEED_MAX: rate}
        for step in restore_steps(read_limits(self.host), want):
            step.apply(self.ctx)


class Steering(HeldLimits):
    """The controller owns the limits inside the `with`."""

    def __init__(self, ctx, controller: Controller, stop: Optional[threading.Event] = None):
        super().__init__(ctx)
        self.ctl, self.stop = controller, stop
        self.last: dict[str, IoCounters] = {}
        self.watched: set[str] = set()
        self.slept = False  # an interval has passed since the last sample

    def __exit__(self, *exc) -> None:
        try:
            self.host.dm_io_stop(sorted(self.watched))
        finally:
            super().__exit__(*exc)

    def sample(self, devices: Sequence[str]) -> Optional[float]:
        """The writer-visible tail (p99 of the I/O latency over all the devices since the last
        call, from their dm statistics histograms; the mean write latency where a device has
        none, as in the fake). None: no writes."""
        self.watched.update(devices)
        now = self.host.dm_io(devices) if devices else {}
        before = total(self.last[n] for n in now if n in self.last)
        after = total(c for n, c in now.items() if n in self.last)
        self.last = now
        return tail_ms(before, after)

    def hold(self, devices: Sequence[str], seconds: float) -> None:
        """Learn the guest's own latency before the copy starts (or, when leg 1 is already in,
        with the copy held at the floor): the learning costs the copy no time, and the copy
        joins at the controller's next rate (its probe)."""
        self.sample(devices)
        self.set_rate(self.ctl.rate)
        while self.ctl.phase == "baseline":
            self._wait(seconds)
            self._tick(devices)
        self.slept = False  # the next interval starts when leg 1 joins, not now

    def run(self, devices: Sequence[str], seconds: float) -> None:
        """One control interval: sample, steer, let the interval pass."""
        if self.slept:
            self._tick(devices)
        else:
            self.sample(devices)
        self._wait(seconds)

    def _wait(self, seconds: float) -> None:
        if self.stop is not None and self.stop.is_set():
            raise KeyboardInterrupt("stopped")
        self.host.sleep(seconds)
        self.slept = True

    def _tick(self, devices: Sequence[str]) -> None:
        latency = self.sample(devices)
        old = self.ctl.rate
        rate = self.ctl.step(latency)
        if rate != old or self.ctl.phase == "baseline":
            self.set_rate(rate)
            shown = "-" if latency is None else f"{latency:.3f}"
            target = self.ctl.target
            self.ctx.say(f"throttle: {self.ctl.phase}: latency p99 {shown} ms (target "
                         f"{'-' if target is None else f'{target:.3f}'} ms): resync {rate} KiB/s")


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")
