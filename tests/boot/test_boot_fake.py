"""Proof that the migrated VM boots: real guest images migrated on the fake, the result
booted by QEMU from the disk alone (tests/boot/qemu.py). Each case-2 combination boots twice:
the assembled view right after power-on (the VM runs before the copy has finished), and the
raw KVM volume after sync and release."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from . import images
from .qemu import boot

pytestmark = [pytest.mark.boot, pytest.mark.slow]
HELPER = str(Path(sys.executable).with_name("xen2kvm-guest"))
KNOWN = hashlib.sha256(images.KNOWN_TEXT.encode()).hexdigest()
TIMES: dict[str, float] = {}


def assert_marker(image: Path, label: str, known: str = KNOWN, spec: str = "") -> None:
    b = boot(image)
    TIMES[label] = b.seconds
    print(f"\nboot {label}: marker after {b.seconds:.1f} s")
    assert b.fields["root"] == "/dev/vda1", b.fields
    assert b.fields["opts"] == "rw", b.fields
    assert b.fields["spec"] == (spec or f"UUID={images.UUID}"), b.fields
    assert b.fields["known"] == known, b.fields


def shell_sectors(rig, n: int) -> bytes:
    return rig.read_volume("kd", 0, n * 512)


def kept(before: bytes, after: bytes) -> None:
    """The shell disk's boot code (0-445) and sectors 1..N-1 are the same bytes."""
    assert after[:446] == before[:446]
    assert after[512:] == before[512:]


def setup_disks(rig, boot_images: Path, shell: str) -> None:
    rig.ok("xen2kvm sim create-vm lnx --hypervisor xen --disk xd:1G")
    rig.ok(f"xen2kvm sim import lnx xd {boot_images / 'xen.img'}")
    rig.ok("xen2kvm sim create-vm kvm --hypervisor kvm --disk kd:1G")
    if shell:
        rig.ok(f"xen2kvm sim import kvm kd {boot_images / shell}")


def run_case2(rig, tmp: Path, label: str, n: int, prepare: str) -> None:
    before = shell_sectors(rig, n)
    rig.ok(prepare)
    kept(before, shell_sectors(rig, n))
    rig.ok("xen2kvm sim power on kvm")
    rig.ok(f"xen2kvm sim export kvm kd {tmp / 'assembled.img'}")
    assert_marker(tmp / "assembled.img", f"{label}, assembled view")
    rig.ok("xen2kvm sync kvm --wait -y")
    rig.ok("xen2kvm sim power off kvm")  # the reboot hook releases the dm devices
    rig.ok(f"xen2kvm sim export kvm kd {tmp / 'raw.img'}")
    assert_marker(tmp / "raw.img", f"{label}, raw KVM volume")


def test_case2_n32_grub_legacy_shell(fake_rig, boot_images, tmp_path):
    setup_disks(fake_rig, boot_images, "shell-legacy.img")
    run_case2(fake_rig, tmp_path, "case-2 N=32 GRUB legacy shell", 32,
              f"xen2kvmDisk -y -x xd -k kd -p {HELPER}")


def test_case2_n2048_grub2_shell(fake_rig, boot_images, tmp_path):
    setup_disks(fake_rig, boot_images, "shell-grub2.img")
    run_case2(fake_rig, tmp_path, "case-2 N=2048 GRUB 2 shell", 2048,
              f"xen2kvmDisk -y -x xd -k kd -c -p {HELPER}")


def test_case1_whole_disk(fake_rig, boot_images, tmp_path):
    rig = fake_rig
    rig.ok("xen2kvm sim create-vm win --hypervisor xen --disk wd:1100M")
    rig.ok(f"xen2kvm sim import win wd {boot_images / 'whole.img'}")
    rig.ok("xen2kvm sim create-vm kvm --hypervisor kvm --disk kd:1100M")
    rig.ok("xen2kvm clone -x wd -k kd --vm kvm -y")
    rig.ok("xen2kvm sim power on kvm")
    rig.ok(f"xen2kvm sim export kvm kd {tmp_path / 'on.img'}")
    # case-1 has no dm view: what the VM reads at power-on is the volume itself
    assert_marker(tmp_path / "on.img", "case-1 whole disk", spec=f"UUID={images.UUID}")


@pytest.mark.parametrize("n,flag,loader", [(2048, " --no-dos", "GRUB 2"),
                                            (32, "", "GRUB legacy")])
def test_inplace_the_guests_own_boot_loader(fake_rig, boot_images, tmp_path, n, flag, loader):
    rig = fake_rig
    rig.ok("xen2kvm sim create-vm kvm --hypervisor xen --disk xd:1G")
    rig.ok(f"xen2kvm sim import kvm xd {boot_images / 'xen.img'}")
    rig.move_to_kvm("kvm")
    xen_before = rig.read_volume("xd", 0, 4 * 1024 * 1024)
    prepare = f"xen2kvm prepare -x xd -k xd{flag} --helper {HELPER} --boot-loader guest"
    dry = rig.ok(prepare)
    assert "--boot-area" in dry.out and f"offset 512 length {(n - 1) * 512} to " in dry.out
    r = rig.ok(prepare + " -y")
    assert "will not boot" not in r.err
    # the clone (the XEN data) was never given boot code; the KVM volume's sector 0 was
    assert rig.read_volume("xen-xd", 0, 440) == xen_before[:440]
    area = rig.read_volume("xd", 0, n * 512)
    assert area[:440] != bytes(440) and area[512:1024] != bytes(512)
    label = f"in-place N={n} the guest's {loader}"
    rig.ok("xen2kvm sim power on kvm")
    rig.ok(f"xen2kvm sim export kvm xd {tmp_path / 'assembled.img'}")
    assert_marker(tmp_path / "assembled.img", f"{label}, assembled view")
    rig.ok("xen2kvm sync kvm --wait -y")
    rig.ok("xen2kvm sim power off kvm")
    rig.ok(f"xen2kvm sim export kvm xd {tmp_path / 'raw.img'}")
    assert_marker(tmp_path / "raw.img", f"{label}, raw KVM volume")
