"""Resync throughput of dm-raid against a dd copy between the same loop devices (kernel lab).

Run from the host (root):  .venv/bin/xen2kvm-lab --mem 3G -- .venv/bin/python bench/lab_resync.py
Prints a table of ratios (dm-raid rebuild time / dd time); not a test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from xen2kvm import dmtables
from xen2kvm.dmstatus import parse_status
from xen2kvm.testing import lab

MIB = 1 << 20


def sh(*argv: str, input: str | None = None) -> str:
    return subprocess.run(argv, input=input, capture_output=True, text=True, check=True).stdout


def loop(path: str, size: int) -> str:
    with open(path, "wb") as f:
        f.truncate(size)
    return sh("losetup", "-f", "--show", path).strip()


def set_limits(lo: int, hi: int) -> None:
    for key, value in (("min", lo), ("max", hi)):
        with open(f"/proc/sys/dev/raid/speed_limit_{key}", "w") as f:
            f.write(str(value))


def one(size_mib: int, tuned: str) -> tuple[float, float]:
    d = f"/run/bench{size_mib}{tuned}"
    os.makedirs(d, exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", f"size={2 * size_mib + 64}m", "tmpfs", d)
    try:
        src, dst = loop(f"{d}/src", size_mib * MIB), loop(f"{d}/dst", size_mib * MIB)
        m0, m1 = loop(f"{d}/m0", 4 * MIB), loop(f"{d}/m1", 4 * MIB)
        sh("dd", "if=/dev/urandom", f"of={src}", "bs=1M", f"count={size_mib}", "oflag=direct")
        dd = float("inf")
        for _ in range(2):  # the first pass also allocates the target's tmpfs pages
            t0 = time.monotonic()
            sh("dd", f"if={src}", f"of={dst}", "bs=1M", "iflag=direct", "oflag=direct")
            dd = min(dd, time.monotonic() - t0)
        sh("dd", "if=/dev/zero", f"of={dst}", "bs=1M", f"count={size_mib}", "oflag=direct")
        total = size_mib * MIB // 512
        rates = dmtables.Rates(max_kib=4_000_000, min_kib=4_000_000) if tuned == "table" \
            else dmtables.Rates()
        set_limits(4_000_000, 4_000_000) if tuned == "sysctl" else set_limits(1000, 200000)
        sh("dmsetup", "create", "b", input=dmtables.raid1_one_leg(total, m0, src) + "\n")
        t0 = time.monotonic()
        two = dmtables.raid1_two_legs(total, m0, src, m1, dst, rebuild=True,
                                      leg1_has_superblock=False, rates=rates)
        sh("dmsetup", "reload", "b", input=two + "\n")
        sh("dmsetup", "suspend", "b")
        sh("dmsetup", "resume", "b")
        while not parse_status(sh("dmsetup", "status", "b")).in_sync:
            time.sleep(0.02)
        rebuild = time.monotonic() - t0
        sh("dmsetup", "remove", "b")
        for dev in (src, dst, m0, m1):
            sh("losetup", "-d", dev)
        return dd, rebuild
    finally:
        set_limits(1000, 200000)
        sh("umount", d)


def main() -> int:
    if not lab.have_dm():
        print("run inside the kernel lab: xen2kvm-lab --mem 3G -- python bench/lab_resync.py")
        return 2
    print(f"{'size':>8} {'tuning':<22} {'dd s':>7} {'resync s':>9} {'ratio':>6}")
    for size in (256, 1024):
        for tuned, label in (("none", "kernel defaults"), ("sysctl", "speed_limit 4 GB/s"),
                             ("table", "min/max_recovery_rate")):
            dd, rebuild = one(size, tuned)
            print(f"{size:>5}MiB {label:<22} {dd:7.2f} {rebuild:9.2f} {rebuild / dd:6.2f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
