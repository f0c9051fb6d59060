"""Refusals a typo cannot pass, and a XEN side that must stay quiet (issue 10): checks on a
world snapshot, raised before any change, shared by the planners."""

from __future__ import annotations

from . import naming as nm
from . import steps as s
from .errors import PlanError
from .world import Disk, World


def refuse_other_migration(xen, kvm, clone_name: str = "") -> None:
    """A typo must not restart a finished migration or mix two: refuse volumes that carry
    `vs=` (done) or the KVM-side tag of another migration."""
    for vol in {xen.name: xen, kvm.name: kvm}.values():
        if vol.tags.get(nm.TAG_VS):
            raise PlanError(f"{vol.name} was already migrated (tagged vs={vol.tags[nm.TAG_VS]}); "
                            "a new prepare would bring its old data back: nothing to do "
                            "(`xen2kvm status`; remove the tag by hand only to start over)")
    theirs = [(v, v.tags[nm.TAG_XEN]) for v in (xen, kvm)
              if v.tags.get(nm.TAG_XEN) and v.tags[nm.TAG_XEN] != clone_name]
    if theirs:
        vol, tag = theirs[0]
        raise PlanError(f"{vol.name} belongs to another migration (xen={tag}); check -x and "
                        f"-k (swapped?) and finish or undo that migration first")


def detach_leftover(w: World, kvm) -> list[s.Step]:
    """Attached here before anything was done: the swapped-disk look of a run that crashed,
    or a VM using it. The detach tells them apart: StorPool refuses it while the VM has the
    volume open, before any change."""
    return [s.Detach(kvm.name, w.host, w.client)] if w.host in kvm.attached else []


def refuse_xen_attached(w: World, d: Disk) -> None:
    """After prepare the XEN side must stay quiet: its writes would never reach KVM."""
    xen = w.get(d.xen)
    if xen is not None and not d.inplace and xen.attached:
        raise PlanError(f"the XEN volume {xen.name} is attached to {', '.join(xen.attached)}: "
                        "the XEN VM must stay off after prepare; power it off, then run "
                        "`xen2kvm verify -y` (it tells whether the XEN VM wrote)")
