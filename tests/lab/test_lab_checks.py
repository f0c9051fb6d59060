"""What only a real kernel can show (the kernel-lab issue, checks a-e beyond the features)."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from xen2kvm import dmtables
from xen2kvm.dmstatus import parse_status

pytestmark = pytest.mark.lab
MIB = 1 << 20


@pytest.fixture
def lab_rig(rig, backend_name):
    if backend_name != "lab":
        pytest.skip("runs with --backend lab")
    return rig


def _status(rig, vm, disk):
    return parse_status(rig.dm_status(f"xen2kvm-{vm}-{disk}"))


def _migrating(rig, size_mib: int, rate: int):
    rig.create_vm("lnx", "xen", "xd", size_mib * MIB)
    rig.create_vm("kvm", "kvm", "kd", size_mib * MIB)
    rig.ok("xen2kvmDisk -y -x xd -k kd")
    rig.power("kvm", "on")
    rig.ok(f"xen2kvm sync kvm --max-rate {rate} -y")


def _legs_identical(rig, total_sectors: int) -> None:
    a = hashlib.sha256(rig.guest_read_path("/dev/mapper/xen2kvm-kvm-kd-lin", total_sectors))
    b = hashlib.sha256(rig.guest_read_path("/dev/storpool/kd", total_sectors))
    assert a.digest() == b.digest()


def _expected_ok(rig) -> None:
    want = bytearray(rig.xen_data["xd"])
    for _vm, _disk, off, data in rig.writes:
        if off >= 32 * 512:
            want[off - 32 * 512: off - 32 * 512 + len(data)] = data
    assert rig.read_volume("kd", 32 * 512, len(want)) == bytes(want)


def test_a_throttled_resync_with_a_writer_ends_with_identical_legs(lab_rig):
    rig = lab_rig
    _migrating(rig, 32, 4096)
    seen_recovering = 0
    for i, off in enumerate((1, 31, 7, 20, 3, 28, 12, 16)):
        if _status(rig, "kvm", "kd").action == "recover":
            seen_recovering += 1
        rig.guest_write("kvm", "kd", 32 * 512 + off * MIB - 4096, 65536, 100 + i)
    assert seen_recovering >= 4, "the writes should land while the copy runs"
    rig.wait_resync(lambda: _status(rig, "kvm", "kd"))
    st = _status(rig, "kvm", "kd")
    assert st.in_sync
    _legs_identical(rig, st.total)
    rig.ok("xen2kvmDisk -y -m kvm")
    _expected_ok(rig)


def test_b_an_ext4_filesystem_survives_as_partition_1(lab_rig, tmp_path):
    rig = lab_rig
    rig.create_vm("lnx", "xen", "xd", 64 * MIB)
    rig.create_vm("kvm", "kvm", "kd", 64 * MIB)
    rig._reassign("xd", {"rw": [1]})
    dev = "/dev/storpool/xd"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "xenroot", dev], check=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", dev, str(mnt)], check=True)
    sums = {}
    for i in range(20):
        data = os.urandom(4096 * (i + 1) * 7)
        (mnt / f"file{i}").write_bytes(data)
        sums[f"file{i}"] = hashlib.sha256(data).hexdigest()
    subprocess.run(["umount", str(mnt)], check=True)
    rig._reassign("xd", {"detach": "all"})
    rig.ok("xen2kvmDisk -y -x xd -k kd")
    rig.power("kvm", "on")
    rig.ok("xen2kvm sync kvm --wait -y")
    rig.power("kvm", "off")
    rig.ok("xen2kvmDisk -y -z -m kvm")
    loop = subprocess.run(["losetup", "-P", "-f", "--show", str(rig.emu.path("kd"))],
                          check=True, capture_output=True, text=True).stdout.strip()
    try:
        part = loop + "p1"
        fsck = subprocess.run(["fsck.ext4", "-n", part], capture_output=True, text=True)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        subprocess.run(["mount", "-o", "ro", part, str(mnt)], check=True)
        try:
            got = {f"file{i}": hashlib.sha256((mnt / f"file{i}").read_bytes()).hexdigest()
                   for i in range(20)}
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        subprocess.run(["losetup", "-d", loop], check=True)
    assert got == sums
    print(f"\next4 checksums equal before and after for {len(sums)} files")


def test_c_a_reload_mid_resync_resumes_from_the_checkpoint(lab_rig):
    rig = lab_rig
    _migrating(rig, 32, 2048)
    rig.advance()
    rig.advance()
    before = _status(rig, "kvm", "kd")
    assert 0 < before.done < before.total
    table = rig.dm_tables()["xen2kvm-kvm-kd"]
    parsed = dmtables.parse_raid(table)
    resume = dmtables.raid1_two_legs(parsed.total, *parsed.legs[0], *parsed.legs[1],
                                     rebuild=False, leg1_has_superblock=True,
                                     rates=dmtables.Rates(max_kib=2048))
    rig.host.dm_reload("xen2kvm-kvm-kd", resume)
    after = _status(rig, "kvm", "kd")
    assert "rebuild" not in rig.dm_tables()["xen2kvm-kvm-kd"]
    assert after.done >= before.done > 0, (before, after)
    rig.host.dm_reload("xen2kvm-kvm-kd", resume.replace("max_recovery_rate 2048",
                                                       "max_recovery_rate 200000"))
    rig.wait_resync(lambda: _status(rig, "kvm", "kd"))
    _legs_identical(rig, after.total)


def test_d_without_rebuild_or_metadata_the_kernel_copies_nothing(lab_rig):
    """Why the tool refuses such a table: the kernel takes leg 1 as in sync, at once."""
    rig = lab_rig
    rig.create_vm("lnx", "xen", "xd", 8 * MIB)
    rig.create_vm("kvm", "kvm", "kd", 8 * MIB)
    for v in ("xd", "kd"):
        rig._reassign(v, {"rw": [1]})
    total = 8 * MIB // 512
    rig.host.dm_create("danger", f"0 {total} raid raid1 1 0 2 - /dev/storpool/xd "
                                 f"- /dev/storpool/kd")
    try:
        st = parse_status(rig.dm_status("danger"))
        assert st.in_sync  # AA, idle: and yet nothing was copied
        assert rig.read_volume("kd", 0, 8 * MIB) != rig.read_volume("xd", 0, 8 * MIB)
    finally:
        rig.host.dm_remove("danger")
