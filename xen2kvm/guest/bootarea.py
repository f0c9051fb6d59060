"""The guest's own boot loader as boot code for sectors 0..N-1 of the KVM disk (in-place mode,
or a shell disk without boot code): GRUB 2 when it fits (N=2048), else GRUB legacy when the
guest has it (its stage 1.5 fits in 31 sectors); GRUB 2 alone with N=32 is refused.

GRUB 2: the core image is assembled by the host's `grub-mkimage` from the guest's module folder
(`-d <guest>/usr/lib/grub/i386-pc`): the guest's GRUB, but none of the guest's programs runs
as root on the host. The prefix is `(hd0,msdos1)/boot/grub`, partition 1 being the guest's
filesystem; the modules a plain boot needs are built in, so a /boot/grub without i386-pc/
still reaches grub.cfg. boot.img gets what `grub-bios-setup` changes for a hard disk: the
boot-drive check becomes two NOPs; its kernel sector stays 1, and the core image's own
block list (written by grub-mkimage) already says "sectors 2.. follow".

GRUB legacy: stage1 and the guest's e2fs_stage1_5 at sector 1, patched as 0.97's `setup
(hd0)` with `root (hd0,0)` patches them (tests/boot compares with the real setup's bytes):
stage 1 loads one sector at 0x2000 and does not trust the BIOS drive number; stage 1.5's
block list counts its sectors, its stage 2 is /boot/grub/stage2 on partition 1."""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

from xen2kvm.errors import PlanError
from xen2kvm.process import Runner

from . import bootfiles

PREFIX = "(hd0,msdos1)/boot/grub"
MODULES = ("biosdisk", "part_msdos", "ext2", "xfs", "normal", "linux", "configfile", "search",
           "search_fs_uuid", "search_label", "serial", "terminal", "echo", "test", "gzio",
           "ls", "cat")
DRIVE_CHECK = 0x66  # GRUB_BOOT_MACHINE_DRIVE_CHECK in boot.img
SECTOR = 512
GRUB2_MIN_N = 2048
LEGACY_CONFIG = b" /boot/grub/menu.lst"


def build(root: Path, n: int, out: str, runner: Runner) -> str:
    """Write the N-sector boot area to `out`; returns a one-line description."""
    grub2, legacy = bootfiles.grub2_dir(root), bootfiles.legacy_dir(root)
    if legacy and (n < GRUB2_MIN_N or not grub2):
        area, what = _legacy(root / legacy, n), "GRUB legacy stage1 + e2fs_stage1_5"
    elif grub2:
        area, what = _grub2(root / grub2, n, runner)
    else:
        raise PlanError("the guest has neither GRUB 2 for i386-pc (/usr/lib/grub/i386-pc) nor "
                        "GRUB legacy stages: install one in the guest, or migrate without "
                        "--boot-loader")
    tmp_out = f"{out}.tmp"
    with open(tmp_out, "wb") as f:
        f.write(area)
    os.replace(tmp_out, out)
    return f"# boot area: the guest's {what} -> {out}"


def _grub2(mods: Path, n: int, runner: Runner) -> tuple[bytes, str]:
    with tempfile.TemporaryDirectory(prefix="xen2kvm-core-") as tmp:
        core_path = os.path.join(tmp, "core.img")
        res = runner.run(["grub-mkimage", "-O", "i386-pc", "-d", str(mods), "-p", PREFIX,
                          "-o", core_path, *MODULES], check=False, timeout=300)
        if res.rc != 0:
            raise PlanError(f"grub-mkimage could not build the guest's core image: "
                            f"{res.last_line('no error output')}")
        core = Path(core_path).read_bytes()
    sectors = -(-len(core) // SECTOR)
    if sectors > n - 1:
        raise PlanError(f"the guest's GRUB 2 core image needs {sectors} sectors after the MBR "
                        f"but N={n} leaves {n - 1}: use the 2048-sector layout (-c, --no-dos)")
    boot = bytearray((mods / "boot.img").read_bytes()[:SECTOR])
    boot[DRIVE_CHECK:DRIVE_CHECK + 2] = b"\x90\x90"
    area = bytes(boot) + core + bytes(n * SECTOR - SECTOR - len(core))
    return area, f"GRUB 2 boot.img + core.img ({sectors} sectors, prefix {PREFIX})"


def _legacy(stages: Path, n: int) -> bytes:
    stage1 = bytearray((stages / "stage1").read_bytes()[:SECTOR])
    s15 = bytearray((stages / "e2fs_stage1_5").read_bytes())
    sectors = -(-len(s15) // SECTOR)
    if sectors > n - 1:
        raise PlanError(f"the guest's GRUB legacy stage 1.5 needs {sectors} sectors but N={n} "
                        f"leaves {n - 1}")
    struct.pack_into("<HIH", stage1, 0x42, 0x2000, 1, 0x200)  # stage 1.5 at sector 1
    stage1[0x4B:0x4D] = b"\x90\x90"  # the boot-drive check, as for a hard disk
    struct.pack_into("<H", s15, 0x1FC, sectors - 1)  # the sectors after its first
    version_end = s15.index(b"\0", 0x212)
    s15[version_end + 3] = 0  # install partition (hd0,0): PC slice 0
    path_end = s15.index(b"\0", version_end + 5)
    s15[path_end:path_end + len(LEGACY_CONFIG) + 1] = LEGACY_CONFIG + b"\0"
    return bytes(stage1) + bytes(s15) + bytes(n * SECTOR - SECTOR - len(s15))
