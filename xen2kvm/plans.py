"""Pure planning: a world snapshot and an intent in, an ordered list of steps out. Steps already
done (read off tags, sizes and dm state) are left out, so a rerun completes a crashed run and
never repeats a change (never grows twice)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

from . import dmtables, guards, mbr, recovery
from . import naming as nm
from . import steps as s
from .dmstatus import check_raid_target
from .errors import PlanError
from .units import SECTOR, bytes_to_sectors
from .world import ASSEMBLED, SYNCED, SYNCING, Disk, World


@dataclass
class Plan:
    steps: list[s.Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, *steps: s.Step) -> None:
        self.steps.extend(steps)


# case-1 ---------------------------------------------------------------------------------------
def plan_clone(w: World, xen_id: str, kvm_id: str, vm: Optional[str] = None) -> Plan:
    """Case-1: tag the KVM volume as replaced, rename it aside, clone the XEN volume under the
    KVM volume's name, grow the clone to the old size. Each of these is read back on a rerun."""
    xen = w.resolve(xen_id)
    if vm:
        nm.check_vm(vm)
    nm.check_volume_name(kvm_id, "disk identifier")
    marked = [v for v in w.own(nm.ROLE_REPLACED)
              if kvm_id in (v.tags.get(nm.TAG_KVM), nm.disk_of(v.tags.get(nm.TAG_KVM, "")))]
    kvm_name = marked[0].tags[nm.TAG_KVM] if marked else w.resolve(kvm_id).name
    if kvm_name == xen.name:
        raise PlanError("case-1 replaces the KVM volume by a clone of the XEN one: give two "
                        "different disks (in-place mode is case-2: prepare -x D -k D)")
    old_name = nm.replaced_name(kvm_name)
    kvm, old = w.get(kvm_name), w.get(old_name)
    w.refuse_attached(xen)
    plan = Plan()
    if not marked:  # swapped -x/-k: look before anything, the recovery point included
        plan.add(*guards.detach_leftover(w, kvm), s.CheckNotXenDisk(kvm.name, xen.name, w.host))
    if old is None:  # the volume still has its name: recover it from before the first change
        plan.add(*recovery.take_points(w, kvm_name, [kvm], case1=True))
    if not marked:  # nothing done yet
        if kvm.tags.get(nm.TAG_XEN):
            raise PlanError(f"a case-2 migration is in progress for {kvm.name} "
                            f"(xen={kvm.tags[nm.TAG_XEN]}); finish or undo it first")
        guards.refuse_other_migration(xen, kvm)
        if xen.size_bytes > kvm.size_bytes:
            raise PlanError(_too_big(xen, kvm.size_bytes))
        if old is not None:
            raise PlanError(f"volume {old_name} exists already; rename or delete it first")
        tags = {nm.TAG_ROLE: nm.ROLE_REPLACED, nm.TAG_KVM: kvm.name}
        if vm:
            tags[nm.TAG_VS] = vm
        nm.check_tags(old_name, {**kvm.tags, **tags})
        plan.add(s.SetTags(kvm.name, tags))
    if old is None:  # tagged, not yet renamed
        w.refuse_attached(kvm, allow_local=not marked)
        plan.add(s.RenameVolume(kvm.name, old_name))
        want, have = kvm.size_bytes, None
    else:
        want, have = old.size_bytes, (kvm.size_bytes if kvm is not None else None)
        if have is not None and have >= want:  # a rerun of a finished case-1: a no-op
            return Plan(notes=[f"{kvm_name} was already replaced by a clone of {xen.name} "
                               f"(the old volume is {old_name}); nothing to do"])
    if have is None:
        plan.add(s.CloneVolume(kvm_name, xen.name))
        have = xen.size_bytes
    if have < want:
        plan.add(s.GrowVolume(kvm_name, want - have))
    plan.notes.append(f"case-1: {kvm_name} becomes a clone of {xen.name}; the old volume is kept "
                      f"as {old_name} until cleanup")
    return plan


