"""`sim import` / `sim export` on the fake: raw images in, what the VM reads out."""

from __future__ import annotations

import hashlib

from xen2kvm.units import MIB


def sparse_image(path, size: int, pieces: dict[int, bytes]) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in pieces.items():
            f.seek(off)
            f.write(data)


def test_import_refuses_an_image_that_does_not_fit_and_changes_nothing(fake_rig, tmp_path):
    rig = fake_rig
    rig.ok("xen2kvm sim create-vm kvm --hypervisor kvm --disk kd:4M")
    sparse_image(tmp_path / "big.img", 4 * MIB + 512, {0: b"x"})
    before = rig.fingerprint()
    r = rig.run(f"xen2kvm sim import kvm kd {tmp_path / 'big.img'}")
    assert r.rc == 3 and "does not fit into kd" in r.err and len(r.err.splitlines()) == 1
    assert rig.fingerprint() == before


def test_import_refuses_a_running_vm(fake_rig, tmp_path):
    rig = fake_rig
    rig.ok("xen2kvm sim create-vm kvm --hypervisor kvm --disk kd:4M")
    sparse_image(tmp_path / "a.img", MIB, {0: b"x"})
    rig.ok("xen2kvm sim power on kvm")
    r = rig.run(f"xen2kvm sim import kvm kd {tmp_path / 'a.img'}")
    assert r.rc == 3 and "power off" in r.err


def test_import_replaces_the_disk_and_export_is_sparse(fake_rig, tmp_path):
    rig = fake_rig
    rig.ok("xen2kvm sim create-vm lnx --hypervisor xen --disk xd:8M")
    data = {512: b"boot" * 100, 3 * MIB: b"\x07" * 70000}
    sparse_image(tmp_path / "in.img", 6 * MIB, data)
    rig.ok(f"xen2kvm sim import lnx xd {tmp_path / 'in.img'}")
    assert rig.read_volume("xd", 0, 6 * MIB) == (tmp_path / "in.img").read_bytes()
    assert rig.read_volume("xd", 6 * MIB, 2 * MIB) == bytes(2 * MIB)  # the old data is gone
    rig.ok(f"xen2kvm sim export lnx xd {tmp_path / 'out.img'}")
    out = tmp_path / "out.img"
    assert out.stat().st_size == 8 * MIB
    assert out.read_bytes() == rig.read_volume("xd", 0, 8 * MIB)
    assert out.stat().st_blocks * 512 <= 512 * 1024  # holes stay holes


def test_export_reads_the_assembled_view_while_the_vm_runs(fake_rig, tmp_path):
    rig = fake_rig
    rig.create_vm("lnx", "xen", "xd", 8 * MIB)
    rig.create_vm("kvm", "kvm", "kd", 8 * MIB)
    rig.ok("xen2kvmDisk -y -x xd -k kd")
    rig.power("kvm", "on")
    written = rig.guest_write("kvm", "kd", 40 * 512, 8192, seed=5)
    rig.ok(f"xen2kvm sim export kvm kd {tmp_path / 'on.img'}")
    view = (tmp_path / "on.img").read_bytes()
    assert len(view) == 8 * MIB + 32 * 512
    assert view[:32 * 512] == rig.read_volume("kd", 0, 32 * 512)
    expect = bytearray(rig.xen_data["xd"])
    expect[8 * 512: 8 * 512 + 8192] = written
    assert hashlib.sha256(view[32 * 512:]).digest() == hashlib.sha256(expect).digest()
    rig.power("kvm", "off")  # released, not synced: the raw KVM volume holds no copy yet
    rig.ok(f"xen2kvm sim export kvm kd {tmp_path / 'off.img'}")
    assert (tmp_path / "off.img").read_bytes() == rig.read_volume("kd", 0, 8 * MIB + 32 * 512)
