"""The guest's own boot loader: what prepare --boot-loader writes, its dry-run, its refusals,
and the warning for a disk that cannot boot."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from xen2kvm import actions, steps
from xen2kvm.backends.storpool.host import LocalHost
from xen2kvm.guest import cli as guest_cli
from xen2kvm.process import Runner

GRUB = Path("/usr/lib/grub/i386-pc")


class Ctx:
    def __init__(self, host):
        self.host = host


def _dd(copy, dev: str) -> list[str]:
    """dd doing one printed copy action (bytes, not blocks) onto `dev`."""
    return ["dd", f"if={copy.source}", f"of={dev}", "bs=64K", "iflag=skip_bytes,count_bytes",
            "oflag=seek_bytes", f"skip={copy.source_offset}", f"seek={copy.offset}",
            f"count={copy.length}", "conv=notrunc", "status=none"]


def test_write_boot_area_is_what_its_printed_actions_do(tmp_path):
    """apply() on the real backend's host == its printed copies done by dd, then its argv."""
    rnd = random.Random(3)
    (tmp_path / "storpool").mkdir()
    disk, copy, area = (tmp_path / "storpool/kd", tmp_path / "copy.img", tmp_path / "area")
    disk.write_bytes(rnd.randbytes(3 * 1024 * 1024))
    shutil.copy(disk, copy)
    content = rnd.randbytes(2048 * 512)
    area.write_bytes(content)
    step = steps.WriteBootArea("kd", str(area), 2048)
    step.apply(Ctx(LocalHost("h", Runner(), dev_root=str(tmp_path))))
    assert not area.exists()  # the lock dir's tmpfs is small
    area.write_bytes(content)
    for act in step.actions():
        argv = _dd(act, str(copy)) if isinstance(act, actions.Copy) else list(act.argv)
        assert isinstance(act, actions.Copy) or argv[0] == "rm"
        subprocess.run(argv, check=True, capture_output=True)
    got = disk.read_bytes()
    assert got == copy.read_bytes() and not area.exists()
    assert got[:440] == content[:440] and got[512:2048 * 512] == content[512:]


def test_a_shell_disk_without_boot_code_gets_a_warning(fake_rig):
    rig = fake_rig
    rig.ok("xen2kvm sim create-vm lnx --hypervisor xen --disk xd:8M")
    rig.ok("xen2kvm sim create-vm kvm --hypervisor kvm --disk kd:8M")
    r = rig.ok("xen2kvmDisk -y -x xd -k kd")
    assert "xen2kvmDisk: warning: this disk will not boot: sector 0 of kd holds no boot code" \
        in r.err


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a guest image needs root")
needs_grub = pytest.mark.skipif(not (GRUB / "normal.mod").exists() or not shutil.which(
    "grub-mkimage"), reason="needs GRUB 2 for i386-pc (apt packages grub-pc-bin, grub-common)")


@pytest.fixture
def grub2_guest(tmp_path) -> str:
    """A guest filesystem whose only content is a GRUB 2 installation (the host's)."""
    tree = tmp_path / "tree"
    shutil.copytree(GRUB, tree / "usr/lib/grub/i386-pc")
    img = tmp_path / "guest.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(img), "64M"], check=True)
    return str(img)


@needs_root
@needs_grub
def test_the_helper_builds_the_guests_grub2_boot_area(grub2_guest, tmp_path, capsys):
    before = Path(grub2_guest).read_bytes()
    out = tmp_path / "area"
    assert guest_cli.main([grub2_guest, "--boot-area", str(out), "--sectors", "2048"]) == 0
    area = out.read_bytes()
    boot = (GRUB / "boot.img").read_bytes()
    assert len(area) == 2048 * 512
    assert area[:0x66] == boot[:0x66] and area[0x66:0x68] == b"\x90\x90"  # as grub-bios-setup
    core = area[512:]  # starts with diskboot, whose block list names the sectors after it
    assert core[:508] == (GRUB / "diskboot.img").read_bytes()[:508]
    assert core[500:510] == (2).to_bytes(8, "little") + (sum(1 for i in range(0, len(
        core.rstrip(b"\0")), 512)) - 1).to_bytes(2, "little")
    assert Path(grub2_guest).read_bytes() == before  # the guest is only read
    assert "prefix (hd0,msdos1)/boot/grub" in capsys.readouterr().out


