"""The migration state machine: one disk's phases and the commands that move it between them.

A phase is never stored: it is derived on every run from the volumes' tags, the clone and the
host's dm devices (world.py for disks with a case-2 clone, recovery.py for migrations known only
by their recovery points). The values are the strings `status --json` and `fleet` print.

Case-2 (prepare -x X -k K; in-place when X == K):

    phase        command            next phase    what it does / what a rerun does
    -----------  -----------------  ------------  -------------------------------------------------
    (none)       prepare            PREPARED      recovery points, clone xen-X, metadata volumes,
                                                  grow K by N sectors, write the MBR, tag K xen=...
    UNPREPARED   prepare (rerun)    PREPARED      a crashed prepare: only the steps not yet done
    PREPARED     prepare (rerun)    PREPARED      nothing to do ("already prepared")
    PREPARED     assemble (hook)    ASSEMBLED     dm linear [K 0..N) + [clone], one-leg raid1
    ASSEMBLED    assemble (rerun)   ASSEMBLED     nothing to do ("already assembled")
    ASSEMBLED    sync               SYNCING       K joins as leg 1 (`rebuild 1`), meta1 tagged
                                                  leg1=joined; the kernel resyncs
    SYNCING      sync (rerun)       SYNCING       reports progress; a failed leg needs --repair
    SYNCED       sync               MIGRATED      every disk of the VM in sync: re-check, tag the
                                                  tool's volumes vs=VM, drop K's xen tag
    MIGRATED     release (reboot)   RELEASED      remove the dm devices, detach the tool's volumes
    PREPARED..   release            PREPARED..    dm devices go; the next assemble rebuilds them
                                                  (two legs at once after leg1=joined)
    RELEASED     cleanup            CLEANED       delete the clone and metadata volumes
    any          abort              ABORTED       back to the recovery points (abort.py)

Case-1 (clone -x X -k K): REPLACING while the tag/rename/clone/grow steps are under way (a rerun
finishes them), REPLACED once K is a clone of X at K's old size; cleanup then deletes x2kold-K.
"""

from __future__ import annotations

import enum


class Phase(str, enum.Enum):
    UNPREPARED = "unprepared"
    PREPARED = "prepared"
    ASSEMBLED = "assembled"
    SYNCING = "syncing"
    SYNCED = "synced"
    MIGRATED = "migrated"
    RELEASED = "released"
    CLEANED = "cleaned"
    ABORTED = "aborted"
    REPLACING = "replacing"
    REPLACED = "replaced"

    def __str__(self) -> str:  # f-strings and JSON print the bare value
        return self.value


# phases in which the VM still runs on the raid1 and the copy is not finished
IN_PROGRESS = (Phase.UNPREPARED, Phase.PREPARED, Phase.ASSEMBLED, Phase.SYNCING)
# phases in which a resync is under way or about to start (sync --wait keeps waiting)
RESYNCING = (Phase.ASSEMBLED, Phase.SYNCING)
