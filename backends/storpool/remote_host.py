"""The host side on a remote KVM hypervisor: every read, write and check is a command through
the SSH Runner (standard tools only: dd, base64, cmp, sysctl, stat). Scripts passed to `sh -c`
are constants; volume paths and numbers travel as positional parameters, never spliced in."""

from __future__ import annotations

import base64
import re
from typing import Optional

from xen2kvm.errors import DeviceError

from .host import LocalHost

READ = 'dd if="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" bs=65536 status=none ' \
       '| base64 -w0'
WRITE = 'base64 -d | dd of="$1" oflag=seek_bytes seek="$2" bs=65536 conv=notrunc,fsync ' \
        'status=none'
DEVNUMS = 'for f in "$1"/*; do [ -e "$f" ] && stat -L -c "%t %T %n" "$f"; done; true'
DIFFER = re.compile(r"differ: (?:byte|char) (\d+)")


class RemoteHost(LocalHost):
    def _sh(self, script: str, *args: str, input: Optional[str] = None):
        return self.runner.run(["sh", "-c", script, "sh", *args], input=input, check=False,
                               timeout=600)

    def _wait(self, path: str) -> None:
        waited = 0.0
        while self.runner.run(["test", "-e", path], check=False).rc != 0:
            if waited >= self.device_wait:
                raise DeviceError("ENOENT", f"{self.name}:{path} did not appear within "
                                            f"{self.device_wait}s")
            self._sleep(0.2)
            waited += 0.2

    def read(self, path: str, offset: int, length: int) -> bytes:
        self._wait(path)
        res = self._sh(READ, path, str(offset), str(length))
        data = base64.b64decode(res.stdout) if res.rc == 0 else b""
        if len(data) != length:
            raise DeviceError("EIO", f"read of {self.name}:{path} at {offset} failed: "
                                     f"{res.stderr.strip() or 'short read'}")
        return data

    def write(self, path: str, offset: int, data: bytes) -> None:
        self._wait(path)
        res = self._sh(WRITE, path, str(offset), input=base64.b64encode(data).decode())
        if res.rc != 0:
            raise DeviceError("EIO", f"write to {self.name}:{path} failed: {res.stderr.strip()}")

    def first_difference(self, path_a, offset_a, path_b, offset_b, length) -> Optional[int]:
        res = self.runner.run(["cmp", "-i", f"{offset_a}:{offset_b}", "-n", str(length),
                               path_a, path_b], check=False, timeout=86400)
        if res.rc == 0:
            return None
        m = DIFFER.search(res.stdout)
        if res.rc == 1 and m:
            return int(m.group(1)) - 1
        raise DeviceError("EIO", f"cmp on {self.name} failed: {res.stderr.strip()}")

    def _devnums(self) -> dict[str, str]:
        out = super()._dm_devnums()
        res = self._sh(DEVNUMS, str(self.dev_root / "storpool"))
        for line in res.stdout.splitlines():
            w = line.split(maxsplit=2)
            if len(w) == 3 and w[0] != "0":
                out[f"{int(w[0], 16)}:{int(w[1], 16)}"] = f"/dev/storpool/{w[2].rsplit('/', 1)[-1]}"
        return out

    def sysctl_get(self, key: str) -> int:
        res = self.runner.run(["sysctl", "-n", key], check=False)
        if res.rc != 0:
            raise DeviceError("ENOENT", f"sysctl {key} on {self.name}: {res.stderr.strip()}")
        return int(res.stdout.split()[0])

    def sysctl_set(self, key: str, value: int) -> None:
        res = self.runner.run(["sysctl", "-w", f"{key}={int(value)}"], check=False)
        if res.rc != 0:
            raise DeviceError("EACCES", f"sysctl {key}={value} on {self.name}: "
                                        f"{res.stderr.strip()}")
