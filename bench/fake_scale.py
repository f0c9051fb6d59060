"""What a command on the fake costs as the cluster grows (issue 13). Prints:

1. each lifecycle command's time as a whole process (median of --samples) on a 2-disk
   cluster and on a --big-disks cluster, and their ratio (goal: at most 1.5);
2. the whole lifecycle of N VMs x 2 disks of 1 TiB in one process, each N in a child process
   of its own: time and peak RSS (goal for 1,000 VMs: 60 s and 300 MB);
3. the same lifecycle with every command a process of its own (--processes).

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
from typing import Callable

from xen2kvm import cli

GOAL_RATIO, GOAL_SECONDS, GOAL_RSS_MB = 1.5, 60.0, 300
XEN2KVM = [str(Path(sys.executable).with_name("xen2kvm"))]


def in_process(state: Path) -> Callable[..., None]:
    """A command through cli.main in this process, its output dropped."""
    def run(*args: str) -> None:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(["--backend", "fake", "--state", str(state), *args])
        if rc != 0:
            raise SystemExit(f"{' '.join(args)}: exit {rc}: {err.getvalue().strip()}")
    return run


def as_process(state: Path) -> Callable[..., float]:
    """A command as a process of its own; returns its wall time."""
    def run(*args: str) -> float:
        t0 = time.monotonic()
        done = subprocess.run([*XEN2KVM, "--backend", "fake", "--state", str(state), *args],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
        return time.monotonic() - t0
    return run


def create(run, i: int, disks: int = 2, size: str = "1T") -> None:
    """XEN VM x<i> and its KVM shell k<i>, `disks` disks each (d0, d1, … of the VM)."""
    for kind, hv in (("x", "xen"), ("k", "kvm")):
        spec = ",".join(f"{kind}{i}d{j}:{size}" for j in range(disks))
        run("sim", "create-vm", f"{kind}{i}", "--hypervisor", hv, "--disk", spec)


def migrate(run, i: int, disks: int = 2, upto: str = "cleanup") -> None:
    """One VM through the procedure: prepare each disk, power on, sync, let the resync
    finish, sync again (retag), power off (the release hook), cleanup."""
    steps = [*[("prepare", "-x", f"x{i}d{j}", "-k", f"k{i}d{j}", "-y") for j in range(disks)],
             ("sim", "power", "on", f"k{i}"), ("sync", f"k{i}", "-y"),
             ("sim", "tick", "6000"), ("sync", f"k{i}", "-y"),
             ("sim", "power", "off", f"k{i}"), ("cleanup", f"k{i}", "-y")]
    for step in steps:
        run(*step)
        if step[0] == upto or step[-1] == upto:
            return


# 1. per-command cost -------------------------------------------------------------------------
COMMANDS = {
    "prepare": lambda i: ("prepare", "-x", f"x{i}d0", "-k", f"k{i}d0", "-y"),
    "sim power on": lambda i: ("sim", "power", "on", f"k{i}"),
    "sim write": lambda i: ("sim", "write", f"k{i}", f"k{i}d0", "1M", "64K", "--seed", "5"),
    "sync": lambda i: ("sync", f"k{i}", "-y"),
    "status --json": lambda i: ("status", "--json"),
}


def build(state: Path, pairs: int) -> None:
    """`pairs` XEN+KVM pairs of one 1 TiB disk each; the last one is the measured one, the
    others spread over the phases: a quarter each done, running and syncing, prepared,
    untouched."""
    run = in_process(state)
    run("sim", "capacity", "100000T")  # room for a quarter of the VMs migrating at once
    for i in range(pairs):
        create(run, i, disks=1)
    for i in range(pairs - 1):
        upto = ("cleanup", "sync", "prepare", None)[i % 4]
        if upto:
            migrate(run, i, disks=1, upto=upto)


def per_command(work: Path, sizes: tuple[int, ...], samples: int) -> dict[int, dict]:
    """Median time of each command per cluster size; the sizes' samples alternate, so that
    whatever else the machine does weighs on both alike."""
    for disks in sizes:
        build(work / f"cluster-{disks}", disks // 2)
    times = {d: {name: [] for name in COMMANDS} for d in sizes}
    for k in range(samples):
        for disks in sizes:
            state = work / f"sample-{disks}-{k}"
            shutil.copytree(work / f"cluster-{disks}", state)  # untimed: the same start
            run = as_process(state)
            for name, argv in COMMANDS.items():
                times[disks][name].append(run(*argv(disks // 2 - 1)))
            shutil.rmtree(state)
    return {d: {name: statistics.median(t) for name, t in times[d].items()} for d in sizes}


# 2. and 3. the lifecycle ---------------------------------------------------------------------
def lifecycle(state: Path, vms: int, run) -> dict:
    t0 = time.monotonic()
    for i in range(vms):
        create(run, i)
    for i in range(vms):
        migrate(run, i)
    wall = time.monotonic() - t0
    cleaned = sum(d["phase"] == "cleaned" for d in listing(state, "status"))
    return {"vms": vms, "seconds": round(wall, 2), "disks_migrated": cleaned,
            "all_migrated": cleaned == 2 * vms and leftovers(state, vms) == []}


def listing(state: Path, *command: str) -> list:
    done = subprocess.run([*XEN2KVM, "--backend", "fake", "--state", str(state), *command,
                           "--json"], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def leftovers(state: Path, vms: int) -> list[str]:
    """What the fake's own listing (not status's phases) shows unfinished: a KVM disk missing
    or still tagged `xen`, a XEN clone or a metadata volume not deleted."""
    tags = {v["name"]: v["tags"] for v in listing(state, "sim", "show")["volumes"]}
    kvm = [f"k{i}d{j}" for i in range(vms) for j in range(2)]
    gone = [f"{p}{k}" for k in kvm for p in ("x2km0-", "x2km1-")]
    gone += [f"xen-x{i}d{j}" for i in range(vms) for j in range(2)]
    return [k for k in kvm if k not in tags or "xen" in tags[k]] + [g for g in gone if g in tags]


def lifecycle_child(vms: int) -> None:
    """Runs in a child process of its own, so that peak RSS is this lifecycle's."""
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "cluster"
        result = lifecycle(state, vms, in_process(state))
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


