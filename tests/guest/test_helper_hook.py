"""`xen2kvmDisk -y -x X -k K -p xen2kvm-guest`: the clone is converted, the XEN volume is not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .test_guest_helper import UUID, cat, image

pytestmark = [
    pytest.mark.guest,
    pytest.mark.skipif(os.geteuid() != 0, reason="the helper mounts images: needs root"),
    pytest.mark.skipif(not shutil.which("mkfs.ext4"), reason="needs e2fsprogs"),
]
HELPER = str(Path(sys.executable).with_name("xen2kvm-guest"))
MIB = 1 << 20


def _check(tmp_path, clone_bytes: bytes, xen_bytes: bytes) -> None:
    out = tmp_path / "clone.img"
    out.write_bytes(clone_bytes)
    assert cat(str(out), "/etc/fstab").startswith(f"UUID={UUID}  /  ext4")
    assert "serial-getty" not in cat(str(out), "/etc/securetty")
    assert "console=ttyS0,115200" in cat(str(out), "/boot/grub2/grub.cfg")
    xen = tmp_path / "xen.img"
    xen.write_bytes(xen_bytes)
    assert cat(str(xen), "/etc/fstab").startswith("/dev/xvda  /  ext4")


def test_on_the_fake_backend(fake_rig, tmp_path):
    rig = fake_rig
    img = Path(image(tmp_path, "centos7")).read_bytes()
    rig.ok(f"xen2kvm sim create-vm lnx --hypervisor xen --disk xd:{len(img)}")
    rig.ok(f"xen2kvm sim create-vm kvm --hypervisor kvm --disk kd:{len(img)}")
    b = rig.backends()
    b.cluster.volumes["xd"].store.discard(0, len(img))
    b.cluster.volumes["xd"].store.write(0, img)
    b.close()
    r = rig.ok(f"xen2kvmDisk -y -x xd -k kd -p {HELPER}")
    assert f"{HELPER} /dev/storpool/xen-xd" in r.out
    _check(tmp_path, rig.read_volume("xen-xd", 0, len(img)), rig.read_volume("xd", 0, len(img)))
    # operator completeness: the helper's diff reaches the operator and the audit record
    shown = [x for x in r.out.splitlines() if x.startswith("[xen2kvm-guest] ")]
    assert "[xen2kvm-guest] --- a/etc/fstab" in shown
    assert any(x.startswith(f"[xen2kvm-guest] +UUID={UUID}") for x in shown), shown
    rec = json.loads((rig.state / "audit.jsonl").read_text().splitlines()[-1])
    assert rec["output"] == shown


@pytest.mark.lab
def test_in_the_lab(rig, backend_name, tmp_path):
    if backend_name != "lab":
        pytest.skip("runs with --backend lab")
    img = Path(image(tmp_path, "centos7"))
    rig.create_vm("lnx", "xen", "xd", img.stat().st_size)
    rig.create_vm("kvm", "kvm", "kd", img.stat().st_size)
    subprocess.run(["dd", f"if={img}", f"of={rig.emu.path('xd')}", "conv=notrunc,sparse",
                    "bs=1M", "status=none"], check=True)
    rig.ok(f"xen2kvmDisk -y -x xd -k kd -p {HELPER}")
    size = img.stat().st_size
    _check(tmp_path, rig.read_volume("xen-xd", 0, size), rig.read_volume("xd", 0, size))
    rig.power("kvm", "on")
    rig.ok("xen2kvm sync kvm --wait -y")
    kvm = rig.read_volume("kd", 32 * 512, size)
    out = tmp_path / "kvm-part1.img"
    out.write_bytes(kvm)
    assert cat(str(out), "/etc/fstab").startswith(f"UUID={UUID}  /  ext4")
