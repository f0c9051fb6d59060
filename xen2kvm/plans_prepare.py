"""Case-2 prepare planning: clone the XEN volume, grow the KVM volume by N sectors and write
the partition table in front of it, tag the KVM volume (phases.py: -> PREPARED)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from . import guards, mbr, recovery
from . import naming as nm
from . import steps as s
from .backend import Volume
from .errors import PlanError
from .plan import Plan
from .plans_case1 import too_big
from .units import SECTOR, bytes_to_sectors
from .world import World


@dataclass(frozen=True)
class Prepare:
    """One prepare as read off the world: the volumes, N and the sizes it works with."""

    xen: Volume
    kvm: Volume
    clone: Optional[Volume]
    n: int
    korig: int  # the KVM volume's size in sectors before the grow
    xen_sectors: int
    host: str
    client: Optional[int]

    @property
    def inplace(self) -> bool:
        return self.xen.name == self.kvm.name

    @property
    def clone_name(self) -> str:
        return nm.clone_name(self.xen.name)

    def attach(self, name: str) -> s.Attach:
        return s.Attach(name, self.host, self.client)

    def detach(self, name: str) -> s.Detach:
        return s.Detach(name, self.host, self.client)


def plan_prepare(w: World, xen_id: str, kvm_id: str, n: int,
                 helper: Sequence[str] = (), boot_loader: Sequence[str] = (),
                 area_dir: str = "") -> Plan:
    """`boot_loader`: the program that builds the guest's boot code (xen2kvm-guest)."""
    xen, kvm = w.resolve(xen_id), w.resolve(kvm_id)
    clone_name = nm.clone_name(xen.name)
    guards.refuse_other_migration(xen, kvm, clone_name)
    clone = w.get(clone_name)
    if kvm.tags.get(nm.TAG_XEN) and clone is not None:  # a rerun of a finished prepare
        return _prepared_already(w, xen.name, kvm.name, clone, n)
    if kvm.tags.get(nm.TAG_XEN):
        raise PlanError(f"{kvm.name} is tagged xen={clone_name} but that clone is missing; "
                        "check it by hand (`xen2kvm status`)")
    p = _read(w, xen, kvm, clone, n, helper)
    area = f"{area_dir}/boot-area-{kvm.name}.img"
    plan = Plan(_first_steps(w, p, helper, boot_loader, area))
    plan.add(*_disk_steps(p, helper, boot_loader, area))
    plan.steps = _dedupe_attach(plan.steps)
    mode = "in-place " if p.inplace else ""
    plan.notes.append(f"case-2 {mode}prepare: {kvm.name} grows by {n} sectors to "
                      f"{(p.korig + n) * SECTOR} bytes, partition 1 = [{n}, "
                      f"{n + p.xen_sectors}) holds {xen.name} via {clone_name}")
    return plan


def _prepared_already(w: World, xen: str, kvm: str, clone: Volume, n: int) -> Plan:
    if clone.tags.get(nm.TAG_KVM) != kvm or int(clone.tags.get(nm.TAG_N, 0)) != n:
        raise PlanError(f"{kvm} was prepared with other arguments (clone {clone.name}, "
                        f"N={clone.tags.get(nm.TAG_N)}); see `xen2kvm status`")
    d = w.disk_for_kvm(kvm)
    return Plan(notes=[f"{kvm} is already prepared from {xen} (phase "
                       f"{d.phase if d else 'prepared'}); nothing to do"])


def _original_sectors(kvm: Volume, clone: Optional[Volume], n: int,
                      helper: Sequence[str]) -> int:
    """The KVM volume's size before the grow: its own, or as a started prepare recorded it."""
    if clone is None:
        return bytes_to_sectors(kvm.size_bytes)
    t = clone.tags
    if t.get(nm.TAG_ROLE) != nm.ROLE_CLONE or t.get(nm.TAG_KVM) != kvm.name:
        raise PlanError(f"volume {clone.name} exists and is not this tool's clone for "
                        f"{kvm.name}; rename or delete it first")
    if t.get(nm.TAG_VS):
        raise PlanError(f"{kvm.name} was already migrated from {nm.xen_of_clone(clone.name)} "
                        f"(clone tagged vs={t[nm.TAG_VS]}); nothing to prepare")
    if int(t.get(nm.TAG_N, 0)) != n:
        flag = "without -c" if int(t.get(nm.TAG_N, 0)) == 32 else "with -c (--no-dos)"
        raise PlanError(f"this prepare was started with N={t.get(nm.TAG_N)} sectors; "
                        f"rerun it {flag}")
    _refuse_other_helper(t.get(nm.TAG_HELPER), helper)
    return int(t[nm.TAG_KVM_SECTORS])


