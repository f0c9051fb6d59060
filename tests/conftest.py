"""Test options and the rig: one interface to drive the tool and observe the world, whatever
backend runs underneath (`--backend fake` now; `lab` runs the same features on a real kernel)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import shlex
import sys
import time
from pathlib import Path

import pytest

from xen2kvm import cli, legacy
from xen2kvm.backends.fake import FakeBackends
from xen2kvm.backends.fake.db import DB_FILE
from xen2kvm.process import Runner
from xen2kvm.testing import lab


def pytest_addoption(parser):
    parser.addoption("--backend", default="fake", choices=("fake", "lab"),
                     help="backend the feature scenarios run on")
    parser.addoption("--shard", default="1/1", metavar="K/N",
                     help="run every N-th selected test, starting with the K-th (scripts/test.sh "
                          "runs the kernel lab as two shards, one user-mode-linux guest per core)")


def pytest_cmdline_main(config):
    """`--backend lab` on a kernel without device-mapper: run this same pytest in the lab."""
    if config.getoption("--backend") != "lab" or lab.have_dm():
        return None
    if os.geteuid() != 0:
        raise pytest.UsageError("--backend lab needs root (loop devices, dm, mounts)")
    start = time.monotonic()
    # `python -m pytest` leaves pytest/__main__.py in argv[0], which is no program: re-run it
    # through the interpreter, the same way it was started
    argv = list(sys.argv)
    if argv[0].endswith("__main__.py"):
        argv[:1] = [sys.executable, "-m", "pytest"]
    rc = lab.run(argv, timeout=float(os.environ.get("XEN2KVM_LAB_TIMEOUT", "1500")))
    print(f"kernel lab: {time.monotonic() - start:.0f} s, exit {rc}", flush=True)
    return rc


STORPOOLONLY = pytest.mark.skip(reason="@storpoolonly: needs the HTTP API, which the fake does "
                                      "not have; tests/bdd/test_api_features.py runs it against "
                                      "the API emulator")


def _shard(config, items) -> None:
    k, _, n = config.getoption("--shard").partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise pytest.UsageError(f"--shard {config.getoption('--shard')}: give K/N with 1 <= K <= N")
    k, n = int(k), int(n)
    if n > 1:  # round robin: the slow lab scenarios sit together in files, so this balances them
        config.hook.pytest_deselected(items=[it for i, it in enumerate(items) if i % n != k - 1])
        items[:] = [it for i, it in enumerate(items) if i % n == k - 1]


@pytest.hookimpl(trylast=True)  # after -m and -k: the N shards together run what one run would
def pytest_collection_modifyitems(config, items):
    _select(config, items)
    _shard(config, items)


def _select(config, items):
    """In the lab run the feature scenarios (but @fakeonly) and the tests marked `lab`. On the
    fake, @storpoolonly scenarios skip in test_features and run (alone) in test_api_features."""
    if config.getoption("--backend") != "lab":
        keep, drop = [], []
        for item in items:
            only = "storpoolonly" in {m.name for m in item.iter_markers()}
            if "test_api_features" in item.nodeid and not only:
                drop.append(item)
                continue
            if only and "test_features" in item.nodeid:
                item.add_marker(STORPOOLONLY)
            keep.append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
        return
    keep, drop = [], []
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        in_features = "test_features" in item.nodeid
        (keep if ("lab" in marks or in_features) and "fakeonly" not in marks else drop).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep


@pytest.fixture(autouse=True)
def audit_log(tmp_path, monkeypatch):
    """Operator completeness: runs on the real backend append to an audit log; tests keep
    theirs in their own folder, never in /var/log."""
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv("XEN2KVM_AUDIT_LOG", str(path))
    return path


@pytest.fixture
def backend_name(request) -> str:
    return request.config.getoption("--backend")


class Result:
    def __init__(self, rc: int, out: str, err: str):
        self.rc, self.out, self.err = rc, out, err

    def __repr__(self) -> str:
        return f"Result(rc={self.rc}, out={self.out[-2000:]!r}, err={self.err!r})"


class Rig:
    """Runs the two command lines in-process, with the backend's options in front."""

    PROGRAMS = {"xen2kvm": cli.main, "xen2kvmDisk": legacy.main}

    def __init__(self) -> None:
        self.xen_data: dict[str, bytes] = {}
        self.writes: list[tuple[str, str, int, bytes]] = []
        self.vars: dict[str, str] = {}
        self.last: Result | None = None

    def backend_args(self) -> list[str]:
        raise NotImplementedError

    def run(self, command: str) -> Result:
        argv = shlex.split(command.format(**self.vars))
        main = self.PROGRAMS[argv[0]]
        out, err = io.StringIO(), io.StringIO()

        class Bytes(io.StringIO):
            buffer = io.BytesIO()

        if argv[1:3] == ["sim", "read"]:
            out = Bytes()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([*self.backend_args(), *argv[1:]])
        self.last = Result(rc, out.getvalue(), err.getvalue())
        if isinstance(out, Bytes):
            self.last.data = out.buffer.getvalue()
        return self.last

    def ok(self, command: str) -> Result:
        r = self.run(command)
        assert r.rc == 0, r
        return r

    # data safety: guards -------------------------------------------------------------------
    def run_on_host(self, command: str, host: str) -> Result:
        prog, _, rest = command.partition(" ")
        return self.run(f"{prog} --host {host} {rest}")

    def race(self, point: str, first: str, later: str, host: str = "") -> None:
        """Run `later` and, once it has planned (point "lock": before it takes the host lock)
        or claimed its volumes (point "claim"), run `first` to its end; then `later` goes on.
        The results land in `self.raced` as (first, later)."""
        from unittest import mock

        from xen2kvm import claims, context

        owner, name = (context.Ctx, "lock") if point == "lock" else (claims.Claim, "apply")
        original, done = getattr(owner, name), []

        def hooked(obj, *args, **kwargs):
            if point == "claim":
                original(obj, *args, **kwargs)
            if not done:
                done.append(None)  # the interleaved run passes straight through
                done[0] = self.run_on_host(first, host) if host else self.run(first)
            if point == "lock":
                original(obj, *args, **kwargs)

        with mock.patch.object(owner, name, hooked):
            last = self.run(later)
        self.raced = (done[0], last)

    def crash_before(self, step: str, command: str) -> Result:
        """The run fails at its first `step` as a backend failure would, changing nothing more."""
        from unittest import mock

        from xen2kvm import steps
        from xen2kvm.errors import BackendError

        def fail(obj, ctx):
            raise BackendError("injectedFault", f"simulated failure before {step}")

        with mock.patch.object(getattr(steps, step), "apply", fail):
            return self.run(command)


    # data safety: what a volume or snapshot holds, as one comparable value -------------------
    def volume_state(self, name: str) -> tuple:
        """(size, tags, sha256 of every byte) of a volume."""
        v = self.volumes()[name]
        data = self.read_volume(name, 0, v.size_bytes)
        return v.size_bytes, dict(v.tags), hashlib.sha256(data).hexdigest()

    def snapshot_digest(self, name: str) -> tuple:
        """(size, sha256 of every byte) of a snapshot."""
        size = self.snapshots()[name].size_bytes
        return size, hashlib.sha256(self.read_snapshot(name, 0, size)).hexdigest()


