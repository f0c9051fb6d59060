"""HostBackend on a real KVM hypervisor: block devices under /dev/storpool, dmsetup through the
Runner (argument lists; tables on stdin), the md resync sysctls, and the helper.

There is no udev in the kernel lab and often none worth waiting for on a hypervisor, so dmsetup
runs with DM_DISABLE_UDEV=1 and creates its /dev/mapper nodes itself. The kernel prints tables
with major:minor numbers; they are mapped back to the paths the tool wrote.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from xen2kvm.dmstatus import parse_targets
from xen2kvm.errors import DeviceError
from xen2kvm.process import CommandResult, Runner
from xen2kvm.throttle import STATS_ARGS, IoCounters, parse_dm_stats

DEVNUM = re.compile(r"^\d+:\d+$")
NO_DM = "Failure to communicate with kernel device-mapper driver"
DM_INFO = ("info", "-c", "--noheadings", "-o", "name,major,minor", "--separator", " ")
STEP = 1 << 20
STATS_PROGRAM = "xen2kvm"  # the dm statistics regions of the adaptive throttle
STATS_CREATE = f"@stats_create - /1 {STATS_ARGS} {STATS_PROGRAM}"


def _has_devices(table: CommandResult) -> bool:
    return not ("No devices found" in table.stdout or NO_DM in table.stderr)


def _by_device(text: str) -> dict[str, list[str]]:
    """`name: line` output of dmsetup table/status (one line per target), by device."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(": ")
        if sep:
            out.setdefault(name, []).append(rest)
    return dict(sorted(out.items()))