def one_process(vms: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--lifecycle-child", str(vms)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def separate_processes(work: Path, vms: int) -> dict:
    state = work / f"processes-{vms}"
    run = as_process(state)
    return lifecycle(state, vms, lambda *a: run(*a))


# report --------------------------------------------------------------------------------------
def report(small: dict, big: dict, disks: int, inproc: list, procs: list) -> dict:
    print(f"per command, whole processes, median: 2-disk vs {disks}-disk cluster")
    ratios = {}
    for name in COMMANDS:
        ratios[name] = round(big[name] / small[name], 2)
        verdict = "PASS" if ratios[name] <= GOAL_RATIO else "FAIL"
        print(f"  {name:<14} {small[name]:.3f} s  {big[name]:.3f} s  ratio {ratios[name]:.2f}"
              f"  {verdict} (goal <= {GOAL_RATIO})")
    print("lifecycle of N VMs x 2 disks of 1 TiB, one process:")
    for r in inproc:
        ok = r["seconds"] <= GOAL_SECONDS and r["peak_rss_mb"] <= GOAL_RSS_MB
        goal = f"  {'PASS' if ok else 'FAIL'} (goal at 1000: {GOAL_SECONDS:.0f} s, " \
               f"{GOAL_RSS_MB} MB)" if r["vms"] >= 1000 else ""
        print(f"  {r['vms']:>5} VMs  {r['seconds']:8.1f} s  {r['peak_rss_mb']:6.0f} MB peak RSS"
              f"  all migrated: {r['all_migrated']}{goal}")
    print("lifecycle, every command a process of its own:")
    for r in procs:
        print(f"  {r['vms']:>5} VMs  {r['seconds']:8.1f} s  all migrated: {r['all_migrated']}")
    return {"per_command": {"small": small, "big": big, "ratio": ratios, "big_disks": disks},
            "one_process": inproc, "processes": procs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="10,100,1000", help="VMs per one-process lifecycle")
    p.add_argument("--processes", default="10,100", help="VMs per process-per-command run")
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--big-disks", type=int, default=2000)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--json", action="store_true", help="also print the results as JSON")
    p.add_argument("--lifecycle-child", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.lifecycle_child is not None:
        return lifecycle_child(a.lifecycle_child)
    if a.quick:
        a.sizes, a.processes, a.samples, a.big_disks = "2", "2", 1, 12
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        medians = per_command(work, (2, a.big_disks), a.samples)
        small, big = medians[2], medians[a.big_disks]
        inproc = [one_process(int(n)) for n in a.sizes.split(",") if n]
        procs = [separate_processes(work, int(n)) for n in a.processes.split(",") if n]
    result = report(small, big, a.big_disks, inproc, procs)
    if a.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