def world_of(rig) -> tuple:
    vols = {n: (v.size_bytes, sorted(v.tags.items()), v.attached)
            for n, v in rig.volumes().items()}
    data = {n: rig.read_volume(n, 0, v[0]) for n, v in vols.items()}
    return vols, data


@needs_root
@needs_grub
def test_grub2_with_n32_is_refused_before_anything_changes(fake_rig, grub2_guest):
    rig = fake_rig
    rig.ok("xen2kvm sim create-vm kvm --hypervisor xen --disk xd:64M")
    rig.ok(f"xen2kvm sim import kvm xd {grub2_guest}")
    rig.move_to_kvm("kvm")
    before = world_of(rig)
    dry = rig.ok("xen2kvm prepare -x xd -k xd --boot-loader guest")
    steps = dry.out.split("steps:\n", 1)[1].splitlines()
    build = next(i for i, line in enumerate(steps) if "--boot-area" in line)
    # before the boot area is built only the run's claim and attachments: nothing that changes data
    assert all(" tag x2kclaim." in line or "   # storpool attach volume " in line
               or line.startswith("#")
               for line in steps[:build]), steps[:build]
    r = rig.run("xen2kvm prepare -x xd -k xd --boot-loader guest -y")
    assert r.rc == 4 and len(r.err.strip().splitlines()) == 1, r
    assert "N=32 leaves 31: use the 2048-sector layout (-c, --no-dos)" in r.err
    assert world_of(rig) == before


@needs_root
@needs_grub
def test_the_helper_refuses_grub2_in_31_sectors(grub2_guest, tmp_path, capsys):
    out = tmp_path / "area"
    assert guest_cli.main([grub2_guest, "--boot-area", str(out), "--sectors", "32"]) == 3
    err = capsys.readouterr().err
    assert "needs" in err and "N=32 leaves 31" in err and "-c" in err
    assert not out.exists()


@pytest.mark.boot
def test_grub_legacy_boot_area_is_what_grub_legacy_setup_writes(boot_images, tmp_path):
    """Independent judge: 0.97's own `setup` wrote the GRUB legacy shell template."""
    from xen2kvm.guest.bootarea import _legacy

    stages = tmp_path / "stages"
    stages.mkdir()
    for name in ("stage1", "e2fs_stage1_5"):
        subprocess.run(["debugfs", "-R", f"dump /boot/grub/{name} {stages / name}",
                        str(boot_images / "xen.img")], check=True, capture_output=True)
    area = _legacy(stages, 32)
    with open(boot_images / "shell-legacy.img", "rb") as f:
        setup = f.read(32 * 512)
    assert area[:440] == setup[:440] and area[512:] == setup[512:]


@needs_root
@needs_grub
def test_xen2kvmdisk_takes_the_boot_loader_option_too(fake_rig, grub2_guest):
    """The legacy command line reaches the same planner: GRUB 2 at N=32 refused, nothing changed;
    with -c its dry-run builds the boot area before any write."""
    rig = fake_rig
    rig.ok("xen2kvm sim create-vm kvm --hypervisor xen --disk xd:64M")
    rig.ok(f"xen2kvm sim import kvm xd {grub2_guest}")
    rig.move_to_kvm("kvm")
    before = world_of(rig)
    r = rig.run("xen2kvmDisk -x xd -k xd --boot-loader guest -y")
    assert r.rc == 4 and "N=32 leaves 31: use the 2048-sector layout (-c, --no-dos)" in r.err, r
    assert world_of(rig) == before
    assert "--boot-area" in rig.ok("xen2kvmDisk -x xd -k xd -c --boot-loader guest").out
    assert rig.run("xen2kvmDisk -x xd -k xd -b --boot-loader guest").rc == 2
    assert world_of(rig) == before
