"""Acceptance checks of the core issue that read best as plain tests."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from xen2kvm.units import GIB, MIB, TIB


@pytest.mark.skipif(not shutil.which("sfdisk"), reason="sfdisk (apt package fdisk) is missing")
@pytest.mark.parametrize("n,flag", [(32, ""), (2048, "-c")])
def test_10_gib_disk_gets_the_label_sfdisk_expects(fake_rig, tmp_path, n, flag):
    rig = fake_rig
    rig.ok("xen2kvm sim create-vm lnx --hypervisor xen --disk xd:10G")
    rig.ok("xen2kvm sim create-vm kvm --hypervisor kvm --disk kd:10G")
    before = rig.fingerprint()
    dry = rig.ok(f"xen2kvmDisk -x xd -k kd {flag}")
    assert f"start={n}, size={10 * GIB // 512}, type=83" in dry.out
    assert rig.fingerprint() == before
    rig.ok(f"xen2kvmDisk -y -x xd -k kd {flag}")
    kd = rig.volumes()["kd"]
    assert kd.size_bytes == 10 * GIB + n * 512
    img = tmp_path / "kd.img"
    with open(img, "wb") as f:
        f.truncate(kd.size_bytes)
        f.write(rig.read_volume("kd", 0, MIB))
    out = json.loads(subprocess.run(["sfdisk", "--json", str(img)], capture_output=True,
                                    text=True, check=True).stdout)
    parts = out["partitiontable"]["partitions"]
    assert [(p["start"], p["size"], p["type"]) for p in parts] == [(n, 10 * GIB // 512, "83")]
    check = subprocess.run(["sfdisk", "-V", str(img)], capture_output=True, text=True)
    assert check.returncode == 0 and "No errors detected" in check.stdout
    # the partition's bytes are the XEN disk's, shifted by N sectors
    assert rig.read_volume("xen-xd", 0, MIB) == rig.read_volume("xd", 0, MIB)


def test_a_2_tib_volume_stores_only_what_is_written(fake_rig):
    rig = fake_rig
    rig.ok("xen2kvm sim create-vm big --hypervisor kvm --disk huge:2T")
    rig.ok("xen2kvm sim power on big")
    rig.ok(f"xen2kvm sim write big huge {TIB} {MIB} --seed 1")
    vol = rig.backends().cluster.volumes["huge"]
    assert vol.size_bytes == 2 * TIB and vol.store.allocated_bytes == MIB
    assert rig.fingerprint().__len__() < 2 * MIB


def test_verify_names_the_first_differing_offset(fake_rig):
    rig = fake_rig
    rig.ok("xen2kvm sim create-vm lnx --hypervisor xen --disk xd:8M")
    rig.ok("xen2kvm sim create-vm kvm --hypervisor kvm --disk kd:8M")
    rig.ok("xen2kvmDisk -y -x xd -k kd")
    rig.ok("xen2kvm sim power on kvm")
    rig.ok("xen2kvm sync kvm --wait -y")
    rig.ok("xen2kvm verify -x xd -k kd -y")
    for volume, offset in (("kd", 32 * 512 + 777_777), ("xen-xd", 1_234_567)):
        b = rig.backends()
        store = b.cluster.volumes[volume].store
        byte = store.read(offset, 1)
        store.write(offset, bytes([byte[0] ^ 0xFF]))
        b.close()
        r = rig.run("xen2kvm verify -x xd -k kd -y")
        want = offset - 32 * 512 if volume == "kd" else offset
        assert r.rc == 5 and f"at byte {want} of the data" in r.err, r
        b = rig.backends()  # verify attached and detached meanwhile: a fresh copy
        b.cluster.volumes[volume].store.write(offset, byte)
        b.close()
    rig.ok("xen2kvm verify -x xd -k kd -y")


def test_status_and_show(fake_rig):
    rig = fake_rig
    rig.ok("xen2kvm sim create-vm lnx --hypervisor xen --disk xd:4M")
    rig.ok("xen2kvm sim create-vm kvm --hypervisor kvm --disk kd:4M")
    assert "no disk is under migration" in rig.ok("xen2kvm status").out
    rig.ok("xen2kvmDisk -y -x xd -k kd")
    rig.ok("xen2kvm sim power on kvm")
    table = rig.ok("xen2kvm status").out
    assert "kvm" in table and "assembled" in table
    shown = json.loads(rig.ok("xen2kvm sim show --json").out)
    assert shown["vms"]["kvm"]["running"] is True
    assert "xen2kvm-kvm-kd" in shown["hosts"]["kvm1"]["dm"]
    text = rig.ok("xen2kvm sim show").out
    assert "kvm1 dm xen2kvm-kvm-kd: 0 8224 raid raid1 1 A 8224/8224 idle" in text


def test_in_place_checks_the_clone_before_the_original_changes(fake_rig):
    rig = fake_rig
    rig.ok("xen2kvm sim create-vm lnx --hypervisor xen --disk xd:4M")
    first = rig.read_volume("xd", 0, 4 * MIB)
    rig.ok("xen2kvm sim fault 4")  # crash right after the claim, the recovery point, the clone
    assert rig.run("xen2kvmDisk -y -x xd -k xd").rc != 0
    b = rig.backends()  # corrupt the clone behind the tool's back
    b.cluster.volumes["xen-xd"].store.write(4096, b"garbage")
    b.close()
    r = rig.run("xen2kvmDisk -y -x xd -k xd")
    assert r.rc != 0 and "differs from xd at byte 4096; not touching the original" in r.err
    assert rig.read_volume("xd", 0, 4 * MIB) == first
    assert rig.volumes()["xd"].size_bytes == 4 * MIB and "xen" not in rig.volumes()["xd"].tags
