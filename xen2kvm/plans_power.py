"""Planning around the VM's power cycle (phases.py): assemble at power-on (PREPARED ->
ASSEMBLED), sync while it runs (ASSEMBLED -> SYNCING -> MIGRATED), release at power-off."""

from __future__ import annotations

from typing import Optional, Sequence

from . import dmtables, guards, recovery
from . import naming as nm
from . import steps as s
from .dmstatus import check_raid_target
from .errors import PlanError
from .phases import Phase
from .plan import Plan
from .units import SECTOR, bytes_to_sectors
from .world import Disk, World


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


def _joined(w: World, d: Disk) -> bool:
    meta1 = w.volumes.get(d.metas[1])
    return meta1 is not None and meta1.tags.get(nm.TAG_LEG1) == nm.LEG1_JOINED


# power-on hook ----------------------------------------------------------------------------------
def plan_assemble(w: World, vm: str, disk_ids: Sequence[str], targets,
                  rates: dmtables.Rates = dmtables.NO_RATES) -> Plan:
    nm.check_vm(vm)
    plan = Plan()
    for disk_id in disk_ids:
        kvm = w.resolve(disk_id)
        clone_name = kvm.tags.get(nm.TAG_XEN)
        if not clone_name:
            plan.add(s.Attach(kvm.name, w.host, w.client), *recovery.mark_ran(w, kvm, vm))
            plan.notes.append(f"{vm} {disk_id}: not migrating; the VM uses "
                              f"{w.paths.volume(kvm.name)} directly")
            continue
        found = w.disk_for_kvm(kvm.name)
        if found is None or found.clone != clone_name:
            raise PlanError(f"{kvm.name} is tagged xen={clone_name} but that clone is missing; "
                            "restore it or remove the tag by hand")
        if found.host and found.vm != vm:
            raise PlanError(f"{kvm.name} is assembled for VM {found.vm} on this host already")
        _assemble_disk(w, plan, found.as_vm(vm, disk_id), targets, rates)
    return plan


def _assemble_disk(w: World, plan: Plan, d: Disk, targets, rates: dmtables.Rates) -> None:
    """The linear and the raid1: one leg, or two that resume the copy once leg 1 joined."""
    if d.raid in w.dm:
        plan.notes.append(f"{d.vm} {d.disk}: already assembled as {w.paths.mapper(d.raid)}")
        return
    _check_sizes(w, d)
    guards.refuse_xen_attached(w, d)
    check_raid_target(targets)
    lin, one, _, resume = _tables(w, d, rates)
    plan.add(*recovery.mark_vm(w, d.kvm, d.vm or ""))
    plan.add(*(s.Attach(v, w.host, w.client) for v in (d.kvm, d.clone, *d.metas)))
    if d.linear not in w.dm:
        plan.add(s.DmCreate(d.linear, lin))
    plan.add(s.AssembleRaid(d.raid, one, resume if _joined(w, d) else None, d.metas[1]))
    plan.notes.append(f"{d.vm} {d.disk}: the VM uses {w.paths.mapper(d.raid)}")


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
        ready = [d for d in disks if _sync_disk(w, plan, d, targets, rates, repair,
                                                 repair_hint.format(vm=vm_name))]
        if ready and len(ready) == len([d for d in disks if d.phase != Phase.MIGRATED]):
            _retag(plan, vm_name, ready)
    return plan


def _sync_disk(w: World, plan: Plan, d: Disk, targets, rates: dmtables.Rates, repair: bool,
               hint: str) -> bool:
    """The step one disk needs; True when it is in sync (ready for the retag)."""
    label = f"{d.vm} {d.disk}"
    if d.phase == Phase.MIGRATED:
        plan.notes.append(f"{label}: migrated; reboot the VM to use {w.paths.volume(d.kvm)} "
                          "directly")
        return False
    _check_sizes(w, d)
    guards.refuse_xen_attached(w, d)
    _, _, rebuild, _ = _tables(w, d, rates)
    st = d.status
    if d.phase == Phase.ASSEMBLED:
        check_raid_target(targets)
        plan.add(s.SetTags(d.metas[1], {nm.TAG_LEG1: nm.LEG1_JOINED}), s.DmReload(d.raid, rebuild))
        plan.notes.append(f"{label}: adding {w.paths.volume(d.kvm)} as leg 1; the resync of "
                          f"{st.total} sectors starts")
        return False
    if st.failed_legs:
        if repair:
            plan.add(s.DmReload(d.raid, rebuild))
            plan.notes.append(f"{label}: {d.problem}; rebuilding leg 1 from the start")
        else:
            plan.failures.append(f"{label}: KVM {d.problem}; not retagging. Make room on the "
                                 f"cluster for {d.kvm}, then run `{hint}`")
    elif d.phase == Phase.SYNCING:
        plan.notes.append(f"{label}: syncing {st.percent:.1f}% ({st.done}/{st.total} sectors, "
                          f"{st.action})")
    elif d.phase == Phase.SYNCED:
        plan.notes.append(f"{label}: in sync ({st.health} {st.done}/{st.total} {st.action})")
        return True
    return False


def _retag(plan: Plan, vm_name: str, ready: list[Disk]) -> None:
    """Every disk of the VM is in sync: re-check, then the tags that end the migration."""
    plan.add(*(s.CheckInSync(d.raid) for d in ready))
    for d in ready:
        others = ([] if d.inplace else [d.xen]) + [d.clone, *d.metas]
        plan.add(*(s.SetTags(v, {nm.TAG_VS: vm_name}) for v in others))
    plan.add(*(s.SetTags(d.kvm, {nm.TAG_XEN: None}) for d in ready))
    plan.notes.append(f"{vm_name}: every disk is in sync; after the retag reboot the VM so it "
                      "uses the KVM volumes directly")


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
            after = w.paths.volume(d.kvm) if d.phase == Phase.MIGRATED else "the raid1 again"
            plan.notes.append(f"{vm} {disk}: {d.phase}; after the reboot the VM uses {after}")
    still_used = {word for n, t in w.dm.items() if n not in removed for word in t.split()}
    for v in w.own(nm.ROLE_CLONE, nm.ROLE_META):
        if w.host in v.attached and w.paths.volume(v.name) not in still_used:
            plan.add(s.Detach(v.name, w.host, w.client))
    if not plan.steps:
        plan.notes.append(f"VM {vm} has no xen2kvm devices on {w.host}; nothing to release")
    return plan
