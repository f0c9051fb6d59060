"""Volume data in sparse files, and the devices attached volumes show up as."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Optional

from xen2kvm.process import Runner

from .rules import invalid


def private(path: Path, mode: str) -> IO:
    """Volume images and state hold guests' data: owner-only, whatever the umask."""
    flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if "w" in mode else 0)
    return open(os.open(path, flags, 0o600), mode)


def resize(path: Path, size: int) -> None:
    """Set a volume file's size, or refuse without leaving a change behind."""
    try:
        with private(path, "r+b") as f:
            f.truncate(size)
    except (OSError, OverflowError) as exc:
        raise invalid(f"size {size} is too large for this cluster "
                      f"({getattr(exc, 'strerror', None) or exc})") from None


def sparse_copy(src: Path, dst: Path) -> None:
    """Copy only the allocated extents: a 2 TiB parent with little data clones in no time."""
    with open(src, "rb") as fi, private(dst, "wb") as fo:
        size = os.fstat(fi.fileno()).st_size
        fo.truncate(size)
        pos = 0
        while pos < size:
            try:
                pos = os.lseek(fi.fileno(), pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fi.fileno(), pos, os.SEEK_HOLE)
            fi.seek(pos)
            fo.seek(pos)
            while pos < end:
                chunk = fi.read(min(end - pos, 8 << 20))
                fo.write(chunk)
                pos += len(chunk)


class Devices:
    """Makes attached volumes appear under `<root>/storpool/`: loop devices (losetup through
    the tool's one Runner) when root has them, else symlinks to the data files."""

    def __init__(self, root: Path, use_loop: Optional[bool] = None,
                 runner: Optional[Runner] = None):
        self.dir = Path(root) / "storpool"
        self.dir.mkdir(parents=True, exist_ok=True)
        if use_loop is None:
            use_loop = os.geteuid() == 0 and Path("/dev/loop-control").exists()
        self.use_loop = use_loop
        self.runner = runner or Runner()
        self.loops: dict[str, str] = {}

    def attach(self, name: str, path: Path) -> None:
        link = self.dir / name
        if link.is_symlink() or link.exists():
            return
        target = str(path)
        if self.use_loop:
            target = self.runner.run(["losetup", "--find", "--show", "--direct-io=off",
                                      str(path)]).stdout.strip()
            self.loops[name] = target
        os.symlink(target, link)

    def detach(self, name: str) -> None:
        link = self.dir / name
        if link.is_symlink():
            link.unlink()
        loop = self.loops.pop(name, None)
        if loop:
            self.runner.run(["losetup", "-d", loop])

    def resized(self, name: str) -> None:
        loop = self.loops.get(name)
        if loop:
            self.runner.run(["losetup", "-c", loop])
