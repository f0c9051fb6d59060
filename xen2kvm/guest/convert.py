"""Mount the guest's root filesystem privately, plan every change, show it as unified diffs,
and (unless dry-run) write it with `<file>.pre-xen2kvm` backups, then unmount."""

from __future__ import annotations

import contextlib
import difflib
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from xen2kvm.errors import PlanError
from xen2kvm.process import Runner

from . import bootfiles, edits
from .detect import Guest, detect

BACKUP = ".pre-xen2kvm"
DIFF_LOG = "root/xen2kvm-guest.diff"
GETTY_WANTS = "etc/systemd/system/getty.target.wants"


@dataclass
class Change:
    rel: str  # path inside the guest, no leading slash
    old: Optional[str]  # None: a new file
    new: Optional[str]  # None: the file goes (kept as its backup)
    link: Optional[str] = None  # a symlink target instead of text

    def diff(self) -> str:
        if self.link is not None:
            return f"+++ b/{self.rel} -> {self.link}\n" if self.new is not None else \
                f"--- a/{self.rel} (symlink removed)\n"
        old = (self.old or "").splitlines(keepends=True)
        new = (self.new or "").splitlines(keepends=True)
        return "".join(difflib.unified_diff(old, new, f"a/{self.rel}", f"b/{self.rel}"))


@dataclass
class Plan:
    guest: Guest
    root_spec: str
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)
    copies: list[bootfiles.Copy] = field(default_factory=list)


def inside(root: Path, rel: str) -> Path:
    """Resolve a guest path, following the guest's own (absolute) symlinks within its root."""
    parts, cur, hops = [p for p in rel.split("/") if p], root, 0
    while parts:
        cur = cur / parts.pop(0)
        if cur.is_symlink():
            hops += 1
            if hops > 20:
                raise PlanError(f"symlink loop at /{rel}")
            target = os.readlink(cur)
            base = root if target.startswith("/") else cur.parent
            parts = [p for p in target.split("/") if p] + parts
            cur = base
    if root.resolve() not in [cur.resolve(), *cur.resolve().parents]:
        raise PlanError(f"/{rel} points outside the guest")
    return cur


def _edit(plan: Plan, root: Path, rel: str, fn) -> Optional[str]:
    path = inside(root, rel)
    if not path.is_file():
        return None
    old = path.read_text(errors="surrogateescape")
    result = fn(old)
    new, warning = result if isinstance(result, tuple) else (result, None)
    if warning:
        plan.warnings.append(warning)
    if new != old:
        plan.changes.append(Change(str(path.relative_to(root)), old, new))
    return old


def make_plan(root: Path, uuid: str, label: str, rebuild_initrd: bool) -> Plan:
    guest = detect(root)
    spec = f"UUID={uuid}" if uuid else (f"LABEL={label}" if label else "/dev/vda1")
    plan = Plan(guest, spec)
    _edit(plan, root, "etc/fstab", lambda t: edits.fstab(t, spec))
    seen: set[Path] = set()
    # every boot configuration the guest has: a shell's boot loader may read either
    for rel in ("boot/grub/grub.conf", "boot/grub/menu.lst"):
        real = inside(root, rel)
        if real not in seen:
            seen.add(real)
            _edit(plan, root, rel, lambda t: edits.grub_legacy(t, spec))
    if guest.grub != "legacy":
        _edit(plan, root, "etc/default/grub", lambda t: edits.grub2_default(t, spec))
    for rel in ("boot/grub2/grub.cfg", "boot/grub/grub.cfg"):
        _edit(plan, root, rel, lambda t: edits.grub2_cfg(t, spec))
    _edit(plan, root, "etc/inittab", edits.inittab)
    _edit(plan, root, "etc/securetty", edits.securetty)
    _edit(plan, root, "etc/modprobe.conf", edits.modprobe)
    modprobe_d = inside(root, "etc/modprobe.d")
    if modprobe_d.is_dir():
        for conf in sorted(modprobe_d.glob("*.conf")):
            _edit(plan, root, str(conf.relative_to(root)), edits.modprobe)
    _consoles(plan, root)
    if rebuild_initrd:
        _initrd(plan, root, guest)
    plan.copies = bootfiles.plan(root)
    if not plan.copies and not (bootfiles.grub2_dir(root) or bootfiles.legacy_dir(root)):
        plan.warnings.append(
            "the guest has no GRUB of its own: the shell disk's boot loader must find its "
            "files in the guest's /boot/grub (see README, Will it boot?)")
    return plan


def _consoles(plan: Plan, root: Path) -> None:
    for name in ("hvc0", "xvc0"):
        job = inside(root, f"etc/init/{name}.conf")  # upstart
        if job.is_file():
            text = job.read_text()
            plan.changes.append(Change(str(job.relative_to(root)), text, None))
            target = job.with_name(f"{edits.SERIAL}.conf")
            if not target.exists():
                plan.changes.append(Change(str(target.relative_to(root)), None,
                                           edits.console_names(text)))
        wants = inside(root, GETTY_WANTS)
        unit = wants / f"serial-getty@{name}.service"
        if unit.is_symlink():
            plan.changes.append(Change(str(unit.relative_to(root)), "", None,
                                       link=os.readlink(unit)))
            serial = wants / f"serial-getty@{edits.SERIAL}.service"
            if not serial.is_symlink():
                target = os.readlink(unit)
                plan.changes.append(Change(str(serial.relative_to(root)), None, "",
                                           link=target))


