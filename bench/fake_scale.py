"""The fake cluster's cost as it grows (issue 13).

1. Per-command cost, whole processes, median of N samples, on a 2-disk cluster (one XEN VM and
   one KVM VM, one disk each) and on a --big-disks cluster (the same pair plus other pairs in
   every phase of the lifecycle). Each sample runs on its own copy of the state folder; the copy
   is not timed. Goal: big <= 1.5 x small for each command.
2. The whole lifecycle in one process (cli.main) for each of --sizes VMs x 2 disks of 1 TiB,
   each size in a fresh child process: wall time and peak RSS. Goal: 1,000 VMs in <= 60 s and
   <= 300 MB.
3. The same lifecycle with every command its own process (10 and 100 VMs; 1,000 with --procs-big).

Every lifecycle ends by checking that each KVM VM is migrated: no `xen` tag on its volumes,
the `xen-*` clones and `x2km*` recovery volumes gone. Goals are printed, never asserted.

Run: .venv/bin/python bench/fake_scale.py [--quick] [--json]   (prints figures; not a test)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xen2kvm import cli  # noqa: E402

PROGRAM = str(Path(sys.executable).parent / "xen2kvm")
GOAL_RATIO, GOAL_SECONDS, GOAL_RSS_MB = 1.5, 60.0, 300.0
Run = Callable[[list], str]


def names(i: int, disks: int) -> tuple[str, str, list[str], list[str]]:
    """XEN VM, KVM VM, their disks (pair i)."""
    suffix = "abcdefgh"[:disks]
    return f"x{i}", f"k{i}", [f"xd{i}{s}" for s in suffix], [f"kd{i}{s}" for s in suffix]


def create(i: int, disks: int, size: str) -> list[list[str]]:
    xen, kvm, xds, kds = names(i, disks)
    return [["sim", "create-vm", xen, "--hypervisor", "xen",
             "--disk", ",".join(f"{d}:{size}" for d in xds)],
            ["sim", "create-vm", kvm, "--hypervisor", "kvm",
             "--disk", ",".join(f"{d}:{size}" for d in kds)]]


def migrate(i: int, disks: int) -> list[list[str]]:
    """The README's rehearsal after creation, one stage per entry (prefixes = phases)."""
    _, kvm, xds, kds = names(i, disks)
    return [*(["prepare", "-x", x, "-k", k, "-y"] for x, k in zip(xds, kds)),
            ["sim", "power", "on", kvm],
            ["sim", "write", kvm, kds[0], "20480", "4096", "--seed", "7"],
            ["sync", kvm, "-y"],
            ["sync", kvm, "--wait", "--interval", "3600", "-y"],
            ["sim", "power", "off", kvm],
            ["sim", "power", "on", kvm],
            ["sim", "power", "off", kvm],
            ["cleanup", kvm, "-y"]]


def in_process(state: str) -> Run:
    def run(args: list) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            rc = cli.main(["--backend", "fake", "--state", state, *args])
        if rc != 0:
            raise RuntimeError(f"xen2kvm {' '.join(args)}: exit {rc}")
        return out.getvalue()
    return run


def as_process(state: str) -> Run:
    def run(args: list) -> str:
        res = subprocess.run([PROGRAM, "--backend", "fake", "--state", state, *args],
                             capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"xen2kvm {' '.join(args)}: exit {res.returncode}: "
                               f"{res.stderr.strip()}")
        return res.stdout
    return run


def migrated(run: Run, vms: int, disks: int) -> bool:
    """Every KVM VM's disks in phase `migrated` or later, no clone or recovery volume left."""
    show = json.loads(run(["sim", "show", "--json"]))
    vols = volumes(show)
    for i in range(vms):
        _, _, xds, kds = names(i, disks)
        if any(k not in vols or "xen" in vols[k] for k in kds):
            return False
        gone = [f"xen-{x}" for x in xds] + [f"x2km{n}-{k}" for k in kds for n in (0, 1)]
        if any(g in vols for g in gone):
            return False
    return True


def volumes(show: dict) -> dict:
    """Volume name -> its tags, from `sim show --json`."""
    vols = show["volumes"]
    if isinstance(vols, dict):
        return {name: v.get("tags", {}) for name, v in vols.items()}
    return {v["name"]: v.get("tags", {}) for v in vols}


def lifecycle(run: Run, vms: int, disks: int, size: str) -> None:
    for i in range(vms):
        for args in create(i, disks, size) + migrate(i, disks):
            run(args)


def lifecycle_child(vms: int, procs: bool) -> dict:
    """One fleet size, in this process: wall time, peak RSS, and whether all ended migrated."""
    with tempfile.TemporaryDirectory() as d:
        run = (as_process if procs else in_process)(d)
        start = time.perf_counter()
        lifecycle(run, vms, 2, "1T")
        wall = time.perf_counter() - start
        ok = migrated(run, vms, 2)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"vms": vms, "disks": 2 * vms, "processes": procs, "seconds": round(wall, 3),
            "peak_rss_mib": round(rss, 1), "all_migrated": ok}


