"""What a boot loader in sectors 0..N-1 of the KVM disk loads from the guest's partition 1.

A shell disk's GRUB 2 core image reads `(,msdos1)/boot/grub/i386-pc/*.mod` and `grub.cfg`;
GRUB legacy's stage 1.5 reads `/boot/grub/stage2` and `menu.lst`. A XEN PV guest booted by
pygrub often has only the configuration, so the helper copies the guest's own GRUB files
into /boot/grub (nothing of the guest is executed)."""

from __future__ import annotations

import filecmp
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

GRUB2_DIRS = ("usr/lib/grub/i386-pc",)
LEGACY_DIRS = ("usr/lib/grub/x86_64-pc", "usr/lib/grub/i386-pc", "usr/share/grub/x86_64-redhat",
               "usr/share/grub/i386-redhat", "boot/grub")  # the last: as grub-install left it
LEGACY_STAGES = ("stage1", "stage2", "e2fs_stage1_5")
GRUB2_SUFFIXES = (".mod", ".lst", ".o")


@dataclass(frozen=True)
class Copy:
    src: str  # a folder inside the guest, no leading slash
    dst: str
    names: tuple[str, ...]

    def describe(self) -> str:
        return (f"# copy {len(self.names)} files /{self.src}/ -> /{self.dst}/ "
                f"({', '.join(self.names[:3])}{', ...' if len(self.names) > 3 else ''})")


def grub2_dir(root: Path) -> Optional[str]:
    return next((d for d in GRUB2_DIRS if (root / d / "normal.mod").is_file()), None)


def legacy_dir(root: Path) -> Optional[str]:
    return next((d for d in LEGACY_DIRS
                 if all((root / d / f).is_file() for f in LEGACY_STAGES)), None)


def plan(root: Path) -> list[Copy]:
    """Copies that make /boot/grub hold the guest's GRUB 2 modules and legacy stages."""
    out = []
    src = grub2_dir(root)
    if src:
        names = tuple(sorted(p.name for p in (root / src).iterdir()
                             if p.name.endswith(GRUB2_SUFFIXES)))
        out.append(_missing_or_other(root, src, "boot/grub/i386-pc", names))
    src = legacy_dir(root)
    if src:
        names = tuple(n for n in LEGACY_STAGES if (root / src / n).is_file())
        out.append(_missing_or_other(root, src, "boot/grub", names))
    return [c for c in out if c.names]


def _missing_or_other(root: Path, src: str, dst: str, names: tuple[str, ...]) -> Copy:
    changed = tuple(n for n in names if not (root / dst / n).is_file()
                    or not filecmp.cmp(root / src / n, root / dst / n, shallow=False))
    return Copy(src, dst, changed)


def write(copies: list[Copy], root: Path) -> None:
    for c in copies:
        (root / c.dst).mkdir(parents=True, exist_ok=True)
        for name in c.names:
            shutil.copy2(root / c.src / name, root / c.dst / name)
