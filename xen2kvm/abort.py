"""`abort` and `purge`: pure plans over the recovery points (xen2kvm/recovery.py).

abort returns every pre-existing volume of a migration to the content, size and tags it had
before the tool first touched it, and removes the tool's own volumes; it first takes an undo
point of what it overwrites, so an abort is itself undoable until purge. purge deletes the
recovery points (and a case-1 `x2kold-` volume) of migrations whose KVM VM has since run from
its raw volume, and nothing else.
"""

from __future__ import annotations

from typing import Mapping, Optional

from . import naming as nm
from . import recovery as rc
from . import steps as s
from .errors import NotFound, PlanError
from .plans import Plan
from .world import World


def select(w: World, vm: Optional[str], disk: Optional[str]) -> list[rc.Group]:
    """The newest migration of a disk, or of every disk of a VM (read off clones, case-1
    volumes and recovery points that name it)."""
    if disk is not None:
        nm.check_volume_name(disk, "disk identifier")
        found = rc.matching(w, disk)
        if not found:
            raise NotFound(f"no recovery point names disk {disk}: xen2kvm has not changed it "
                           "(or its points were purged); check the id with `xen2kvm status`")
    else:
        nm.check_vm(vm or "")
        found = sorted({d.kvm for d in w.disks() if d.vm == vm}
                       | {v.tags.get(nm.TAG_KVM, "") for v in w.own(nm.ROLE_REPLACED)
                          if v.tags.get(nm.TAG_VS) == vm}
                       | {g.migration for g in rc.groups(w) if g.vm == vm})
        if not found:
            raise NotFound(f"no migration of VM {vm} is known here; name the disk: "
                           "--disk DISK")
    out = [rc.latest(w, m) for m in found]
    missing = [m for m, g in zip(found, out) if g is None]
    if missing:
        raise PlanError(f"{missing[0]} has no recovery point (its migration began before "
                        "recovery points existed); undo it by hand")
    return out


def _involved(w: World, g: rc.Group) -> list[str]:
    own = [v.name for v in w.volumes.values() if v.tags.get(nm.TAG_KVM) == g.migration
           and nm.is_own(v.tags)]
    return sorted({*own, *(v for v in g.volumes() if v in w.volumes)})


def _refuse_running(w: World, g: rc.Group) -> list[s.Step]:
    """Refuse while anything uses a volume of the migration. A volume attached only here and
    used by no dm device (a prepare that crashed between attach and detach) is detached:
    StorPool refuses to detach a volume a process holds open, so a VM's disk is never pulled."""
    detach = []
    for name in _involved(w, g):
        vol = w.volumes[name]
        elsewhere = [h for h in vol.attached if h != w.host]
        if elsewhere or w.dm_using(name):
            where = ", ".join(elsewhere) or f"dm device {w.dm_using(name)[0]}"
            raise PlanError(f"cannot abort {g.migration}: volume {name} is in use ({where}); "
                            f"power the VM off (a KVM VM: `xen2kvm release VM -y`) and rerun")
        if vol.attached:
            detach.append(s.Detach(name, w.host, w.client))
    return detach


def _restore_tags(name: str, now: Mapping[str, str], want: Mapping[str, str]) -> list[s.Step]:
    change = {k: v for k, v in want.items() if now.get(k) != v}
    change.update({k: None for k in now if k not in want})
    return [s.SetTags(name, change)] if change else []


def _undo(g: rc.Group, volume: str) -> list[s.Step]:
    """A snapshot of what the revert will overwrite (what the guest wrote since), once."""
    if g.undo_of(volume) is not None:
        return []
    tags = {nm.TAG_ROLE: nm.ROLE_UNDO, nm.TAG_RP_MIGRATION: g.migration,
            nm.TAG_RP_GEN: str(g.gen)}
    if volume != g.migration:
        tags[nm.TAG_RP_VOLUME] = volume
    return [s.TakeRecoveryPoint(volume, nm.undo_point_name(volume, g.gen), tags)]


def _case1_back(w: World, g: rc.Group, point) -> tuple[list[s.Step], Mapping[str, str]]:
    """Case-1: the KVM name holds a clone of the XEN volume; the original is `x2kold-` (or,
    after cleanup, only the recovery point). Returns the steps and the tags it ends with."""
    name, old = g.migration, w.get(nm.replaced_name(g.migration))
    cur = w.get(name)
    is_orig = cur is not None and cur.tags.get(nm.TAG_ROLE) == nm.ROLE_REPLACED
    steps: list[s.Step] = []
    if cur is not None and not is_orig:
        steps += [*_undo(g, name), s.DeleteVolume(name)]
    if old is not None:
        return [*steps, s.RenameVolume(old.name, name), s.RevertVolume(name, point.name)], \
            old.tags
    if is_orig:
        return [*steps, s.RevertVolume(name, point.name)], cur.tags
    marked = {nm.TAG_ROLE: nm.ROLE_REPLACED, nm.TAG_KVM: name}  # as a renamed-back original
    return [*steps, s.CreateFromSnapshot(name, point.name, marked)], marked


