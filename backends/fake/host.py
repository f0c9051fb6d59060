"""One KVM host of the fake cluster: block devices and a device-mapper model that maps I/O the
way the kernel does (docs/measured.md).

* linear: segments forward to their devices at an offset.
* raid1 with a metadata device per leg: writes go to every live leg, reads come from leg 0;
  `rebuild 1` clears leg 1's superblock and copies leg 0 onto it as virtual time passes,
  checkpointing into leg 1's metadata, so a reassembly without `rebuild` resumes. A leg whose
  writes fail turns `D` and the line reads `AD total/total idle`, as the kernel shows it.
"""

from __future__ import annotations

import os
import struct
import tempfile
import time
from typing import Optional, Sequence

from xen2kvm import dmtables, helper, naming
from xen2kvm.dmstatus import SUPERBLOCK_MAGIC
from xen2kvm.errors import DeviceError
from xen2kvm.process import Runner
from xen2kvm.throttle import IoCounters

from .latency import GuestIo
from .model import LINEAR_VERSION, Cluster, DmDev, RaidState, check_seconds


class FakeHost:
    def __init__(self, cluster: Cluster, name: str, runner: Optional[Runner] = None):
        self.c = cluster
        self.runner = runner or Runner()
        self.name = name
        cluster.host(name)

    @property
    def state(self):
        return self.c.host(self.name)

    # paths and block I/O ---------------------------------------------------------------------
    paths = naming.DEFAULT_PATHS  # the fake's hosts keep their devices where real ones do
    helper_sink = staticmethod(helper.show)

    def device_path(self, volume: str) -> str:
        return self.paths.volume(volume)

    def _volume(self, path: str):
        name = path[len("/dev/storpool/"):] if path.startswith("/dev/storpool/") else None
        if name is None or name not in self.c.volumes or \
                self.name not in self.c.attachments.get(name, {}):
            raise DeviceError("ENOENT", f"{path}: no such device on {self.name}")
        return self.c.volumes[name]

    def _dm(self, path: str) -> DmDev:
        name = path[len("/dev/mapper/"):]
        if not path.startswith("/dev/mapper/") or name not in self.state.dm:
            raise DeviceError("ENOENT", f"{path}: no such device on {self.name}")
        return self.state.dm[name]

    def size(self, path: str) -> int:
        if path.startswith("/dev/mapper/"):
            dev = self._dm(path)
            return int(dev.table.split()[1]) * 512 if dev.raid else sum(
                s[1] for s in dmtables.parse_linear(dev.table)) * 512
        return self._volume(path).size_bytes

    def _pieces(self, path: str, offset: int, length: int):
        """Split a range of a device into (volume, offset, length) pieces on real volumes."""
        if offset < 0 or offset + length > self.size(path):
            raise DeviceError("EIO", f"{path}: access beyond the end of the device")
        if not path.startswith("/dev/mapper/"):
            yield self._volume(path), offset, length
            return
        dev = self._dm(path)
        if dev.raid:
            yield from self._pieces(dev.raid.legs[0][1], offset, length)
            return
        for start, seglen, target, toff in dmtables.parse_linear(dev.table):
            lo, hi = max(offset, start * 512), min(offset + length, (start + seglen) * 512)
            if lo < hi:
                yield from self._pieces(target, toff * 512 + lo - start * 512, hi - lo)

    def read(self, path: str, offset: int, length: int) -> bytes:
        if not path.startswith("/dev/"):  # a file of the host's own (the helper's output)
            with open(path, "rb") as f:
                return os.pread(f.fileno(), length, offset)
        if offset < 0 or length < 0:
            raise DeviceError("EINVAL", f"{path}: invalid offset or length")
        length = max(0, min(length, self.size(path) - offset))  # a short read at the end
        if not length:
            return b""
        return b"".join(v.store.read(o, n) for v, o, n in self._pieces(path, offset, length))

    def _write_plain(self, path: str, offset: int, data: bytes) -> None:
        pos = 0
        for vol, off, n in list(self._pieces(path, offset, len(data))):
            if vol.failing:
                raise DeviceError("EIO", f"write to {vol.name} failed: no space left")
            vol.store.write(off, data[pos: pos + n])
            pos += n

    def write(self, path: str, offset: int, data: bytes) -> None:
        if offset < 0:
            raise DeviceError("EINVAL", f"{path}: invalid offset {offset}")
        if offset + len(data) > self.size(path):
            raise DeviceError("ENOSPC", f"{path}: write of {len(data)} bytes at {offset} "
                                        f"reaches past the end ({self.size(path)} bytes)")
        self.c.mutate(f"write {path}")
        if path.startswith("/dev/mapper/") and self._dm(path).raid:
            self._raid_write(self._dm(path), offset, data)
        else:
            self._write_plain(path, offset, data)

    def allocated(self, path: str, piece: int = 4 * 1024 * 1024):
        """(offset, length) ranges of a device that may hold data (holes read as zeros),
        at most `piece` bytes each: what a sparse copy of the device has to read."""
        spans, pos = [], 0
        for vol, off, n in list(self._pieces(path, 0, self.size(path))):
            for lo, hi in vol.store.extents(off, n):
                start, end = pos + lo - off, pos + hi - off
                if spans and spans[-1][1] == start and end - spans[-1][0] <= piece:
                    spans[-1][1] = end
                else:
                    spans.append([start, end])
            pos += n
        return [(a, b - a) for a, b in spans]

    def first_difference(self, path_a, offset_a, path_b, offset_b, length) -> Optional[int]:
        if self._refs(path_a, offset_a, length) == self._refs(path_b, offset_b, length):
            return None  # the same pieces of the same blobs: equal without reading them
        spans = set()
        for path, base in ((path_a, offset_a), (path_b, offset_b)):
            pos = base
            for vol, off, n in self._pieces(path, base, length):
                for lo, hi in vol.store.extents(off, n):
                    spans.add((pos + lo - off - base, hi - lo))
                pos += n
        for rel, n in sorted(spans):
            a = self.read(path_a, offset_a + rel, n)
            b = self.read(path_b, offset_b + rel, n)
            if a != b:
                return rel + next(i for i in range(n) if a[i] != b[i])
        return None

    def _refs(self, path: str, base: int, length: int) -> list[list[int]]:
        out: list[list[int]] = []
        pos = 0
        for vol, off, n in self._pieces(path, base, length):
            for lo, hi, blob, boff in vol.store.refs(off, n):
                last = out[-1] if out else None
                if last and last[1] == pos + lo and last[2] == blob and \
                        last[3] + last[1] - last[0] == boff:
                    last[1] = pos + hi
                else:
                    out.append([pos + lo, pos + hi, blob, boff])
            pos += n
        return out

    # device-mapper -------------------------------------------------------------------------
    def dm_tables(self) -> dict[str, str]:
        return {n: d.table for n, d in self.state.dm.scan().items()}

    def dm_snapshot(self) -> tuple[dict[str, str], dict[str, str]]:
        devs = self.state.dm.scan()
        return ({n: d.table for n, d in devs.items()},
                {n: self._status(d) for n, d in devs.items()})

    def dm_targets(self) -> dict[str, tuple[int, ...]]:
        return {"linear": LINEAR_VERSION, "raid": self.state.raid_version}

    def dm_status(self, name: str) -> str:
        dev = self.state.dm.get(name)
        if dev is None:
            raise DeviceError("ENXIO", f"dm device {name} does not exist")
        return self._status(dev)

    @staticmethod
    def _status(dev: DmDev) -> str:
        r = dev.raid
        if r is None:
            return "\n".join(f"{s} {n} linear" for s, n, _, _ in dmtables.parse_linear(dev.table))
        return (f"0 {r.total} raid raid1 {len(r.legs)} {''.join(r.health)} "
                f"{r.done}/{r.total} {r.action} 0 0 -")

    def _check_table(self, table: str) -> Optional[RaidState]:
        if " raid " not in f" {table} ":
            for _, n, target, off in dmtables.parse_linear(table):
                if (off + n) * 512 > self.size(target):
                    raise DeviceError("EINVAL", f"{target} too small for linear segment")
            return None
        t = dmtables.parse_raid(table)
        for meta, data in t.legs:
            if self.size(data) < t.total * 512:
                raise DeviceError("EINVAL", "raid: Component device(s) too small")
            self.size(meta)
        return self._raid_state(t)

    def _superblock(self, meta: str) -> Optional[int]:
        head = self.read(meta, 0, 16)
        if head[:4] != SUPERBLOCK_MAGIC:
            return None
        return struct.unpack_from("<Q", head, 8)[0]

    def _checkpoint(self, r: RaidState) -> None:
        for i, (meta, _) in enumerate(r.legs):
            where = r.total if r.health[i] == "A" else r.done
            if r.health[i] != "D":
                self._write_plain(meta, 0, SUPERBLOCK_MAGIC + bytes(4) + struct.pack("<Q", where))

    def _raid_state(self, t: dmtables.RaidTable) -> RaidState:
        health, done, action = ["A"], t.total, "idle"
        if len(t.legs) > 1:
            where = None if 1 in t.rebuild else self._superblock(t.legs[1][0])
            if where is None and 1 not in t.rebuild:
                where = t.total  # no rebuild, no metadata: the kernel assumes it in sync
            where = where or 0
            health.append("A" if where >= t.total else "a")
            done = min(where, t.total)
            action = "idle" if where >= t.total else "recover"
        rates = {k: t.rate(k) for k in ("min_recovery_rate", "max_recovery_rate")}
        return RaidState(t.total, list(t.legs), health, done, action,
                         {k: v for k, v in rates.items() if v is not None})

    def _set_table(self, name: str, table: str, create: bool) -> None:
        raid = self._check_table(table)
        dev = self.state.dm.get(name)
        if create:
            dev = DmDev(name, table, raid)
            self.state.dm[name] = dev
        else:
            dev.table, dev.raid = table, raid
        if raid:
            self._checkpoint(raid)

    def dm_create(self, name: str, table: str) -> None:
        self.c.mutate(f"dmsetup create {name}")
        if name in self.state.dm:
            raise DeviceError("EEXIST", f"dmsetup create {name}: device already exists")
        self._set_table(name, table, create=True)

    def dm_reload(self, name: str, table: str) -> None:
        self.c.mutate(f"dmsetup reload {name}")
        if name not in self.state.dm:
            raise DeviceError("ENXIO", f"dmsetup reload {name}: no such device")
        self._set_table(name, table, create=False)

    def dm_remove(self, name: str) -> None:
        self.c.mutate(f"dmsetup remove {name}")
        dev = self.state.dm.get(name)
        if dev is None:
            return
        if dev.open_count or self.c.holders(self.name, naming.mapper_path(name)):
            raise DeviceError("EBUSY", f"dmsetup remove {name}: device or resource busy")
        del self.state.dm[name]

    def open_device(self, path: str, delta: int) -> None:
        if path.startswith("/dev/mapper/"):
            self._dm(path).open_count += delta

    # raid1 behaviour --------------------------------------------------------------------------
    def _fail_leg(self, r: RaidState, leg: int) -> None:
        r.health[leg] = "D"
        if r.action == "recover":
            r.done, r.action = r.total, "idle"

    def _raid_write(self, dev: DmDev, offset: int, data: bytes) -> None:
        r = dev.raid
        for leg, (_, path) in enumerate(r.legs):
            if r.health[leg] == "D":
                continue
            try:
                self._write_plain(path, offset, data)
            except DeviceError:
                self._fail_leg(r, leg)
        self._checkpoint(r)

    def _copy(self, src: str, dst: str, offset: int, length: int) -> None:
        (dvol, doff, _), = self._pieces(dst, offset, length)
        if dvol.failing:
            raise DeviceError("EIO", f"write to {dvol.name} failed: no space left")
        pos = doff
        for vol, off, n in list(self._pieces(src, offset, length)):
            dvol.store.copy_from(vol.store, off, pos, n)
            pos += n

    def advance(self, seconds: float) -> None:
        """Resync every recovering raid1 by what its rate allows in `seconds`; the modelled
        guests write meanwhile."""
        for dev in self.state.dm.indexed(1):
            copied = self._resync(dev, seconds)
            if dev.io is not None and seconds > 0:
                dev.io.account(self.c.clock - seconds, seconds, copied / 1024 / seconds)

    def _resync(self, dev: DmDev, seconds: float) -> int:
        r = dev.raid
        if not r or r.action != "recover":
            return 0
        start = r.done
        kib = r.rates.get("max_recovery_rate") or self.state.sysctl["dev.raid.speed_limit_max"]
        budget = int(kib * 1024 * seconds) // 512 * 512
        while budget > 0 and r.done < r.total:  # copies are extent references: one step
            step = min(budget, (r.total - r.done) * 512)
            try:
                self._copy(r.legs[0][1], r.legs[1][1], r.done * 512, step)
            except DeviceError:
                self._fail_leg(r, 1)
                break
            r.done += step // 512
            budget -= step
        if r.done >= r.total and r.health[1] == "a":
            r.health[1], r.action = "A", "idle"
        self._checkpoint(r)
        return (r.done - start) * 512

    def dm_io(self, names: Sequence[str]) -> dict[str, IoCounters]:
        out = {}
        for name in names:
            dev = self.state.dm.get(name)
            if dev is None:
                raise DeviceError("ENOENT", f"I/O counters of {name}: no such dm device")
            out[name] = dev.io.counters() if dev.io else IoCounters()
        return out

    def dm_io_stop(self, names: Sequence[str]) -> None:
        """The fake's counters need no statistics region."""

    def guest_load(self, name: str, iops: float, after: float = 0.0) -> None:
        """A modelled guest writes `iops` 4 KiB blocks per second through `name` from
        `after` seconds from now on."""
        dev = self.state.dm.get(name)
        if dev is None:
            raise DeviceError("ENOENT", f"{name}: no such dm device on {self.name}")
        dev.io = dev.io or GuestIo()
        dev.io.plan(self.c.clock + after, iops)

    def note_get(self, name: str) -> Optional[str]:
        return self.state.notes.get(name)

    def note_path(self, name: str) -> str:
        """The fake keeps its notes in the cluster state, modelled where a real host has them."""
        return f"/run/lock/xen2kvm/{name}"

    def note_set(self, name: str, text: Optional[str]) -> None:
        self.c.mutate(f"note {name}")
        if text is None:
            self.state.notes.pop(name, None)
        else:
            self.state.notes[name] = text

    # sysctl, helper, time -------------------------------------------------------------------
    def sysctl_get(self, key: str) -> int:
        if key not in self.state.sysctl:
            raise DeviceError("ENOENT", f"sysctl {key} does not exist")
        return self.state.sysctl[key]

    def sysctl_set(self, key: str, value: int) -> None:
        self.sysctl_get(key)
        self.c.mutate(f"sysctl {key}={value}")
        self.state.sysctl[key] = int(value)

    def run_helper(self, argv: Sequence[str], volume: str) -> None:
        """Expose the volume as a sparse file, run the helper on it, take its changes back."""
        vol = self._volume(naming.volume_path(volume))
        self.c.mutate(f"helper {argv[0]}")
        with tempfile.TemporaryDirectory(prefix="xen2kvm-helper-") as tmp:
            path = os.path.join(tmp, volume.replace(":", "_"))
            vol.store.save(path, vol.size_bytes)
            helper.run(self.runner, argv, path, self.helper_sink)
            vol.store.load(path)

    def sleep(self, seconds: float) -> None:
        # operator completeness: XEN2KVM_FAKE_PACE real seconds per virtual second let a
        # rehearsal (and the live view's test) watch a resync happen; 0, the default, is instant
        check_seconds(seconds)
        pace = float(os.environ.get("XEN2KVM_FAKE_PACE") or 0)
        if pace > 0:
            time.sleep(seconds * pace)
        self.c.clock += seconds
        for host in self.c.hosts:
            FakeHost(self.c, host).advance(seconds)
