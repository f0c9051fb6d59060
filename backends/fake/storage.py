"""StorPool, modelled: the API's rules and error names (docs/storpool.md), in memory."""

from __future__ import annotations

from typing import Mapping, Optional

from xen2kvm import naming
from xen2kvm.backend import Snapshot, TemplateSpace, Volume
from xen2kvm.errors import BackendError

from .model import (
    MAX_VOLUME_BYTES,
    PLACEMENT,
    REPLICATION,
    TEMPLATE,
    Cluster,
    FakeSnapshot,
    FakeVolume,
)


def _err(name: str, descr: str) -> BackendError:
    return BackendError(name, descr)


class FakeStorage:
    def __init__(self, cluster: Cluster):
        self.c = cluster

    # queries -----------------------------------------------------------------------------
    def list_volumes(self) -> list[Volume]:
        return list(self.c.volume_list().values())

    def list_snapshots(self) -> list[Snapshot]:
        return list(self.c.snapshot_list().values())

    def volumes_by_name(self) -> dict[str, Volume]:
        return self.c.volume_list()

    def snapshots_by_name(self) -> dict[str, Snapshot]:
        return self.c.snapshot_list()

    def template_space(self) -> list[TemplateSpace]:
        free = max(self.c.capacity - self.c.used_bytes(), 0)
        return [TemplateSpace(TEMPLATE, REPLICATION, PLACEMENT, PLACEMENT, "",
                              {PLACEMENT: free}, {PLACEMENT: self.c.capacity})]

    # rules -------------------------------------------------------------------------------
    def _get(self, name: str, kind: str = "volume") -> FakeVolume | FakeSnapshot:
        table = self.c.snapshots if kind == "snapshot" else self.c.volumes
        if name not in table:
            raise _err("objectDoesNotExist", f"{kind} {name} does not exist")
        return table[name]

    @staticmethod
    def _check_name(name: str, kind: str = "volume") -> None:
        pattern = naming.SNAP_NAME_RE if kind == "snapshot" else naming.NAME_RE
        if not pattern.match(name) or len(name) >= 200 or name in naming.RESERVED:
            raise _err("invalidParam", f"invalid {kind} name {name!r}")

    @staticmethod
    def _check_size(size: int, what: str = "size") -> None:
        if size <= 0 or size % 512:
            raise _err("invalidParam", f"{what} {size} is not a positive multiple of 512")
        if size > MAX_VOLUME_BYTES:
            raise _err("invalidParam", f"{what} {size} is above the largest volume "
                                       f"({MAX_VOLUME_BYTES} bytes)")

    @staticmethod
    def _check_tags(name: str, tags: Mapping[str, Optional[str]]) -> None:
        for key, value in tags.items():
            if not naming.TAG_NAME_RE.match(key) or not naming.TAG_VALUE_RE.match(value or ""):
                raise _err("invalidParam", f"invalid tag {key}={value}")
        if len(name) + sum(len(k) + 1 + len(v or "") for k, v in tags.items()) > 200:
            raise _err("invalidParam", "volume name including tags exceeds 200 bytes")

    def _busy(self, name: str, action: str) -> None:
        hosts = self.c.attachments.get(name)
        if hosts:
            ids = ", ".join(str(self.c.host(h).client_id) for h in sorted(hosts))
            raise _err("busy", f"cannot {action} {name}: volume is open at client {ids}")

    # mutations ---------------------------------------------------------------------------
    def create_volume(self, name: str, size_bytes: int, tags: Mapping[str, str],
                      template: str = "") -> None:
        self._check_name(name)
        self._check_size(size_bytes)
        self._check_tags(name, tags)
        self.c.mutate(f"volume {name} create")
        if name in self.c.volumes:
            raise _err("objectExists", f"volume {name} already exists")
        self.c.volumes[name] = FakeVolume(name, size_bytes, dict(tags), self.c.new_store(),
                                          lineage=self.c.new_lineage())

    def clone_volume(self, name: str, source: str, tags: Mapping[str, str]) -> None:
        self._copy(name, source, "volume", tags, f"volume {name} baseOn {source} create")

    def _copy(self, name: str, source: str, kind: str, tags: Mapping[str, str],
              call: str) -> None:
        """A new volume sharing the chunks of a volume (a clone, new lineage) or of a snapshot
        (its child: revertible to it)."""
        self._check_name(name)
        self._check_tags(name, tags)
        self.c.mutate(call)
        src = self._get(source, kind)
        if name in self.c.volumes:
            raise _err("objectExists", f"volume {name} already exists")
        lineage = src.lineage if kind == "snapshot" else self.c.new_lineage()
        self.c.volumes[name] = FakeVolume(name, src.size_bytes, dict(tags), src.store.copy(),
                                          lineage=lineage)

    def grow_volume(self, name: str, add_bytes: int) -> None:
        self._check_size(add_bytes, "sizeAdd")
        self._check_size(self._get(name).size_bytes + add_bytes)
        self.c.mutate(f"volume {name} update size +{add_bytes}")
        self._get(name).size_bytes += add_bytes

    def set_tags(self, name: str, tags: Mapping[str, Optional[str]]) -> None:
        self._merge_tags(self._get(name), tags, f"volume {name} tag update")

    def _merge_tags(self, obj, tags: Mapping[str, Optional[str]], call: str) -> None:
        merged = {k: v for k, v in {**obj.tags, **tags}.items() if v}
        self._check_tags(obj.name, merged)
        self._check_tags(obj.name, tags)
        self.c.mutate(call)
        obj.tags = merged

    def rename_volume(self, name: str, new_name: str) -> None:
        self._check_name(new_name)
        vol = self._get(name)
        self._check_tags(new_name, vol.tags)
        self.c.mutate(f"volume {name} update rename {new_name}")
        if new_name in self.c.volumes:
            raise _err("objectExists", f"volume {new_name} already exists")
        self._busy(name, "rename")
        del self.c.volumes[name]
        vol.name = new_name
        self.c.volumes[new_name] = vol

    def delete_volume(self, name: str) -> None:
        self.c.mutate(f"volume {name} delete")
        if name not in self.c.volumes:
            return  # a crash may have deleted it already: the goal state holds
        self._busy(name, "delete")
        self.c.volumes[name].store.drop()
        del self.c.volumes[name]
        self.c.attachments.pop(name, None)

    def attach(self, name: str, host: str) -> None:
        self._get(name)
        current = self.c.attachments.get(name, {})
        if host in current:
            return
        if current:
            self._busy(name, f"attach to client {self.c.host(host).client_id}")
        self.c.mutate(f"attach volume {name} client {host}")
        self.c.attachments.setdefault(name, {})[host] = "rw"

    def detach(self, name: str, host: Optional[str] = None) -> None:
        current = self.c.attachments.get(name, {})
        hosts = [host] if host else sorted(current)
        hosts = [h for h in hosts if h in current]
        if not hosts:
            return
        for h in hosts:
            holders = self.c.holders(h, naming.volume_path(name))
            if holders:
                raise _err("busy", f"volume {name} is open at client "
                                   f"{self.c.host(h).client_id} ({holders[0]})")
        self.c.mutate(f"detach volume {name}")
        for h in hosts:
            del current[h]
        if not current:
            self.c.attachments.pop(name, None)

    # snapshots ----------------------------------------------------------------------------
    def _snap(self, name: str) -> FakeSnapshot:
        return self._get(name, "snapshot")

    def create_snapshot(self, volume: str, name: str, tags: Mapping[str, str]) -> None:
        self._check_name(name, "snapshot")
        self._check_tags(name, tags)
        self.c.mutate(f"volume {volume} snapshot {name}")
        vol = self._get(volume)
        if name in self.c.snapshots:
            raise _err("objectExists", f"snapshot {name} already exists")
        self.c.snapshots[name] = FakeSnapshot(name, vol.size_bytes, dict(tags),
                                              vol.store.copy(counted=False), vol.lineage)

    def set_snapshot_tags(self, name: str, tags: Mapping[str, Optional[str]]) -> None:
        self._merge_tags(self._snap(name), tags, f"snapshot {name} tag update")

    def delete_snapshot(self, name: str) -> None:
        self.c.mutate(f"snapshot {name} delete")
        snap = self.c.snapshots.pop(name, None)
        if snap is not None:
            snap.store.drop()

    def revert_volume(self, name: str, snapshot: str) -> None:
        vol, snap = self._get(name), self._snap(snapshot)
        if snap.lineage != vol.lineage:
            raise _err("invalidParam", f"snapshot {snapshot} is not a snapshot of volume {name}")
        self._busy(name, "revert")
        self.c.mutate(f"volume {name} revertToSnapshot {snapshot}")
        vol.store.drop()
        vol.store, vol.size_bytes = snap.store.copy(), snap.size_bytes

    def create_from_snapshot(self, name: str, snapshot: str, tags: Mapping[str, str]) -> None:
        self._copy(name, snapshot, "snapshot", tags, f"volume {name} parent {snapshot} create")