def _put_back(w: World, g: rc.Group, plan: Plan) -> list[s.Step]:
    """Revert (or recreate) every volume, delete the tool's own, mark the points aborted.
    Returns the tag restores, which come last."""
    restore: list[s.Step] = []
    plan.add(*_refuse_running(w, g))
    for point in g.points:
        vol = nm.rp_volume(point.tags)
        if g.case1 and vol == g.migration:
            steps, tags = _case1_back(w, g, point)
        elif vol in w.volumes:
            steps, tags = [*_undo(g, vol), s.RevertVolume(vol, point.name)], w.volumes[vol].tags
        else:
            steps, tags = [s.CreateFromSnapshot(vol, point.name, {})], {}
        plan.add(*steps)
        restore += _restore_tags(vol, tags, nm.original_tags(point.tags))
    own = [n for n in _involved(w, g) if n not in g.volumes()
           and n != nm.replaced_name(g.migration)]
    for n in own:  # until the resync ends, the guest's writes are in the clone
        if w.volumes[n].tags.get(nm.TAG_ROLE) == nm.ROLE_CLONE:
            plan.add(*_undo(g, n))
        plan.add(s.DeleteVolume(n))
    # marked before the tags go back: a rerun must not take a restored volume for a clone
    plan.add(*(s.SetSnapshotTags(p.name, {nm.TAG_RP_ABORTED: "1", nm.TAG_RP_RAN: None})
               for p in g.points))
    return restore


def _abort_group(w: World, g: rc.Group, plan: Plan) -> None:
    if not g.aborted:
        restore = _put_back(w, g, plan)
    else:  # only tags a crash may have left to restore
        restore = [x for p in g.points if (v := w.get(nm.rp_volume(p.tags))) is not None
                   for x in _restore_tags(v.name, v.tags, nm.original_tags(p.tags))]
    plan.add(*restore)
    undos = {u.name for u in g.undos} | {
        x.snapshot for x in plan.steps if isinstance(x, s.TakeRecoveryPoint)
        and x.tags.get(nm.TAG_RP_MIGRATION) == g.migration}
    kept = ", ".join(sorted(undos)) or "none needed"
    if g.aborted and not restore:
        plan.notes.append(f"{g.migration}: abort finished; nothing is left to undo")
    else:
        plan.notes.append(f"{g.migration}: back to its content, size and tags before xen2kvm "
                          f"(generation {g.gen}); what it held until now is kept as undo "
                          f"point(s) {kept} until `xen2kvm purge`")


def plan_abort(w: World, vm: Optional[str], disk: Optional[str]) -> Plan:
    plan = Plan()
    for g in select(w, vm, disk):
        _abort_group(w, g, plan)
    return plan


def plan_purge(w: World, vm: Optional[str], disk: Optional[str], every: bool = False
               ) -> Plan:
    """Delete the recovery points of migrations whose KVM VM ran from its raw volume since the
    migration (or its abort) ended, every generation of that disk. `every`: all such
    migrations, the others kept with a note (the legacy -Z without -m)."""
    newest = [g for g in rc.groups(w) if g.points] if every else select(w, vm, disk)
    newest = [rc.latest(w, m) for m in sorted({g.migration for g in newest})]
    plan = Plan()
    for g in newest:
        if not g.ran:
            why = (f"{g.migration}: its VM has not run from {nm.volume_path(g.migration)} "
                   "since the migration (or abort) ended; power it on once, then purge")
            if not every:
                raise PlanError(f"not purging {why}")
            plan.notes.append("keeping the recovery points of " + why)
            continue
        names = sorted({n for x in rc.groups(w) if x.migration == g.migration
                        for n in x.names()})
        plan.add(*(s.DeleteSnapshot(n) for n in names))
        old = w.get(nm.replaced_name(g.migration))
        if old is not None:
            w.refuse_attached(old)
            plan.add(s.DeleteVolume(old.name))
            names.append(old.name)
        plan.notes.append(f"{g.migration}: purge deletes " + ", ".join(names))
    if not newest:
        plan.notes.append("no recovery points: nothing to purge")
    return plan
