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
        volumes = {v.name: v for v in storage.list_volumes()}
        snapshots = {s.name: s for s in storage.list_snapshots()}
        dm, raw = host.dm_snapshot()
        statuses = {}
        for name, table in dm.items():
            parsed = nm.parse_dm_name(name)
            if parsed and not parsed[2] and " raid " in f" {table} " and name in raw:
                statuses[name] = parse_status(raw[name])
        return cls(volumes, host.name, dm, statuses, snapshots, host.paths,
                   getattr(storage, "our_id", None))

    def memo(self, key: str, make: Callable[[], T]) -> T:
        """What is derived from the whole world, derived once per world: a command asks
        several times, and a fleet's world holds thousands of volumes. A world whose
        volumes or snapshots were replaced or grew derives it anew."""
        cache = self.__dict__.setdefault("_memo", {})
        stamp = (key, id(self.volumes), len(self.volumes), id(self.snapshots),
                 len(self.snapshots))
        if stamp not in cache:
            cache[stamp] = make()
        return cache[stamp]

    # lookups --------------------------------------------------------------------------------
    def resolve(self, identifier: str) -> Volume:
        by_disk = self.memo("operator volumes by disk", self._operator_by_disk)
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

    def own(self, role: str) -> list[Volume]:
        by_role = self.memo("roles", self._by_role)
        return list(by_role.get(role, ()))

    def _by_role(self) -> dict[str, list[Volume]]:
        out: dict[str, list[Volume]] = {}
        for v in self.volumes.values():
            role = v.tags.get(nm.TAG_ROLE)
            if role is not None:
                out.setdefault(role, []).append(v)
        return out

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
        for clone in sorted(self.own(nm.ROLE_CLONE), key=lambda v: v.name):
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
        user = self.memo("linear users", self._linear_users).get(self.paths.volume(d.clone))
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
