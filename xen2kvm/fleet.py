"""`xen2kvm fleet sync|status|release`: many KVM hosts at once, from one workstation.

StorPool calls go to the API; each host's steps run over SSH (Fabric), hosts in parallel
(bounded). Every host's result or error is collected: one unreachable host never stops the
others, and the exit code is non-zero when any host failed, with one line naming it and why.
Identifiers are checked before any connection is made.
"""

from __future__ import annotations

import concurrent.futures
import configparser
import copy
import io
import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence

from . import capacity, commands, dmtables, live
from . import naming as nm
from .context import Ctx, Options
from .errors import PlanError, UsageError, Xen2KvmError
from .phases import RESYNCING
from .remote import HostSpec

if TYPE_CHECKING:
    from xen2kvm.backends.storpool.client import SharedLists


@dataclass
class HostResult:
    host: str
    ok: bool = True
    error: Optional[str] = None
    rows: list[dict] = field(default_factory=list)
    space: list[str] = field(default_factory=list)  # the cluster's free space and need
    output: str = ""
    seconds: float = 0.0


def parse_hosts(hosts: Optional[str], inventory: Optional[str], user: str = "root",
                key_file: Optional[str] = None) -> list[HostSpec]:
    """--hosts h1,h2[:port] or an inventory (INI: [name] address= port= user= key= sp_ourid=)."""
    specs: list[HostSpec] = []
    if inventory:
        cp = configparser.ConfigParser()
        try:
            if not cp.read(inventory):
                raise UsageError(f"inventory {inventory} cannot be read")
        except configparser.Error as exc:
            raise UsageError(f"inventory {inventory}: {str(exc).splitlines()[0]}") from None
        for name in cp.sections():
            s = cp[name]
            try:
                specs.append(HostSpec(name, s.get("address", name), s.getint("port", 22),
                                      s.get("user", user), s.get("key", key_file),
                                      s.getint("sp_ourid") if s.get("sp_ourid") else None))
            except ValueError as exc:
                raise UsageError(f"inventory {inventory} [{name}]: {exc}") from None
    for item in (hosts or "").split(","):
        if item.strip():
            name, _, port = item.strip().partition("@")
            specs.append(HostSpec(name, name, int(port) if port.isdigit() else 22, user,
                                  key_file))
            if port and not port.isdigit():
                raise PlanError(f"port {port!r} of host {name!r} is not a number")
    if not specs:
        raise UsageError("give the hosts: --hosts h1,h2 or --inventory FILE")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UsageError("a host is named twice")
    return [s.check() for s in specs]


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


def _one(spec: HostSpec, opts: Options, action: str, vms: Sequence[str], rates,
         ssh: dict, shared: SharedLists, adaptive=None, stop=None) -> HostResult:
    from xen2kvm.backends.storpool import StorPoolBackends

    from .remote import SSHRunner

    started = time.monotonic()
    result = HostResult(spec.name)
    out = io.StringIO()
    runner = SSHRunner(spec, **ssh)
    ctx = Ctx(Options(opts.backend, opts.state, spec.name, opts.yes), out)
    try:
        ctx.backends = StorPoolBackends(spec.name, runner, remote=True, client_id=spec.client_id,
                                        shared=shared if action == "status" else None)
        rc = 0
        if action == "sync" and adaptive is not None:  # each host its own controller
            rc = commands.sync(ctx, None, rates, wait=True, adaptive=copy.deepcopy(adaptive),
                               stop=stop)
        elif action == "sync":
            rc = commands.sync(ctx, None, rates)
        elif action == "release":
            for vm in vms:
                rc = commands.release(ctx, vm) or rc
        result.rows, result.space = _rows(ctx, spec.name)
        if rc:
            result.ok, result.error = False, f"{action} exited {rc}"
    except Xen2KvmError as exc:
        result.ok, result.error = False, str(exc)
    finally:
        ctx.finish(0 if result.ok else 1, None)  # operator completeness: the audit record
        ctx.close()
        runner.close()
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
            busy = any(row["phase"] in RESYNCING and not row["problem"]
                       for row in rows)
            if not busy or not all(r.ok for r in results):
                return results
            time.sleep(interval)


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


def run(opts: Options, action: str, specs: list[HostSpec], vms: Sequence[str] = (),
        rates: dmtables.Rates = dmtables.NO_RATES, parallel: int = 8, as_json: bool = False,
        ssh: Optional[dict] = None, out=None, wait: bool = False,
        interval: float = 5.0, adaptive=None) -> int:
    """`adaptive`: a Controller each host's sync --wait copies (sync only)."""
    import sys

    out = out or sys.stdout
    if opts.backend != "storpool":
        raise UsageError("fleet runs on the storpool backend (rehearse hosts one by one with "
                         "--backend fake --host H)")
    for vm in vms:
        nm.check_vm(vm)
    from xen2kvm.backends.storpool.client import SharedLists

    shared = SharedLists()
    workers = max(1, min(parallel, len(specs)))
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        def round_() -> list[HostResult]:
            return list(pool.map(lambda s: _one(s, opts, action, vms, rates, ssh or {},
                                                shared, adaptive, stop), specs))

        waited = wait and action == "sync" and opts.yes
        try:
            results = _wait(round_, interval, out) if waited else round_()
        except KeyboardInterrupt:  # adaptive hosts put their limits back before this returns
            stop.set()
            if not waited:
                raise
            print("xen2kvm: interrupted: the resyncs go on in the hosts' kernels; watch "
                  "them again with `xen2kvm fleet sync --wait -y` or `xen2kvm fleet "
                  "status`", file=sys.stderr)
            return 130
    failed = [r for r in results if not r.ok]
    if as_json:
        print(json.dumps({"hosts": {r.host: {"ok": r.ok, "error": r.error, "rows": r.rows,
                                             "output": r.output, "seconds": round(r.seconds, 3)}
                                    for r in results}}, indent=2), file=out)
    else:
        _text(results, out, waited)
    for r in failed:
        print(f"xen2kvm: error: host {r.host}: {r.error}", file=sys.stderr)
    return 7 if failed else 0
