"""Case-1 planning: the KVM volume is replaced by a clone of the XEN one."""

from __future__ import annotations

from typing import Optional

from . import guards, recovery
from . import naming as nm
from . import steps as s
from .backend import Volume
from .errors import PlanError
from .plan import Plan
from .world import World


def too_big(xen: Volume, room_bytes: int) -> str:
    return (f"XEN disk {xen.name} ({xen.size_bytes} bytes) is larger than the KVM disk's room "
            f"({room_bytes} bytes); grow the KVM disk in OnApp first")


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
    kvm, old = w.get(kvm_name), w.get(nm.replaced_name(kvm_name))
    w.refuse_attached(xen)
    plan = Plan()
    if not marked:  # swapped -x/-k: look before anything, the recovery point included
        plan.add(*guards.detach_leftover(w, kvm),
                 s.CheckNotXenDisk(kvm.name, xen.name, w.host, True, w.client))
    if old is None:  # the volume still has its name: recover it from before the first change
        plan.add(*recovery.take_points(w, kvm_name, [kvm], case1=True))
    if not marked:  # nothing done yet
        plan.add(_mark_replaced(xen, kvm, old, vm))
    return _replace(w, plan, xen, kvm_name, marked=bool(marked))


def _mark_replaced(xen: Volume, kvm: Volume, old: Optional[Volume], vm: Optional[str]):
    """The first change: the KVM volume is tagged as the one being replaced."""
    old_name = nm.replaced_name(kvm.name)
    if kvm.tags.get(nm.TAG_XEN):
        raise PlanError(f"a case-2 migration is in progress for {kvm.name} "
                        f"(xen={kvm.tags[nm.TAG_XEN]}); finish or undo it first")
    guards.refuse_other_migration(xen, kvm)
    if xen.size_bytes > kvm.size_bytes:
        raise PlanError(too_big(xen, kvm.size_bytes))
    if old is not None:
        raise PlanError(f"volume {old_name} exists already; rename or delete it first")
    tags = {nm.TAG_ROLE: nm.ROLE_REPLACED, nm.TAG_KVM: kvm.name}
    if vm:
        tags[nm.TAG_VS] = vm
    nm.check_tags(old_name, {**kvm.tags, **tags})
    return s.SetTags(kvm.name, tags)


def _replace(w: World, plan: Plan, xen: Volume, kvm_name: str, marked: bool) -> Plan:
    """Rename the tagged volume aside, clone the XEN volume under its name, grow the clone."""
    old_name = nm.replaced_name(kvm_name)
    kvm, old = w.get(kvm_name), w.get(old_name)
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
