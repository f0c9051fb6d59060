"""Guest and shell-disk images for the boot proofs, built from Debian's packages.

Built once into a cache outside the checkout (XEN2KVM_TEST_IMAGES, default
/var/cache/xen2kvm-test-images/<recipe hash>), under a file lock so two pytest processes do
not build at the same time; any change of this file is a new recipe. Needs root (debootstrap,
chroot, loop devices). Run `python -m tests.boot.images` to build by hand.

* xen.img: a XEN PV guest as OnApp lays it out: a bare ext4 filesystem on the whole disk,
  /boot/grub/menu.lst and grub.cfg as pygrub reads them, fstab naming /dev/xvda1, a getty on
  hvc0, GRUB legacy's stage files in /boot/grub (as a CentOS 5/6 guest has) and GRUB 2 in
  /usr/lib/grub (grub-pc-bin). A unit prints MARKER_PREFIX with the root device, the fstab
  root entry, the root mount options and the checksum of KNOWN_FILE to ttyS0, then powers off.
* shell-legacy.img: a KVM shell template whose boot code GRUB legacy 0.97's `setup` wrote,
  partition 1 at sector 63; shell-grub2.img: boot code from `grub-install` (GRUB 2.06),
  partition 1 at sector 2048.
* whole.img: a whole disk with its own partition table and GRUB 2, standing in for case-1.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

MIRROR = os.environ.get("XEN2KVM_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
PACKAGES = ("linux-image-amd64", "udev", "initramfs-tools", "systemd-sysv", "grub-pc-bin",
            "grub2-common", "libc6-i386", "e2fsprogs")
UUID = "6f9b5b1e-55c7-4d3a-9a7e-2c1d0b0e4a11"
FS_SIZE = "1G"
SHELL_SIZE = 64 * 1024 * 1024
MARKER_PREFIX = "XEN2KVM-MARKER"
KNOWN_FILE = "/root/known"
KNOWN_TEXT = "written when the XEN guest image was built\n"
NAMES = ("xen.img", "shell-legacy.img", "shell-grub2.img", "whole.img")
# Modules a minimal guest that boots from a virtio disk never loads: left out to keep the
# images (and the fake's sparse copies of them) small.
UNUSED_MODULES = ("drivers/gpu", "drivers/net/wireless", "drivers/media", "drivers/infiniband",
                  "drivers/staging", "drivers/net/ethernet", "drivers/scsi", "drivers/usb",
                  "drivers/hid", "drivers/bluetooth", "drivers/iio", "drivers/input/misc",
                  "sound", "net/wireless", "net/mac80211", "net/bluetooth", "fs/ocfs2",
                  "fs/btrfs", "fs/xfs", "fs/nfs", "fs/cifs", "fs/smb", "fs/ceph")

MARKER_SCRIPT = f"""#!/bin/sh
# prints what the boot proof asserts on, then powers the machine off
root=$(findmnt -no SOURCE /)
opts=$(findmnt -no OPTIONS / | cut -d, -f1)
spec=$(awk '$2 == "/" {{print $1}}' /etc/fstab)
sum=$(sha256sum {KNOWN_FILE} | cut -d' ' -f1)
echo "{MARKER_PREFIX} root=$root spec=$spec opts=$opts known=$sum" > /dev/ttyS0
systemctl poweroff --no-block
"""
MARKER_UNIT = """[Unit]
Description=xen2kvm boot proof marker
After=local-fs.target systemd-remount-fs.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/xen2kvm-marker

[Install]
WantedBy=multi-user.target
"""


def recipe_hash() -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(f"{MIRROR} {SUITE}".encode())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("XEN2KVM_TEST_IMAGES", "/var/cache/xen2kvm-test-images"))


def run(argv: list, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({res.returncode}): "
                           f"{(res.stderr or res.stdout).strip()[-1500:]}")
    return res


def ensure_images() -> Path:
    """The folder with NAMES, built when missing; raises with the cause when a build fails."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    out = root / recipe_hash()
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "done").exists():
            start = time.monotonic()
            shutil.rmtree(out, ignore_errors=True)
            work = root / f"build-{recipe_hash()}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            try:
                build(work, root / "debs")
            finally:
                _cleanup_mounts(work)
            out.mkdir()
            for name in NAMES:
                os.rename(work / name, out / name)
            shutil.rmtree(work, ignore_errors=True)
            (out / "build-seconds").write_text(f"{time.monotonic() - start:.0f}\n")
            (out / "done").write_text("")
    return out


