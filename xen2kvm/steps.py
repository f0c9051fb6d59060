"""Steps as data. Each renders as the command an operator would type (the dry-run output) and
executes through the backends; dry-run and `-y` walk the same list."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from . import mbr, naming, signatures
from .dmstatus import SUPERBLOCK_MAGIC, parse_status
from .errors import LegFailed, PlanError
from .units import human


def _tags(tags: Mapping[str, Optional[str]]) -> list[str]:
    return [f"tag {k}={v or ''}" for k, v in tags.items()]


def _heredoc(argv: list[str], text: str) -> str:
    return f"{shlex.join(argv)} <<'EOF'\n{text}\nEOF"


class Step:
    def render(self) -> str:
        raise NotImplementedError

    def apply(self, ctx: Any) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class CloneVolume(Step):
    name: str
    source: str
    tags: Mapping[str, str] = field(default_factory=dict)

    def render(self) -> str:
        return " ".join(["storpool volume", self.name, "baseOn", self.source,
                         *_tags(self.tags), "create"])

    def apply(self, ctx) -> None:
        ctx.storage.clone_volume(self.name, self.source, dict(self.tags))


@dataclass(frozen=True)
class CreateVolume(Step):
    name: str
    size_bytes: int
    tags: Mapping[str, str] = field(default_factory=dict)
    template: str = ""

    def render(self) -> str:
        template = ["template", self.template] if self.template else []
        return " ".join(["storpool volume", self.name, "size", human(self.size_bytes),
                         *template, *_tags(self.tags), "create"])

    def apply(self, ctx) -> None:
        ctx.storage.create_volume(self.name, self.size_bytes, dict(self.tags), self.template)


@dataclass(frozen=True)
class GrowVolume(Step):
    name: str
    add_bytes: int

    def render(self) -> str:
        return f"storpool volume {self.name} update size +{human(self.add_bytes)}"

    def apply(self, ctx) -> None:
        ctx.storage.grow_volume(self.name, self.add_bytes)


@dataclass(frozen=True)
class SetTags(Step):
    name: str
    tags: Mapping[str, Optional[str]]

    def render(self) -> str:
        return " ".join(["storpool volume", self.name, *_tags(self.tags), "update"])

    def apply(self, ctx) -> None:
        ctx.storage.set_tags(self.name, dict(self.tags))


@dataclass(frozen=True)
class RenameVolume(Step):
    name: str
    new_name: str

    def render(self) -> str:
        return f"storpool volume {self.name} update rename {self.new_name}"

    def apply(self, ctx) -> None:
        ctx.storage.rename_volume(self.name, self.new_name)


@dataclass(frozen=True)
class DeleteVolume(Step):
    name: str

    def render(self) -> str:
        return f"storpool -B volume {self.name} delete {self.name}"

    def apply(self, ctx) -> None:
        ctx.storage.delete_volume(self.name)


@dataclass(frozen=True)
class Attach(Step):
    name: str
    host: str

    def render(self) -> str:
        return f"storpool attach volume {self.name} here"

    def apply(self, ctx) -> None:
        ctx.storage.attach(self.name, self.host)


@dataclass(frozen=True)
class Detach(Step):
    name: str
    host: str

    def render(self) -> str:
        return f"storpool detach volume {self.name} here"

    def apply(self, ctx) -> None:
        ctx.storage.detach(self.name, self.host)


@dataclass(frozen=True)
class WritePartitionTable(Step):
    """Rewrite only the partition entries of sector 0: the boot code, the disk's own signature
    (`label-id`, read off the disk) and sectors 1..N-1 stay, so a shell disk's boot loader
    survives. sfdisk fed this script writes the same bytes as apply() (tests/boot)."""

    volume: str
    start_sectors: int
    size_sectors: int
    boot_code_follows: bool = False  # a WriteBootArea comes later: no warning

    def render(self) -> str:
        dev = shlex.quote(naming.volume_path(self.volume))
        argv = ["sfdisk", "--no-reread", "--no-tell-kernel", "--wipe", "never",
                naming.volume_path(self.volume)]
        return (f"{shlex.join(argv)} <<EOF\nlabel: dos\n"
                f"label-id: 0x$(od -An -tx4 -j440 -N4 {dev} | tr -d ' ')\nunit: sectors\n"
                f"start={self.start_sectors}, size={self.size_sectors}, type=83\nEOF")

    def apply(self, ctx) -> None:
        path = ctx.host.device_path(self.volume)
        old = ctx.host.read(path, 0, 512)
        ctx.host.write(path, 0, mbr.patch(old, self.start_sectors, self.size_sectors))
        if not mbr.has_boot_code(old) and not self.boot_code_follows:
            ctx.warn(f"this disk will not boot: sector 0 of {self.volume} holds no boot code "
                     "(no shell disk's boot loader); prepare with `xen2kvm prepare "
                     "--boot-loader guest` (GRUB 2 also needs --no-dos), or install one from "
                     "the guest")


@dataclass(frozen=True)
class BuildBootArea(Step):
    """The guest's own boot code for sectors 0..N-1, built by the helper from the XEN volume
    (the clone on a rerun) read-only into a file: see xen2kvm/guest/bootarea.py. It attaches
    the volume only for the build, so a guest that cannot get its boot loader changes nothing."""

    program: tuple[str, ...]
    volume: str
    n_sectors: int
    area: str
    attach: bool = True

    def _argv(self) -> list[str]:
        return [*self.program, "--boot-area", self.area, "--sectors", str(self.n_sectors)]

    def render(self) -> str:
        build = shlex.join([*self._argv(), naming.volume_path(self.volume)])
        if not self.attach:
            return build
        return "\n".join([Attach(self.volume, "").render(), build,
                          Detach(self.volume, "").render()])

    def apply(self, ctx) -> None:
        if self.attach:
            ctx.storage.attach(self.volume, ctx.host.name)
        try:
            ctx.host.run_helper(self._argv(), self.volume)
        finally:
            if self.attach:
                ctx.storage.detach(self.volume, ctx.host.name)


@dataclass(frozen=True)
class WriteBootArea(Step):
    """Boot code into bytes 0-439 and sectors 1..N-1; the disk signature and the partition
    table (440-511) stay as WritePartitionTable left them. The file goes afterwards: the lock
    dir is a small tmpfs (/run/lock)."""

    volume: str
    area: str
    n_sectors: int

    def render(self) -> str:
        dev, area = naming.volume_path(self.volume), self.area
        return "\n".join([
            shlex.join(["dd", f"if={area}", f"of={dev}", "bs=440", "count=1",
                        "conv=notrunc,fsync"]),
            shlex.join(["dd", f"if={area}", f"of={dev}", "bs=512", "skip=1", "seek=1",
                        f"count={self.n_sectors - 1}", "conv=notrunc,fsync"]),
            shlex.join(["rm", "-f", "--", area])])

    def apply(self, ctx) -> None:
        area = ctx.host.read(self.area, 0, self.n_sectors * 512)
        path = ctx.host.device_path(self.volume)
        old = ctx.host.read(path, 0, 512)
        ctx.host.write(path, 0, area[:440] + old[440:] + area[512:])
        ctx.host.runner.run(["rm", "-f", "--", self.area])


@dataclass(frozen=True)
class CheckClone(Step):
    """In-place mode: prove the clone holds the data before the original's first sector changes.
    Sectors 1..N are compared: the MBR write touches only sector 0, so a rerun compares again."""

    clone: str
    original: str
    n_sectors: int

    def render(self) -> str:
        return (f"cmp -i 512 -n {(self.n_sectors - 1) * 512} "
                f"{naming.volume_path(self.clone)} {naming.volume_path(self.original)}")

    def apply(self, ctx) -> None:
        diff = ctx.host.first_difference(
            ctx.host.device_path(self.clone), 512,
            ctx.host.device_path(self.original), 512, (self.n_sectors - 1) * 512)
        if diff is not None:
            raise PlanError(f"clone {self.clone} differs from {self.original} at byte "
                            f"{512 + diff}; not touching the original")


@dataclass(frozen=True)
class RunHelper(Step):
    argv: tuple[str, ...]
    volume: str

    def render(self) -> str:
        return shlex.join([*self.argv, naming.volume_path(self.volume)])

    def apply(self, ctx) -> None:
        ctx.host.run_helper(list(self.argv), self.volume)


@dataclass(frozen=True)
class DmCreate(Step):
    name: str
    table: str

    def render(self) -> str:
        return _heredoc(["dmsetup", "create", self.name], self.table)

    def apply(self, ctx) -> None:
        ctx.host.dm_create(self.name, self.table)


@dataclass(frozen=True)
class AssembleRaid(Step):
    """Create the raid1. After leg 1 has joined once, its superblock records the copy's
    progress and the two-leg table resumes without `rebuild`; that is read at run time."""

    name: str
    one_leg: str
    resume: Optional[str]
    meta1: str

    def render(self) -> str:
        return _heredoc(["dmsetup", "create", self.name], self.resume or self.one_leg)

    def apply(self, ctx) -> None:
        table = self.one_leg
        if self.resume:
            head = ctx.host.read(ctx.host.device_path(self.meta1), 0, 4)
            if head == SUPERBLOCK_MAGIC:
                table = self.resume
            else:
                ctx.say(f"{self.name}: leg 1 has no superblock yet; assembling one leg")
        ctx.host.dm_create(self.name, table)


@dataclass(frozen=True)
class DmReload(Step):
    name: str
    table: str

    def render(self) -> str:
        return "\n".join([_heredoc(["dmsetup", "reload", self.name], self.table),
                          f"dmsetup suspend {self.name}", f"dmsetup resume {self.name}"])

    def apply(self, ctx) -> None:
        ctx.host.dm_reload(self.name, self.table)


@dataclass(frozen=True)
class DmRemove(Step):
    name: str

    def render(self) -> str:
        return f"dmsetup remove {self.name}"

    def apply(self, ctx) -> None:
        ctx.host.dm_remove(self.name)


@dataclass(frozen=True)
class CheckInSync(Step):
    """Re-read the status just before retagging: only `AA`, done == total and idle count."""

    name: str

    def render(self) -> str:
        return f"dmsetup status {self.name}   # must read AA, done == total, idle"

    def apply(self, ctx) -> None:
        st = parse_status(ctx.host.dm_status(self.name))
        if not st.in_sync:
            raise LegFailed(f"{self.name} is no longer in sync ({st.health} {st.done}/"
                            f"{st.total} {st.action}); not retagging")


@dataclass(frozen=True)
class SysctlSet(Step):
    key: str
    value: int

    def render(self) -> str:
        return f"sysctl -w {self.key}={self.value}"

    def apply(self, ctx) -> None:
        ctx.host.sysctl_set(self.key, self.value)


@dataclass(frozen=True)
class CheckNotXenDisk(Step):
    """Swapped -x/-k: the 'KVM' volume must not hold a bare filesystem, as a XEN disk does.
    Runs before the first change and leaves the volume attached as it found it."""

    volume: str
    xen: str
    host: str

    def render(self) -> str:
        return (f"blkid -p {naming.volume_path(self.volume)}   # attached here for the look; "
                "must show a partition table or nothing, not a bare filesystem")

    def apply(self, ctx) -> None:
        attached = any(self.host in v.attached for v in ctx.storage.list_volumes()
                       if v.name == self.volume)
        if not attached:
            ctx.storage.attach(self.volume, self.host)
        try:
            head = ctx.host.read(ctx.host.device_path(self.volume), 0, signatures.HEAD_BYTES)
        finally:
            if not attached:
                ctx.storage.detach(self.volume, self.host)
        found = signatures.bare_filesystem(head)
        if found:
            raise PlanError(f"{self.volume} holds a bare {found} filesystem, as a XEN disk "
                            f"does: are -x and -k swapped? The XEN disk goes to -x "
                            f"(here {self.xen}), the new KVM disk to -k")


# recovery points -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TakeRecoveryPoint(Step):
    """A snapshot of a volume before the tool first changes it; its tags say what it was."""

    volume: str
    snapshot: str
    tags: Mapping[str, str]

    def render(self) -> str:
        return " ".join(["storpool volume", self.volume, "snapshot", self.snapshot,
                         *_tags(self.tags)])

    def apply(self, ctx) -> None:
        ctx.storage.create_snapshot(self.volume, self.snapshot, dict(self.tags))


@dataclass(frozen=True)
class SetSnapshotTags(Step):
    name: str
    tags: Mapping[str, Optional[str]]

    def render(self) -> str:
        return " ".join(["storpool snapshot", self.name, *_tags(self.tags)])

    def apply(self, ctx) -> None:
        ctx.storage.set_snapshot_tags(self.name, dict(self.tags))


@dataclass(frozen=True)
class DeleteSnapshot(Step):
    name: str

    def render(self) -> str:
        return f"storpool -B snapshot {self.name} delete {self.name}"

    def apply(self, ctx) -> None:
        ctx.storage.delete_snapshot(self.name)


@dataclass(frozen=True)
class RevertVolume(Step):
    volume: str
    snapshot: str

    def render(self) -> str:
        return f"storpool volume {self.volume} revertToSnapshot {self.snapshot}"

    def apply(self, ctx) -> None:
        ctx.storage.revert_volume(self.volume, self.snapshot)


@dataclass(frozen=True)
class CreateFromSnapshot(Step):
    name: str
    snapshot: str
    tags: Mapping[str, str] = field(default_factory=dict)

    def render(self) -> str:
        return " ".join(["storpool volume", self.name, "parent", self.snapshot,
                         *_tags(self.tags), "create"])

    def apply(self, ctx) -> None:
        ctx.storage.create_from_snapshot(self.name, self.snapshot, dict(self.tags))
