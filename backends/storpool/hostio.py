"""The strategies of a Host (host.py) for this machine: block I/O through the kernel's file API
(pread/pwrite, fsync), the md sysctls as files under /proc/sys, the notes as files written
whole (write, fsync, rename) so a crash leaves the old note or the new one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from xen2kvm.errors import DeviceError

STEP = 1 << 20  # bytes compared at a time


class LocalBlockIo:
    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    @staticmethod
    def _open(path: str, flags: int) -> int:
        try:
            return os.open(path, flags)
        except OSError as exc:
            raise DeviceError(exc.errno and os.strerror(exc.errno) or "EIO",
                              f"cannot open {path}: {exc.strerror}") from None

    def read(self, path: str, offset: int, length: int) -> bytes:
        fd = self._open(path, os.O_RDONLY)
        try:
            data = os.pread(fd, length, offset)
        finally:
            os.close(fd)
        if len(data) != length:
            raise DeviceError("EIO", f"short read of {path} at {offset}")
        return data

    def write(self, path: str, offset: int, data: bytes) -> None:
        fd = self._open(path, os.O_RDWR)
        try:
            if os.pwrite(fd, data, offset) != len(data):
                raise DeviceError("EIO", f"short write to {path} at {offset}")
            os.fsync(fd)
        except OSError as exc:
            raise DeviceError("EIO", f"write to {path} failed: {exc.strerror}") from None
        finally:
            os.close(fd)

    def first_difference(self, path_a, offset_a, path_b, offset_b, length) -> Optional[int]:
        pos = 0
        while pos < length:
            n = min(STEP, length - pos)
            a, b = self.read(path_a, offset_a + pos, n), self.read(path_b, offset_b + pos, n)
            if a != b:
                return pos + next(i for i in range(n) if a[i] != b[i])
            pos += n
        return None


class LocalFiles:
    def __init__(self, proc_sys: str = "/proc/sys"):
        self.proc_sys = Path(proc_sys)

    def _sysctl(self, key: str) -> Path:
        return self.proc_sys / key.replace(".", "/")

    def sysctl_get(self, key: str) -> int:
        try:
            return int(self._sysctl(key).read_text().split()[0])
        except OSError as exc:
            raise DeviceError("ENOENT", f"sysctl {key}: {exc.strerror}") from None

    def sysctl_set(self, key: str, value: int) -> None:
        try:
            self._sysctl(key).write_text(f"{int(value)}\n")
        except OSError as exc:
            raise DeviceError("EACCES", f"sysctl {key}={value}: {exc.strerror}") from None

    def note_get(self, folder: Path, name: str) -> Optional[str]:
        try:
            return (folder / name).read_text()
        except FileNotFoundError:
            return None

    def note_set(self, folder: Path, name: str, text: Optional[str]) -> None:
        path = folder / name
        if text is None:
            path.unlink(missing_ok=True)
            return
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
