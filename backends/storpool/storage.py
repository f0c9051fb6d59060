"""StorageBackend on a real StorPool cluster, through the official bindings.

Status over thousands of volumes costs two list calls (VolumesList, AttachmentsList), not one
per volume. Every change is read back: tags after an update (whether the API stores or drops an
empty value must not matter, so an empty value counts as no tag), sizes after a grow.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Mapping, Optional

from xen2kvm.backend import ListCache, Snapshot, TemplateSpace, Volume
from xen2kvm.errors import BackendError

from .client import Client


class StorPoolStorage:
    def __init__(self, client: Client, local_host: str, our_id: Optional[int],
                 shared: Optional[ListCache] = None):
        self.client = client
        self.local_host = local_host
        self.our_id = our_id
        self.shared = shared

    def _read(self, what: str, read: Callable[[], Any]) -> Any:
        if self.shared is None:
            return read()
        s = self.client.settings  # one cache may serve several clusters' hosts
        return self.shared.get((s.host, s.port, s.token, what), read)

    def host_label(self, client_id: int) -> str:
        return self.local_host if client_id == self.our_id else f"client{client_id}"

    def client_id(self, host: str) -> int:
        if host == self.local_host and self.our_id is not None:
            return self.our_id
        if host.startswith("client") and host[6:].isdigit():
            return int(host[6:])
        raise BackendError("noClientId", f"no StorPool client ID for host {host}; set SP_OURID "
                                         f"in its section of /etc/storpool.conf")

    # queries -------------------------------------------------------------------------------
    def _volume(self, raw: dict, attached: tuple[str, ...] = ()) -> Volume:
        tags = {k: v for k, v in (raw.get("tags") or {}).items() if v}
        return Volume(raw["name"], int(raw["size"]), tags, attached,
                      raw.get("templateName") or "")

    def list_volumes(self) -> list[Volume]:
        """Volumes by name; `attached` names this host, other clients by ID."""
        vols = self._read("volumes", lambda: sorted(
            (self._volume(v) for v in self.client.call("volumesList")), key=lambda v: v.name))
        by_volume: dict[str, list[str]] = {}
        for att in self._read("attachments", lambda: self.client.call("attachmentsList")):
            if not att.get("snapshot"):
                by_volume.setdefault(att["volume"], []).append(self.host_label(att["client"]))
        return [replace(v, attached=tuple(sorted(by_volume[v.name]))) if v.name in by_volume
                else v for v in vols]

    def template_space(self) -> list[TemplateSpace]:
        """Operator completeness (capacity check): VolumeTemplatesStatus, one call."""
        return [_template(t) for t in
                self._read("templates", lambda: self.client.call("volumeTemplatesStatus"))]

    def get(self, name: str) -> Optional[Volume]:
        try:
            return self._volume(self.client.call("volumeList", name)[0])
        except BackendError as exc:
            if exc.name == "objectDoesNotExist":
                return None
            raise

    def _exists(self, name: str) -> bool:
        return self.get(name) is not None

    # changes --------------------------------------------------------------------------------
    def create_volume(self, name: str, size_bytes: int, tags: Mapping[str, str],
                      template: str = "") -> None:
        body = {"name": name, "size": size_bytes, "tags": dict(tags)}
        if template:
            body["template"] = template
        self.client.call("volumeCreate", body, mutating=True, done=lambda: self._exists(name))

    def clone_volume(self, name: str, source: str, tags: Mapping[str, str]) -> None:
        self.client.call("volumeCreate", {"name": name, "baseOn": source, "tags": dict(tags)},
                         mutating=True, done=lambda: self._exists(name))

    def grow_volume(self, name: str, add_bytes: int) -> None:
        before = self.get(name)
        if before is None:
            raise BackendError("objectDoesNotExist", f"volume {name} does not exist")
        want = before.size_bytes + add_bytes
        self.client.call("volumeUpdate", name, {"sizeAdd": add_bytes}, mutating=True,
                         done=lambda: self.get(name).size_bytes == want)
        after = self.get(name)
        if after.size_bytes != want:
            raise BackendError("sizeMismatch", f"{name} is {after.size_bytes} bytes after the "
                                               f"grow, expected {want}")

    def set_tags(self, name: str, tags: Mapping[str, Optional[str]]) -> None:
        self._update_tags("volumeUpdate", self.get, name, tags)

    def _update_tags(self, method: str, get: Callable[[str], Any], name: str,
                     tags: Mapping[str, Optional[str]]) -> None:
        body = {k: (v or "") for k, v in tags.items()}

        def applied() -> bool:
            now = get(name).tags
            return all(now.get(k) == (v or None) for k, v in tags.items())

        self.client.call(method, name, {"tags": body}, mutating=True, done=applied)
        if not applied():
            raise BackendError("tagMismatch", f"tags of {name} did not take: {body}")

    def rename_volume(self, name: str, new_name: str) -> None:
        self.client.call("volumeUpdate", name, {"rename": new_name}, mutating=True,
                         done=lambda: self._exists(new_name) and not self._exists(name))

    def delete_volume(self, name: str) -> None:
        # an attached volume is refused ("busy"), as on the fake: the plan detaches first
        try:
            self.client.call("volumeDelete", name, mutating=True,
                             done=lambda: not self._exists(name))
        except BackendError as exc:
            if exc.name != "objectDoesNotExist":  # a crash may have deleted it already
                raise

    def volumes_by_name(self) -> dict[str, Volume]:
        return {v.name: v for v in self.list_volumes()}

    # snapshots (recovery points) ----------------------------------------------------------
    def snapshots_by_name(self) -> dict[str, Snapshot]:
        return {x.name: x for x in self.list_snapshots()}

    def list_snapshots(self) -> list[Snapshot]:
        return self._read("snapshots", lambda: sorted(
            (self._snapshot(x) for x in self.client.call("snapshotsList")),
            key=lambda x: x.name))

    @staticmethod
    def _snapshot(raw: dict) -> Snapshot:
        return Snapshot(raw["name"], int(raw["size"]),
                        {k: v for k, v in (raw.get("tags") or {}).items() if v})

    def get_snapshot(self, name: str) -> Optional[Snapshot]:
        try:
            raw = self.client.call("snapshotList", name)[0]
        except BackendError as exc:
            if exc.name == "objectDoesNotExist":
                return None
            raise
        return self._snapshot(raw)

    def create_snapshot(self, volume: str, name: str, tags: Mapping[str, str]) -> None:
        self.client.call("snapshotCreate", volume, {"name": name, "tags": dict(tags)},
                         mutating=True, done=lambda: self.get_snapshot(name) is not None)

    def set_snapshot_tags(self, name: str, tags: Mapping[str, Optional[str]]) -> None:
        self._update_tags("snapshotUpdate", self.get_snapshot, name, tags)

    def delete_snapshot(self, name: str) -> None:
        try:
            self.client.call("snapshotDelete", name, mutating=True,
                             done=lambda: self.get_snapshot(name) is None)
        except BackendError as exc:
            if exc.name != "objectDoesNotExist":  # a crash may have deleted it already
                raise

    def revert_volume(self, name: str, snapshot: str) -> None:
        # a revert repeated after a dropped connection lands on the same content: no `done`
        # check can tell a finished revert from one not yet run, and none is needed
        self.client.call("volumeRevert", name, {"toSnapshot": snapshot}, mutating=True,
                         done=lambda: False)
        size, want = self.get(name).size_bytes, self.get_snapshot(snapshot).size_bytes
        if size != want:
            raise BackendError("sizeMismatch", f"{name} is {size} bytes after the revert to "
                                               f"{snapshot}, expected {want}")

    def create_from_snapshot(self, name: str, snapshot: str, tags: Mapping[str, str]) -> None:
        self.client.call("volumeCreate", {"name": name, "parent": snapshot, "tags": dict(tags)},
                         mutating=True, done=lambda: self._exists(name))

    def _reassign(self, item: dict, done) -> None:
        self.client.call("volumesReassignWait", {"reassign": [item]}, mutating=True, done=done)

    def _attached(self, name: str) -> set[int]:
        return {a["client"] for a in self.client.call("attachmentsList")
                if a["volume"] == name and not a.get("snapshot")}

    def attach(self, name: str, host: str) -> None:
        cid = self.client_id(host)
        if cid in self._attached(name):
            return
        self._reassign({"volume": name, "rw": [cid]}, lambda: cid in self._attached(name))

    def detach(self, name: str, host: Optional[str] = None) -> None:
        try:
            current = self._attached(name)
        except BackendError:
            return
        targets = current if host is None else current & {self.client_id(host)}
        if not targets:
            return
        self._reassign({"volume": name, "detach": sorted(targets)},
                       lambda: not (self._attached(name) & targets))


def _template(raw: dict) -> TemplateSpace:
    """A VolumeTemplateStatusDesc: per placement group `availablePlace*`/`capacityPlace*`;
    a template without a replication of its own ("-") is counted at StorPool's default, 3."""
    places = {k: raw.get(f"place{k}") or "" for k in ("All", "Tail", "Head")}
    free = {g: int(raw.get(f"availablePlace{k}") or 0) for k, g in places.items() if g}
    cap = {g: int(raw.get(f"capacityPlace{k}") or 0) for k, g in places.items() if g}
    rep = raw.get("replication")
    return TemplateSpace(raw["name"], rep if isinstance(rep, int) else 3, places["All"],
                         places["Tail"], places["Head"], free, cap)
