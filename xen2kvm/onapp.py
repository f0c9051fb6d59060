"""The OnApp step of an in-place migration, which the tool prints and never runs.

In-place there is no shell KVM VM: once the disk is prepared, OnApp itself must be told that
the VM now lives on a KVM hypervisor, by a change in its control panel's database (the
knowledge-base article's addendum). The table and column follow OnApp's API objects
(`virtual_machines.hypervisor_id`); the schema is an inference from the API, not documented.
"""

from __future__ import annotations

from typing import Optional

VM_PLACEHOLDER = "<OnApp VM id>"
HV_PLACEHOLDER = "<KVM hypervisor id>"


def sql(vm_id: Optional[int], hypervisor_id: Optional[int]) -> str:
    hv = HV_PLACEHOLDER if hypervisor_id is None else str(int(hypervisor_id))
    vm = VM_PLACEHOLDER if vm_id is None else str(int(vm_id))
    return f"UPDATE virtual_machines SET hypervisor_id={hv} WHERE id={vm};"


def notes(vm_id: Optional[int], hypervisor_id: Optional[int], done: bool) -> list[str]:
    """What the operator does next, in OnApp's database on the control panel (the tool has
    no access to it and never runs it)."""
    when = "Now" if done else "After this prepare (-y)"
    missing = [flag for flag, value in (("--onapp-vm-id", vm_id),
                                        ("--onapp-hypervisor-id", hypervisor_id))
               if value is None]
    lines = [f"# OnApp: {when}, with the VM still powered off, move it to a KVM hypervisor in "
             "OnApp's database (on the control panel server, e.g. `mysql onapp`); xen2kvm "
             "never runs this:",
             sql(vm_id, hypervisor_id)]
    if missing:
        lines.append(f"# fill in the placeholders, or give {' and '.join(missing)}")
    lines.append("# then power the VM on from OnApp: its KVM host's power-on hook assembles "
                 "the disk")
    return lines
