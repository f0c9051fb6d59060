"""`xen2kvm fleet sync|status|release`: many KVM hosts at once, from one workstation.

Each host gets its own backends from the registry, on any backend: on StorPool the calls go to
the API and each host's steps run over SSH (Fabric); on the fake each host is one of the fake
cluster's hosts. Hosts run in parallel (bounded). Every host's result or error is collected:
one unreachable host never stops the others, and the exit code is non-zero when any host
failed, with one line naming it and why. Identifiers are checked before any connection is made.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import io
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from . import capacity, commands, dmtables, live
from . import naming as nm
from .backend import ListCache
from .context import Ctx, Options
from .errors import Xen2KvmError
from .phases import RESYNCING, Phase
from .remote import HostSpec, parse_hosts
from .throttle import Controller

__all__ = ["Job", "parse_hosts", "run"]


@dataclass
class HostResult:
    host: str
    ok: bool = True
    error: Optional[str] = None
    rows: list[dict] = field(default_factory=list)
    space: list[str] = field(default_factory=list)  # the cluster's free space and need
    output: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Job:
    """What every host does in a round. `adaptive`: a Controller each host's sync --wait
    copies (sync only); `stop` ends an adaptive wait from another thread (Ctrl-C)."""

    action: str  # sync, status or release
    vms: Sequence[str] = ()  # release: the VMs
    rates: dmtables.Rates = dmtables.NO_RATES
    adaptive: Optional[Controller] = None
    stop: Optional[threading.Event] = None


def _rows(ctx: Ctx, host: str) -> tuple[list[dict], list[str]]:
    rows = []
    w = ctx.world()
    survey = capacity.Survey.read(w, ctx.storage)  # operator completeness: free and need
    for d in w.disks():
        if d.host:
            st = d.status
            rows.append({"host": host, "vm": d.vm, "disk": d.disk, "phase": d.phase,
                         "done": st.done if st else None, "total": st.total if st else None,
                         "problem": d.problem, **capacity.fields(survey, d.kvm)})
    return rows, capacity.summary(survey)


def _act(ctx: Ctx, job: Job) -> int:
    if job.action == "sync" and job.adaptive is not None:  # each host its own controller
        return commands.sync(ctx, None, job.rates, wait=True,
                             adaptive=copy.deepcopy(job.adaptive), stop=job.stop)
    if job.action == "sync":
        return commands.sync(ctx, None, job.rates)
    rc = 0
    for vm in job.vms if job.action == "release" else ():
        rc = commands.release(ctx, vm) or rc
    return rc


def _one(spec: HostSpec, opts: Options, job: Job, shared: ListCache) -> HostResult:
    started = time.monotonic()
    result, out, ctx = HostResult(spec.name), io.StringIO(), None
    opts = dataclasses.replace(opts, host=spec.name, inventory=None)
    try:
        # the lists are shared by views only: a run that changes things reads its own
        ctx = Ctx.open(opts, out, opts.config(spec, shared if job.action == "status" else None))
        rc = _act(ctx, job)
        result.rows, result.space = _rows(ctx, spec.name)
        if rc:
            result.ok, result.error = False, f"{job.action} exited {rc}"
    except Xen2KvmError as exc:
        result.ok, result.error = False, str(exc)
    finally:
        if ctx is not None:
            ctx.finish(0 if result.ok else 1, None)  # operator completeness: the audit record
            ctx.close()
        result.output = out.getvalue()
        result.seconds = time.monotonic() - started
    return result


def _wait(round_, interval: float, out) -> list[HostResult]:
    """`fleet sync --wait`: a sync round on every host, the rows drawn (live on a terminal),
    until no disk is copying or a host fails; rates from the rounds' wall-clock times."""
    sampler, started = live.Sampler(), time.monotonic()
    with live.Screen(out, True) as screen:
        while True:
            results = round_()
            now = time.monotonic() - started
            for r in results:
                for line in r.output.splitlines():
                    if ": syncing " not in line:
                        print(f"{r.host}: {line}", file=screen.notes)
            rows = [row for r in results for row in r.rows]
            screen.draw([sampler.row((row["host"], row["vm"] or "-", row["disk"]),
                                     row["phase"], row["done"], row["total"],
                                     _after(row), now) for row in rows])
            if not _busy(rows) or not all(r.ok for r in results):
                return results
            time.sleep(interval)