def lifecycle_fresh(vms: int, procs: bool) -> dict:
    """lifecycle_child in a fresh interpreter, so that peak RSS figures do not mix."""
    argv = [sys.executable, __file__, "--child", str(vms)] + (["--child-procs"] if procs else [])
    res = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


MEASURED = ("prepare", "sim power on", "sim write", "sync", "status --json")


def measured(i: int) -> list[list[str]]:
    """The commands timed on pair i, in lifecycle order (each needs the one before)."""
    _, kvm, xds, kds = names(i, 1)
    return [["prepare", "-x", xds[0], "-k", kds[0], "-y"], ["sim", "power", "on", kvm],
            ["sim", "write", kvm, kds[0], "20480", "4096", "--seed", "7"],
            ["sync", kvm, "-y"], ["status", "--json"]]


def cluster(state: str, disks: int) -> None:
    """Pair 0 (the target) freshly created; the other pairs spread over every lifecycle stage."""
    run = in_process(state)
    for i in range(max(disks // 2, 1)):
        stages = create(i, 1, "1T")
        rest = migrate(i, 1)
        for args in stages + rest[:(i * 7) % (len(rest) + 1) if i else 0]:
            run(args)


def samples(base: str, n: int) -> Iterator[list[float]]:
    """n runs of the measured commands, each on a fresh copy of the cluster (copy not timed)."""
    for _ in range(n):
        with tempfile.TemporaryDirectory() as d:
            state = str(Path(d) / "state")
            shutil.copytree(base, state)
            run, times = as_process(state), []
            for args in measured(0):
                start = time.perf_counter()
                run(args)
                times.append(time.perf_counter() - start)
            yield times


def per_command(n: int, big_disks: int) -> list[dict]:
    med = {}
    for disks in (2, big_disks):
        with tempfile.TemporaryDirectory() as base:
            cluster(base, disks)
            runs = list(samples(base, n))
        med[disks] = [statistics.median(col) for col in zip(*runs)]
    return [{"command": c, "small_s": round(s, 4), "big_s": round(b, 4),
             "ratio": round(b / s, 2), "pass": b / s <= GOAL_RATIO}
            for c, s, b in zip(MEASURED, med[2], med[big_disks])]


def report(res: dict) -> None:
    print(f"Per-command cost, whole processes, median of {res['samples']} "
          f"(2 disks vs {res['big_disks']} disks; goal ratio <= {GOAL_RATIO})")
    for r in res["per_command"]:
        print(f"  {r['command']:<14} {r['small_s']:8.3f} s {r['big_s']:8.3f} s "
              f"x{r['ratio']:<6} {'PASS' if r['pass'] else 'FAIL'}")
    for r in res["lifecycle"]:
        how = "separate processes" if r["processes"] else "one process"
        line = (f"  {r['vms']:>5} VMs x 2 disks of 1 TiB, {how}: {r['seconds']:.1f} s, "
                f"all migrated: {r['all_migrated']}")
        if not r["processes"]:
            line += f", peak RSS {r['peak_rss_mib']:.0f} MiB"
        if "pass" in r:
            line += f" -- goal <= {GOAL_SECONDS:.0f} s, <= {GOAL_RSS_MB:.0f} MB: " \
                    f"{'PASS' if r['pass'] else 'FAIL'}"
        print(line)


def goal(r: dict) -> dict:
    """The fleet goal applies to the 1,000-VM run in one process."""
    if r["vms"] >= 1000 and not r["processes"]:
        r["pass"] = r["seconds"] <= GOAL_SECONDS and r["peak_rss_mib"] * 1.048576 <= GOAL_RSS_MB
    return r


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="10,100,1000", help="fleet sizes in VMs (one process)")
    p.add_argument("--proc-sizes", default="10,100", help="fleet sizes as separate processes")
    p.add_argument("--procs-big", action="store_true", help="also 1,000 VMs as processes")
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--big-disks", type=int, default=2000)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-procs", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.quick:
        a.sizes, a.proc_sizes, a.samples, a.big_disks = "2", "1", 1, 8
    elif a.procs_big:
        a.proc_sizes += ",1000"
    return a


def main() -> None:
    a = parse()
    if a.child is not None:
        print(json.dumps(lifecycle_child(a.child, a.child_procs)))
        return
    res = {"samples": a.samples, "big_disks": a.big_disks,
           "per_command": per_command(a.samples, a.big_disks), "lifecycle": []}
    for sizes, procs in ((a.sizes, False), (a.proc_sizes, True)):
        for vms in (int(s) for s in sizes.split(",") if s):
            res["lifecycle"].append(goal(lifecycle_fresh(vms, procs)))
    res["all_migrated"] = all(r["all_migrated"] for r in res["lifecycle"])
    print(json.dumps(res, indent=1) if a.json else "", end="\n" if a.json else "")
    if not a.json:
        report(res)


if __name__ == "__main__":
    main()
