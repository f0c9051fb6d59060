"""`tune --sweep`: time the resync of a scratch raid1 (loop devices on files in a folder of the
host's) under a few static sysctl settings and print the fastest. The host ends as it began:
the sysctls come back (HeldLimits: also after a kill -9, by the next sync or tune), the scratch
device, loop devices and files go; a rerun first removes what a killed sweep left.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from . import dmtables
from .dmstatus import parse_status
from .errors import DeviceError, PlanError
from .steering import SPEED_MAX, SPEED_MIN, HeldLimits
from .units import MIB, human

NAME = "x2k-sweep"  # not a name the tool's world reads as a VM's device
KERNEL_DEFAULTS = (1000, 200000)
SETTINGS = (KERNEL_DEFAULTS, (200000, 200000), (1000000, 1000000), (4000000, 4000000))
META = 4 * MIB
POLL = 0.02


@dataclass(frozen=True)
class Timing:
    low: int
    high: int
    seconds: float

    def label(self) -> str:
        if (self.low, self.high) == KERNEL_DEFAULTS:
            return f"min={self.low} max={self.high} (kernel defaults)"
        return f"min=max={self.high}"


def _sh(host, *argv: str) -> str:
    res = host.runner.run(list(argv), check=False, timeout=600)
    if res.rc != 0:
        raise DeviceError(argv[0], f"{' '.join(argv[:2])} on {host.name}: "
                                   f"{res.last_line(f'exit {res.rc}')}")
    return res.stdout.strip()


def _files(folder: str) -> dict[str, str]:
    return {r: os.path.join(folder, f"{NAME}-{r}") for r in ("m0", "src", "m1", "dst")}


def _remove(host, folder: str) -> None:
    """What this sweep (or a killed one) left: the device, its loops, its files."""
    host.dm_remove(NAME)
    files = _files(folder)
    for f in files.values():
        for line in host.runner.run(["losetup", "-j", f], check=False).stdout.splitlines():
            _sh(host, "losetup", "-d", line.split(":", 1)[0])
    _sh(host, "rm", "-f", *files.values())


def _loops(host, folder: str, size: int) -> dict[str, str]:
    out = {}
    for role, path in _files(folder).items():
        _sh(host, "truncate", "-s", str(META if role.startswith("m") else size), path)
        out[role] = _sh(host, "losetup", "-f", "--show", path)
    return out


def _time_one(host, dev: dict[str, str], size: int, timeout: float) -> float:
    table = dmtables.raid1_two_legs(size // 512, dev["m0"], dev["src"], dev["m1"], dev["dst"],
                                    rebuild=True, leg1_has_superblock=False)
    for role in ("m0", "m1"):  # a fresh array each time: no superblock from the last run
        _sh(host, "dd", "if=/dev/zero", f"of={dev[role]}", "bs=64K", f"count={META // 65536}",
            "status=none")
    start = time.monotonic()
    host.dm_create(NAME, table)
    try:
        while not parse_status(host.dm_status(NAME)).in_sync:
            if time.monotonic() - start > timeout:
                raise PlanError(f"the scratch resync did not finish within {timeout:.0f}s")
            time.sleep(POLL)
        return time.monotonic() - start
    finally:
        host.dm_remove(NAME)


def sweep(ctx, folder: str, size: int, settings=SETTINGS, timeout: float = 600.0) -> int:
    host = ctx.host
    if not hasattr(host, "runner") or not hasattr(host, "dev_root"):
        raise PlanError("tune --sweep times the real kernel: run it on the KVM host")
    what = (f"time a resync of a {human(size)} scratch raid1 ({NAME}: loop devices on files in "
            f"{folder}) at " + ", ".join(Timing(lo, hi, 0).label() for lo, hi in settings))
    if not ctx.opts.yes:
        ctx.say(f"# dry-run: nothing changed; with -y tune --sweep would {what}; then remove "
                f"them and put {SPEED_MIN}/{SPEED_MAX} back")
        return 0
    ctx.say(f"tune --sweep: {what}")
    ctx.ensure_lock()
    _remove(host, folder)
    results = []
    with HeldLimits(ctx) as held:
        try:
            dev = _loops(host, folder, size)
            for low, high in settings:
                held.set_rate(high, low)
                results.append(Timing(low, high, _time_one(host, dev, size, timeout)))
                ctx.say(f"  {results[-1].label():<40} {results[-1].seconds:7.2f} s")
        finally:
            _remove(host, folder)
    best = min(results, key=lambda t: t.seconds)
    ctx.say(f"best: {best.label()} ({best.seconds:.2f} s); to keep it: xen2kvm tune "
            f"--min {best.low} --max {best.high} -y (or sync --min-rate/--max-rate per array)")
    return 0
