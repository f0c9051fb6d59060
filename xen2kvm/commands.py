"""The operator commands, shared by `xen2kvm` and the legacy `xen2kvmDisk` flags."""

from __future__ import annotations

import json
from typing import Optional, Sequence

from . import dmtables, mbr, plans
from . import naming as nm
from .context import Ctx
from .errors import PlanError, VerifyMismatch
from .steps import Attach, Detach, SysctlSet
from .units import SECTOR

SPEED_MIN, SPEED_MAX = "dev.raid.speed_limit_min", "dev.raid.speed_limit_max"
KERNEL_DEFAULTS = {SPEED_MIN: 1000, SPEED_MAX: 200000}


def clone(ctx: Ctx, xen: str, kvm: str, vm: Optional[str] = None) -> int:
    return ctx.run(plans.plan_clone(ctx.world(), xen, kvm, vm))


def prepare(ctx: Ctx, xen: str, kvm: str, n: int, helper: Sequence[str] = (),
            boot_loader: Sequence[str] = ()) -> int:
    b = ctx.backends  # the boot area is kept beside the run lock, on the host that runs it
    area_dir = str(getattr(b, "remote_lock_dir", None) or getattr(b, "lock_dir", None)
                   or "/run/lock/xen2kvm")
    return ctx.run(plans.plan_prepare(ctx.world(), xen, kvm, n, helper, boot_loader, area_dir))


def assemble(ctx: Ctx, vm: str, disks: Sequence[str], rates=dmtables.NO_RATES) -> int:
    w = ctx.world()
    return ctx.run(plans.plan_assemble(w, vm, disks, ctx.host.dm_targets(), rates))


def sync(ctx: Ctx, vm: Optional[str], rates=dmtables.NO_RATES, repair: bool = False,
         wait: bool = False, interval: float = 1.0, timeout: float = 86400.0) -> int:
    waited = 0.0
    while True:
        w = ctx.world()
        plan = plans.plan_sync(w, vm, ctx.host.dm_targets(), rates, repair)
        rc = ctx.run(plan)
        repair = False
        syncing = any(d.phase in ("syncing", "assembled") and not d.problem
                      for ds in plans.vm_disks(w, vm).values() for d in ds)
        if rc or not wait or not ctx.opts.yes or not (syncing or plan.steps):
            return rc
        if waited >= timeout:
            raise PlanError(f"the resync did not finish within {timeout:.0f}s; run sync again")
        ctx.host.sleep(interval)
        waited += interval


def release(ctx: Ctx, vm: str) -> int:
    return ctx.run(plans.plan_release(ctx.world(), vm))


def cleanup(ctx: Ctx, vm: Optional[str]) -> int:
    return ctx.run(plans.plan_cleanup(ctx.world(), vm))


def status(ctx: Ctx, vm: Optional[str], as_json: bool = False) -> int:
    w = ctx.world()
    rows = []
    for d in w.disks():
        if vm and d.vm != vm:
            continue
        st = d.status
        rows.append({
            "vm": d.vm or "-", "disk": d.disk, "phase": d.phase, "kvm": d.kvm, "xen": d.xen,
            "clone": d.clone if d.clone in w.volumes else None, "n": d.n,
            "host": d.host, "done": st.done if st else None, "total": st.total if st else None,
            "health": st.health if st else None, "problem": d.problem,
        })
    if as_json:
        ctx.say(json.dumps(rows, indent=2))
        return 0
    if not rows:
        ctx.say("no disk is under migration")
        return 0
    ctx.say(f"{'VM':<12} {'DISK':<16} {'PHASE':<11} {'PROGRESS':>9}  KVM VOLUME / PROBLEM")
    for r in rows:
        prog = f"{100.0 * r['done'] / r['total']:.1f}%" if r["total"] else "-"
        ctx.say(f"{r['vm']:<12} {r['disk']:<16} {r['phase']:<11} {prog:>9}  {r['kvm']}"
                + (f"  ! {r['problem']}" if r["problem"] else ""))
    return 0


def verify(ctx: Ctx, xen_id: str, kvm_id: str) -> int:
    """Byte compare: the XEN data (the clone while it exists) against the KVM volume from N."""
    w = ctx.world()
    xen, kvm = w.resolve(xen_id), w.resolve(kvm_id)
    clone = w.get(nm.clone_name(xen.name))
    source = clone or xen
    if source.name == kvm.name:
        raise PlanError(f"no pristine copy of {xen.name} is left to compare with (in-place "
                        "mode after cleanup)")
    host = ctx.host
    attached = [v for v in (source.name, kvm.name) if ctx.host.name not in w.volumes[v].attached]
    for v in attached:  # read-only look; put back as found
        Attach(v, host.name).apply(ctx)
    try:
        part = (mbr.parse(host.read(host.device_path(kvm.name), 0, SECTOR)) or [None])[0]
        size = source.size_bytes
        if part is None or part.type_id != mbr.LINUX or part.size_sectors * SECTOR != size:
            raise VerifyMismatch(f"{kvm.name} has no partition 1 of type 83 holding "
                                 f"{size // SECTOR} sectors; was it prepared?")
        off = part.start_sectors * SECTOR
        diff = host.first_difference(host.device_path(source.name), 0,
                                     host.device_path(kvm.name), off, size)
    finally:
        for v in attached:
            Detach(v, host.name).apply(ctx)
    if diff is not None:
        raise VerifyMismatch(f"{kvm.name} differs from {source.name} at byte {diff} of the data "
                             f"(KVM volume offset {off + diff})", diff)
    ctx.say(f"verify OK: {kvm.name} bytes [{off}, {off + size}) equal {source.name} "
            f"({size} bytes)")
    return 0


def tune(ctx: Ctx, min_kib: Optional[int], max_kib: Optional[int], reset: bool) -> int:
    want = dict(KERNEL_DEFAULTS) if reset else {}
    if min_kib is not None:
        want[SPEED_MIN] = min_kib
    if max_kib is not None:
        want[SPEED_MAX] = max_kib
    for key, value in want.items():
        if value <= 0:
            raise PlanError(f"{key} must be a positive number of KiB/s")
    current = {k: ctx.host.sysctl_get(k) for k in (SPEED_MIN, SPEED_MAX)}
    low = want.get(SPEED_MIN, current[SPEED_MIN])
    if low > want.get(SPEED_MAX, current[SPEED_MAX]):
        raise PlanError("the minimum resync speed must not exceed the maximum")
    ctx.say(f"{ctx.host.name}: {SPEED_MIN}={current[SPEED_MIN]} {SPEED_MAX}={current[SPEED_MAX]}"
            " KiB/s (per-array: sync --min-rate/--max-rate)")
    plan = plans.Plan([SysctlSet(k, v) for k, v in want.items() if current[k] != v])
    return ctx.run(plan)
