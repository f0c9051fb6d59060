"""The volume endpoints: list, create (empty, `baseOn` a volume, `parent` a snapshot), update
(grow, shrink, tags, rename), delete, attach and detach (VolumesReassign), templates."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

from .files import private, resize, sparse_copy
from .rules import ApiFailure, check_name, check_size, check_tags, invalid, merged_tags
from .state import ClusterState


class VolumeEndpoints(ClusterState):
    capacity: int  # raw bytes; the free space is what the volume files leave

    def _summary(self, name: str) -> dict:
        v = self.volumes[name]
        return {"name": name, "size": v["size"], "globalId": v["globalId"],
                "templateName": v.get("templateName", ""), "parentName": "",
                "replication": 3, "tags": dict(v["tags"]), "creationTimestamp": v["created"],
                "objectsCount": v["size"] // (32 << 20) + 1, "placeAll": "", "placeTail": "",
                "placeHead": "", "bw": "-", "iops": "-", "visibleVolumeId": 0}

    def do_VolumesList(self) -> list:
        return [self._summary(n) for n in sorted(self.volumes)]

    def do_Volume(self, name: str) -> list:
        self._vol(name)
        return [self._summary(name)]

    def do_AttachmentsList(self) -> list:
        return [{"volume": v, "snapshot": False, "client": c, "rights": r, "pos": 0}
                for v, clients in sorted(self.attachments.items())
                for c, r in sorted(clients.items())]

    def do_VolumeTemplatesStatus(self) -> list:
        """One template on one placement group (operator completeness: the capacity check)."""
        free = max(self.capacity - self.used_bytes(), 0)
        est = {"free": free // 3, "capacity": self.capacity // 3}
        group = {f"{k}Place{p}": v for k, v in (("available", free), ("capacity", self.capacity))
                 for p in ("All", "Tail")}
        return [{"name": "default", "placeAll": "default", "placeTail": "default",
                 "placeHead": "", "replication": 3, "volumesCount": len(self.volumes),
                 "snapshotsCount": 0, "removingSnapshotsCount": 0, **group,
                 "availablePlaceHead": 0, "capacityPlaceHead": 0,
                 "stored": {**est, "placeAll": est, "placeTail": est, "placeHead": est}}]

    def do_VolumeCreate(self, body: dict) -> dict:
        name, tags = body.get("name"), body.get("tags") or {}
        check_name(name)
        check_tags(name, tags)
        if name in self.volumes:
            raise ApiFailure("objectExists", f"Volume {name} already exists")
        parent = body.get("parent")
        source, size = self._source(body)
        check_size(size)
        gid = self._new_gid()
        self._write_data(self.data / f"{gid}.img", source, size)
        lineage = self.snapshots[parent]["lineage"] if parent is not None else gid
        self.volumes[name] = {"size": size, "tags": merged_tags({}, tags), "globalId": gid,
                              "created": int(time.time()),
                              "templateName": body.get("template", ""), "lineage": lineage}
        return {**self._done(), "name": name, "globalId": gid}

    def _source(self, body: dict) -> tuple[Optional[Path], Any]:
        """The file a new volume copies (its `baseOn` volume or `parent` snapshot) and its
        size, which the body may override."""
        base, parent = body.get("baseOn"), body.get("parent")
        if base is not None:
            size = self._vol(base)["size"]
            return self.path(base), body.get("size", size)
        if parent is not None:
            size = self._snap(parent)["size"]
            return self.snap_path(parent), body.get("size", size)
        return None, body.get("size")

    @staticmethod
    def _write_data(path: Path, source: Optional[Path], size: int) -> None:
        """The data first: a size the disk cannot hold is refused before any record."""
        try:
            if source is not None:
                sparse_copy(source, path)
            private(path, "ab").close()
            resize(path, size)
        except ApiFailure:
            path.unlink(missing_ok=True)
            raise

    def _new_size(self, name: str, vol: dict, body: dict) -> int:
        if "size" not in body and "sizeAdd" not in body:
            return vol["size"]
        new_size = body["size"] if "size" in body else vol["size"] + body["sizeAdd"]
        check_size(body.get("sizeAdd", new_size), "sizeAdd" if "sizeAdd" in body else "size")
        if new_size < vol["size"]:
            if not body.get("shrinkOk"):
                raise invalid("Shrinking a volume requires shrinkOk")
            self._busy(name, "shrink")
        return new_size

    def do_VolumeUpdate(self, name: str, body: dict) -> dict:
        vol = self._vol(name)
        new_name = body.get("rename")
        new_size = self._new_size(name, vol, body)  # every check first: a refusal changes nothing
        new_tags = vol["tags"]
        if "tags" in body:
            check_tags(name, body["tags"])
            new_tags = merged_tags(vol["tags"], body["tags"])
            check_tags(new_name or name, new_tags)
        if new_name is not None:
            check_name(new_name)
            if new_name in self.volumes:
                raise ApiFailure("objectExists", f"Volume {new_name} already exists")
            self._busy(name, "rename")
        if new_size != vol["size"]:
            resize(self.path(name), new_size)
            vol["size"] = new_size
            self.devices.resized(name)
        vol["tags"] = new_tags
        if new_name is not None:
            self.volumes[new_name] = self.volumes.pop(name)
        return self._done()

    def do_VolumeDelete(self, name: str, body: Any = None) -> dict:
        self._vol(name)
        self._busy(name, "delete")
        path = self.path(name)
        del self.volumes[name]
        path.unlink(missing_ok=True)
        return self._done()

    def _reassign(self, items: list) -> None:
        for item in items:
            name = item.get("volume")
            self._vol(name)
            current = self.attachments.setdefault(name, {})
            detach = item.get("detach", [])
            for client in (list(current) if detach == "all" else detach):
                current.pop(int(client), None)
            for rights in ("rw", "ro"):
                for client in item.get(rights, []):
                    client = int(client)
                    others = [c for c, r in current.items() if c != client and r == "rw"]
                    if others and not item.get("force"):
                        raise ApiFailure("busy", f"Volume {name} is open at client "
                                                 f"{others[0]}")
                    current[client] = rights
            if current:
                self.devices.attach(name, self.path(name))
            else:
                del self.attachments[name]
                self.devices.detach(name)

    def do_VolumesReassign(self, body: list) -> dict:
        self._reassign(body)
        return self._done()

    def do_VolumesReassignWait(self, body: dict) -> dict:
        self._reassign(body.get("reassign", []))
        return self._done()
