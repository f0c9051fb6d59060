"""Steps on the hypervisor: the argv they run through the Runner (dmsetup as the StorPool host
backend runs it), or the exact bytes they write, copy or compare on a device."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Optional

from . import mbr, naming, signatures
from .actions import Action, Compare, Copy, Read, Run, Write
from .dmstatus import SUPERBLOCK_MAGIC, parse_status
from .errors import LegFailed, PlanError
from .step import Step
from .steps_storage import Attach, Detach

PROC_SYS = "/proc/sys"


def _dev(volume: str) -> str:
    return naming.volume_path(volume)


@dataclass(frozen=True)
class WritePartitionTable(Step):
    """Rewrite only the partition entries of sector 0 (bytes 444-511, mbr.patch): the boot
    code, the disk's own signature (440-443) and sectors 1..N-1 stay, so a shell disk's boot
    loader survives. The sfdisk script in the comment writes the same bytes (tests/boot)."""

    volume: str
    start_sectors: int
    size_sectors: int
    boot_code_follows: bool = False  # a WriteBootArea comes later: no warning

    def entries(self) -> bytes:
        return mbr.patch(bytes(512), self.start_sectors, self.size_sectors)[mbr.ENTRIES:]

    def sfdisk(self) -> str:
        dev = _dev(self.volume)
        argv = ["sfdisk", "--no-reread", "--no-tell-kernel", "--wipe", "never", dev]
        return (f"{shlex.join(argv)} <<EOF\nlabel: dos\nlabel-id: 0x$(od -An -tx4 -j440 -N4 "
                f"{shlex.quote(dev)} | tr -d ' ')\nunit: sectors\nstart={self.start_sectors}, "
                f"size={self.size_sectors}, type=83\nEOF")

    def actions(self) -> tuple[Action, ...]:
        return (Write(_dev(self.volume), mbr.ENTRIES, self.entries(),
                      "the partition table of sector 0, as this sfdisk script writes it:"),)

    def render(self) -> str:
        return "\n".join([super().render(),
                          *("# " + line for line in self.sfdisk().splitlines())])

    def apply(self, ctx) -> None:
        path = ctx.host.device_path(self.volume)
        old = ctx.host.read(path, 0, 512)
        ctx.host.write(path, mbr.ENTRIES, self.entries())
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
    host: str = ""
    client: Optional[int] = None

    def _argv(self) -> list[str]:
        return [*self.program, "--boot-area", self.area, "--sectors", str(self.n_sectors)]

    def actions(self) -> tuple[Action, ...]:
        build = Run((*self._argv(), _dev(self.volume)))
        if not self.attach:
            return (build,)
        return (*Attach(self.volume, self.host, self.client).actions(), build,
                *Detach(self.volume, self.host, self.client).actions())

    def apply(self, ctx) -> None:
        if self.attach:
            ctx.storage.attach(self.volume, self.host)
        try:
            ctx.host.run_helper(self._argv(), self.volume)
        finally:
            if self.attach:
                ctx.storage.detach(self.volume, self.host)


@dataclass(frozen=True)
class WriteBootArea(Step):
    """Boot code into bytes 0-439 and sectors 1..N-1; the disk signature and the partition
    table (440-511) stay as WritePartitionTable left them. The file goes afterwards: the lock
    dir is a small tmpfs (/run/lock)."""

    volume: str
    area: str
    n_sectors: int

    def _copies(self) -> tuple[Copy, Copy]:
        dev = _dev(self.volume)
        return (Copy(self.area, 0, dev, 0, mbr.BOOT_CODE, "the boot code"),
                Copy(self.area, 512, dev, 512, (self.n_sectors - 1) * 512,
                     "sectors 1..N-1 (the boot loader's core)"))

    def actions(self) -> tuple[Action, ...]:
        return (*self._copies(), Run(("rm", "-f", "--", self.area)))

    def apply(self, ctx) -> None:
        path = ctx.host.device_path(self.volume)
        for c in self._copies():
            data = ctx.host.read(self.area, c.source_offset, c.length)
            ctx.host.write(path, c.offset, data)
        ctx.host.runner.run(["rm", "-f", "--", self.area])


@dataclass(frozen=True)
class CheckClone(Step):
    """In-place mode: prove the clone holds the data before the original's first sector changes.
    Sectors 1..N-1 are compared: the MBR write touches only sector 0, so a rerun compares again."""

    clone: str
    original: str
    n_sectors: int

    def _compare(self) -> Compare:
        return Compare(_dev(self.clone), 512, _dev(self.original), 512,
                       (self.n_sectors - 1) * 512, "must be equal (as cmp would say)")

    def actions(self) -> tuple[Action, ...]:
        return (self._compare(),)

    def apply(self, ctx) -> None:
        c = self._compare()
        diff = ctx.host.first_difference(ctx.host.device_path(self.clone), c.offset_a,
                                         ctx.host.device_path(self.original), c.offset_b,
                                         c.length)
        if diff is not None:
            raise PlanError(f"clone {self.clone} differs from {self.original} at byte "
                            f"{c.offset_a + diff}; not touching the original")


@dataclass(frozen=True)
class RunHelper(Step):
    argv: tuple[str, ...]
    volume: str

    def actions(self) -> tuple[Action, ...]:
        return (Run((*self.argv, _dev(self.volume))),)

    def apply(self, ctx) -> None:
        ctx.host.run_helper(list(self.argv), self.volume)


@dataclass(frozen=True)
class DmCreate(Step):
    name: str
    table: str

    def actions(self) -> tuple[Action, ...]:
        return (Run(("dmsetup", "create", self.name), self.table + "\n"),)

    def apply(self, ctx) -> None:
        ctx.host.dm_create(self.name, self.table)


@dataclass(frozen=True)
class AssembleRaid(Step):
    """Create the raid1. After leg 1 has joined once (meta1 tagged leg1=joined), its superblock
    records the copy's progress and the two-leg table resumes without `rebuild`; without the
    superblock (a sync that died between the tag and the reload, or wiped metadata) only leg 0
    is loaded and sync adds leg 1 with `rebuild 1`. The planner cannot read the device (it is
    attached by an earlier step of the same plan), so both tables and the read that picks one
    are printed; apply() loads exactly one of them."""

    name: str
    one_leg: str
    resume: Optional[str]
    meta1: str

    def actions(self) -> tuple[Action, ...]:
        one = Run(("dmsetup", "create", self.name), self.one_leg + "\n",
                  "without it: leg 0 only; sync adds leg 1 with rebuild 1" if self.resume else "")
        if not self.resume:
            return (one,)
        return (Read(_dev(self.meta1), 0, len(SUPERBLOCK_MAGIC),
                     f"dm-raid's superblock magic {SUPERBLOCK_MAGIC.hex()}?"),
                Run(("dmsetup", "create", self.name), self.resume + "\n",
                    "with it: both legs, the copy resumes"), one)

    def apply(self, ctx) -> None:
        table = self.one_leg
        if self.resume:
            head = ctx.host.read(ctx.host.device_path(self.meta1), 0, len(SUPERBLOCK_MAGIC))
            if head == SUPERBLOCK_MAGIC:
                table = self.resume
            else:
                ctx.say(f"{self.name}: leg 1 has no superblock yet; assembling one leg")
        ctx.host.dm_create(self.name, table)


@dataclass(frozen=True)
class DmReload(Step):
    name: str
    table: str

    def actions(self) -> tuple[Action, ...]:
        return (Run(("dmsetup", "reload", self.name), self.table + "\n"),
                Run(("dmsetup", "suspend", self.name)), Run(("dmsetup", "resume", self.name)))

    def apply(self, ctx) -> None:
        ctx.host.dm_reload(self.name, self.table)


@dataclass(frozen=True)
class DmRemove(Step):
    name: str

    def actions(self) -> tuple[Action, ...]:
        return (Run(("dmsetup", "info", self.name), note="gone already: nothing to remove"),
                Run(("dmsetup", "remove", self.name)))

    def apply(self, ctx) -> None:
        ctx.host.dm_remove(self.name)


@dataclass(frozen=True)
class CheckInSync(Step):
    """Re-read the status just before retagging: only `AA`, done == total and idle count."""

    name: str

    def actions(self) -> tuple[Action, ...]:
        return (Run(("dmsetup", "status", self.name), note="must read AA, done == total, idle"),)

    def apply(self, ctx) -> None:
        st = parse_status(ctx.host.dm_status(self.name))
        if not st.in_sync:
            raise LegFailed(f"{self.name} is no longer in sync ({st.health} {st.done}/"
                            f"{st.total} {st.action}); not retagging")


@dataclass(frozen=True)
class SysctlSet(Step):
    key: str
    value: int

    def actions(self) -> tuple[Action, ...]:
        return (Write(f"{PROC_SYS}/{self.key.replace('.', '/')}", 0,
                      f"{int(self.value)}\n".encode(), f"sysctl -w {self.key}={self.value}"),)

    def apply(self, ctx) -> None:
        ctx.host.sysctl_set(self.key, self.value)


@dataclass(frozen=True)
class CheckNotXenDisk(Step):
    """Swapped -x/-k: the 'KVM' volume must not hold a bare filesystem, as a XEN disk does.
    Runs before the first change and leaves the volume attached as it found it (`attach`:
    whether it was not attached here when planned)."""

    volume: str
    xen: str
    host: str
    attach: bool = True
    client: Optional[int] = None

    def actions(self) -> tuple[Action, ...]:
        look = Read(_dev(self.volume), 0, signatures.HEAD_BYTES,
                    "must hold a partition table or nothing, not a bare filesystem")
        if not self.attach:
            return (look,)
        return (*Attach(self.volume, self.host, self.client).actions(), look,
                *Detach(self.volume, self.host, self.client).actions())

    def apply(self, ctx) -> None:
        if self.attach:
            ctx.storage.attach(self.volume, self.host)
        try:
            head = ctx.host.read(ctx.host.device_path(self.volume), 0, signatures.HEAD_BYTES)
        finally:
            if self.attach:
                ctx.storage.detach(self.volume, self.host)
        found = signatures.bare_filesystem(head)
        if found:
            raise PlanError(f"{self.volume} holds a bare {found} filesystem, as a XEN disk "
                            f"does: are -x and -k swapped? The XEN disk goes to -x "
                            f"(here {self.xen}), the new KVM disk to -k")