def build(work: Path, debs: Path) -> None:
    debs.mkdir(exist_ok=True)
    tree = work / "root"
    run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
         f"--cache-dir={debs}", SUITE, tree, MIRROR], timeout=1800)
    legacy_deb = _download(debs, "grub-legacy")
    run(["dpkg-deb", "-x", legacy_deb, tree / "opt/grub-legacy"])
    kver = _dress_as_xen_guest(tree)
    _shrink(tree, kver)
    run(["mkfs.ext4", "-q", "-F", "-U", UUID, "-d", tree, work / "xen.img", FS_SIZE])
    (tree / "work").mkdir()
    _shell_legacy(tree, kver)
    _shell_grub2(tree)
    _whole_disk(tree, work, kver)
    for name in ("shell-legacy.img", "shell-grub2.img", "whole.img"):
        os.rename(tree / "work" / name, work / name)


def _download(debs: Path, package: str) -> Path:
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        run(["apt-get", "download", package], cwd=debs, timeout=600)
        found = sorted(debs.glob(f"{package}_*.deb"))
    return found[-1]


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def menu_lst(kver: str, root: str, console: str) -> str:
    return (f"default 0\ntimeout 1\nserial --unit=0 --speed=115200\n"
            f"terminal --timeout=0 serial console\n\ntitle Debian GNU/Linux, {kver}\n"
            f"root (hd0,0)\nkernel /boot/vmlinuz-{kver} root={root} ro console={console}\n"
            f"initrd /boot/initrd.img-{kver}\n")


def grub_cfg(kver: str, root: str, console: str) -> str:
    return ("serial --unit=0 --speed=115200\nterminal_input serial console\n"
            "terminal_output serial console\nset timeout=1\n"
            "menuentry 'Debian GNU/Linux' {\n\tinsmod ext2\n"
            f"\tlinux /boot/vmlinuz-{kver} root={root} ro console={console}\n"
            f"\tinitrd /boot/initrd.img-{kver}\n}}\n")


def _dress_as_xen_guest(tree: Path) -> str:
    kver = sorted(p.name[len("vmlinuz-"):] for p in (tree / "boot").glob("vmlinuz-*"))[-1]
    _write(tree / "etc/fstab", "/dev/xvda1 / ext4 errors=remount-ro 0 1\n")
    _write(tree / "etc/hostname", "xenguest\n")
    _write(tree / "etc/default/grub", 'GRUB_CMDLINE_LINUX="console=hvc0"\n')
    wants = tree / "etc/systemd/system/getty.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "serial-getty@hvc0.service"
    link.unlink(missing_ok=True)
    os.symlink("/lib/systemd/system/serial-getty@.service", link)
    grub = tree / "boot/grub"
    _write(grub / "menu.lst", menu_lst(kver, "/dev/xvda1", "hvc0"))
    _write(grub / "grub.cfg", grub_cfg(kver, "/dev/xvda1", "hvc0"))
    for stage in ("stage1", "e2fs_stage1_5", "stage2"):
        shutil.copy(tree / "opt/grub-legacy/usr/lib/grub/x86_64-pc" / stage, grub / stage)
    _write(tree / "usr/local/sbin/xen2kvm-marker", MARKER_SCRIPT, 0o755)
    _write(tree / "etc/systemd/system/xen2kvm-marker.service", MARKER_UNIT)
    mu = tree / "etc/systemd/system/multi-user.target.wants"
    mu.mkdir(parents=True, exist_ok=True)
    os.symlink("/etc/systemd/system/xen2kvm-marker.service", mu / "xen2kvm-marker.service")
    _write(tree / KNOWN_FILE.lstrip("/"), KNOWN_TEXT)
    return kver


def _shrink(tree: Path, kver: str) -> None:
    for rel in ("usr/share/doc", "usr/share/man", "usr/share/locale", "var/cache/apt",
                "var/lib/apt/lists"):
        shutil.rmtree(tree / rel, ignore_errors=True)
    mods = tree / "lib/modules" / kver / "kernel"
    for rel in UNUSED_MODULES:
        shutil.rmtree(mods / rel, ignore_errors=True)


