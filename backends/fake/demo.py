"""`xen2kvm demo`: both cases end to end on an embedded fake cluster, with guest writes during
the resync, progress, a byte-for-byte check of every disk, and a summary table."""

from __future__ import annotations

import io
import shlex
import tempfile
from contextlib import redirect_stdout
from typing import Optional

from xen2kvm import cli, legacy
from xen2kvm.errors import Xen2KvmError
from xen2kvm.units import MIB

DISKS = {"win1": "wdisk:96M", "lnx1": "ldisk1:64M,ldisk2:48M"}
SHELLS = {"kvmwin": "kwdisk:96M", "kvmlnx": "kdisk1:64M,kdisk2:48M"}


class Demo:
    def __init__(self, state: str):
        self.base = ["--backend", "fake", "--state", state]
        self.summary: list[tuple[str, str, str, str]] = []
        self.writes: list[tuple[str, str, int, bytes]] = []
        self.ok = True

    def x(self, *args: str, prog=cli.main, show: bool = True) -> str:
        name = "xen2kvm" if prog is cli.main else "xen2kvmDisk"
        buf = io.StringIO()
        with redirect_stdout(buf):
            rc = prog([*self.base, *args])
        text = buf.getvalue()
        if show:
            print(f"\n$ {name} {shlex.join(args)}")
            print(text.rstrip())
        if rc != 0:
            raise Xen2KvmError(f"demo step `{name} {shlex.join(args)}` exited {rc}")
        return text

    def guest(self, vm: str, disk: str, offset: int, length: int, seed: int) -> None:
        from .sim import seeded

        self.x("sim", "write", vm, disk, str(offset), str(length), "--seed", str(seed))
        self.writes.append((vm, disk, offset, seeded(seed, length)))

    def case1(self) -> None:
        print("\n=== case-1 (Windows-like VM win1): replace the KVM volume by a clone ===")
        self.x("-x", "wdisk", "-k", "kwdisk", "-b", prog=legacy.main)
        self.x("-y", "-x", "wdisk", "-k", "kwdisk", "-b", prog=legacy.main)
        self.x("sim", "power", "on", "kvmwin")
        self.guest("kvmwin", "kwdisk", 3 * MIB, 65536, 5)
        self.x("sim", "power", "off", "kvmwin")
        self.check("kvmwin", "wdisk", "kwdisk", "case-1", 0)
        self.x("-y", "-z", prog=legacy.main)

    def case2(self) -> None:
        print("\n=== case-2 (Linux VM lnx1, two disks): prepare, sync under writes, cleanup ===")
        for xen, kvm in (("ldisk1", "kdisk1"), ("ldisk2", "kdisk2")):
            self.x("-x", xen, "-k", kvm, prog=legacy.main)
            self.x("-y", "-x", xen, "-k", kvm, prog=legacy.main)
        self.x("tune", "--max", "8192", "-y")
        self.x("sim", "power", "on", "kvmlnx")
        self.guest("kvmlnx", "kdisk1", 32 * 512 + 4096, 8192, 11)
        self.x("-m", "kvmlnx", prog=legacy.main)
        self.x("-y", "-m", "kvmlnx", prog=legacy.main)
        seed = 20
        for _ in range(20):
            self.x("sim", "tick", "2")
            seed += 1
            self.guest("kvmlnx", "kdisk1", (seed % 50) * MIB + 32 * 512, 65536, seed)
            self.guest("kvmlnx", "kdisk2", (seed % 40) * MIB + 32 * 512, 4096, seed + 100)
            out = self.x("-y", "-m", "kvmlnx", prog=legacy.main)
            if "every disk is in sync" in out:
                break
        self.x("status")
        for xen, kvm in (("ldisk1", "kdisk1"), ("ldisk2", "kdisk2")):
            self.x("verify", "-x", xen, "-k", kvm, "-y")
        self.x("sim", "power", "off", "kvmlnx")
        self.x("sim", "power", "on", "kvmlnx")
        self.guest("kvmlnx", "kdisk1", 32 * 512, 512, 99)
        self.x("-z", "-m", "kvmlnx", prog=legacy.main)
        self.x("-y", "-z", "-m", "kvmlnx", prog=legacy.main)
        self.x("sim", "power", "off", "kvmlnx")
        self.x("status")
        for xen, kvm in (("ldisk1", "kdisk1"), ("ldisk2", "kdisk2")):
            self.check("kvmlnx", xen, kvm, "case-2 N=32", 32 * 512)

    def check(self, vm: str, xen: str, kvm: str, case: str, start: int) -> None:
        """Byte for byte: the KVM volume from N must equal the XEN data plus every guest write."""
        from xen2kvm.backends.fake import FakeBackends
        from xen2kvm.process import Runner

        from .db import Db
        from .extents import ExtentStore

        b = FakeBackends(self.base[3], "demo-checker", Runner())
        xv, kv = b.cluster.volumes[xen], b.cluster.volumes[kvm]
        expected = ExtentStore.new(Db(":memory:"))
        for lo, hi in xv.store.extents(0, xv.size_bytes):
            expected.write(lo, xv.store.read(lo, hi - lo))
        for w_vm, disk, off, data in self.writes:
            if w_vm == vm and b.cluster.vms[vm].disks[disk] == kvm and off >= start:
                expected.write(off - start, data)
        size = xv.size_bytes
        same = expected.read(0, size) == kv.store.read(start, size)
        result = "identical" if same else "DIFFERENT"
        writes = sum(1 for w in self.writes if w[0] == vm and w[1] == kvm)
        self.summary.append((vm, f"{xen} -> {kvm}", case, f"{result} ({writes} guest writes)"))
        self.ok = self.ok and same

def run(keep: Optional[str]) -> int:
    tmp = None if keep else tempfile.TemporaryDirectory(prefix="xen2kvm-demo-")
    state = keep or tmp.name
    demo = Demo(state)
    print(f"xen2kvm demo: a fake StorPool cluster with KVM host kvm1 in {state}")
    for vm, disks in DISKS.items():
        demo.x("sim", "create-vm", vm, "--hypervisor", "xen", "--disk", disks)
    for vm, disks in SHELLS.items():
        demo.x("sim", "create-vm", vm, "--hypervisor", "kvm", "--disk", disks)
    demo.case1()
    demo.case2()
    print("\n=== summary ===")
    print(f"{'VM':<8} {'DISKS':<18} {'CASE':<12} RESULT")
    for row in demo.summary:
        print(f"{row[0]:<8} {row[1]:<18} {row[2]:<12} {row[3]}")
    if keep:
        print(f"\nstate kept: xen2kvm --backend fake --state {keep} sim show")
    if tmp:
        tmp.cleanup()
    return 0 if demo.ok else 5
