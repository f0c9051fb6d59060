"""A remote KVM hypervisor: the Host core of host.py with strategies that do every read, write
and check as a command through the Runner (standard tools only: test, dd, base64, cmp, sysctl,
cat), and the host's own run lock held over the connection. Scripts passed to `sh -c` are
constants; paths and numbers travel as positional parameters, never spliced in. The strategies
work through any Runner (tests/data feeds a scripted one); only the lock needs an SSH one."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from typing import Callable, Optional

from xen2kvm.errors import DeviceError, LockBusy
from xen2kvm.naming import DevicePaths
from xen2kvm.process import Runner

from .host import Host, shell

READ = 'dd if="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" bs=65536 status=none ' \
       '| base64 -w0'
WRITE = 'base64 -d | dd of="$1" oflag=seek_bytes seek="$2" bs=65536 conv=notrunc,fsync ' \
        'status=none'
DIFFER = re.compile(r"differ: (?:byte|char) (\d+)")
# The same lock file a run on the host itself takes; fd 9 passes to `cat`, which holds it
# until its stdin ends: when the controller closes the channel or its connection drops.
# flock -n says 1 for "held elsewhere" (-E is too new for CentOS 7), other codes are errors.
LOCK = ('mkdir -p "$1" && exec 9>>"$1/xen2kvm.lock" || exit 1; flock -n 9; r=$?; '
        'case $r in 0) ;; 1) exit 75 ;; *) exit "$r" ;; esac; echo locked; exec cat >/dev/null')
LOCK_BUSY = 75
NOTE_SET = 'mkdir -p "$1" && cat > "$1/$2.tmp" && mv -f "$1/$2.tmp" "$1/$2"'


class ShellBlockIo:
    def __init__(self, runner: Runner, where: str):
        self.runner = runner
        self.where = where

    def exists(self, path: str) -> bool:
        return self.runner.run(["test", "-e", path], check=False).rc == 0

    def read(self, path: str, offset: int, length: int) -> bytes:
        res = shell(self.runner, READ, path, str(offset), str(length))
        data = base64.b64decode(res.stdout) if res.rc == 0 else b""
        if len(data) != length:
            raise DeviceError("EIO", f"read of {self.where}:{path} at {offset} failed: "
                                     f"{res.stderr.strip() or 'short read'}")
        return data

    def write(self, path: str, offset: int, data: bytes) -> None:
        res = shell(self.runner, WRITE, path, str(offset), input=base64.b64encode(data).decode())
        if res.rc != 0:
            raise DeviceError("EIO", f"write to {self.where}:{path} failed: "
                                     f"{res.stderr.strip()}")

    def first_difference(self, path_a, offset_a, path_b, offset_b, length) -> Optional[int]:
        res = self.runner.run(["cmp", "-i", f"{offset_a}:{offset_b}", "-n", str(length),
                               path_a, path_b], check=False, timeout=86400)
        if res.rc == 0:
            return None
        m = DIFFER.search(res.stdout)
        if res.rc == 1 and m:
            return int(m.group(1)) - 1
        raise DeviceError("EIO", f"cmp on {self.where} failed: {res.stderr.strip()}")


class ShellFiles:
    def __init__(self, runner: Runner, where: str):
        self.runner = runner
        self.where = where

    def sysctl_get(self, key: str) -> int:
        res = self.runner.run(["sysctl", "-n", key], check=False)
        if res.rc != 0:
            raise DeviceError("ENOENT", f"sysctl {key} on {self.where}: {res.stderr.strip()}")
        return int(res.stdout.split()[0])

    def sysctl_set(self, key: str, value: int) -> None:
        res = self.runner.run(["sysctl", "-w", f"{key}={int(value)}"], check=False)
        if res.rc != 0:
            raise DeviceError("EACCES", f"sysctl {key}={value} on {self.where}: "
                                        f"{res.stderr.strip()}")

    def note_get(self, folder: Path, name: str) -> Optional[str]:
        res = self.runner.run(["cat", str(folder / name)], check=False)
        if res.rc != 0 and "No such file" not in res.stderr:
            raise DeviceError("EIO", f"reading {folder / name} on {self.where}: "
                                     f"{res.last_line(f'exit {res.rc}')}")
        return res.stdout if res.rc == 0 else None

    def note_set(self, folder: Path, name: str, text: Optional[str]) -> None:
        if text is None:
            res = self.runner.run(["rm", "-f", str(folder / name)], check=False)
        else:
            res = shell(self.runner, NOTE_SET, str(folder), name, input=text)
        if res.rc != 0:
            raise DeviceError("EIO", f"writing {folder / name} on {self.where}: "
                                     f"{res.last_line(f'exit {res.rc}')}")


class RemoteHost(Host):
    """A hypervisor reached through `runner` (SSH): nothing of it runs on this machine."""

    def __init__(self, name: str, runner: Runner, dev_root: str = "/dev",
                 sleep: Callable[[float], None] = time.sleep, device_wait: float = 30.0,
                 note_dir: str = "/run/lock/xen2kvm"):
        super().__init__(name, runner, ShellBlockIo(runner, name), ShellFiles(runner, name),
                         DevicePaths(str(dev_root)), sleep, device_wait, note_dir)

    def hold_lock(self, lock_dir: str) -> Callable[[], None]:
        """Take the host's run lock (needs a Runner that can start a held command: SSH);
        returns what releases it."""
        held = self.runner.start(["sh", "-c", LOCK, "sh", lock_dir])
        if held.first_line(timeout=60) == "locked":
            return held.close
        res = held.finish()
        if res.rc == LOCK_BUSY:
            raise LockBusy(f"another xen2kvm run holds {self.name}:{lock_dir}/xen2kvm.lock; "
                           "wait for it to finish")
        raise DeviceError("lock", f"cannot take the run lock on {self.name}: "
                                  f"{res.last_line(f'exit {res.rc}')}")
