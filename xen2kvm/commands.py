"""The operator commands, shared by `xen2kvm` and the legacy `xen2kvmDisk` flags."""

from __future__ import annotations

import json
from typing import Optional, Sequence

from . import abort as undo
from . import capacity, dmtables, live, mbr, onapp, plans, preflight, recovery, steering
from . import naming as nm
from .context import Ctx
from .dmstatus import SUPERBLOCK_MAGIC
from .errors import PlanError, UsageError, VerifyMismatch
from .phases import RESYNCING, Phase
from .steering import SPEED_MAX, SPEED_MIN
from .steps import Attach, Detach, SysctlSet
from .throttle import Controller
from .units import SECTOR

KERNEL_DEFAULTS = {SPEED_MIN: 1000, SPEED_MAX: 200000}


def clone(ctx: Ctx, xen: str, kvm: str, vm: Optional[str] = None) -> int:
    return ctx.run(lambda w: _checked(ctx, plans.plan_clone(w, xen, kvm, vm),
                                     lambda: capacity.check_clone(ctx, w)))


def _checked(ctx: Ctx, plan: plans.Plan, check) -> plans.Plan:
    """A plan that passed its space check (operator completeness), on every (re)plan."""
    check()
    return plan


def prepare(ctx: Ctx, xen: str, kvm: str, n: int, helper: Sequence[str] = (),
            onapp_ids: tuple[Optional[int], Optional[int]] = (None, None),
            boot_loader: Sequence[str] = ()) -> int:
    preflight.check(ctx, helper=helper)
    area_dir = ctx.backends.lock_dir  # the boot area: beside the run lock, on its host
    rc = ctx.run(lambda w: _checked(
        ctx, plans.plan_prepare(w, xen, kvm, n, helper, boot_loader, area_dir),
        lambda: capacity.check_prepare(ctx, w, xen, kvm, n)))
    w = ctx.last[0]
    if w.resolve(xen).name == w.resolve(kvm).name:  # in-place: the OnApp database step next
        for line in onapp.notes(*onapp_ids, done=ctx.opts.yes and rc == 0):
            ctx.say(line)
    return rc


def assemble(ctx: Ctx, vm: str, disks: Sequence[str], rates=dmtables.NO_RATES) -> int:
    preflight.check(ctx)
    targets = ctx.host.dm_targets()
    return ctx.run(lambda w: plans.plan_assemble(w, vm, disks, targets, rates))


def sync(ctx: Ctx, vm: Optional[str], rates=dmtables.NO_RATES, repair: bool = False,
         wait: bool = False, interval: float = 1.0, timeout: float = 86400.0,
         adaptive: Optional[Controller] = None, stop=None) -> int:
    """`stop` (a threading.Event) ends an adaptive wait from another thread (fleet Ctrl-C)."""
    preflight.check(ctx)
    ctx.run(steering.leftover_plan(ctx.host))
    if adaptive is None:
        return _sync(ctx, vm, rates, repair, wait, interval, timeout)
    if rates != dmtables.NO_RATES:
        raise UsageError("--adaptive steers the resync rate itself: drop --min-rate/--max-rate")
    for name in steering.unsteerable(ctx.world(), vm):
        ctx.say(f"note: {name} has its own rate in its table; the adaptive throttle cannot "
                "steer it (reassemble it without --min-rate/--max-rate)")
    if not (wait and ctx.opts.yes):
        ctx.say("# with --wait -y the adaptive throttle steers dev.raid.speed_limit_min/max "
                "and restores them at the end")
        return _sync(ctx, vm, rates, repair, wait, interval, timeout)
    with steering.Steering(ctx, adaptive, stop) as steer:
        return _sync(ctx, vm, rates, repair, wait, interval, timeout, steer)