def _initrd(plan: Plan, root: Path, guest: Guest) -> None:
    if guest.family == "debian":
        _edit(plan, root, "etc/initramfs-tools/modules", edits.initramfs_modules)
        plan.commands.append(["update-initramfs", "-u", "-k", "all"])
        return
    kernels = sorted(p.name[len("vmlinuz-"):] for p in inside(root, "boot").glob("vmlinuz-*")
                     if "xen" not in p.name)
    if not kernels:
        plan.warnings.append("no non-Xen kernel in /boot: the initrd cannot be rebuilt")
    for ver in kernels:
        if guest.major == 5:
            plan.commands.append(["mkinitrd", "-f", "--with=virtio_pci", "--with=virtio_blk",
                                  f"/boot/initrd-{ver}.img", ver])
        else:
            plan.commands.append(["dracut", "-f", "--add-drivers",
                                  "virtio_pci virtio_blk virtio_net",
                                  f"/boot/initramfs-{ver}.img", ver])


def write(plan: Plan, root: Path) -> None:
    bootfiles.write(plan.copies, root)
    for ch in plan.changes:
        path = root / ch.rel
        backup = path.with_name(path.name + BACKUP)
        if ch.link is not None:
            if ch.new is None:
                path.unlink()
            else:
                os.symlink(ch.link, path)
            continue
        if ch.old is not None and not backup.exists() and not backup.is_symlink():
            os.rename(path, backup) if ch.new is None else _copy(path, backup)
        elif ch.new is None:
            path.unlink()
        if ch.new is not None:
            mode = stat.S_IMODE(os.stat(backup).st_mode) if backup.exists() else 0o644
            tmp = path.with_name(path.name + ".xen2kvm-tmp")
            tmp.write_text(ch.new, errors="surrogateescape")
            os.chmod(tmp, mode)
            os.replace(tmp, path)
    if plan.changes:
        log = root / DIFF_LOG
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write("".join(ch.diff() for ch in plan.changes))


def _copy(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes())
    os.chmod(dst, stat.S_IMODE(os.stat(src).st_mode))


def check_writable(device: str) -> None:
    if not os.path.exists(device):
        raise PlanError(f"{device} does not exist")
    reason = None
    try:
        os.close(os.open(device, os.O_RDWR))
    except OSError as exc:
        reason = exc.strerror
    if reason is None and stat.S_ISBLK(os.stat(device).st_mode):
        ro = Path("/sys/dev/block") / "{}:{}".format(*divmod_dev(os.stat(device).st_rdev)) / "ro"
        if ro.exists() and ro.read_text().strip() == "1":
            reason = "the block device is read-only"
    if reason:
        raise PlanError(f"{device} cannot be opened read-write ({reason}); the helper must be "
                        "able to change the guest")


def divmod_dev(rdev: int) -> tuple[int, int]:
    return os.major(rdev), os.minor(rdev)


@contextlib.contextmanager
def mounted(device: str, runner: Runner, writable: bool) -> Iterator[tuple[Path, str, str]]:
    """Mount privately; yields (root, uuid, label)."""
    if not os.path.exists(device):
        raise PlanError(f"{device} does not exist")
    if writable:
        check_writable(device)
    probe = runner.run(["blkid", "-p", "-o", "export", device], check=False)
    info = dict(line.split("=", 1) for line in probe.stdout.splitlines() if "=" in line)
    fstype = info.get("TYPE")
    if fstype not in ("ext2", "ext3", "ext4", "xfs"):
        raise PlanError(f"{device} holds no ext2/3/4 or xfs filesystem "
                        f"({fstype or 'nothing recognisable'}); is it a XEN guest's root?")
    opts = ["rw"] if writable else ["ro", "norecovery" if fstype == "xfs" else "noload"]
    with _block_device(device, runner, writable) as source:
        mnt = Path(tempfile.mkdtemp(prefix="xen2kvm-guest-"))
        # -w: a device the kernel will not write fails here instead of mounting read-only
        res = runner.run(["mount", "-w" if writable else "-r", "-t", fstype,
                          "-o", ",".join(opts), source, str(mnt)], check=False)
        if res.rc != 0:
            mnt.rmdir()
            raise PlanError(f"cannot mount {device}: {res.last_line('mount failed')}")
        try:
            if writable and os.statvfs(mnt).f_flag & os.ST_RDONLY:
                raise PlanError(f"{device} was mounted read-only by the kernel; it cannot be "
                                "changed")
            yield mnt, info.get("UUID", ""), info.get("LABEL", "")
        finally:
            runner.run(["umount", str(mnt)], check=False)
            mnt.rmdir()


@contextlib.contextmanager
def _block_device(device: str, runner: Runner, writable: bool) -> Iterator[str]:
    """A file gets a loop device of its own, attached here and detached after use.

    mount's "-o loop" reuses a loop device already attached to the same file; a read-only
    one left by the planning mount (the kernel detaches it lazily) made the writing mount
    read-only.
    """
    if not os.path.isfile(device):
        yield device
        return
    argv = ["losetup", "--find", "--show", *([] if writable else ["--read-only"]), device]
    res = runner.run(argv, check=False)
    if res.rc != 0:
        raise PlanError(f"cannot attach {device} to a loop device: "
                        f"{res.last_line('losetup failed')}")
    loop = res.stdout.strip()
    try:
        yield loop
    finally:
        runner.run(["losetup", "--detach", loop], check=False)