def _partitioned(path: Path, size: int, start: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
    run(["sfdisk", "-q", path], input=f"label: dos\nunit: sectors\nstart={start}, type=83\n")


@contextlib.contextmanager
def _chroot_mounts(tree: Path) -> Iterator[None]:
    done = []
    try:
        for src, rel, fstype in (("/dev", "dev", None), ("proc", "proc", "proc"),
                                 ("sysfs", "sys", "sysfs")):
            target = tree / rel
            argv = ["mount", "--bind", src, target] if fstype is None else \
                ["mount", "-t", fstype, src, target]
            run(argv)
            done.append(target)
        yield
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


@contextlib.contextmanager
def _loop(image: Path) -> Iterator[str]:
    dev = run(["losetup", "-f", "--show", image]).stdout.strip()
    try:
        run(["partx", "-a", dev])
        yield dev
    finally:
        subprocess.run(["partx", "-d", dev], capture_output=True)
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def _shell_legacy(tree: Path, kver: str) -> None:
    """GRUB legacy's own `setup`: stage1 into the MBR, e2fs_stage1_5 into sectors 1.."""
    img = tree / "work/shell-legacy.img"
    _partitioned(img, SHELL_SIZE, 63)
    content = tree / "work/shell-legacy-root"
    grub = content / "boot/grub"
    grub.mkdir(parents=True)
    for stage in ("stage1", "e2fs_stage1_5", "stage2"):
        shutil.copy(tree / "boot/grub" / stage, grub / stage)
    _write(grub / "menu.lst", menu_lst(kver, "/dev/vda1", "ttyS0"))
    run(["mkfs.ext4", "-q", "-F", "-E", f"offset={63 * 512}", "-d", content, img,
         f"{(SHELL_SIZE - 63 * 512) // 1024}k"])
    _write(tree / "work/device.map", "(hd0) /work/shell-legacy.img\n")
    res = run(["chroot", tree, "/opt/grub-legacy/usr/sbin/grub", "--batch", "--no-floppy",
               "--device-map=/work/device.map"], input="root (hd0,0)\nsetup (hd0)\nquit\n")
    if "Error" in res.stdout or "succeeded" not in res.stdout:
        raise RuntimeError(f"GRUB legacy setup failed: {res.stdout[-1500:]}")


def _grub_install(tree: Path, image: Path, write_root) -> None:
    """`grub-install` of the guest tree's GRUB 2 onto the image's disk (loop + partx)."""
    mnt = tree / "mnt"
    with _loop(image) as dev, _chroot_mounts(tree):
        run(["mount", f"{dev}p1", mnt])
        try:
            write_root(mnt)
            _write(mnt / "boot/grub/device.map", f"(hd0) {dev}\n")
            run(["chroot", tree, "grub-install", "--target=i386-pc", "--boot-directory=/mnt/boot",
                 "--modules=part_msdos ext2", dev], timeout=600)
            (mnt / "boot/grub/device.map").unlink()
        finally:
            run(["umount", mnt])


def _shell_grub2(tree: Path) -> None:
    img = tree / "work/shell-grub2.img"
    _partitioned(img, SHELL_SIZE, 2048)
    run(["mkfs.ext4", "-q", "-F", "-E", f"offset={2048 * 512}", img,
         f"{(SHELL_SIZE - 2048 * 512) // 1024}k"])
    _grub_install(tree, img, lambda mnt: (mnt / "boot/grub").mkdir(parents=True))


def _whole_disk(tree: Path, work: Path, kver: str) -> None:
    """The XEN guest's filesystem behind its own partition table, configured for KVM."""
    img = tree / "work/whole.img"
    fs_bytes = os.path.getsize(work / "xen.img")
    _partitioned(img, fs_bytes + 2048 * 512, 2048)
    run(["dd", f"if={work / 'xen.img'}", f"of={img}", "bs=1M", "seek=1", "conv=sparse,notrunc"])
    spec = f"UUID={UUID}"

    def configure(mnt: Path) -> None:
        _write(mnt / "etc/fstab", f"{spec} / ext4 errors=remount-ro 0 1\n")
        _write(mnt / "boot/grub/grub.cfg", grub_cfg(kver, spec, "ttyS0,115200"))
        wants = mnt / "etc/systemd/system/getty.target.wants"
        (wants / "serial-getty@hvc0.service").unlink()
        os.symlink("/lib/systemd/system/serial-getty@.service",
                   wants / "serial-getty@ttyS0.service")

    _grub_install(tree, img, configure)


def _cleanup_mounts(work: Path) -> None:
    mounts = Path("/proc/mounts").read_text().split("\n")
    for line in reversed(mounts):
        w = line.split()
        if len(w) > 1 and w[1].startswith(str(work)):
            subprocess.run(["umount", "-l", w[1]], capture_output=True)


if __name__ == "__main__":
    t = time.monotonic()
    print(ensure_images(), f"{time.monotonic() - t:.0f} s", file=sys.stderr)
