"""What a running guest pays for the resync, and what the adaptive throttle saves it (kernel lab).

A guest writer (4 KiB O_DIRECT random writes at a fixed rate, its own latency per write, a
separate process) writes through a raid1 device while leg 1 (a loop device on tmpfs) is
rebuilt from leg 0. Runs: idle (no resync), every static setting `tune --sweep` tries (the
kernel defaults and min = max = 200 MB/s, 1 GB/s, 4 GB/s = "unthrottled"), the copy held at a
few rates for HOLD_S seconds ("held N": what slowing buys the writer, without waiting for a
copy at 1 MB/s to end), and adaptive (the tool's Steering + Controller, the code path of
`sync --wait --adaptive`). The writer's p50/p99 count the writes completed while the copy ran;
"dm p99" is the same window's p99 from the array's dm statistics histogram (what the throttle
steers on); "lag p99" is how late the writer started its writes (it was not scheduled: the copy
or the host took the lab's one CPU). The runs of each repetition are interleaved, in an order
rotated per repetition, and each prints the host's load average (the lab's own is its kernel's).
`tune --sweep` runs first, on its own scratch.

From the host (root): .venv/bin/python bench/lab_adaptive.py [--runs 5] [--size-mib 1024]
(it boots the lab itself). Not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

from xen2kvm import dmtables, sweep
from xen2kvm.backends.storpool.host import LocalHost
from xen2kvm.dmstatus import parse_status
from xen2kvm.process import Runner
from xen2kvm.steering import Steering
from xen2kvm.testing import lab
from xen2kvm.throttle import STATS_ARGS, Controller, IoCounters, parse_dm_stats, tail_ms

MIB = 1 << 20
DIR = "/run/bench"
STATIC = {"kernel defaults": sweep.KERNEL_DEFAULTS, "min=max=200000": (200000, 200000),
          "min=max=1000000": (1000000, 1000000), "unthrottled 4 GB/s": (4000000, 4000000)}
UNTHROTTLED = "unthrottled 4 GB/s"
HELD = {f"held {r}": ("held", r, r) for r in (1000, 20000, 200000)}  # p99 at a rate, HOLD_S
FACTOR = [Controller().factor]  # the target: this x the guest's latency at the floor
RECORD = struct.Struct("ddd")  # (monotonic completion time, latency s, start lag s) per write
HOSTLOAD = "/run/out/hostload"  # the host's load average, written there by the outer process
LEARNT: list[float] = []  # seconds each adaptive run learnt the guest's latency before the copy
JOINED = [IoCounters()]  # the bench's dm statistics when the run's copy began
HOLD_S = 3.0  # how long a "held" run keeps the copy at its rate


def sh(*argv: str, input: str | None = None) -> str:
    return subprocess.run(argv, input=input, capture_output=True, text=True, check=True).stdout


# the guest writer (its own process: the bench's polling must not share its interpreter) ----
def writer(dev: str, iops: float, out: str) -> None:
    import mmap

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    buf = mmap.mmap(-1, 4096)
    buf.write(os.urandom(4096))
    blocks = os.open(dev, os.O_RDONLY)
    nblocks = os.lseek(blocks, 0, os.SEEK_END) // 4096
    os.close(blocks)
    fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
    open(out + ".ready", "w").close()
    rnd, records = random.Random(1), bytearray()
    start, i = time.monotonic(), 0
    while not stop:
        due = start + i / iops
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        t0 = time.monotonic()
        os.pwritev(fd, [buf], rnd.randrange(nblocks) * 4096)
        t1 = time.monotonic()
        records += RECORD.pack(t1, t1 - t0, max(0.0, t0 - due))
        i += 1
    with open(out, "wb") as f:
        f.write(records)


class Writer:
    def __init__(self, dev: str, iops: float):
        self.out = f"{DIR}/writer.bin"
        for f in (self.out, self.out + ".ready"):
            if os.path.exists(f):
                os.unlink(f)
        self.proc = subprocess.Popen([sys.executable, __file__, "--writer", dev, str(iops),
                                      self.out])
        while not os.path.exists(self.out + ".ready"):
            time.sleep(0.02)
        time.sleep(0.3)  # writing at its pace

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        with open(self.out, "rb") as f:
            self.records = list(RECORD.iter_unpack(f.read()))

    def window(self, lo: float, hi: float) -> tuple[float, float, int]:
        """p50, p99 (ms) and count of the writes completed within [lo, hi]."""
        lats = sorted(lat * 1000 for t, lat, _ in self.records if lo <= t <= hi)
        q = statistics.quantiles(lats, n=100, method="inclusive")
        return q[49], q[98], len(lats)

    def lag(self, lo: float, hi: float) -> float:
        """p99 of how late the writer started its writes (ms): the writer itself starved of
        CPU (by the copy in the lab's one CPU, or by the host under the lab) rather than the
        device slow."""
        lags = [lag * 1000 for t, _, lag in self.records if lo <= t <= hi]
        return statistics.quantiles(lags, n=100, method="inclusive")[98]


# the devices --------------------------------------------------------------------------------
def loop(path: str, size: int) -> str:
    with open(path, "wb") as f:
        f.truncate(size)
    return sh("losetup", "-f", "--show", path).strip()


def set_limits(lo: int, hi: int) -> None:
    for key, value in (("max", 4000000), ("min", lo), ("max", hi)):
        with open(f"/proc/sys/dev/raid/speed_limit_{key}", "w") as f:
            f.write(str(value))


def in_sync() -> bool:
    return parse_status(sh("dmsetup", "status", "b")).in_sync


@dataclass
class Run:
    p50: float
    p99: float
    writes: int
    seconds: Optional[float]  # the resync's; None when the copy did not (have to) finish
    lag: float  # p99 of the writer's start lag (ms)
    seen: Optional[float]  # the p99 the throttle sees: the dm statistics histogram's (ms)
    load: str  # the host's load average when the run began
    target: Optional[float] = None  # the adaptive run's latency target (ms)


def host_load() -> str:
    try:
        with open(HOSTLOAD) as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def one(dev: dict, total: int, iops: float, limits, interval: float) -> Run:
    """One run: idle (one leg, no copy), a copy at static limits to its end, a copy held at
    one rate for HOLD_S seconds ("held N"), or the adaptive steering to its end."""
    load = host_load()
    for m in ("m0", "m1"):
        sh("dd", "if=/dev/zero", f"of={dev[m]}", "bs=1M", "count=4", "oflag=direct")
    set_limits(*sweep.KERNEL_DEFAULTS)
    sh("dmsetup", "create", "b", input=dmtables.raid1_one_leg(total, dev["m0"], dev["src"]))
    sh("dmsetup", "message", "b", "0", f"@stats_create - /1 {STATS_ARGS} bench")
    w = Writer("/dev/mapper/b", iops)
    try:
        two = dmtables.raid1_two_legs(total, dev["m0"], dev["src"], dev["m1"], dev["dst"],
                                      rebuild=True, leg1_has_superblock=False) + "\n"
        if limits == "adaptive":
            t0, t1, target = _adaptive(two, interval)
        elif limits == "idle":
            t0, target = time.monotonic(), None
            JOINED[0] = dm_seen()
            time.sleep(HOLD_S)
            t1 = time.monotonic()
        else:
            t0, t1, target = _static(two, limits)
        done = None if limits == "idle" or limits[0] == "held" else t1 - t0
        seen = tail_ms(JOINED[0], dm_seen())
        w.stop()
        return Run(*w.window(t0, t1), done, w.lag(t0, t1), seen, load, target)
    finally:
        if w.proc.poll() is None:
            w.proc.kill()
        sh("dmsetup", "remove", "b")
        set_limits(*sweep.KERNEL_DEFAULTS)


def _static(two: str, limits) -> tuple[float, float, None]:
    held = limits[0] == "held"
    set_limits(*(limits[1:] if held else limits))
    t0 = _join(two)
    while not in_sync() and not (held and time.monotonic() - t0 >= HOLD_S):
        time.sleep(0.02)
    return t0, time.monotonic(), None


def dm_seen() -> IoCounters:
    """The bench's own dm statistics region on the array (the throttle removes its own)."""
    return parse_dm_stats(sh("dmsetup", "message", "b", "0", "@stats_print 0").splitlines()[0])


def _join(two: str) -> float:
    sh("dmsetup", "reload", "b", input=two)
    t0 = time.monotonic()
    sh("dmsetup", "suspend", "b")
    sh("dmsetup", "resume", "b")
    JOINED[0] = dm_seen()
    return t0


def _adaptive(two: str, interval: float) -> tuple[float, float, Optional[float]]:
    said: list[str] = []
    ctx = SimpleNamespace(host=LocalHost("lab", Runner()), say=said.append,
                          ensure_lock=lambda: None)
    with Steering(ctx, Controller(factor=FACTOR[0])) as steer:
        learn = time.monotonic()
        steer.hold(["b"], interval)  # as sync --adaptive: the guest's own latency first
        t0 = _join(two)
        LEARNT.append(t0 - learn)
        steer.run(["b"], 0)  # the first interval starts as leg 1 joins
        next_step = t0 + interval
        while not in_sync():
            if time.monotonic() >= next_step:
                steer.run(["b"], 0)
                next_step += interval
            time.sleep(0.02)
        t1 = time.monotonic()
    steps = [line.split("throttle: ", 1)[1] for line in said if line.startswith("throttle:")]
    print("  adaptive:", "; ".join(steps))
    return t0, t1, steer.ctl.target


# the whole bench ----------------------------------------------------------------------------
def sweep_best(size_mib: int) -> tuple[str, str]:
    os.makedirs("/run/sweep", exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", f"size={2 * size_mib + 64}m", "tmpfs", "/run/sweep")
    conf = "/run/sweep.conf"  # tune reads no API, but the backend wants a configuration
    with open(conf, "w") as f:
        f.write("SP_API_HTTP_HOST=127.0.0.1\nSP_API_HTTP_PORT=9\nSP_AUTH_TOKEN=x\n\n"
                "[lab]\nSP_OURID=1\n")
    env = {**os.environ, "XEN2KVM_STORPOOL_CONF": conf}
    out = subprocess.run([sys.executable, "-m", "xen2kvm.cli", "--host", "lab", "tune",
                          "--sweep", "--scratch", "/run/sweep", "--size", f"{size_mib}M", "-y"],
                         capture_output=True, text=True, env=env, check=True).stdout
    sh("umount", "/run/sweep")
    print(out, end="")
    best = next(line for line in out.splitlines() if line.startswith("best: "))
    label = best.split()[1]
    name = next(k for k, (lo, hi) in STATIC.items() if label == sweep.Timing(lo, hi, 0)
                .label().split()[0])
    return name, out


def setup(size_mib: int) -> dict:
    os.makedirs(DIR, exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", f"size={2 * size_mib + 64}m", "tmpfs", DIR)
    dev = {"src": loop(f"{DIR}/src", size_mib * MIB), "dst": loop(f"{DIR}/dst", size_mib * MIB),
           "m0": loop(f"{DIR}/m0", 4 * MIB), "m1": loop(f"{DIR}/m1", 4 * MIB)}
    sh("dd", "if=/dev/urandom", f"of={dev['src']}", "bs=1M", f"count={size_mib}", "oflag=direct")
    sh("dd", f"if={dev['src']}", f"of={dev['dst']}", "bs=1M", "oflag=direct")  # allocate pages
    return dev


def _med(runs: list, field: str) -> Optional[float]:
    vals = [getattr(r, field) for r in runs]
    return None if vals[0] is None else statistics.median(vals)


def report(results: dict, best: str) -> None:
    print(f"\n{'run':<22} {'p50 ms':>7} {'p99 ms':>7} {'p99 range':>13} {'dm p99':>7} "
          f"{'lag p99':>8} {'resync s':>9}  (medians of {len(results['idle'])})")
    for name, runs in results.items():
        secs = _med(runs, "seconds")
        p99s = [r.p99 for r in runs]
        print(f"{name:<22} {_med(runs, 'p50'):7.3f} {_med(runs, 'p99'):7.3f} "
              f"{min(p99s):6.2f}-{max(p99s):6.2f} {_med(runs, 'seen'):7.3f} "
              f"{_med(runs, 'lag'):8.3f} "
              f"{'-' if secs is None else f'{secs:9.2f}'}")
    if not {"idle", "adaptive", UNTHROTTLED} <= set(results):
        return
    idle, unthr, adap = (_med(results[k], "p99") for k in ("idle", UNTHROTTLED, "adaptive"))
    a_s, u_s = _med(results["adaptive"], "seconds"), _med(results[UNTHROTTLED], "seconds")
    print(f"\nadaptive: p99 {adap / idle:.2f}x idle p99 (goal <= 2); resync {a_s / u_s:.2f}x "
          f"unthrottled (goal <= 1.5); targets (ms) "
          + ", ".join(f"{r.target:.3f}" for r in results["adaptive"] if r.target))
    learnt = statistics.median(LEARNT)
    print(f"adaptive with its {learnt:.2f} s of learning before the copy: resync "
          f"{(a_s + learnt) / u_s:.2f}x unthrottled")
    print(f"unthrottled: p99 {unthr / idle:.2f}x idle p99")
    statics = [k for k in STATIC if k in results]
    if best and best in results and statics:
        fastest = min(statics, key=lambda k: _med(results[k], "seconds"))
        b, f = _med(results[best], "seconds"), _med(results[fastest], "seconds")
        print(f"tune --sweep best: {best}, {b:.2f} s; fastest static in the bench: {fastest}, "
              f"{f:.2f} s; ratio {b / f:.2f} (goal <= 1.10)")


def in_lab(args) -> int:
    best = "" if args.no_sweep else sweep_best(args.size_mib)[0]
    dev = setup(args.size_mib)
    total = args.size_mib * MIB // 512
    kinds = {"idle": "idle", **STATIC, **HELD, "adaptive": "adaptive"}
    if args.only:
        kinds = {k: v for k, v in kinds.items() if k in args.only.split(",")}
    results: dict = {k: [] for k in kinds}
    names = list(kinds)
    for i in range(args.runs):  # interleaved, the order rotated: each kind sees the same load
        if args.max_load:
            quiet(args.max_load)
        for name in names[i % len(names):] + names[:i % len(names)]:
            r = one(dev, total, args.iops, kinds[name], args.interval)
            results[name].append(r)
            print(f"run {i + 1} {name:<22} p50 {r.p50:.3f} p99 {r.p99:.3f} ms (dm p99 "
                  f"{r.seen:.3f}), {r.writes} writes, lag p99 {r.lag:.3f} ms"
                  + (f", resync {r.seconds:.2f} s" if r.seconds else "")
                  + f", host load {r.load}", flush=True)
    report(results, best)
    return 0


def quiet(most: float, patience: float = 300.0) -> None:
    """Wait (a while) for the shared host's 1-minute load to fall under `most`."""
    start = time.monotonic()
    while time.monotonic() - start < patience:
        try:
            if float(host_load().split()[0]) < most:
                return
        except ValueError:
            return  # no host load to read: nothing to wait for
        time.sleep(5)
    print(f"  the host's load stayed over {most} for {patience:.0f} s: measuring anyway")


def watch_load(out: str, stop: threading.Event) -> None:
    """The lab's own load average is its kernel's: the host's goes to a file it can read."""
    while not stop.is_set():
        with open(f"{out}/hostload.tmp", "w") as f:
            f.write(" ".join(f"{x:.2f}" for x in os.getloadavg()))
        os.replace(f"{out}/hostload.tmp", f"{out}/hostload")
        stop.wait(1.0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--iops", type=float, default=500.0)
    p.add_argument("--interval", type=float, default=0.1, help="the throttle's control interval")
    p.add_argument("--factor", type=float, default=FACTOR[0],
                   help="latency target as a multiple of the guest's own (sync's default)")
    p.add_argument("--only", help="comma-separated runs (names as printed), e.g. idle,adaptive")
    p.add_argument("--no-sweep", action="store_true", help="skip tune --sweep")
    p.add_argument("--max-load", type=float,
                   help="before each repetition, wait up to 5 min for the host's load to fall "
                        "under this")
    p.add_argument("--writer", nargs=3, metavar=("DEV", "IOPS", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.writer:
        writer(args.writer[0], float(args.writer[1]), args.writer[2])
        return 0
    FACTOR[0] = args.factor
    if lab.have_dm():
        return in_lab(args)
    out, stop = tempfile.mkdtemp(prefix="lab-adaptive-"), threading.Event()
    threading.Thread(target=watch_load, args=(out, stop), daemon=True).start()
    print(f"host load before: {os.getloadavg()}", flush=True)
    rc = lab.run([sys.executable, *sys.argv], outdir=Path(out), mem="3G", timeout=3600)
    stop.set()
    print(f"host load after: {os.getloadavg()}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
