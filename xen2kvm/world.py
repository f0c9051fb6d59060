"""One snapshot of the world per invocation: volumes and tags, the local host's dm devices and
their status. Every disk's phase is derived from it (docs/architecture.md §2); nothing is kept in
a local state file, so a crashed run is finished by running the same command again."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, TypeVar

from . import naming as nm
from .backend import Snapshot, Volume
from .dmstatus import RaidStatus, parse_status
from .errors import PlanError
from .phases import Phase

T = TypeVar("T")

FIELDS = ("volumes", "snapshots", "dm", "statuses", "host", "paths", "client")
# the tags whose values the world indexes (World.tagged)
INDEXED = {"volumes": (nm.TAG_ROLE,), "snapshots": (nm.TAG_RP_MIGRATION, nm.TAG_RP_VOLUME)}
# what the last world of this process derived, per key: (its inputs, the result)
_DERIVED: dict[str, tuple[tuple, object]] = {}


@dataclass
class Disk:
    """One disk under migration (case-2), derived from its clone and the KVM volume."""

    kvm: str
    xen: str
    clone: str
    n: int
    kvm_orig_sectors: int
    phase: Phase = Phase.UNPREPARED
    vm: Optional[str] = None
    disk: str = ""
    status: Optional[RaidStatus] = None
    problem: Optional[str] = None
    host: Optional[str] = None

    @property
    def inplace(self) -> bool:
        return self.xen == self.kvm

    def as_vm(self, vm: str, disk: str) -> Disk:
        """This disk as VM `vm` will see it (a copy: planning does not change what it read)."""
        return replace(self, vm=vm, disk=disk)

    @property
    def metas(self) -> tuple[str, str]:
        return nm.meta_names(self.kvm)

    @property
    def raid(self) -> str:
        return nm.dm_raid(self.vm or "", self.disk)

    @property
    def linear(self) -> str:
        return nm.dm_linear(self.vm or "", self.disk)


@dataclass
class World:
    volumes: dict[str, Volume]
    host: str
    dm: dict[str, str]
    statuses: dict[str, RaidStatus] = field(default_factory=dict)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    paths: nm.DevicePaths = nm.DEFAULT_PATHS  # the host's: its dm tables name devices by them
    client: Optional[int] = None  # this host's StorPool client ID (SP_OURID); the fake has none

    @classmethod
    def read(cls, storage, host) -> World:
        volumes = storage.volumes_by_name()
        snapshots = storage.snapshots_by_name()
        dm, raw = host.dm_snapshot()
        statuses = {}
        for name, table in dm.items():
            parsed = nm.parse_dm_name(name)
            if parsed and not parsed[2] and " raid " in f" {table} " and name in raw:
                statuses[name] = parse_status(raw[name])
        return cls(volumes, host.name, dm, statuses, snapshots, host.paths,
                   getattr(storage, "our_id", None))

    def memo(self, key: str, make: Callable[[], T],
             on: Optional[tuple[str, ...]] = FIELDS) -> T:
        """What is derived from the world, derived once per world: a command asks several
        times, and a fleet's world holds thousands of volumes. A world whose volumes or
        snapshots were replaced or grew derives it anew, unless the last world of this
        process that derived it had equal inputs (`on` names the fields it reads; None: not
        shared, for what is cheap and asked of many keys): a run reads the world again
        after each change, and most changes leave most inputs as they were. What is derived
        is shared, so no caller changes it."""
        cache = self.__dict__.setdefault("_memo", {})
        stamp = (key, id(self.volumes), len(self.volumes), id(self.snapshots),
                 len(self.snapshots))
        if stamp in cache:
            return cache[stamp]
        if on is None:
            cache[stamp] = make()
            return cache[stamp]
        inputs = tuple(getattr(self, f) for f in on)
        last = _DERIVED.get(key)
        if last is not None and last[0] == inputs:  # equal objects compare by identity
            cache[stamp] = last[1]
        else:
            cache[stamp] = make()
            # copies of the dicts: a world whose dict is changed in place is not equal
            _DERIVED[key] = (tuple(dict(x) if isinstance(x, dict) else x for x in inputs),
                             cache[stamp])
        return cache[stamp]

    def tagged(self, kind: str, tag: str) -> dict[str, tuple[str, ...]]:
        """The names of the volumes or snapshots (`kind`) by the value of one of their tags
        (one of INDEXED), each value's names sorted."""
        key = f"{kind} by tag"
        return self.memo(key, lambda: _index(key, getattr(self, kind), INDEXED[kind]),
                         (kind,))[tag]

    # lookups --------------------------------------------------------------------------------
    def resolve(self, identifier: str) -> Volume:
        exact = self.volumes.get(identifier)
        if exact is not None and not nm.is_own(exact.tags):  # a name wins over `*:name`
            return exact
        by_disk = self.memo("operator volumes by disk", self._operator_by_disk, ("volumes",))
        if ":" in identifier:  # a full volume name: every operator volume may match
            candidates = [n for names in by_disk.values() for n in names]
        else:  # `name` or `*:name`: the volumes whose disk identifier it is
            candidates = by_disk.get(identifier, [])
        return self.volumes[nm.resolve(identifier, ((n, {}) for n in candidates))]

    def _operator_by_disk(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for v in self.volumes.values():
            if not nm.is_own(v.tags):
                out.setdefault(nm.disk_of(v.name), []).append(v.name)
        return out

    def get(self, name: str) -> Optional[Volume]:
        return self.volumes.get(name)

    def own(self, *roles: str) -> list[Volume]:
        """The tool's volumes of these roles, by name."""
        by_role = self.tagged("volumes", nm.TAG_ROLE)
        return [self.volumes[n] for n in sorted(n for r in roles for n in by_role.get(r, ()))]

    def dm_using(self, volume: str) -> list[str]:
        path = self.paths.volume(volume)
        return sorted(n for n, t in self.dm.items() if path in t.split())

    def vm_devices(self, vm: Optional[str]) -> list[tuple[str, str, str]]:
        """(vm, disk, raid name) of this tool's raid devices on the host, for one VM or all."""
        out = []
        for name in sorted(self.dm):
            parsed = nm.parse_dm_name(name)
            if parsed and not parsed[2] and (vm is None or parsed[0] == vm):
                out.append((parsed[0], parsed[1], name))
        return out

    def _linear_users(self) -> dict[str, tuple[str, str]]:
        """(vm, disk) of the linear device each path appears in (the last by name, if many):
        read once per world, not once per disk."""
        out: dict[str, tuple[str, str]] = {}
        for vm, disk, _ in self.vm_devices(None):
            for word in self.dm.get(nm.dm_linear(vm, disk), "").split():
                out[word] = (vm, disk)
        return out

    def refuse_attached(self, vol: Volume, allow_local: bool = False) -> None:
        others = [h for h in vol.attached if not (allow_local and h == self.host)]
        if others:
            raise PlanError(
                f"volume {vol.name} is attached to {', '.join(others)}: power the VM off "
                "(or detach it) first"
            )

    # derived disks --------------------------------------------------------------------------
    def disks(self) -> list[Disk]:
        """Every disk this tool's clones describe, derived once per world; a caller gets
        copies, so that no plan changes what the next one reads."""
        return [copy.copy(d) for d in self._memo_disks()]

    def _disks(self) -> list[Disk]:
        out = []
        for clone in self.own(nm.ROLE_CLONE):
            t = clone.tags
            d = Disk(kvm=t.get(nm.TAG_KVM, ""), xen=nm.xen_of_clone(clone.name),
                     clone=clone.name, n=int(t.get(nm.TAG_N, "0")),
                     kvm_orig_sectors=int(t.get(nm.TAG_KVM_SECTORS, "0")),
                     vm=t.get(nm.TAG_VS), disk=nm.disk_of(t.get(nm.TAG_KVM, "")))
            self._phase(d)
            out.append(d)
        return out

    def disk_for_kvm(self, kvm: str) -> Optional[Disk]:
        first = self.memo("disk by kvm", lambda: {d.kvm: d for d in reversed(self._memo_disks())})
        found = first.get(kvm)
        return copy.copy(found) if found else None

    def _memo_disks(self) -> list[Disk]:
        return self.memo("disks", self._disks)

    def _phase(self, d: Disk) -> None:
        kvm = self.volumes.get(d.kvm)
        clone = self.volumes[d.clone]
        users = self.memo("linear users", self._linear_users, ("dm",))
        user = users.get(self.paths.volume(d.clone))
        if user:
            d.vm, d.disk, d.host = *user, self.host
        migrating = kvm is not None and kvm.tags.get(nm.TAG_XEN) == d.clone
        st = self.statuses.get(d.raid) if d.host else None
        d.status = st
        if st and st.failed_legs:
            d.problem = (f"leg {','.join(map(str, st.failed_legs))} failed "
                         f"(kernel: {st.health} {st.done}/{st.total} {st.action})")
        if migrating:
            if st is None:
                d.phase = Phase.PREPARED
            elif st.devices < 2:
                d.phase = Phase.ASSEMBLED
            else:
                d.phase = Phase.SYNCED if st.in_sync else Phase.SYNCING
        elif clone.tags.get(nm.TAG_VS):
            d.phase = Phase.MIGRATED if d.host else Phase.RELEASED
        else:
            d.phase = Phase.UNPREPARED
            d.problem = d.problem or "prepare did not finish: rerun the same prepare command"


def _index(key: str, objs: dict, tags: tuple[str, ...]) -> dict[str, dict[str, tuple[str, ...]]]:
    """`objs`' names by the value of each of `tags`. Brought up to date from what the last
    world derived for `key` when few objects differ from that world's: between two reads of
    a fleet, a few objects change among thousands, and the fake's listing hands out an
    unchanged object again (a real listing's objects are all new: it is derived anew)."""
    last = _DERIVED.get(key)
    if last is not None:
        (old,), index = last
        changed, gone = _changed(old, objs)
        if len(changed) + len(gone) <= len(objs) // 8:
            return {tag: _update(index[tag], tag, old, objs, changed, gone) for tag in tags}
    out = {}
    for tag in tags:
        grouped: dict[str, list[str]] = {}
        for name, obj in objs.items():
            value = obj.tags.get(tag)
            if value is not None:
                grouped.setdefault(value, []).append(name)
        out[tag] = {value: tuple(sorted(names)) for value, names in grouped.items()}
    return out


def _update(index: dict[str, tuple[str, ...]], tag: str, old: dict, objs: dict,
            changed: list[str], gone: set[str]) -> dict[str, tuple[str, ...]]:
    out = dict(index)  # the last world's index stays as it was
    for name in (*changed, *gone):
        before = old.get(name)
        value = before.tags.get(tag) if before is not None else None
        if value is not None:
            out[value] = tuple(n for n in out[value] if n != name)
            if not out[value]:
                del out[value]
    for name in changed:
        value = objs[name].tags.get(tag)
        if value is not None:
            out[value] = tuple(sorted((*out.get(value, ()), name)))
    return out


def _changed(old: dict, new: dict, chunk: int = 64) -> tuple[list[str], set[str]]:
    """The names whose object is not the one `old` has, and the names gone. Two listings of
    the same names in the same order are compared a chunk at a time (a chunk of the same
    objects is passed over at C speed), the chunks that differ name by name."""
    names = list(new)
    if list(old) != names:
        return [n for n in names if old.get(n) is not new[n]], old.keys() - new.keys()
    before, now = list(old.values()), list(new.values())
    changed: list[str] = []
    for i in range(0, len(now), chunk):
        if before[i:i + chunk] != now[i:i + chunk]:
            changed += [n for n in names[i:i + chunk] if old.get(n) is not new[n]]
    return changed, set()
