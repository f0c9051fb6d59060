"""Recovery points, read off the world: which snapshots belong to which migration, which one a
prepare takes, and when a migration may be purged. Pure: a World in, facts or steps out.

A migration is keyed by its KVM volume (`m`) and a generation (`g`): one recovery point per
volume the tool changes, taken before the first change. The newest generation that is neither
aborted nor purgeable is the one a rerun continues, so a rerun after a crash never takes a
second, later point of already-changed data (the first one wins).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from . import naming as nm
from . import steps as s
from .backend import Snapshot, Volume
from .phases import Phase
from .world import World


@dataclass(frozen=True)
class Group:
    """The recovery points (and abort's undo points) of one migration. Frozen, and tuples:
    a world's groups are handed to the next world of the process (World.memo)."""

    migration: str
    gen: int
    points: tuple[Snapshot, ...] = ()
    undos: tuple[Snapshot, ...] = ()

    @property
    def case1(self) -> bool:
        return any(p.tags.get(nm.TAG_RP_CASE1) for p in self.points)

    @property
    def aborted(self) -> bool:
        return bool(self.points) and all(p.tags.get(nm.TAG_RP_ABORTED) for p in self.points)

    @property
    def ran(self) -> bool:
        """The VM ran from the raw volume after the migration (or the abort) ended."""
        return bool(self.points) and all(p.tags.get(nm.TAG_RP_RAN) for p in self.points)

    @property
    def vm(self) -> Optional[str]:
        return next((p.tags[nm.TAG_RP_VM] for p in self.points if p.tags.get(nm.TAG_RP_VM)),
                    None)

    def volumes(self) -> list[str]:
        return [nm.rp_volume(p.tags) for p in self.points]

    def point_of(self, volume: str) -> Optional[Snapshot]:
        return next((p for p in self.points if nm.rp_volume(p.tags) == volume), None)

    def undo_of(self, volume: str) -> Optional[Snapshot]:
        return next((u for u in self.undos if nm.rp_volume(u.tags) == volume), None)

    def names(self) -> list[str]:
        return sorted(x.name for x in (*self.points, *self.undos))


def groups(w: World) -> list[Group]:
    """Every migration that has recovery points, oldest generation first."""
    return list(w.memo("recovery groups", lambda: _groups(w), ("snapshots",)))


def _groups(w: World, names: Optional[Iterable[str]] = None) -> list[Group]:
    """The groups of the snapshots named (all of them by default), oldest generation first."""
    by_key: dict[tuple[str, int], tuple[list[Snapshot], list[Snapshot]]] = {}
    roles = (nm.ROLE_RP, nm.ROLE_UNDO)
    snaps = w.snapshots.values() if names is None else (w.snapshots[n] for n in names)
    for snap in snaps:
        t = snap.tags
        role = t.get(nm.TAG_ROLE)
        if role not in roles or not t.get(nm.TAG_RP_MIGRATION):
            continue
        key = (t[nm.TAG_RP_MIGRATION], int(t.get(nm.TAG_RP_GEN, "0")))
        points, undos = by_key.setdefault(key, ([], []))
        (points if role == nm.ROLE_RP else undos).append(snap)
    # by name within a group: a few each, not all of them sorted
    return [Group(m, gen, tuple(sorted(points, key=lambda x: x.name)),
                  tuple(sorted(undos, key=lambda x: x.name)))
            for (m, gen), (points, undos) in sorted(by_key.items())]


def latest(w: World, migration: str) -> Optional[Group]:
    """The migration's newest group that has points: read off its own snapshots only (the
    world's index of them by migration), as a fleet has thousands of others."""
    return w.memo(f"latest recovery group of {migration}", lambda: _latest(w, migration),
                  None)


def _latest(w: World, migration: str) -> Optional[Group]:
    names = w.tagged("snapshots", nm.TAG_RP_MIGRATION).get(migration, ())
    return next((g for g in reversed(_groups(w, names)) if g.points), None)


def matching(w: World, disk: str) -> list[str]:
    """Migrations (KVM volume names) an OnApp disk identifier names, even while case-1 has
    renamed the volume aside."""
    return sorted({g.migration for g in groups(w)
                   if disk in (g.migration, nm.disk_of(g.migration))})


def _next_gen(w: World, migration: str, volumes: Sequence[str]) -> int:
    by_migration = w.tagged("snapshots", nm.TAG_RP_MIGRATION)
    by_volume = w.tagged("snapshots", nm.TAG_RP_VOLUME)
    # every snapshot that may name them (by migration, or as the volume taken), then the test
    maybe = {n for key in (migration, *volumes)
             for n in (*by_migration.get(key, ()), *by_volume.get(key, ()))}
    used = [int(x.tags.get(nm.TAG_RP_GEN, "0")) for x in map(w.snapshots.__getitem__, maybe)
            if x.tags.get(nm.TAG_RP_MIGRATION) == migration
            or nm.rp_volume(x.tags) in volumes]
    return max(used, default=0) + 1


def take_points(w: World, migration: str, vols: Sequence[Volume], case1: bool = False
                ) -> list[s.Step]:
    """Recovery points of `vols` (pre-existing volumes the migration will change) that do not
    exist yet. An unfinished migration keeps its first points; only what it lacks is added."""
    g = latest(w, migration)
    if g is not None and not g.aborted and not g.ran:
        gen, have = g.gen, set(g.volumes())
    else:
        gen, have = _next_gen(w, migration, [v.name for v in vols]), set()
    out: list[s.Step] = []
    for vol in vols:
        if vol.name in have:
            continue
        name = nm.recovery_point_name(vol.name, gen)
        tags = nm.recovery_tags(vol.name, migration, gen, vol.tags, case1)
        nm.check_recovery_tags(name, tags)
        out.append(s.TakeRecoveryPoint(vol.name, name, tags))
    return out


def finished(w: World, g: Group) -> bool:
    """The migration left nothing half-done: the KVM VM now runs from its raw volume."""
    kvm = w.get(g.migration)
    if kvm is None or nm.is_own(kvm.tags) or kvm.tags.get(nm.TAG_XEN):
        return False
    if g.case1:
        old = w.get(nm.replaced_name(g.migration))
        return old is None or kvm.size_bytes >= old.size_bytes
    return g.migration not in w.memo("unfinished migrations", lambda: _unfinished(w),
                                     ("volumes",))


def _unfinished(w: World) -> set[str]:
    """The KVM volumes that still have a clone or metadata volume of this tool not yet
    handed over to their VM (no `vs=` tag)."""
    return {v.tags.get(nm.TAG_KVM, "") for v in w.own(nm.ROLE_CLONE, nm.ROLE_META)
            if not v.tags.get(nm.TAG_VS)}


def mark_ran(w: World, kvm: Volume, vm: str) -> list[s.Step]:
    """At power-on from the raw volume: record on the recovery points that the VM ran after the
    migration (or its abort) ended; that, and only that, makes them purgeable."""
    g = latest(w, kvm.name)
    if g is None or g.ran or not (g.aborted or finished(w, g)):
        return []
    return [s.SetSnapshotTags(p.name, {nm.TAG_RP_RAN: "1", nm.TAG_RP_VM: g.vm or vm})
            for p in g.points if not p.tags.get(nm.TAG_RP_RAN)]


def mark_vm(w: World, kvm: str, vm: str) -> list[s.Step]:
    """At the first power-on under migration: which VM the disk belongs to, for `abort VM`."""
    g = latest(w, kvm)
    if g is None or g.aborted:
        return []
    return [s.SetSnapshotTags(p.name, {nm.TAG_RP_VM: vm}) for p in g.points
            if not p.tags.get(nm.TAG_RP_VM)]


def state(w: World, g: Group) -> str:
    """What an operator may do with a migration's recovery points."""
    if g.ran:
        return "purgeable"
    return "aborted" if g.aborted else "abortable"


def phase_without_clone(w: World, g: Group) -> tuple[Phase, Optional[str]]:
    """(phase, problem) of a migration that has no case-2 clone to read its phase from."""
    if g.aborted:
        return Phase.ABORTED, None
    if g.case1:
        if finished(w, g):
            return Phase.REPLACED, None
        return Phase.REPLACING, (f"case-1 replace of {g.migration} is unfinished: rerun the "
                                 f"same case-1 command, or `xen2kvm abort --disk {g.migration}`")
    if finished(w, g) and w.get(g.migration) is not None:
        return Phase.CLEANED, None
    return Phase.UNPREPARED, "prepare did not finish: rerun the same prepare command"