def _busy(rows: list[dict]) -> bool:
    """A disk still copying, or one in sync whose retag is the next round's: a disk can reach
    in-sync after its host's round planned, and only a further sync retags it. A VM with a
    problem disk is not retagged, so its in-sync disks do not keep the wait going."""
    troubled = {(row["host"], row["vm"]) for row in rows if row["problem"]}
    return any(not row["problem"] and (row["phase"] in RESYNCING or (
        row["phase"] == Phase.SYNCED and (row["host"], row["vm"]) not in troubled))
        for row in rows)


def _after(row: dict) -> Optional[int]:
    free, need = row.get("free_bytes"), row.get("group_need_bytes")
    return None if free is None else free - (need or 0)


def _text(results: list[HostResult], out, waited: bool) -> None:
    for r in results if not waited else ():  # --wait printed them as they came
        for line in r.output.rstrip().splitlines():
            print(f"{r.host}: {line}", file=out)
    rows = [row for r in results for row in r.rows]
    print(f"{'HOST':<14} {'VM':<12} {'DISK':<16} {'PHASE':<10} {'PROGRESS':>9}  PROBLEM",
          file=out)
    for row in rows:
        prog = f"{100.0 * row['done'] / row['total']:.1f}%" if row["total"] else "-"
        print(f"{row['host']:<14} {row['vm'] or '-':<12} {row['disk']:<16} "
              f"{row['phase']:<10} {prog:>9}  {row['problem'] or ''}", file=out)
    for line in next((r.space for r in results if r.space), []):
        print(line, file=out)
    ok = len([r for r in results if r.ok])
    print(f"{ok} of {len(results)} hosts ok", file=out)


def _report(results: list[HostResult], out, as_json: bool, waited: bool) -> int:
    if as_json:
        print(json.dumps({"hosts": {r.host: {"ok": r.ok, "error": r.error, "rows": r.rows,
                                             "output": r.output, "seconds": round(r.seconds, 3)}
                                    for r in results}}, indent=2), file=out)
    else:
        _text(results, out, waited)
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"xen2kvm: error: host {r.host}: {r.error}", file=sys.stderr)
    return 7 if failed else 0


def _rounds(round_: Callable[[], list[HostResult]], stop: threading.Event, waited: bool,
            interval: float, out) -> Optional[list[HostResult]]:
    """One round, or (--wait) rounds until done; None when Ctrl-C ended the wait."""
    try:
        return _wait(round_, interval, out) if waited else round_()
    except KeyboardInterrupt:  # adaptive hosts put their limits back before this returns
        stop.set()
        if not waited:
            raise
        print("xen2kvm: interrupted: the resyncs go on in the hosts' kernels; watch "
              "them again with `xen2kvm fleet sync --wait -y` or `xen2kvm fleet "
              "status`", file=sys.stderr)
        return None


def run(opts: Options, job: Job, specs: list[HostSpec], parallel: int = 8,
        as_json: bool = False, out=None, wait: bool = False, interval: float = 5.0) -> int:
    """`job` on every host of `specs`; SSH options come from `opts` (known_hosts, keys)."""
    out = out or sys.stdout
    for vm in job.vms:
        nm.check_vm(vm)
    shared, stop = ListCache(), threading.Event()
    job = dataclasses.replace(job, stop=stop)
    waited = wait and job.action == "sync" and opts.yes
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(parallel,
                                                                      len(specs)))) as pool:
        def round_() -> list[HostResult]:
            return list(pool.map(lambda spec: _one(spec, opts, job, shared), specs))

        results = _rounds(round_, stop, waited, interval, out)
    if results is None:
        return 130
    return _report(results, out, as_json, waited)
