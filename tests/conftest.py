"""Test options and the rig: one interface to drive the tool and observe the world, whatever
backend runs underneath (`--backend fake` now; `lab` runs the same features on a real kernel)."""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import shlex
import sys
import time
from pathlib import Path

import pytest

from xen2kvm import cli, lab, legacy
from xen2kvm.backends.fake import FakeBackends, model
from xen2kvm.process import Runner


def pytest_addoption(parser):
    parser.addoption("--backend", default="fake", choices=("fake", "lab"),
                     help="backend the feature scenarios run on")


def pytest_cmdline_main(config):
    """`--backend lab` on a kernel without device-mapper: run this same pytest in the lab."""
    if config.getoption("--backend") != "lab" or lab.have_dm():
        return None
    if os.geteuid() != 0:
        raise pytest.UsageError("--backend lab needs root (loop devices, dm, mounts)")
    start = time.monotonic()
    rc = lab.run(sys.argv, timeout=float(os.environ.get("XEN2KVM_LAB_TIMEOUT", "1500")))
    print(f"kernel lab: {time.monotonic() - start:.0f} s, exit {rc}", flush=True)
    return rc


def pytest_collection_modifyitems(config, items):
    """In the lab run the feature scenarios (but @fakeonly) and the tests marked `lab`."""
    if config.getoption("--backend") != "lab":
        return
    keep, drop = [], []
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        in_features = "test_features" in item.nodeid
        (keep if ("lab" in marks or in_features) and "fakeonly" not in marks else drop).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep


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
        path = self.state / model.STATE_FILE
        return path.read_bytes() if path.exists() else b""

    # observing ------------------------------------------------------------------------------
    def volumes(self) -> dict:
        return {v.name: v for v in self.backends().storage.list_volumes()}

    def read_volume(self, name: str, offset: int, length: int) -> bytes:
        return self.backends().cluster.volumes[name].store.read(offset, length)

    def dm_tables(self) -> dict[str, str]:
        return self.backends().host.dm_tables()

    def dm_status(self, name: str) -> str:
        return self.backends().host.dm_status(name)

    def sysctl(self, key: str) -> int:
        return self.backends().host.sysctl_get(key)

    def vm_device(self, vm: str, disk: str) -> str:
        from xen2kvm.sim import device_of

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
        self.ok(f"xen2kvm sim power {state} {vm}")

    def move_to_kvm(self, vm: str) -> None:
        b = self.backends()
        b.cluster.vms[vm].hypervisor = "kvm"
        b.cluster.generation += 1
        b.close()

    def guest_write(self, vm: str, disk: str, offset: int, length: int, seed: int) -> bytes:
        from xen2kvm.sim import seeded

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
        b.cluster.generation += 1
        b.close()

    def set_failing(self, volume: str, failing: bool) -> None:
        self.ok(f"xen2kvm sim {'fail' if failing else 'heal'}-volume {volume}")

    def set_raid_version(self, version: str) -> None:
        self.ok(f"xen2kvm sim kernel {version}")

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
