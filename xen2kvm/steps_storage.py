"""Steps that change StorPool: each is one API request (method, path, JSON body as the API
reference and backends/storpool/storage.py have them), printed with the equivalent `storpool`
CLI as a comment. The fake backend performs the same change on its model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

from .actions import ApiCall
from .step import Step
from .units import human


def _cli_tags(tags: Mapping[str, Optional[str]]) -> list[str]:
    return [f"tag {k}={v or ''}" for k, v in tags.items()]


def _api_tags(tags: Mapping[str, Optional[str]]) -> dict[str, str]:
    """An empty value removes a tag."""
    return {k: (v or "") for k, v in tags.items()}


@dataclass(frozen=True)
class CloneVolume(Step):
    name: str
    source: str
    tags: Mapping[str, str] = field(default_factory=dict)

    def actions(self) -> tuple[ApiCall, ...]:
        cli = " ".join(["storpool volume", self.name, "baseOn", self.source,
                        *_cli_tags(self.tags), "create"])
        return (ApiCall("VolumeCreate", {"name": self.name, "baseOn": self.source,
                                         "tags": dict(self.tags)}, cli),)

    def apply(self, ctx) -> None:
        ctx.storage.clone_volume(self.name, self.source, dict(self.tags))


@dataclass(frozen=True)
class CreateVolume(Step):
    name: str
    size_bytes: int
    tags: Mapping[str, str] = field(default_factory=dict)
    template: str = ""

    def actions(self) -> tuple[ApiCall, ...]:
        template = ["template", self.template] if self.template else []
        cli = " ".join(["storpool volume", self.name, "size", human(self.size_bytes),
                        *template, *_cli_tags(self.tags), "create"])
        body = {"name": self.name, "size": self.size_bytes, "tags": dict(self.tags)}
        if self.template:
            body["template"] = self.template
        return (ApiCall("VolumeCreate", body, cli),)

    def apply(self, ctx) -> None:
        ctx.storage.create_volume(self.name, self.size_bytes, dict(self.tags), self.template)


@dataclass(frozen=True)
class GrowVolume(Step):
    name: str
    add_bytes: int

    def actions(self) -> tuple[ApiCall, ...]:
        return (ApiCall(f"VolumeUpdate/{self.name}", {"sizeAdd": self.add_bytes},
                        f"storpool volume {self.name} update size +{human(self.add_bytes)}"),)

    def apply(self, ctx) -> None:
        ctx.storage.grow_volume(self.name, self.add_bytes)


@dataclass(frozen=True)
class SetTags(Step):
    name: str
    tags: Mapping[str, Optional[str]]

    def actions(self) -> tuple[ApiCall, ...]:
        return (ApiCall(f"VolumeUpdate/{self.name}", {"tags": _api_tags(self.tags)},
                        " ".join(["storpool volume", self.name, *_cli_tags(self.tags),
                                  "update"])),)

    def apply(self, ctx) -> None:
        ctx.storage.set_tags(self.name, dict(self.tags))


@dataclass(frozen=True)
class RenameVolume(Step):
    name: str
    new_name: str

    def actions(self) -> tuple[ApiCall, ...]:
        return (ApiCall(f"VolumeUpdate/{self.name}", {"rename": self.new_name},
                        f"storpool volume {self.name} update rename {self.new_name}"),)

    def apply(self, ctx) -> None:
        ctx.storage.rename_volume(self.name, self.new_name)


@dataclass(frozen=True)
class DeleteVolume(Step):
    """The planner deletes only volumes attached nowhere (refuse_attached)."""

    name: str

    def actions(self) -> tuple[ApiCall, ...]:
        return (ApiCall(f"VolumeDelete/{self.name}", None,
                        f"storpool -B volume {self.name} delete {self.name}"),)

    def apply(self, ctx) -> None:
        ctx.storage.delete_volume(self.name)


def reassign(volume: str, how: str, host: str, client: Optional[int], cli: str) -> ApiCall:
    """VolumesReassignWait for one volume on one client. The fake names a client by its host;
    StorPool by its SP_OURID (World.client). The bindings send `force: false` explicitly."""
    who: Union[int, str] = host if client is None else client
    return ApiCall("VolumesReassignWait",
                   {"reassign": [{"volume": volume, how: [who], "force": False}]},
                   f"storpool {cli} volume {volume} client {who}   (host {host})")


@dataclass(frozen=True)
class Attach(Step):
    """Read-write on `host`; already attached there, the backend sends nothing."""

    name: str
    host: str
    client: Optional[int] = None

    def actions(self) -> tuple[ApiCall, ...]:
        return (reassign(self.name, "rw", self.host, self.client, "attach"),)

    def apply(self, ctx) -> None:
        ctx.storage.attach(self.name, self.host)


@dataclass(frozen=True)
class Detach(Step):
    """From `host` only; not attached there, the backend sends nothing."""

    name: str
    host: str
    client: Optional[int] = None

    def actions(self) -> tuple[ApiCall, ...]:
        return (reassign(self.name, "detach", self.host, self.client, "detach"),)

    def apply(self, ctx) -> None:
        ctx.storage.detach(self.name, self.host)


# recovery points -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TakeRecoveryPoint(Step):
    """A snapshot of a volume before the tool first changes it; its tags say what it was."""

    volume: str
    snapshot: str
    tags: Mapping[str, str]

    def actions(self) -> tuple[ApiCall, ...]:
        return (ApiCall(f"VolumeSnapshot/{self.volume}",
                        {"name": self.snapshot, "tags": dict(self.tags)},
                        " ".join(["storpool volume", self.volume, "snapshot", self.snapshot,
                                  *_cli_tags(self.tags)])),)

    def apply(self, ctx) -> None:
        ctx.storage.create_snapshot(self.volume, self.snapshot, dict(self.tags))


@dataclass(frozen=True)
class SetSnapshotTags(Step):
    name: str
    tags: Mapping[str, Optional[str]]

    def actions(self) -> tuple[ApiCall, ...]:
        return (ApiCall(f"SnapshotUpdate/{self.name}", {"tags": _api_tags(self.tags)},
                        " ".join(["storpool snapshot", self.name, *_cli_tags(self.tags)])),)

    def apply(self, ctx) -> None:
        ctx.storage.set_snapshot_tags(self.name, dict(self.tags))


@dataclass(frozen=True)
class DeleteSnapshot(Step):
    name: str

    def actions(self) -> tuple[ApiCall, ...]:
        return (ApiCall(f"SnapshotDelete/{self.name}", None,
                        f"storpool -B snapshot {self.name} delete {self.name}"),)

    def apply(self, ctx) -> None:
        ctx.storage.delete_snapshot(self.name)


@dataclass(frozen=True)
class RevertVolume(Step):
    volume: str
    snapshot: str

    def actions(self) -> tuple[ApiCall, ...]:
        return (ApiCall(f"VolumeRevert/{self.volume}", {"toSnapshot": self.snapshot},
                        f"storpool volume {self.volume} revertToSnapshot {self.snapshot}"),)

    def apply(self, ctx) -> None:
        ctx.storage.revert_volume(self.volume, self.snapshot)


@dataclass(frozen=True)
class CreateFromSnapshot(Step):
    name: str
    snapshot: str
    tags: Mapping[str, str] = field(default_factory=dict)

    def actions(self) -> tuple[ApiCall, ...]:
        return (ApiCall("VolumeCreate", {"name": self.name, "parent": self.snapshot,
                                         "tags": dict(self.tags)},
                        " ".join(["storpool volume", self.name, "parent", self.snapshot,
                                  *_cli_tags(self.tags), "create"])),)

    def apply(self, ctx) -> None:
        ctx.storage.create_from_snapshot(self.name, self.snapshot, dict(self.tags))
