"""Pure planning: a world snapshot and an intent in, an ordered list of steps out. Steps already
done (read off tags, sizes and dm state) are left out, so a rerun completes a crashed run and
never repeats a change (never grows twice). Planners never change the world they read.

One module per command family: plans_case1 (clone), plans_prepare (prepare), plans_power
(assemble, sync, release), plans_cleanup (cleanup); abort.py plans abort and purge. The phases
they move a disk through are in phases.py. Import them from here.
"""

from __future__ import annotations

from .plan import Plan
from .plans_case1 import plan_clone
from .plans_cleanup import plan_cleanup
from .plans_power import REPAIR_HINT, plan_assemble, plan_release, plan_sync, vm_disks
from .plans_prepare import helper_label, plan_prepare

__all__ = ["Plan", "REPAIR_HINT", "helper_label", "plan_assemble", "plan_cleanup", "plan_clone",
           "plan_prepare", "plan_release", "plan_sync", "vm_disks"]