def _read(w: World, xen: Volume, kvm: Volume, clone: Optional[Volume], n: int,
          helper: Sequence[str]) -> Prepare:
    """The prepare's sizes, checked before any change (a rerun: against what it recorded)."""
    korig = _original_sectors(kvm, clone, n, helper)
    inplace = xen.name == kvm.name
    w.refuse_attached(xen, allow_local=clone is not None and inplace)
    w.refuse_attached(kvm, allow_local=clone is not None or not inplace)
    xen_size = clone.size_bytes if (clone is not None and inplace) else xen.size_bytes
    if clone is not None and clone.size_bytes != xen_size:
        raise PlanError(f"the size of {xen.name} changed during the migration "
                        f"({clone.size_bytes} -> {xen_size} bytes); start over")
    if xen_size > korig * SECTOR:
        raise PlanError(too_big(xen, korig * SECTOR))
    grown = (korig + n) * SECTOR
    if kvm.size_bytes not in (korig * SECTOR, grown):
        raise PlanError(f"the size of {kvm.name} changed during the migration ({kvm.size_bytes} "
                        f"bytes, expected {korig * SECTOR} or {grown}); check it by hand")
    p = Prepare(xen, kvm, clone, n, korig, bytes_to_sectors(xen_size), w.host, w.client)
    mbr.build(n, p.xen_sectors)  # refuses what a DOS label cannot hold, before any change
    nm.check_tags(p.clone_name, nm.room_for_later_tags(_clone_tags(p, ())))
    nm.check_claimable(kvm.name, {**kvm.tags, nm.TAG_XEN: p.clone_name})
    nm.check_claimable(xen.name, {**xen.tags, nm.TAG_VS: "x" * nm.VM_MAX})
    return p


def _clone_tags(p: Prepare, helper: Sequence[str]) -> dict[str, str]:
    return {nm.TAG_ROLE: nm.ROLE_CLONE, nm.TAG_KVM: p.kvm.name, nm.TAG_N: str(p.n),
            nm.TAG_KVM_SECTORS: str(p.korig), **_helper_tag(helper)}


def _first_steps(w: World, p: Prepare, helper: Sequence[str], boot_loader: Sequence[str],
                 area: str) -> list[s.Step]:
    """Looks that refuse before any change, then the recovery points, clone and metadata."""
    out: list[s.Step] = []
    if not p.inplace and p.kvm.size_bytes == p.korig * SECTOR:  # swapped -x/-k?
        leftover = [] if p.clone else guards.detach_leftover(w, p.kvm)
        attached = p.clone is not None and p.host in p.kvm.attached
        out += [*leftover, s.CheckNotXenDisk(p.kvm.name, p.xen.name, p.host, not attached,
                                             p.client)]
    if boot_loader:  # first: a guest whose boot loader cannot be installed changes nothing
        source = p.clone or p.xen
        out.append(s.BuildBootArea(tuple(boot_loader), source.name, p.n, area,
                                   p.host not in source.attached, p.host, p.client))
    if p.clone is None:  # nothing changed yet: recovery points of what it will change first
        out += recovery.take_points(w, p.kvm.name, [p.kvm] if p.inplace else [p.kvm, p.xen])
        out.append(s.CloneVolume(p.clone_name, p.xen.name, _clone_tags(p, helper)))
    for meta in nm.meta_names(p.kvm.name):
        existing = w.get(meta)
        if existing is None:
            out.append(s.CreateVolume(meta, nm.META_SIZE_BYTES,
                                      {nm.TAG_ROLE: nm.ROLE_META, nm.TAG_KVM: p.kvm.name},
                                      p.kvm.template))
        elif existing.tags.get(nm.TAG_KVM) != p.kvm.name:
            raise PlanError(f"volume {meta} exists and is not this tool's; remove it first")
    return out


def _disk_steps(p: Prepare, helper: Sequence[str], boot_loader: Sequence[str],
                area: str) -> list[s.Step]:
    """The grow, the partition table, the helper, the boot code and the tag that ends it."""
    kvm, clone_name = p.kvm.name, p.clone_name
    out: list[s.Step] = []
    if p.inplace:
        out += [p.attach(clone_name), p.attach(kvm), s.CheckClone(clone_name, kvm, p.n)]
    if p.kvm.size_bytes == p.korig * SECTOR:
        out.append(s.GrowVolume(kvm, p.n * SECTOR))
    out += [p.attach(kvm), s.WritePartitionTable(kvm, p.n, p.xen_sectors, bool(boot_loader)),
            p.detach(kvm)]
    if helper and not (p.clone is not None and p.clone.tags.get(nm.TAG_HELPER) == "ok"):
        out += [p.attach(clone_name), s.RunHelper(tuple(helper), clone_name),
                p.detach(clone_name), s.SetTags(clone_name, {nm.TAG_HELPER: "ok"})]
    elif p.inplace:
        out.append(p.detach(clone_name))
    if boot_loader:
        out += [p.attach(kvm), s.WriteBootArea(kvm, area, p.n), p.detach(kvm)]
    out.append(s.SetTags(kvm, {nm.TAG_XEN: clone_name}))
    return out


# operator completeness: a prepare started with a helper records it on the clone (until the
# helper succeeds the tag holds its name, then "ok"); a rerun must bring the same helper
def helper_label(helper: Sequence[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_.:-]", "_", os.path.basename(helper[0]))
    return name[:nm.HELPER_TAG_MAX] or "helper"


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
