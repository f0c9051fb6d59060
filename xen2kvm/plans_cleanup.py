"""Cleanup planning (phases.py: RELEASED -> CLEANED): the tool's own volumes of finished
migrations go, and a case-1 `x2kold-` volume once a recovery point holds its data."""

from __future__ import annotations

from typing import Optional

from . import naming as nm
from . import recovery
from . import steps as s
from .errors import PlanError
from .plan import Plan
from .world import World


# cleanup (-z) ----------------------------------------------------------------------------------
def plan_cleanup(w: World, vm: Optional[str]) -> Plan:
    if vm:
        nm.check_vm(vm)
    own = w.own(*nm.OWN_ROLES)
    kvms = {v.tags.get(nm.TAG_KVM) for v in own}
    plan = Plan()
    victims = []
    for v in own:
        role, vs, kvm = v.tags.get(nm.TAG_ROLE), v.tags.get(nm.TAG_VS), v.tags.get(nm.TAG_KVM)
        if v.name in kvms or not kvm:
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