def _prepared_already(w: World, xen: str, kvm: str, clone, n: int) -> Plan:
    if clone.tags.get(nm.TAG_KVM) != kvm or int(clone.tags.get(nm.TAG_N, 0)) != n:
        raise PlanError(f"{kvm} was prepared with other arguments (clone {clone.name}, "
                        f"N={clone.tags.get(nm.TAG_N)}); see `xen2kvm status`")
    d = w.disk_for_kvm(kvm)
    return Plan(notes=[f"{kvm} is already prepared from {xen} (phase "
                       f"{d.phase if d else 'prepared'}); nothing to do"])


def _too_big(xen, room_bytes: int) -> str:
    return (f"XEN disk {xen.name} ({xen.size_bytes} bytes) is larger than the KVM disk's room "
            f"({room_bytes} bytes); grow the KVM disk in OnApp first")


# case-2 prepare -------------------------------------------------------------------------------
def plan_prepare(w: World, xen_id: str, kvm_id: str, n: int,
                 helper: Sequence[str] = (), boot_loader: Sequence[str] = (),
                 area_dir: str = "") -> Plan:
    """`boot_loader`: the program that builds the guest's boot code (xen2kvm-guest)."""
    xen, kvm = w.resolve(xen_id), w.resolve(kvm_id)
    inplace = xen.name == kvm.name
    clone_name = nm.clone_name(xen.name)
    meta0, meta1 = nm.meta_names(kvm.name)
    guards.refuse_other_migration(xen, kvm, clone_name)
    clone = w.get(clone_name)
    if kvm.tags.get(nm.TAG_XEN) and clone is not None:  # a rerun of a finished prepare
        return _prepared_already(w, xen.name, kvm.name, clone, n)
    if kvm.tags.get(nm.TAG_XEN):
        raise PlanError(f"{kvm.name} is tagged xen={clone_name} but that clone is missing; "
                        "check it by hand (`xen2kvm status`)")
    if clone is not None:
        t = clone.tags
        if t.get(nm.TAG_ROLE) != nm.ROLE_CLONE or t.get(nm.TAG_KVM) != kvm.name:
            raise PlanError(f"volume {clone_name} exists and is not this tool's clone for "
                            f"{kvm.name}; rename or delete it first")
        if t.get(nm.TAG_VS):
            raise PlanError(f"{kvm.name} was already migrated from {xen.name} (clone tagged "
                            f"vs={t[nm.TAG_VS]}); nothing to prepare")
        if int(t.get(nm.TAG_N, 0)) != n:
            flag = "without -c" if int(t.get(nm.TAG_N, 0)) == 32 else "with -c (--no-dos)"
            raise PlanError(f"this prepare was started with N={t.get(nm.TAG_N)} sectors; "
                            f"rerun it {flag}")
        korig = int(t[nm.TAG_KVM_SECTORS])
        _refuse_other_helper(t.get(nm.TAG_HELPER), helper)
    else:
        korig = bytes_to_sectors(kvm.size_bytes)
    w.refuse_attached(xen, allow_local=clone is not None and inplace)
    w.refuse_attached(kvm, allow_local=clone is not None or not inplace)
    xen_size = clone.size_bytes if (clone is not None and inplace) else xen.size_bytes
    if clone is not None and clone.size_bytes != xen_size:
        raise PlanError(f"the size of {xen.name} changed during the migration "
                        f"({clone.size_bytes} -> {xen_size} bytes); start over")
    if xen_size > korig * SECTOR:
        raise PlanError(_too_big(xen, korig * SECTOR))
    grown = (korig + n) * SECTOR
    if kvm.size_bytes not in (korig * SECTOR, grown):
        raise PlanError(f"the size of {kvm.name} changed during the migration ({kvm.size_bytes} "
                        f"bytes, expected {korig * SECTOR} or {grown}); check it by hand")
    xen_sectors = bytes_to_sectors(xen_size)
    mbr.build(n, xen_sectors)  # refuses what a DOS label cannot hold, before any change
    clone_tags = {nm.TAG_ROLE: nm.ROLE_CLONE, nm.TAG_KVM: kvm.name, nm.TAG_N: str(n),
                  nm.TAG_KVM_SECTORS: str(korig), nm.TAG_HELPER: "x" * HELPER_TAG_MAX,
                  nm.TAG_VS: "x" * 64}
    nm.check_tags(clone_name, clone_tags)  # room for every tag it will carry
    nm.check_claimable(kvm.name, {**kvm.tags, nm.TAG_XEN: clone_name})
    nm.check_claimable(xen.name, {**xen.tags, nm.TAG_VS: "x" * 64})
    plan = Plan()
    host = w.host
    if not inplace and kvm.size_bytes == korig * SECTOR:  # swapped -x/-k: before any change
        plan.add(*([] if clone else guards.detach_leftover(w, kvm)),
                 s.CheckNotXenDisk(kvm.name, xen.name, host))
    area = f"{area_dir}/boot-area-{kvm.name}.img"
    if boot_loader:  # first: a guest whose boot loader cannot be installed changes nothing
        source = w.get(clone_name) or xen
        plan.add(s.BuildBootArea(tuple(boot_loader), source.name, n, area,
                                 host not in source.attached))
    if clone is None:  # nothing changed yet: recovery points of what it will change come first
        plan.add(*recovery.take_points(w, kvm.name, [kvm] if inplace else [kvm, xen]))
        plan.add(s.CloneVolume(clone_name, xen.name, {
            nm.TAG_ROLE: nm.ROLE_CLONE, nm.TAG_KVM: kvm.name, nm.TAG_N: str(n),
            nm.TAG_KVM_SECTORS: str(korig), **_helper_tag(helper)}))
    for meta in (meta0, meta1):
        existing = w.get(meta)
        if existing is None:
            plan.add(s.CreateVolume(meta, nm.META_SIZE_BYTES,
                                    {nm.TAG_ROLE: nm.ROLE_META, nm.TAG_KVM: kvm.name},
                                    kvm.template))
        elif existing.tags.get(nm.TAG_KVM) != kvm.name:
            raise PlanError(f"volume {meta} exists and is not this tool's; remove it first")
    if inplace:
        plan.add(s.Attach(clone_name, host), s.Attach(kvm.name, host),
                 s.CheckClone(clone_name, kvm.name, n))
    if kvm.size_bytes == korig * SECTOR:
        plan.add(s.GrowVolume(kvm.name, n * SECTOR))
    plan.add(s.Attach(kvm.name, host),
             s.WritePartitionTable(kvm.name, n, xen_sectors, bool(boot_loader)),
             s.Detach(kvm.name, host))
    if helper and not (clone is not None and clone.tags.get(nm.TAG_HELPER) == "ok"):
        plan.add(s.Attach(clone_name, host), s.RunHelper(tuple(helper), clone_name),
                 s.Detach(clone_name, host), s.SetTags(clone_name, {nm.TAG_HELPER: "ok"}))
    elif inplace:
        plan.add(s.Detach(clone_name, host))
    if boot_loader:
        plan.add(s.Attach(kvm.name, host), s.WriteBootArea(kvm.name, area, n),
                 s.Detach(kvm.name, host))
    plan.add(s.SetTags(kvm.name, {nm.TAG_XEN: clone_name}))
    plan.steps = _dedupe_attach(plan.steps)
    mode = "in-place " if inplace else ""
    plan.notes.append(f"case-2 {mode}prepare: {kvm.name} grows by {n} sectors to {grown} bytes, "
                      f"partition 1 = [{n}, {n + xen_sectors}) holds {xen.name} via {clone_name}")
    return plan


