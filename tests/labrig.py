"""The rig of `--backend lab`: the real StorPool backend against the API emulator, whose
attached volumes are real loop devices, and the real kernel's device-mapper (run inside the
user-mode-linux guest, or any kernel with dm). VMs are what LVMSP and qemu would do: the
power-on hook, devices held open, guest I/O through whatever device the VM uses."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import subprocess
import time
from pathlib import Path

from xen2kvm import naming
from xen2kvm.backends.fake.sim import seeded, xen_content
from xen2kvm.backends.storpool.host import LocalHost
from xen2kvm.process import Runner
from xen2kvm.testing.emulator import Emulator, serve

from .conftest import Rig

HOST, OUR_ID, XEN_HOST_ID, TOKEN = "kvm1", 1, 99, "lab-token-not-printed"
HOST2, OUR_ID2 = "kvm2", 2  # a second controller: another client of the same cluster
SPEED_KEYS = ("dev.raid.speed_limit_min", "dev.raid.speed_limit_max")
SETTLE = 60.0  # seconds a wait on the kernel may take before the test fails


def _read(path: Path, offset: int, length: int) -> bytes:
    """Bytes of a volume's (or snapshot's) file; past its end reads as zeros, like a device."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    return data + bytes(length - len(data))


class LabRig(Rig):

    def __init__(self, tmp: Path, data_size: str = "384m", dev_root: str = "/dev"):
        super().__init__()
        self.tmp = tmp
        self.paths = naming.DevicePaths(dev_root)  # where the volumes and dm devices appear
        self.data = tmp / "data"
        self.data.mkdir()
        # a small filesystem of its own, so that "out of space" can be arranged
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={data_size}", "tmpfs",
                        str(self.data)],
                       check=True)
        self.emu = Emulator(self.data, TOKEN, Path(dev_root), use_loop=True)
        self.server = serve(self.emu)
        conf = tmp / "storpool.conf"
        conf.write_text(f"SP_API_HTTP_HOST=127.0.0.1\nSP_API_HTTP_PORT="
                        f"{self.server.server_address[1]}\nSP_AUTH_TOKEN={TOKEN}\n\n"
                        f"[{HOST}]\nSP_OURID={OUR_ID}\n[{HOST2}]\nSP_OURID={OUR_ID2}\n")
        self.env = {"XEN2KVM_STORPOOL_CONF": str(conf), "XEN2KVM_DEV_ROOT": dev_root,
                    "XEN2KVM_LOCK_DIR": str(tmp / "lock"), "XEN2KVM_API_RETRY_DELAY": "0"}
        self._saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        self.host = LocalHost(HOST, Runner(), dev_root)
        self.vms: dict[str, dict] = {}
        self.filler = tmp / "data" / "filler"
        # the kernel outlives a test: put its resync limits back afterwards
        self.sysctls = {k: self.sysctl(k) for k in SPEED_KEYS}

    def close(self) -> None:
        for vm in self.vms.values():
            for fd in vm["fds"]:
                os.close(fd)
            vm["fds"] = []
        subprocess.run(["dmsetup", "remove_all", "--force"], capture_output=True)
        for key, value in self.sysctls.items():
            self.host.sysctl_set(key, value)
        self.server.shutdown()
        self.server.server_close()
        self.emu.shutdown_devices()
        subprocess.run(["umount", "-l", str(self.data)], capture_output=True)
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def backend_args(self) -> list[str]:
        return ["--backend", "storpool", "--host", HOST]

    # observing ------------------------------------------------------------------------------
    def volumes(self) -> dict:
        from xen2kvm.backend import Volume

        with self.emu.lock:
            att = {n: tuple(sorted(HOST if c == OUR_ID else f"client{c}" for c in cl))
                   for n, cl in self.emu.attachments.items()}
            return {n: Volume(n, v["size"], dict(v["tags"]), att.get(n, ()))
                    for n, v in self.emu.volumes.items()}

    def read_volume(self, name: str, offset: int, length: int) -> bytes:
        return _read(self.emu.path(name), offset, length)

    def dm_tables(self) -> dict[str, str]:
        return self.host.dm_tables()

    def snapshots(self) -> dict:
        from xen2kvm.backend import Snapshot

        with self.emu.lock:
            return {n: Snapshot(n, x["size"], dict(x["tags"]))
                    for n, x in self.emu.snapshots.items()}

    def read_snapshot(self, name: str, offset: int, length: int) -> bytes:
        return _read(self.emu.snap_path(name), offset, length)

    def is_running(self, vm: str) -> bool:
        return self.vms[vm]["running"]

    def fail_change(self, k: int) -> None:
        self.emu.fail_change(k)

    def dm_status(self, name: str) -> str:
        return self.host.dm_status(name)

    def sysctl(self, key: str) -> int:
        return self.host.sysctl_get(key)

    def fingerprint(self) -> bytes:
        """What a dry-run must not touch. Volumes under a live dm table are left out: the
        kernel keeps copying into them on its own."""
        tables = self.dm_tables()
        used = {w for t in tables.values() for w in t.split()}
        h = hashlib.sha256()
        with self.emu.lock:
            h.update(json.dumps([self.emu.volumes, self.emu.snapshots, sorted(
                (k, sorted(v.items())) for k, v in self.emu.attachments.items())],
                sort_keys=True).encode())
            names = sorted(self.emu.volumes)
        for name in names:  # a write changes size, blocks or mtime; reading all would be slow
            if self.paths.volume(name) not in used:
                st = os.stat(self.emu.path(name))
                h.update(f"{name} {st.st_size} {st.st_blocks} {st.st_mtime_ns}".encode())
        h.update(json.dumps(tables, sort_keys=True).encode())
        for key in SPEED_KEYS:
            h.update(str(self.sysctl(key)).encode())
        return h.digest()

    # OnApp, LVMSP and the guests -------------------------------------------------------------
    def create_volume(self, name: str, size: int) -> None:
        self.emu.handle("VolumeCreate", [], {"name": name, "size": size})

    def create_vm(self, vm: str, hypervisor: str, disk: str, size: int) -> None:
        self.create_volume(disk, size)
        if hypervisor == "xen":
            with open(self.emu.path(disk), "r+b") as f:
                for off, data in xen_content(len(self.vms) * 7 + 1, size):
                    f.seek(off)
                    f.write(data)
            self.xen_data[disk] = self.read_volume(disk, 0, size)
        self.vms[vm] = {"hypervisor": hypervisor, "disks": [disk], "fds": [], "running": False}

    def move_to_kvm(self, vm: str) -> None:
        self.vms[vm]["hypervisor"] = "kvm"

    def _reassign(self, volume: str, item: dict) -> None:
        self.emu.handle("VolumesReassignWait", [], {"reassign": [{"volume": volume, **item}]})

    def vm_device(self, vm: str, disk: str) -> str:
        raid = self.paths.mapper(naming.dm_raid(vm, disk))
        return raid if os.path.exists(raid) else self.paths.volume(disk)

    def power(self, vm: str, state: str) -> None:
        v = self.vms[vm]
        if state == "on":
            if v["hypervisor"] == "xen":  # a XEN VM runs on a XEN host, not here
                for d in v["disks"]:
                    self._reassign(d, {"rw": [XEN_HOST_ID]})
            else:
                self.ok(f"xen2kvm assemble {vm} --disk {' '.join(v['disks'])} -y")
                v["fds"] = [os.open(self.vm_device(vm, d), os.O_RDWR) for d in v["disks"]]
            v["running"] = True
            return
        for fd in v["fds"]:
            os.close(fd)
        v["fds"], v["running"] = [], False
        if v["hypervisor"] == "kvm":
            self.ok(f"xen2kvm release {vm} -y")
        for d in v["disks"]:
            self._reassign(d, {"detach": "all"})

    def guest_write(self, vm: str, disk: str, offset: int, length: int, seed: int) -> bytes:
        data = seeded(seed, length)
        fd = os.open(self.vm_device(vm, disk), os.O_RDWR)
        try:
            os.pwrite(fd, data, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.writes.append((vm, disk, offset, data))
        return data

    def guest_read_path(self, path: str, sectors: int) -> bytes:
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.pread(fd, sectors * 512, 0)
        finally:
            os.close(fd)

    def guest_read(self, vm: str, disk: str, offset: int, length: int) -> bytes:
        fd = os.open(self.vm_device(vm, disk), os.O_RDONLY)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    # time and trouble -------------------------------------------------------------------------
    def _recovering(self) -> dict[str, tuple]:
        from xen2kvm.dmstatus import parse_status

        out = {}
        for name, table in self.dm_tables().items():
            if " raid " in f" {table} ":
                st = parse_status(self.dm_status(name))
                out[name] = (st.done, st.health, st.action)
        return out

    def _wait(self, done, what: str) -> None:
        """Poll an observable condition of the kernel; fail after SETTLE seconds."""
        deadline = time.monotonic() + SETTLE
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def advance(self, seconds: float = 2.0) -> None:
        """Wait until every running copy has moved on (or ended)."""
        before = self._recovering()
        busy = {n for n, (_, h, a) in before.items() if a == "recover"}

        def moved() -> bool:
            now = self._recovering()
            return all(now.get(n, before[n]) != before[n] for n in busy)

        self._wait(moved, "the resync to advance")

    def wait_resync(self, status_of) -> None:
        self._wait(lambda: status_of().in_sync or bool(status_of().failed_legs),
                   "the resync to end")

    def assert_rate_at_most(self, status_of, kib: int) -> None:
        first = status_of()
        start = time.monotonic()
        self.advance()
        second = status_of()
        elapsed = time.monotonic() - start
        assert first.done < second.done < second.total
        # generous: the kernel's throttle is coarse, the point is "not unthrottled"
        assert (second.done - first.done) * 512 <= 4 * kib * 1024 * max(elapsed, 1.0)

    def grow_behind_back(self, volume: str, add: int) -> None:
        self.emu.handle("VolumeUpdate", [volume], {"sizeAdd": add})

    def wipe(self, volume: str, length: int) -> None:
        with open(self.emu.path(volume), "r+b") as f:
            f.write(bytes(length))

    def set_failing(self, volume: str, failing: bool) -> None:
        if not failing:
            self.filler.unlink(missing_ok=True)
            return
        for name in self.emu.volumes:  # only the KVM volume may lack blocks
            if name != volume:
                subprocess.run(["fallocate", "-l", str(self.emu.volumes[name]["size"]),
                                str(self.emu.path(name))], check=True)
        subprocess.run(["dd", "if=/dev/zero", f"of={self.filler}", "bs=1M"],
                       capture_output=True)

    def set_free(self, size: int) -> None:
        """Operator completeness: the emulator's raw capacity such that `size` is free now."""
        with self.emu.lock:
            self.emu.capacity = self.emu.used_bytes() + size

    # data safety: guards -------------------------------------------------------------------
    def run_on_host(self, command: str, host: str):
        """Another KVM host: its own StorPool client id and its own run-lock folder."""
        saved = os.environ["XEN2KVM_LOCK_DIR"]
        os.environ["XEN2KVM_LOCK_DIR"] = str(self.tmp / f"lock-{host}")
        try:
            return super().run_on_host(command, host)
        finally:
            os.environ["XEN2KVM_LOCK_DIR"] = saved

    def set_tags(self, volume: str, tags: dict) -> None:
        from xen2kvm.backends.storpool import StorPoolBackends

        StorPoolBackends(HOST, Runner()).storage.set_tags(volume, tags)

    def make_ext4(self, volume: str) -> None:
        subprocess.run(["mkfs.ext4", "-F", "-q", str(self.emu.path(volume))], check=True)
        self.xen_data[volume] = self.read_volume(volume, 0, self.volumes()[volume].size_bytes)

    def xen_guest_write(self, vm: str, disk: str, offset: int, length: int, seed: int) -> None:
        assert self.vms[vm]["running"], f"{vm} is not running"
        with open(self.emu.path(disk), "r+b") as f:  # the XEN host writes through its client
            f.seek(offset)
            f.write(seeded(seed, length))

    def set_raid_version(self, version: str) -> None:
        raise AssertionError("the lab runs the kernel it has (scenario is @fakeonly)")

    # the StorPool API and the host's settings (data safety: edges) ---------------------------
    token = TOKEN

    def lock_folder(self) -> Path:
        return Path(os.environ["XEN2KVM_LOCK_DIR"])

    def set_env(self, key: str, value: str) -> None:
        """Changed for this scenario only: close() puts the rig's environment back."""
        self._saved.setdefault(key, os.environ.get(key))
        os.environ[key] = value

    def misreply(self, call: str, shape: str) -> None:
        self.emu.misreply(call, shape)

    def break_setting(self, setting: str) -> None:
        if setting == "SP_OURID":
            conf = Path(os.environ["XEN2KVM_STORPOOL_CONF"])
            conf.write_text(conf.read_text().replace(f"SP_OURID={OUR_ID}\n", ""))
        elif setting == "device root":
            self.set_env("XEN2KVM_DEV_ROOT", str(self.tmp / "no-such-dev"))
        else:
            raise AssertionError(f"no such setting {setting}")

    def api(self, path: str, body: bytes) -> tuple[int, dict]:
        """A raw request, as any client could send it."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.server_address[1], timeout=30)
        try:
            conn.request("POST", f"/ctrl/1.0/{path}", body,
                         {"Authorization": f"Storpool v1:{self.token}"})
            reply = conn.getresponse()
            return reply.status, json.loads(reply.read())
        finally:
            conn.close()

    @contextlib.contextmanager
    def holding_lock(self):
        lock_dir = Path(self.env["XEN2KVM_LOCK_DIR"])
        lock_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_dir / "xen2kvm.lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            os.close(fd)
