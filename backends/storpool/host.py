"""The host side of the real backend: one core for a KVM hypervisor, this one or a remote one.

`Host` runs every device-mapper command through its Runner (argument lists; tables on stdin;
scripts passed to `sh -c` are constants, and paths and numbers travel as positional parameters,
never spliced in), so the same code serves this machine and one over SSH. What differs lives in
two strategies: block I/O (`BlockIo`) and the sysctls with the small notes beside the run lock
(`HostFiles`). For this machine they use the kernel's file API (hostio.py); for a remote one,
standard tools through the Runner (remote_host.py). LocalHost and RemoteHost only choose them.

There is no udev in the kernel lab and often none worth waiting for on a hypervisor, so dmsetup
runs with DM_DISABLE_UDEV=1 and creates its device nodes itself, under the host's device root
(DM_DEV_DIR). The kernel prints tables with major:minor numbers; they are mapped back to the
paths the tool wrote, which all come from one `naming.DevicePaths`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable, Optional, Protocol, Sequence

from xen2kvm import helper
from xen2kvm.dmstatus import parse_targets
from xen2kvm.errors import DeviceError
from xen2kvm.naming import DEFAULT_PATHS, DevicePaths
from xen2kvm.process import CommandResult, Runner
from xen2kvm.throttle import (  # noqa: F401  (DM_IO_STOP: tests/data/scripted names it)
    DM_IO_STOP,
    STATS_ARGS,
    STATS_PROGRAM,
    IoCounters,
    parse_dm_stats,
    stats_stop_argv,
)

from .hostio import LocalBlockIo, LocalFiles

DEVNUM = re.compile(r"^\d+:\d+$")
NO_DM = "Failure to communicate with kernel device-mapper driver"
DM_INFO = ("info", "-c", "--noheadings", "-o", "name,major,minor", "--separator", " ")
STATS_CREATE = f"@stats_create - /1 {STATS_ARGS} {STATS_PROGRAM}"
WAIT_STEP = 0.1  # seconds between looks for a device node that an attach makes appear
SEP = "\036x2k"  # a record separator: no dm table or status line starts with it
SECTION = re.compile("^" + SEP + r" (\d+)\n", re.M)
# One round trip for the whole dm state (over SSH each command costs a session and a shell).
# $1 = the folder of the StorPool device nodes, the rest: the arguments of `dmsetup info`.
# Without devices (or without the driver) it stops after the table.
STATS = 'for f in "$d"/*; do [ -e "$f" ] && stat -L -c "%t %T %n" "$f"; done; true'
SNAPSHOT = ('d="$1"; shift; sep=$(printf "\\036x2k"); '
            't=$(dmsetup table); r=$?; printf "%s\\n" "$t"; echo "$sep $r"; '
            '[ "$r" = 0 ] && [ "$t" != "No devices found" ] || exit 0; '
            'dmsetup status; r=$?; echo; echo "$sep $r"; '
            'dmsetup "$@"; echo; echo "$sep"; ' + STATS)
# $1 = the region program, $2 = the create message, the rest: dm device names. One statistics
# line each, in order, from this tool's region (made on first use; a device recreated since
# has none and gets a new one, counting from zero). A missing device stops it non-zero.
DM_IO = ('p=$1; c=$2; shift 2; for n; do '
         'id=$(dmsetup message "$n" 0 "@stats_list $p" | sed -n "1s/:.*//p"); '
         '[ -n "$id" ] || id=$(dmsetup message "$n" 0 "$c") || exit 1; '
         'dmsetup message "$n" 0 "@stats_print $id" | head -n 1; done')


class BlockIo(Protocol):
    """Bytes of block devices (and the host's own files) by path."""

    def exists(self, path: str) -> bool: ...

    def read(self, path: str, offset: int, length: int) -> bytes: ...

    def write(self, path: str, offset: int, data: bytes) -> None: ...

    def first_difference(self, path_a: str, offset_a: int, path_b: str, offset_b: int,
                         length: int) -> Optional[int]: ...


class HostFiles(Protocol):
    """The md resync sysctls and the notes: small files beside the host's run lock."""

    def sysctl_get(self, key: str) -> int: ...

    def sysctl_set(self, key: str, value: int) -> None: ...

    def note_get(self, folder: Path, name: str) -> Optional[str]: ...

    def note_set(self, folder: Path, name: str, text: Optional[str]) -> None: ...


def shell(runner: Runner, script: str, *args: str, input: Optional[str] = None,
          env: Sequence[str] = (), timeout: float = 600) -> CommandResult:
    """A constant script with its arguments as positional parameters ($1...)."""
    return runner.run([*env, "sh", "-c", script, "sh", *args], input=input, check=False,
                      timeout=timeout)


def parse_dm_info(text: str, paths: DevicePaths = DEFAULT_PATHS) -> dict[str, str]:
    """`dmsetup info -c` name/major/minor lines: major:minor -> the device's path."""
    out = {}
    for line in text.splitlines():
        w = line.split()
        if len(w) == 3:
            out[f"{w[1]}:{w[2]}"] = paths.mapper(w[0])
    return out


def parse_stat_devnums(text: str, paths: DevicePaths = DEFAULT_PATHS) -> dict[str, str]:
    """`stat -c "%t %T %n"` lines of the StorPool device nodes: major:minor -> path."""
    out = {}
    for line in text.splitlines():
        w = line.split(maxsplit=2)
        if len(w) == 3 and w[0] != "0":
            out[f"{int(w[0], 16)}:{int(w[1], 16)}"] = paths.volume(w[2].rsplit("/", 1)[-1])
    return out


def reason(result: CommandResult) -> str:
    """Why a dm command failed: dmsetup ends with "Command failed." after the kernel's word."""
    lines = [x for x in result.stderr.strip().splitlines() if x.strip() != "Command failed."]
    return (lines or [f"exit {result.rc}"])[-1]


def _by_device(text: str) -> dict[str, list[str]]:
    """`name: line` output of dmsetup table/status (one line per target), by device."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(": ")
        if sep:
            out.setdefault(name, []).append(rest)
    return dict(sorted(out.items()))


class Host:
    """A KVM hypervisor: its device nodes, device-mapper, sysctls, notes and the helper."""

    def __init__(self, name: str, runner: Runner, io: BlockIo, files: HostFiles,
                 paths: DevicePaths = DEFAULT_PATHS, sleep: Callable[[float], None] = time.sleep,
                 device_wait: float = 30.0, note_dir: str = "/run/lock/xen2kvm"):
        self.name = name
        self.runner = runner
        self.io = io
        self.files = files
        self.paths = paths
        self.dev_root = paths.root
        self._sleep = sleep
        self.device_wait = device_wait
        self.note_dir = Path(note_dir)
        # where the helper's output goes, line by line (Ctx: the run's output and audit log)
        self.helper_sink: Callable[[str], None] = helper.show
        self.dm_env = ("env", "DM_DISABLE_UDEV=1", f"DM_DEV_DIR={paths.root}")

    # block devices -------------------------------------------------------------------------
    def device_path(self, volume: str) -> str:
        return self.paths.volume(volume)

    def _wait(self, path: str) -> None:
        """An attach returns before the node may exist (VolumesReassign semantics)."""
        waited = 0.0
        while not self.io.exists(path):
            if waited >= self.device_wait:
                raise DeviceError("ENOENT", f"{self.name}:{path} did not appear within "
                                            f"{self.device_wait}s")
            self._sleep(WAIT_STEP)
            waited += WAIT_STEP

    def read(self, path: str, offset: int, length: int) -> bytes:
        self._wait(path)
        return self.io.read(path, offset, length)

    def write(self, path: str, offset: int, data: bytes) -> None:
        self._wait(path)
        self.io.write(path, offset, data)

    def first_difference(self, path_a, offset_a, path_b, offset_b, length) -> Optional[int]:
        self._wait(path_a)
        self._wait(path_b)
        return self.io.first_difference(path_a, offset_a, path_b, offset_b, length)

    # device-mapper ---------------------------------------------------------------------------
    def _dmsetup(self, *args: str, input: Optional[str] = None, check: bool = True):
        result = self.runner.run([*self.dm_env, "dmsetup", *args], input=input, check=False,
                                 timeout=120)
        if check and result.rc != 0:
            raise DeviceError("dmsetup", f"dmsetup {' '.join(args[:2])} on {self.name}: "
                                         f"{reason(result)}")
        return result

    def _dm_read(self) -> tuple[CommandResult, Optional[CommandResult], dict[str, str]]:
        """`dmsetup table`, then (only when there are devices) `dmsetup status` and the
        device numbers, in one round trip."""
        res = shell(self.runner, SNAPSHOT, self.paths.volumes, *DM_INFO, env=self.dm_env)
        parts = SECTION.split(res.stdout)
        # the script itself always ends 0, and stops after the table only without devices
        early = len(parts) == 3 and parts[1] == "0" and parts[0].strip() != "No devices found"
        if res.rc != 0 or len(parts) not in (3, 5) or early:
            raise DeviceError("EIO", f"reading dm state on {self.name} failed "
                                     f"(exit {res.rc}): {res.last_line('output cut short')}")
        table = CommandResult(("dmsetup", "table"), int(parts[1]), parts[0], res.stderr, 0.0)
        if len(parts) == 3:
            return table, None, {}
        status, s_rc, rest = parts[2:]
        info, _, stats = rest.partition(SEP + "\n")
        status_res = CommandResult(("dmsetup", "status"), int(s_rc), status, res.stderr, 0.0)
        return table, status_res, {**parse_dm_info(info, self.paths),
                                   **parse_stat_devnums(stats, self.paths)}

    def dm_snapshot(self) -> tuple[dict[str, str], dict[str, str]]:
        table, status, nums = self._dm_read()
        if "No devices found" in table.stdout or NO_DM in table.stderr:
            return {}, {}  # without the driver there are no devices (assemble will say why)
        for res in (table, status):
            if res is not None and res.rc != 0:
                raise DeviceError("dmsetup", f"dmsetup {res.argv[1]} on {self.name}: "
                                             f"{reason(res)}")
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

    def dm_io(self, names: Sequence[str]) -> dict[str, IoCounters]:
        res = shell(self.runner, DM_IO, STATS_PROGRAM, STATS_CREATE, *names, env=self.dm_env)
        lines = res.stdout.splitlines()
        if res.rc != 0 or len(lines) != len(names):
            raise DeviceError("ENOENT", f"I/O counters of {', '.join(names)} on {self.name}: "
                                        f"{reason(res)}")
        return {n: parse_dm_stats(line) for n, line in zip(names, lines)}

    def dm_io_stop(self, names: Sequence[str]) -> None:
        """Remove this tool's statistics regions (devices already gone have none)."""
        self.runner.run([*self.dm_env, *stats_stop_argv(names)], check=False, timeout=600)

    # sysctl, notes, helper, time ---------------------------------------------------------------
    def sysctl_get(self, key: str) -> int:
        return self.files.sysctl_get(key)

    def sysctl_set(self, key: str, value: int) -> None:
        self.files.sysctl_set(key, value)

    def note_get(self, name: str) -> Optional[str]:
        return self.files.note_get(self.note_dir, name)

    def note_set(self, name: str, text: Optional[str]) -> None:
        self.files.note_set(self.note_dir, name, text)

    def note_path(self, name: str) -> str:
        return str(self.note_dir / name)

    def run_helper(self, argv: Sequence[str], volume: str) -> None:
        path = self.device_path(volume)
        self._wait(path)
        helper.run(self.runner, argv, path, self.helper_sink)

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)


class LocalHost(Host):
    """This machine: block I/O through the kernel's file API, sysctls and notes as files."""

    def __init__(self, name: str, runner: Runner, dev_root: str = "/dev",
                 proc_sys: str = "/proc/sys", sleep: Callable[[float], None] = time.sleep,
                 device_wait: float = 30.0, note_dir: str = "/run/lock/xen2kvm"):
        super().__init__(name, runner, LocalBlockIo(), LocalFiles(proc_sys),
                         DevicePaths(str(dev_root)), sleep, device_wait, note_dir)