def parse_dm_info(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        w = line.split()
        if len(w) == 3:
            out[f"{w[1]}:{w[2]}"] = f"/dev/mapper/{w[0]}"
    return out


class LocalHost:
    def __init__(self, name: str, runner: Runner, dev_root: str = "/dev",
                 proc_sys: str = "/proc/sys", sleep: Callable[[float], None] = time.sleep,
                 device_wait: float = 30.0, note_dir: str = "/run/lock/xen2kvm"):
        self.name = name
        self.runner = runner
        self.dev_root = Path(dev_root)
        self.proc_sys = Path(proc_sys)
        self._sleep = sleep
        self.device_wait = device_wait
        self._regions: dict[str, str] = {}  # dm device -> its statistics region id
        self.note_dir = Path(note_dir)
        os.environ.setdefault("DM_DISABLE_UDEV", "1")

    # block devices -------------------------------------------------------------------------
    def device_path(self, volume: str) -> str:
        return str(self.dev_root / "storpool" / volume)

    def _wait(self, path: str) -> None:
        """An attach returns before the node may exist (VolumesReassign semantics)."""
        waited = 0.0
        while not os.path.exists(path):
            if waited >= self.device_wait:
                raise DeviceError("ENOENT", f"{path} did not appear within {self.device_wait}s")
            self._sleep(0.1)
            waited += 0.1

    def _open(self, path: str, flags: int) -> int:
        self._wait(path)
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

    # device-mapper ---------------------------------------------------------------------------
    def _dmsetup(self, *args: str, input: Optional[str] = None, check: bool = True):
        result = self.runner.run(["dmsetup", *args], input=input, check=False, timeout=120)
        if check and result.rc != 0:
            raise DeviceError("dmsetup", f"dmsetup {' '.join(args[:2])}: "
                                         f"{result.last_line('failed')}")
        return result

    def _devnums(self) -> dict[str, str]:
        """major:minor -> the path this tool names the device by."""
        out = parse_dm_info(self._dmsetup(*DM_INFO, check=False).stdout)
        sp = self.dev_root / "storpool"
        if sp.is_dir():
            for entry in sp.iterdir():
                try:
                    st = os.stat(entry)
                except OSError:
                    continue
                if st.st_rdev:
                    num = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
                    out[num] = f"/dev/storpool/{entry.name}"
        return out

    def _dm_read(self) -> tuple[CommandResult, Optional[CommandResult], dict[str, str]]:
        """`dmsetup table`, then (only when there are devices) `dmsetup status` and the
        device numbers, for dm_snapshot."""
        table = self._dmsetup("table", check=False)
        if not _has_devices(table) or table.rc != 0:
            return table, None, {}
        return table, self._dmsetup("status", check=False), self._devnums()

    def dm_snapshot(self) -> tuple[dict[str, str], dict[str, str]]:
        table, status, nums = self._dm_read()
        if not _has_devices(table):
            return {}, {}  # without the driver there are no devices (assemble will say why)
        for res in (table, status):
            if res is not None and res.rc != 0:
                raise DeviceError("dmsetup", f"dmsetup {res.argv[1]} on {self.name}: "
                                             f"{res.last_line('failed')}")
        tables = {n: "\n".join(" ".join(nums.get(w, w) if DEVNUM.match(w) else w
                                         for w in line.split()) for line in lines)
                  for n, lines in _by_device(table.stdout).items()}
        statuses = {n: "\n".join(lines) for n, lines in _by_device(status.stdout).items()}
        return tables, statuses

    def dm_tables(self) -> dict[str, str]:
        return self.dm_snapshot()[0]

    def dm_status(self, name: str) -> str:
        return self._dmsetup("status", name).stdout.strip()

    def dm_targets(self) -> dict[str, tuple[int, ...]]:
        return parse_targets(self._dmsetup("targets").stdout)

    def dm_create(self, name: str, table: str) -> None:
        self._dmsetup("create", name, input=table + "\n")

    def dm_reload(self, name: str, table: str) -> None:
        self._dmsetup("reload", name, input=table + "\n")
        self._dmsetup("suspend", name)
        self._dmsetup("resume", name)

    def dm_remove(self, name: str) -> None:
        if self._dmsetup("info", name, check=False).rc != 0:
            return
        self._dmsetup("remove", name)

    # sysctl, helper, time ----------------------------------------------------------------------
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

    def _stats_region(self, name: str) -> str:
        """The dm statistics region this tool reads on `name` (made on first use)."""
        listed = self._dmsetup("message", name, "0", f"@stats_list {STATS_PROGRAM}").stdout
        for line in listed.splitlines():
            return line.split(":", 1)[0].strip()
        return self._dmsetup("message", name, "0", STATS_CREATE).stdout.strip()

    def dm_io(self, names: Sequence[str]) -> dict[str, IoCounters]:
        out = {}
        for name in names:
            region = self._regions.get(name) or self._stats_region(name)
            res = self._dmsetup("message", name, "0", f"@stats_print {region}", check=False)
            if res.rc != 0:  # the device was recreated: a new region, counters from zero
                region = self._stats_region(name)
                res = self._dmsetup("message", name, "0", f"@stats_print {region}")
            self._regions[name] = region
            out[name] = parse_dm_stats(res.stdout.splitlines()[0])
        return out

    def dm_io_stop(self, names: Sequence[str]) -> None:
        """Remove this tool's statistics regions (devices already gone have none)."""
        for name in names:
            listed = self._dmsetup("message", name, "0", f"@stats_list {STATS_PROGRAM}",
                                   check=False).stdout
            for line in listed.splitlines():
                self._dmsetup("message", name, "0", f"@stats_delete {line.split(':')[0]}",
                              check=False)
            self._regions.pop(name, None)

    def note_get(self, name: str) -> Optional[str]:
        try:
            return (self.note_dir / name).read_text()
        except FileNotFoundError:
            return None

    def note_set(self, name: str, text: Optional[str]) -> None:
        path = self.note_dir / name
        if text is None:
            path.unlink(missing_ok=True)
            return
        self.note_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def run_helper(self, argv: Sequence[str], volume: str) -> None:
        path = self.device_path(volume)
        self._wait(path)
        self.runner.run_helper(argv, path)

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)