def _sync(ctx: Ctx, vm: Optional[str], rates, repair: bool, wait: bool, interval: float,
          timeout: float, steer: Optional[steering.Steering] = None) -> int:
    waited = 0.0
    watch = capacity.Watch()  # operator completeness: space, live view, Ctrl-C
    hint = "xen2kvmDisk -y -m {vm} -r" if ctx.opts.prog == "xen2kvmDisk" else plans.REPAIR_HINT
    targets = ctx.host.dm_targets()
    if steer:  # the guest's own latency first, the copy held at the floor
        steer.hold([n for _, _, n in ctx.world().vm_devices(vm)], interval)

    def planner(w, repair: bool) -> plans.Plan:
        plan = plans.plan_sync(w, vm, targets, rates, repair, hint)
        watch.check(ctx, w, [d for ds in plans.vm_disks(w, vm).values() for d in ds
                             if d.phase == Phase.ASSEMBLED and plan.steps])
        return plan

    try:
        with live.View(ctx, vm, wait and ctx.opts.yes) as view:
            while True:
                rc = ctx.run(lambda w, repair=repair: planner(w, repair))
                w, plan = ctx.last
                view.show(w, waited)
                repair = False
                syncing = any(d.phase in RESYNCING and not d.problem
                              for ds in plans.vm_disks(w, vm).values() for d in ds)
                if rc or not wait or not ctx.opts.yes or not (syncing or plan.steps):
                    return rc
                if waited >= timeout:
                    raise PlanError(f"the resync did not finish within {timeout:.0f}s; "
                                    "run sync again")
                if steer:
                    steer.run([n for _, _, n in w.vm_devices(vm)], interval)
                else:
                    ctx.host.sleep(interval)
                waited += interval
    except KeyboardInterrupt:
        if not (wait and ctx.opts.yes):
            raise
        return live.interrupted(ctx, vm)


def release(ctx: Ctx, vm: str) -> int:
    preflight.check(ctx)
    return ctx.run(lambda w: plans.plan_release(w, vm))


def cleanup(ctx: Ctx, vm: Optional[str]) -> int:
    return ctx.run(lambda w: plans.plan_cleanup(w, vm))


def abort(ctx: Ctx, vm: Optional[str], disk: Optional[str]) -> int:
    return ctx.run(lambda w: undo.plan_abort(w, vm, disk))


def purge(ctx: Ctx, vm: Optional[str], disk: Optional[str], every: bool = False) -> int:
    return ctx.run(lambda w: undo.plan_purge(w, vm, disk, every))


def status(ctx: Ctx, vm: Optional[str], as_json: bool = False) -> int:
    w = ctx.world()
    groups = {g.migration: g for g in (recovery.latest(w, m) for m in
                                        {x.migration for x in recovery.groups(w)}) if g}
    survey = capacity.Survey.read(w, ctx.storage)  # operator completeness: free and need
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
            **capacity.fields(survey, d.kvm),
        })
    rows += _rows_without_clone(w, groups, {r["kvm"] for r in rows}, vm)
    for r in rows:
        g = groups.get(r["kvm"])
        r["recovery"] = ({"state": recovery.state(w, g), "generation": g.gen,
                          "points": g.names()} if g else None)
    if as_json:
        # a disk a line: readable, and encoded by the C encoder (indent= is pure Python)
        ctx.say("[" + ",\n ".join(json.dumps(r) for r in rows) + "]")
        return 0
    for v in sorted(w.volumes.values(), key=lambda v: v.name):  # runs at work, or dead ones
        for holder in nm.claims(v.tags):
            ctx.say(f"{v.name}: claimed by {holder} (a run in progress; if it died, the "
                    "next run needs --take-over)")
    if not rows:
        ctx.say("no disk is under migration")
    else:
        _table(ctx, rows)
    for line in capacity.summary(survey):
        ctx.say(line)
    return 0


def _table(ctx: Ctx, rows: list[dict]) -> None:
    ctx.say(f"{'VM':<12} {'DISK':<16} {'PHASE':<11} {'PROGRESS':>9}  KVM VOLUME / PROBLEM")
    for r in rows:
        prog = f"{100.0 * r['done'] / r['total']:.1f}%" if r["total"] else "-"
        ctx.say(f"{r['vm']:<12} {r['disk']:<16} {r['phase']:<11} {prog:>9}  {r['kvm']}"
                + (f"  ! {r['problem']}" if r["problem"] else ""))
    for r in rows:
        if r["recovery"]:
            rp = r["recovery"]
            ctx.say(f"recovery points of {r['kvm']} ({rp['state']}): {', '.join(rp['points'])}")


def _rows_without_clone(w, groups, seen, vm: Optional[str]) -> list[dict]:
    """Case-1 replaces, cleaned and aborted migrations: known by their recovery points."""
    rows = []
    for name, g in sorted(groups.items()):
        if name in seen or (vm and g.vm != vm):
            continue
        phase, problem = recovery.phase_without_clone(w, g)
        rows.append({"vm": g.vm or "-", "disk": nm.disk_of(name), "phase": phase, "kvm": name,
                     "xen": None, "clone": None, "n": None, "host": None, "done": None,
                     "total": None, "health": None, "problem": problem})
    return rows


