"""Steps as data: every change the tool makes is one of these frozen dataclasses. A step's
actions (actions.py) are what it sends, runs or writes; its dry-run text is rendered from them
and apply() performs them, so dry-run and `-y` walk the same list and print the same lines.

The steps live by what they touch: steps_storage.py (StorPool API requests), steps_host.py
(commands and device I/O on the hypervisor); this module is the one place to import them from.
"""

from __future__ import annotations

from .step import Step
from .steps_host import (
    AssembleRaid,
    BuildBootArea,
    CheckClone,
    CheckInSync,
    CheckNotXenDisk,
    DmCreate,
    DmReload,
    DmRemove,
    RunHelper,
    SysctlSet,
    WriteBootArea,
    WritePartitionTable,
)
from .steps_storage import (
    Attach,
    CloneVolume,
    CreateFromSnapshot,
    CreateVolume,
    DeleteSnapshot,
    DeleteVolume,
    Detach,
    GrowVolume,
    RenameVolume,
    RevertVolume,
    SetSnapshotTags,
    SetTags,
    TakeRecoveryPoint,
)

__all__ = [
    "Step", "AssembleRaid", "Attach", "BuildBootArea", "CheckClone", "CheckInSync",
    "CheckNotXenDisk", "CloneVolume", "CreateFromSnapshot", "CreateVolume", "DeleteSnapshot",
    "DeleteVolume", "Detach", "DmCreate", "DmReload", "DmRemove", "GrowVolume",
    "RenameVolume", "RevertVolume", "RunHelper", "SetSnapshotTags", "SetTags", "SysctlSet",
    "TakeRecoveryPoint", "WriteBootArea", "WritePartitionTable",
]
