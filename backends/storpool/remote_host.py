"""The host side on a remote KVM hypervisor: every read, write and check is a command through
the SSH Runner (standard tools only: dd, base64, cmp, sysctl, stat). Scripts passed to `sh -c`
are constants; volume paths and numbers travel as positional parameters, never spliced in."""

from __future__ import annotations

import base64
import re
from typing import Callable, Optional, Sequence

from xen2kvm.errors import DeviceError, LockBusy
from xen2kvm.process import CommandResult
from xen2kvm.throttle import IoCounters, parse_dm_stats

from .host import DM_INFO, STATS_CREATE, STATS_PROGRAM, LocalHost, parse_dm_info

READ = 'dd if="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" bs=65536 status=none ' \
       '| base64 -w0'
WRITE = 'base64 -d | dd of="$1" oflag=seek_bytes seek="$2" bs=65536 conv=notrunc,fsync ' \
        'status=none'
STATS = 'for f in "$d"/*; do [ -e "$f" ] && stat -L -c "%t %T %n" "$f"; done; true'
DIFFER = re.compile(r"differ: (?:byte|char) (\d+)")
SEP = "\036x2k"  # a record separator: no dm table or status line starts with it
# $1 = the storpool device folder, the rest: the arguments of `dmsetup info`. Without devices
# (or without the driver) it stops after the table, as LocalHost does.
SNAPSHOT = ('d="$1"; shift; sep=$(printf "\\036x2k"); '
            't=$(dmsetup table); r=$?; printf "%s\\n" "$t"; echo "$sep $r"; '
            '[ "$r" = 0 ] && [ "$t" != "No devices found" ] || exit 0; '
            'dmsetup status; r=$?; echo; echo "$sep $r"; '
            'dmsetup "$@"; echo; echo "$sep"; ' + STATS)
# The same lock file a run on the host itself takes; fd 9 passes to `cat`, which holds it
# until its stdin ends: when the controller closes the channel or its connection drops.
# flock -n says 1 for "held elsewhere" (-E is too new for CentOS 7), other codes are errors.
LOCK = ('mkdir -p "$1" && exec 9>>"$1/xen2kvm.lock" || exit 1; flock -n 9; r=$?; '
        'case $r in 0) ;; 1) exit 75 ;; *) exit "$r" ;; esac; echo locked; exec cat >/dev/null')
LOCK_BUSY = 75
# $1 = the region program, $2 = the create message, the rest: dm device names; one statistics
# line each, in order (a missing device stops it non-zero). See LocalHost.dm_io.
DM_IO = ('p=$1; c=$2; shift 2; for n; do '
         'id=$(dmsetup message "$n" 0 "@stats_list $p" | sed -n "1s/:.*//p"); '
         '[ -n "$id" ] || id=$(dmsetup message "$n" 0 "$c") || exit 1; '
         'dmsetup message "$n" 0 "@stats_print $id" | head -n 1; done')
DM_IO_STOP = ('p=$1; shift; for n; do dmsetup message "$n" 0 "@stats_list $p" 2>/dev/null | '
              'sed "s/:.*//" | while read -r id; do '
              'dmsetup message "$n" 0 "@stats_delete $id"; done; done; true')
NOTE_SET = 'mkdir -p "$1" && cat > "$1/$2.tmp" && mv -f "$1/$2.tmp" "$1/$2"'
SECTION = re.compile("^" + SEP + r" (\d+)\n", re.M)


def _stat_devnums(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        w = line.split(maxsplit=2)
        if len(w) == 3 and w[0] != "0":
            out[f"{int(w[0], 16)}:{int(w[1], 16)}"] = f"/dev/storpool/{w[2].rsplit('/', 1)[-1]}"
    return out


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

    def hold_lock(self, lock_dir: str) -> Callable[[], None]:
        """Take the host's run lock; returns what releases it."""
        held = self.runner.start(["sh", "-c", LOCK, "sh", lock_dir])
        if held.first_line(timeout=60) == "locked":
            return held.close
        res = held.finish()
        if res.rc == LOCK_BUSY:
            raise LockBusy(f"another xen2kvm run holds {self.name}:{lock_dir}/xen2kvm.lock; "
                           "wait for it to finish")
        raise DeviceError("lock", f"cannot take the run lock on {self.name}: "
                                  f"{res.last_line(f'exit {res.rc}')}")

    def _dm_read(self):
        """One round trip instead of four: over SSH each command costs a session and a shell."""
        res = self._sh(SNAPSHOT, str(self.dev_root / "storpool"), *DM_INFO)
        parts = SECTION.split(res.stdout)
        if len(parts) not in (3, 5):
            raise DeviceError("EIO", f"reading dm state on {self.name} failed "
                                     f"(exit {res.rc}): {res.last_line('output cut short')}")
        table_res = CommandResult(("dmsetup", "table"), int(parts[1]), parts[0], res.stderr, 0.0)
        if len(parts) == 3:
            return table_res, None, {}
        status, s_rc, rest = parts[2:]
        info, _, stats = rest.partition(SEP + "\n")
        status_res = CommandResult(("dmsetup", "status"), int(s_rc), status, res.stderr, 0.0)
        return table_res, status_res, {**parse_dm_info(info), **_stat_devnums(stats)}

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

    def dm_io(self, names: Sequence[str]) -> dict[str, IoCounters]:
        res = self._sh(DM_IO, STATS_PROGRAM, STATS_CREATE, *names)
        lines = res.stdout.splitlines()
        if res.rc != 0 or len(lines) != len(names):
            raise DeviceError("ENOENT", f"I/O counters of {', '.join(names)} on {self.name}: "
                                        f"{res.last_line(f'exit {res.rc}')}")
        return {n: parse_dm_stats(line) for n, line in zip(names, lines)}

    def dm_io_stop(self, names: Sequence[str]) -> None:
        self._sh(DM_IO_STOP, STATS_PROGRAM, *names)

    def note_get(self, name: str) -> Optional[str]:
        res = self.runner.run(["cat", str(self.note_dir / name)], check=False)
        if res.rc != 0 and "No such file" not in res.stderr:
            raise DeviceError("EIO", f"reading {self.note_dir / name} on {self.name}: "
                                     f"{res.last_line(f'exit {res.rc}')}")
        return res.stdout if res.rc == 0 else None

    def note_set(self, name: str, text: Optional[str]) -> None:
        if text is None:
            res = self.runner.run(["rm", "-f", str(self.note_dir / name)], check=False)
        else:
            res = self._sh(NOTE_SET, str(self.note_dir), name, input=text)
        if res.rc != 0:
            raise DeviceError("EIO", f"writing {self.note_dir / name} on {self.name}: "
                                     f"{res.last_line(f'exit {res.rc}')}")