def verify(ctx: Ctx, xen_id: str, kvm_id: str) -> int:
    """Byte compare: the XEN data (the clone while it exists) against the KVM volume from N,
    then the XEN volume against its clone (a XEN VM that ran after prepare wrote there only).
    Under the host lock; attaching what is not attached here needs -y."""
    preflight.check(ctx)
    ctx.lock()
    w = ctx.world()
    xen, kvm = w.resolve(xen_id), w.resolve(kvm_id)
    clone = w.get(nm.clone_name(xen.name))
    source = clone or xen
    if source.name == kvm.name:
        raise PlanError(f"no pristine copy of {xen.name} is left to compare with (in-place "
                        "mode after cleanup)")
    # the clone equals the XEN volume until a helper or the guest writes to it (the raid1's
    # leg 0 is the clone): compare them while neither has happened
    meta0 = nm.meta_names(kvm.name)[0]
    both = (clone is not None and xen.name != kvm.name and meta0 in w.volumes
            and clone.tags.get(nm.TAG_HELPER) != "ok")
    names = [source.name, kvm.name] + ([xen.name, meta0] if both else [])
    for name in names:
        w.refuse_attached(w.volumes[name], allow_local=True)
    attached = [v for v in names if ctx.host.name not in w.volumes[v].attached]
    if attached and not ctx.opts.yes:
        raise PlanError(f"verify must attach {', '.join(attached)} on {ctx.host.name} to read "
                        "them; add -y (they are detached again afterwards)")
    for v in attached:  # a look only; put back as found
        Attach(v, ctx.host.name).apply(ctx)
    try:
        both = both and ctx.host.read(ctx.host.device_path(meta0), 0, 4) != SUPERBLOCK_MAGIC
        if both:  # first: it names the cause of the KVM-side difference it implies
            _compare_xen(ctx, xen, source)
        off, size = _compare(ctx, source.name, source.size_bytes, kvm.name)
    finally:
        for v in attached:
            Detach(v, ctx.host.name).apply(ctx)
    ctx.say(f"verify OK: {kvm.name} bytes [{off}, {off + size}) equal {source.name} "
            f"({size} bytes)" + (f", and {xen.name} still equals it" if both else ""))
    return 0


def _compare(ctx: Ctx, source: str, size: int, kvm: str) -> tuple[int, int]:
    host = ctx.host
    part = (mbr.parse(host.read(host.device_path(kvm), 0, SECTOR)) or [None])[0]
    if part is None or part.type_id != mbr.LINUX or part.size_sectors * SECTOR != size:
        raise VerifyMismatch(f"{kvm} has no partition 1 of type 83 holding "
                             f"{size // SECTOR} sectors; was it prepared?")
    off = part.start_sectors * SECTOR
    diff = host.first_difference(host.device_path(source), 0, host.device_path(kvm), off, size)
    if diff is not None:
        raise VerifyMismatch(f"{kvm} differs from {source} at byte {diff} of the data "
                             f"(KVM volume offset {off + diff})", diff)
    return off, size


def _compare_xen(ctx: Ctx, xen, clone) -> None:
    host = ctx.host
    size = min(xen.size_bytes, clone.size_bytes)
    diff = host.first_difference(host.device_path(xen.name), 0, host.device_path(clone.name), 0,
                                 size)
    if diff is None and xen.size_bytes != clone.size_bytes:
        diff = size
    if diff is not None:
        raise VerifyMismatch(f"the XEN volume {xen.name} changed after prepare (it differs "
                             f"from its clone {clone.name} at byte {diff}): its writes are not "
                             "on KVM; undo the migration and prepare again", diff)


def tune(ctx: Ctx, min_kib: Optional[int], max_kib: Optional[int], reset: bool) -> int:
    ctx.run(steering.leftover_plan(ctx.host))
    want = dict(KERNEL_DEFAULTS) if reset else {}
    if min_kib is not None:
        want[SPEED_MIN] = min_kib
    if max_kib is not None:
        want[SPEED_MAX] = max_kib
    for key, value in want.items():
        dmtables.check_rate(key, value)
    current = {k: ctx.host.sysctl_get(k) for k in (SPEED_MIN, SPEED_MAX)}
    dmtables.check_order(want.get(SPEED_MIN, current[SPEED_MIN]),
                         want.get(SPEED_MAX, current[SPEED_MAX]))
    ctx.say(f"{ctx.host.name}: {SPEED_MIN}={current[SPEED_MIN]} {SPEED_MAX}={current[SPEED_MAX]}"
            " KiB/s (per-array: sync --min-rate/--max-rate)")
    plan = plans.Plan([SysctlSet(k, v) for k, v in want.items() if current[k] != v])
    return ctx.run(plan)