# operator completeness: a prepare started with a helper records it on the clone (until the
# helper succeeds the tag holds its name, then "ok"); a rerun must bring the same helper
HELPER_TAG_MAX = 32


def helper_label(helper: Sequence[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_.:-]", "_", os.path.basename(helper[0]))
    return name[:HELPER_TAG_MAX] or "helper"


def _helper_tag(helper: Sequence[str]) -> dict[str, str]:
    return {nm.TAG_HELPER: helper_label(helper)} if helper else {}


def _refuse_other_helper(recorded: Optional[str], helper: Sequence[str]) -> None:
    if not recorded or recorded == "ok":
        return
    given = helper_label(helper) if helper else None
    if given != recorded:
        raise PlanError(f"this prepare was started with the helper {recorded}, which has not "
                        f"succeeded yet; rerun it with the same helper (-p / --helper)")


def _dedupe_attach(steps: list[s.Step]) -> list[s.Step]:
    """Drop an Attach of a volume that an earlier step attached and nothing detached since."""
    out, attached = [], set()
    for st in steps:
        if isinstance(st, s.Attach):
            if st.name in attached:
                continue
            attached.add(st.name)
        elif isinstance(st, s.Detach):
            attached.discard(st.name)
        out.append(st)
    return out


# power-on hook ----------------------------------------------------------------------------------
def _tables(w: World, d: Disk, rates: dmtables.Rates) -> tuple[str, str, str, str]:
    """(linear, one-leg raid, two-leg raid with rebuild 1, two-leg resume) for a disk."""
    clone = w.volumes[d.clone]
    x = bytes_to_sectors(clone.size_bytes)
    total = d.n + x
    dev = w.paths.volume
    meta0, meta1 = (dev(m) for m in d.metas)
    source = w.paths.mapper(d.linear)
    lin = dmtables.linear(dev(d.kvm), d.n, dev(d.clone), x)
    one = dmtables.raid1_one_leg(total, meta0, source)
    rebuild = dmtables.raid1_two_legs(total, meta0, source, meta1, dev(d.kvm), rebuild=True,
                                      leg1_has_superblock=False, rates=rates)
    resume = dmtables.raid1_two_legs(total, meta0, source, meta1, dev(d.kvm), rebuild=False,
                                     leg1_has_superblock=True, rates=rates)
    return lin, one, rebuild, resume


def _check_sizes(w: World, d: Disk) -> None:
    kvm, clone = w.volumes.get(d.kvm), w.volumes[d.clone]
    xen = w.volumes.get(d.xen)
    want = (d.kvm_orig_sectors + d.n) * SECTOR
    if kvm is None or kvm.size_bytes != want:
        raise PlanError(f"the size of {d.kvm} changed during the migration "
                        f"({kvm.size_bytes if kvm else 'gone'}, expected {want} bytes)")
    if xen is not None and not d.inplace and xen.size_bytes != clone.size_bytes:
        raise PlanError(f"the size of {d.xen} changed during the migration "
                        f"({xen.size_bytes}, clone {clone.size_bytes} bytes); start over")


def plan_assemble(w: World, vm: str, disk_ids: Sequence[str], targets,
                  rates: dmtables.Rates = dmtables.NO_RATES) -> Plan:
    nm.check_vm(vm)
    plan = Plan()
    for disk_id in disk_ids:
        kvm = w.resolve(disk_id)
        clone_name = kvm.tags.get(nm.TAG_XEN)
        if not clone_name:
            plan.add(s.Attach(kvm.name, w.host), *recovery.mark_ran(w, kvm, vm))
            plan.notes.append(f"{vm} {disk_id}: not migrating; the VM uses "
                              f"{w.paths.volume(kvm.name)} directly")
            continue
        d = w.disk_for_kvm(kvm.name)
        if d is None or d.clone != clone_name:
            raise PlanError(f"{kvm.name} is tagged xen={clone_name} but that clone is missing; "
                            "restore it or remove the tag by hand")
        if d.host and d.vm != vm:
            raise PlanError(f"{kvm.name} is assembled for VM {d.vm} on this host already")
        d.vm, d.disk = vm, disk_id
        if d.raid in w.dm:
            plan.notes.append(f"{vm} {disk_id}: already assembled as {w.paths.mapper(d.raid)}")
            continue
        _check_sizes(w, d)
        guards.refuse_xen_attached(w, d)
        check_raid_target(targets)
        lin, one, _, resume = _tables(w, d, rates)
        joined = w.volumes[d.metas[1]].tags.get("leg1") == "joined"
        plan.add(*recovery.mark_vm(w, d.kvm, vm))
        plan.add(*(s.Attach(v, w.host) for v in (d.kvm, d.clone, *d.metas)))
        if d.linear not in w.dm:
            plan.add(s.DmCreate(d.linear, lin))
        plan.add(s.AssembleRaid(d.raid, one, resume if joined else None,
                                d.metas[1]))
        plan.notes.append(f"{vm} {disk_id}: the VM uses {w.paths.mapper(d.raid)}")
    return plan


# sync (-m) -----------------------------------------------------------------------------------
def vm_disks(w: World, vm: Optional[str]) -> dict[str, list[Disk]]:
    by_vm: dict[str, list[Disk]] = {}
    for d in w.disks():
        if d.host and (vm is None or d.vm == vm):
            by_vm.setdefault(d.vm or "", []).append(d)
    return by_vm


# operator completeness: the repair command as the operator's command line spells it
REPAIR_HINT = "xen2kvm sync {vm} --repair -y"


def plan_sync(w: World, vm: Optional[str], targets, rates: dmtables.Rates = dmtables.NO_RATES,
              repair: bool = False, repair_hint: str = REPAIR_HINT) -> Plan:
    if vm:
        nm.check_vm(vm)
    plan = Plan()
    by_vm = vm_disks(w, vm)
    if not by_vm:
        plan.notes.append(f"no disk of {'VM ' + vm if vm else 'any VM'} is assembled on "
                          f"{w.host}; nothing to sync")
        return plan
    for vm_name, disks in sorted(by_vm.items()):
        ready = []
        for d in disks:
            label = f"{vm_name} {d.disk}"
            if d.phase in ("migrated",):
                plan.notes.append(f"{label}: migrated; reboot the VM to use "
                                  f"{w.paths.volume(d.kvm)} directly")
                continue
            _check_sizes(w, d)
            guards.refuse_xen_attached(w, d)
            _, _, rebuild, _ = _tables(w, d, rates)
            st = d.status
            if d.phase == ASSEMBLED:
                check_raid_target(targets)
                plan.add(s.SetTags(d.metas[1], {"leg1": "joined"}), s.DmReload(d.raid, rebuild))
                plan.notes.append(f"{label}: adding {w.paths.volume(d.kvm)} as leg 1; the "
                                  f"resync of {st.total} sectors starts")
            elif st.failed_legs:
                if repair:
                    plan.add(s.DmReload(d.raid, rebuild))
                    plan.notes.append(f"{label}: {d.problem}; rebuilding leg 1 from the start")
                else:
                    plan.failures.append(
                        f"{label}: KVM {d.problem}; not retagging. Make room on the cluster "
                        f"for {d.kvm}, then run `{repair_hint.format(vm=vm_name)}`")
            elif d.phase == SYNCING:
                plan.notes.append(f"{label}: syncing {st.percent:.1f}% ({st.done}/{st.total} "
                                  f"sectors, {st.action})")
            elif d.phase == SYNCED:
                plan.notes.append(f"{label}: in sync ({st.health} {st.done}/{st.total} "
                                  f"{st.action})")
                ready.append(d)
        if ready and len(ready) == len([d for d in disks if d.phase != "migrated"]):
            plan.add(*(s.CheckInSync(d.raid) for d in ready))
            for d in ready:
                others = ([] if d.inplace else [d.xen]) + [d.clone, *d.metas]
                plan.add(*(s.SetTags(v, {nm.TAG_VS: vm_name}) for v in others))
            plan.add(*(s.SetTags(d.kvm, {nm.TAG_XEN: None}) for d in ready))
            plan.notes.append(f"{vm_name}: every disk is in sync; after the retag reboot the VM "
                              "so it uses the KVM volumes directly")
    return plan


# release (reboot hook) ------------------------------------------------------------------------
def plan_release(w: World, vm: str) -> Plan:
    """Tear down the VM's dm devices (raid first, then linear), then detach this tool's volumes
    that no remaining dm table uses: that also finishes a release a crash interrupted."""
    nm.check_vm(vm)
    plan = Plan()
    disks = sorted({p[1] for p in map(nm.parse_dm_name, w.dm) if p and p[0] == vm})
    removed = set()
    for disk in disks:
        raid, lin = nm.dm_raid(vm, disk), nm.dm_linear(vm, disk)
        d = next((x for x in w.disks() if x.vm == vm and x.disk == disk), None)
        gone = [n for n in (raid, lin) if n in w.dm]
        plan.add(*(s.DmRemove(n) for n in gone))
        removed.update(gone)
        if d is not None:
            after = w.paths.volume(d.kvm) if d.phase == "migrated" else "the raid1 again"
            plan.notes.append(f"{vm} {disk}: {d.phase}; after the reboot the VM uses {after}")
    still_used = {word for n, t in w.dm.items() if n not in removed for word in t.split()}
    for v in sorted(w.volumes.values(), key=lambda v: v.name):
        if (v.tags.get(nm.TAG_ROLE) in (nm.ROLE_CLONE, nm.ROLE_META) and w.host in v.attached
                and w.paths.volume(v.name) not in still_used):
            plan.add(s.Detach(v.name, w.host))
    if not plan.steps:
        plan.notes.append(f"VM {vm} has no xen2kvm devices on {w.host}; nothing to release")
    return plan


# cleanup (-z) ----------------------------------------------------------------------------------
def plan_cleanup(w: World, vm: Optional[str]) -> Plan:
    if vm:
        nm.check_vm(vm)
    kvms = {v.tags.get(nm.TAG_KVM) for v in w.volumes.values() if nm.is_own(v.tags)}
    plan = Plan()
    victims = []
    for v in sorted(w.volumes.values(), key=lambda v: v.name):
        role, vs, kvm = v.tags.get(nm.TAG_ROLE), v.tags.get(nm.TAG_VS), v.tags.get(nm.TAG_KVM)
        if role not in nm.OWN_ROLES or v.name in kvms or not kvm:
            continue
        if vm is not None and vs != vm:
            continue
        if vm is None and not vs and role != nm.ROLE_REPLACED:
            continue
        expected = {nm.ROLE_CLONE: None, nm.ROLE_META: nm.meta_names(kvm),
                    nm.ROLE_REPLACED: (nm.replaced_name(kvm),)}[role]
        if expected is not None and v.name not in expected:
            continue
        owner = w.get(kvm)
        if role == nm.ROLE_REPLACED and not _replaced_deletable(w, v, owner, plan):
            continue
        if role != nm.ROLE_REPLACED and owner is not None and owner.tags.get(nm.TAG_XEN):
            raise PlanError(f"{v.name} belongs to {kvm}, which is still migrating "
                            f"(xen={owner.tags[nm.TAG_XEN]}); finish the sync first")
        w.refuse_attached(v)
        if w.dm_using(v.name):
            raise PlanError(f"{v.name} is used by dm device {w.dm_using(v.name)[0]}; "
                            f"release the VM first")
        victims.append(v.name)
    plan.add(*(s.DeleteVolume(n) for n in victims))
    if not victims:
        plan.notes.append("nothing to clean up" + (f" for VM {vm}" if vm else ""))
    return plan


def _replaced_deletable(w: World, old, kvm, plan: Plan) -> bool:
    """A case-1 `x2kold-` volume goes only once the replace is complete (else a rerun could not
    finish it) and only when a recovery point holds its data (else it is the only copy)."""
    name = old.tags[nm.TAG_KVM]
    if kvm is None or nm.is_own(kvm.tags) or kvm.size_bytes < old.size_bytes:
        plan.notes.append(f"keeping {old.name}: the case-1 replace of {name} is unfinished; "
                          f"rerun the same case-1 command (or `xen2kvm abort --disk {name}`)")
        return False
    g = recovery.latest(w, name)
    if g is None or g.point_of(name) is None:
        plan.notes.append(f"keeping {old.name}: no recovery point holds its data; "
                          f"delete it by hand once it is no longer needed")
        return False
    return True
