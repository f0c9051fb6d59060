"""A device root that is not /dev (XEN2KVM_DEV_ROOT): the dm tables the tool writes name the
devices under it, the kernel takes them, and the data comes out right (issue 12: one source
for device paths). Real kernel only: the point is what device-mapper does with the paths."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from xen2kvm.dmstatus import parse_status

pytestmark = pytest.mark.lab
MIB = 1 << 20
N = 32
RAID, LIN = "xen2kvm-kvm-kd", "xen2kvm-kvm-kd-lin"


@pytest.fixture
def moved(tmp_path, backend_name, request):
    if backend_name != "lab":
        pytest.skip("runs with --backend lab")
    from ..labrig import LabRig

    rig = LabRig(tmp_path, dev_root=str(tmp_path / "devroot"))
    request.addfinalizer(rig.close)
    return rig


def _paths_in(text: str) -> set[str]:
    return {w for w in text.split() if w.startswith("/")}


def _is_block(path: str) -> bool:
    return stat.S_ISBLK(os.stat(path).st_mode)


def test_a_moved_device_root_is_what_the_tables_name_and_the_data_is_right(moved, tmp_path):
    rig, root = moved, str(tmp_path / "devroot")
    rig.create_vm("lnx", "xen", "xd", 16 * MIB)
    rig.create_vm("kvm", "kvm", "kd", 16 * MIB)
    rig.ok("xen2kvmDisk -y -x xd -k kd")
    rig.power("kvm", "on")
    # the VM runs from the raid1 under the moved root; dmsetup made its nodes there
    assert rig.vm_device("kvm", "kd") == f"{root}/mapper/{RAID}"
    assert _is_block(f"{root}/mapper/{RAID}") and _is_block(f"{root}/mapper/{LIN}")
    assert not os.path.exists(f"/dev/mapper/{RAID}")
    rig.guest_write("kvm", "kd", 3 * MIB, 65536, 11)
    printed = rig.ok("xen2kvm sync kvm").out  # the dry-run prints the table -y loads
    assert {f"{root}/storpool/x2km0-kd", f"{root}/mapper/{LIN}", f"{root}/storpool/x2km1-kd",
            f"{root}/storpool/kd"} <= _paths_in(printed)
    rig.ok("xen2kvm sync kvm -y")
    rig.guest_write("kvm", "kd", 9 * MIB, 65536, 12)
    rig.wait_resync(lambda: parse_status(rig.dm_status(RAID)))

    tables = rig.dm_tables()
    named = _paths_in(tables[RAID]) | _paths_in(tables[LIN])
    assert named == {f"{root}/storpool/{v}" for v in ("x2km0-kd", "x2km1-kd", "kd",
                                                       "xen-xd")} | {f"{root}/mapper/{LIN}"}
    # the kernel's own numbers (not our mapping) are those of the nodes under the root
    raw = rig.host.runner.run(["dmsetup", "table", RAID]).stdout.split()
    kd = os.stat(f"{root}/storpool/kd").st_rdev
    assert f"{os.major(kd)}:{os.minor(kd)}" == raw[-1]
    # the data: leg 1 equals the source, and it is the XEN disk plus the guest's writes
    total = (16 * MIB) // 512 + N
    assert hashlib.sha256(rig.guest_read_path(f"{root}/mapper/{LIN}", total)).digest() == \
        hashlib.sha256(rig.guest_read_path(f"{root}/storpool/kd", total)).digest()
    want = bytearray(rig.xen_data["xd"])
    for _vm, _disk, off, data in rig.writes:
        want[off - N * 512: off - N * 512 + len(data)] = data
    assert rig.read_volume("kd", N * 512, len(want)) == bytes(want)
    rig.ok("xen2kvm sync kvm -y")  # in sync: the retag
    assert rig.volumes()["kd"].tags.get("xen") is None