class FakeRig(Rig):
    """Drives the command lines in-process against a fake cluster saved in `state`."""

    def __init__(self, state: Path):
        super().__init__()
        self.state = state

    def backend_args(self) -> list[str]:
        return ["--backend", "fake", "--state", str(self.state)]

    def backends(self, host: str = "kvm1") -> FakeBackends:
        return FakeBackends(str(self.state), host, Runner())

    def fingerprint(self) -> bytes:
        """What an operator can observe (the model's call counters left out: a claim set and
        released again changes nothing a refusal must leave alone)."""
        from xen2kvm.errors import Xen2KvmError

        try:
            c = self.backends().cluster
        except Xen2KvmError:  # a damaged state folder: its bytes are what must not change
            return repr(self.state_listing()).encode()
        seen = [(v.name, v.size_bytes, sorted(v.tags.items()), v.failing,
                 sorted(c.attachments.get(v.name, {})), v.store.digest())
                for v in sorted(c.volumes.values(), key=lambda v: v.name)]
        seen += [(h.name, sorted((n, d.table, repr(d.raid), d.open_count)
                                 for n, d in h.dm.items()), sorted(h.sysctl.items()))
                 for h in c.hosts.values()]
        seen += [(n, sn.size_bytes, sorted(sn.tags.items()), sn.store.digest())
                 for n, sn in sorted(c.snapshots.items())]
        seen += [repr(vm) for vm in c.vms.values()] + [c.clock, c.fault_at]
        return repr(seen).encode()

    # observing ------------------------------------------------------------------------------
    def volumes(self) -> dict:
        return {v.name: v for v in self.backends().storage.list_volumes()}

    def set_tags(self, volume: str, tags: dict) -> None:
        self.backends().storage.set_tags(volume, tags)

    def make_ext4(self, volume: str) -> None:
        """A XEN guest's disk as OnApp makes it: a bare filesystem (mkfs.ext4 is the judge)."""
        import subprocess
        import tempfile

        b = self.backends()
        vol = b.cluster.volumes[volume]
        with tempfile.NamedTemporaryFile() as f:
            f.write(vol.store.read(0, vol.size_bytes))
            f.flush()
            subprocess.run(["mkfs.ext4", "-F", "-q", f.name], check=True)
            data = Path(f.name).read_bytes()
        vol.store.write(0, data)
        b.close()
        self.xen_data[volume] = data

    def xen_guest_write(self, vm: str, disk: str, offset: int, length: int, seed: int) -> None:
        self.ok(f"xen2kvm --host xen1 sim write {vm} {disk} {offset} {length} --seed {seed}")

    def damage_state(self, damage: str) -> None:
        path = self.state / DB_FILE
        if damage == "file is truncated":
            path.write_bytes(path.read_bytes()[:100])
        elif damage == "file is empty":
            path.write_bytes(b"")
        elif damage == "file is a directory":
            path.unlink()
            path.mkdir()
        elif damage == "folder is a plain file":
            for entry in sorted(self.state.rglob("*"), reverse=True):
                entry.rmdir() if entry.is_dir() else entry.unlink()
            self.state.rmdir()
            self.state.write_bytes(b"not a folder")
        else:
            raise AssertionError(f"no such damage: {damage}")

    def state_listing(self) -> list:
        if self.state.is_file():
            return [("file", self.state.read_bytes())]
        return sorted((str(p.relative_to(self.state)), p.is_dir(),
                       p.read_bytes() if p.is_file() else b"") for p in self.state.rglob("*"))

    def read_volume(self, name: str, offset: int, length: int) -> bytes:
        return self.backends().cluster.volumes[name].store.read(offset, length)

    def dm_tables(self) -> dict[str, str]:
        return self.backends().host.dm_tables()

    def snapshots(self) -> dict:
        return {x.name: x for x in self.backends().storage.list_snapshots()}

    def read_snapshot(self, name: str, offset: int, length: int) -> bytes:
        return self.backends().cluster.snapshots[name].store.read(offset, length)

    def is_running(self, vm: str) -> bool:
        return self.backends().cluster.vms[vm].running

    def fail_change(self, k: int) -> None:
        """The k-th change to the cluster from now fails, as a crash there would."""
        self.ok(f"xen2kvm sim fault {k}")

    def dm_status(self, name: str) -> str:
        return self.backends().host.dm_status(name)

    def sysctl(self, key: str) -> int:
        return self.backends().host.sysctl_get(key)

    def vm_device(self, vm: str, disk: str) -> str:
        from xen2kvm.backends.fake.sim import device_of

        b = self.backends()
        ctx = type("C", (), {"backends": b})()
        return device_of(ctx, b.cluster.vms[vm], disk)

    # what OnApp, LVMSP and the guests do ---------------------------------------------------
    def create_vm(self, vm: str, hypervisor: str, disk: str, size: int) -> None:
        self.ok(f"xen2kvm sim create-vm {vm} --hypervisor {hypervisor} --disk {disk}:{size}")
        if hypervisor == "xen":
            self.xen_data[disk] = self.read_volume(disk, 0, size)

    def create_volume(self, name: str, size: int) -> None:
        self.ok(f"xen2kvm sim create-vm x{len(self.volumes())} --hypervisor xen "
                f"--disk {name}:{size}")

    def power(self, vm: str, state: str) -> None:
        xen_vm = self.backends().cluster.vms[vm].hypervisor == "xen"
        host = "--host xen1 " if xen_vm else ""  # a XEN VM runs on a XEN host, not here
        self.ok(f"xen2kvm {host}sim power {state} {vm}")

    def move_to_kvm(self, vm: str) -> None:
        b = self.backends()
        b.cluster.vms[vm].hypervisor = "kvm"
        b.close()

    def guest_write(self, vm: str, disk: str, offset: int, length: int, seed: int) -> bytes:
        from xen2kvm.backends.fake.sim import seeded

        self.ok(f"xen2kvm sim write {vm} {disk} {offset} {length} --seed {seed}")
        data = seeded(seed, length)
        self.writes.append((vm, disk, offset, data))
        return data

    def guest_read(self, vm: str, disk: str, offset: int, length: int) -> bytes:
        return self.ok(f"xen2kvm sim read {vm} {disk} {offset} {length}").data

    # acting behind the tool's back ----------------------------------------------------------
    def advance(self, seconds: float = 2.0) -> None:
        self.ok(f"xen2kvm sim tick {seconds}")

    def wait_resync(self, status_of) -> None:
        """Let virtual time pass until the copy ends (in sync or a failed leg)."""
        for _ in range(10000):
            st = status_of()
            if st.in_sync or st.failed_legs:
                return
            self.advance(5)
        raise AssertionError("the resync never finished")

    def assert_rate_at_most(self, status_of, kib: int) -> None:
        first = status_of().done
        self.advance(2)
        second = status_of().done
        assert 0 < (second - first) * 512 <= 2 * kib * 1024

    def grow_behind_back(self, volume: str, add: int) -> None:
        b = self.backends()
        b.storage.grow_volume(volume, add)
        b.close()

    def wipe(self, volume: str, length: int) -> None:
        b = self.backends()
        b.cluster.volumes[volume].store.discard(0, length)
        b.close()

    def set_failing(self, volume: str, failing: bool) -> None:
        self.ok(f"xen2kvm sim {'fail' if failing else 'heal'}-volume {volume}")

    def set_raid_version(self, version: str) -> None:
        self.ok(f"xen2kvm sim kernel {version}")

    token = "fake-has-no-token"

    def lock_folder(self) -> Path:
        return self.state / "lock-kvm1"  # the fake keeps each host's run lock with its state

    def set_free(self, size: int) -> None:
        """Operator completeness: the raw capacity such that `size` bytes are free now."""
        self.ok(f"xen2kvm sim capacity --free {size}")

    @contextlib.contextmanager
    def holding_lock(self):
        lock_dir = self.state / "lock-kvm1"  # the fake's run lock is per host
        lock_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_dir / "xen2kvm.lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            os.close(fd)


@pytest.fixture
def fake_rig(tmp_path):
    return FakeRig(tmp_path / "cluster")


@pytest.fixture
def rig(tmp_path, backend_name, request):
    """The rig of the chosen backend: the fake, or the real backend in the kernel lab."""
    if backend_name == "fake":
        return FakeRig(tmp_path / "cluster")
    from .labrig import LabRig

    lab = LabRig(tmp_path)
    request.addfinalizer(lab.close)
    return lab
