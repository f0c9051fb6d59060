"""The snapshot endpoints: read-only copies of a volume with tags of their own, and a revert
of a volume to a snapshot taken of it (its lineage)."""

from __future__ import annotations

import time
from typing import Any

from .files import sparse_copy
from .rules import ApiFailure, check_snapshot_name, check_tags, invalid, merged_tags
from .state import ClusterState


class SnapshotEndpoints(ClusterState):
    def _snap_summary(self, name: str) -> dict:
        s = self.snapshots[name]
        return {"name": name, "size": s["size"], "globalId": s["globalId"], "tags": dict(s["tags"]),
                "creationTimestamp": s["created"], "parentName": "", "onVolume": "",
                "autoName": False, "bound": False, "deleted": False, "transient": False,
                "templateName": "", "replication": 3}

    def do_SnapshotsList(self) -> list:
        return [self._snap_summary(n) for n in sorted(self.snapshots)]

    def do_Snapshot(self, name: str) -> list:
        self._snap(name)
        return [self._snap_summary(name)]

    def do_VolumeSnapshot(self, volume: str, body: dict) -> dict:
        vol = self._vol(volume)
        name, tags = body.get("name"), body.get("tags") or {}
        check_snapshot_name(name)
        check_tags(name, tags)
        if name in self.snapshots:
            raise ApiFailure("objectExists", f"Snapshot {name} already exists")
        gid = self._new_gid()
        self.snapshots[name] = {"size": vol["size"], "globalId": gid, "created": int(time.time()),
                                "tags": merged_tags({}, tags),
                                "lineage": vol.get("lineage", vol["globalId"])}
        sparse_copy(self.path(volume), self.snap_path(name))
        return {**self._done(), "snapshotGlobalId": gid}

    def do_SnapshotUpdate(self, name: str, body: dict) -> dict:
        snap = self._snap(name)
        if "tags" in body:
            check_tags(name, body["tags"])
            tags = merged_tags(snap["tags"], body["tags"])
            check_tags(name, tags)
            snap["tags"] = tags
        return self._done()

    def do_SnapshotDelete(self, name: str, body: Any = None) -> dict:
        path = self.snap_path(name) if name in self.snapshots else None
        self._snap(name)
        del self.snapshots[name]
        path.unlink(missing_ok=True)
        return self._done()

    def do_VolumeRevert(self, name: str, body: dict) -> dict:
        vol, to = self._vol(name), body.get("toSnapshot")
        snap = self._snap(to)
        if snap["lineage"] != vol.get("lineage", vol["globalId"]):
            raise invalid(f"Snapshot {to} is not a snapshot of volume {name}")
        self._busy(name, "revert")
        sparse_copy(self.snap_path(to), self.path(name))
        vol["size"] = snap["size"]
        return self._done()
