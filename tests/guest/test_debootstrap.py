"""A real Debian tree (debootstrap, minbase) dressed as a XEN PV guest, converted."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from xen2kvm.guest import cli

from .test_guest_helper import UUID, cat, link, sha

pytestmark = [
    pytest.mark.guest,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap and mounts need root"),
    pytest.mark.skipif(not shutil.which("debootstrap"), reason="needs debootstrap (apt)"),
]
MIRROR = os.environ.get("XEN2KVM_DEBIAN_MIRROR", "http://deb.debian.org/debian")


@pytest.fixture(scope="module")
def debian_image(tmp_path_factory):
    base = tmp_path_factory.mktemp("debootstrap")
    root = base / "root"
    res = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(root), MIRROR],
                         capture_output=True, text=True, timeout=1200)
    # root and debootstrap are there (the marks skip otherwise): a build that fails is a
    # failure, never a skip (tests/guest/test_image_builds_fail.py)
    if res.returncode != 0:
        pytest.fail(f"debootstrap {MIRROR} failed ({res.returncode}): "
                    f"{(res.stderr or res.stdout).strip()[-1500:]}")
    # what a XEN PV guest of this release carries
    (root / "etc/fstab").write_text("/dev/xvda1 / ext4 errors=remount-ro 0 1\n"
                                    "/dev/xvdb1 none swap sw 0 0\n")
    wants = root / "etc/systemd/system/getty.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    os.symlink("/lib/systemd/system/serial-getty@.service", wants / "serial-getty@hvc0.service")
    (root / "etc/default").mkdir(exist_ok=True)
    (root / "etc/default/grub").write_text('GRUB_CMDLINE_LINUX="console=hvc0"\n')
    img = base / "debian.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-U", UUID, "-d", str(root), str(img), "600M"],
                   check=True)
    return str(img)


def test_a_debootstrapped_debian(debian_image, capsys):
    img = debian_image
    before = sha(img)
    assert cli.main([img, "--dry-run"]) == 0
    assert sha(img) == before
    assert cli.main([img]) == 0
    out = capsys.readouterr().out
    assert "# debian 12" in out
    assert cat(img, "/etc/fstab").splitlines() == [
        f"UUID={UUID} / ext4 errors=remount-ro 0 1", "/dev/vdb1 none swap sw 0 0"]
    wants = "/etc/systemd/system/getty.target.wants"
    assert link(img, f"{wants}/serial-getty@ttyS0.service") == \
        "/lib/systemd/system/serial-getty@.service"
    assert 'GRUB_CMDLINE_LINUX="console=tty1 console=ttyS0,115200"' in cat(img, "/etc/default/grub")
    assert cat(img, "/etc/fstab.pre-xen2kvm").startswith("/dev/xvda1 / ext4")
    after = sha(img)
    assert cli.main([img]) == 0 and "# nothing to change" in capsys.readouterr().out
    assert sha(img) == after
