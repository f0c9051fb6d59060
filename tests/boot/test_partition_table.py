"""The partition-table write keeps a shell disk's boot code, and the dry-run's sfdisk script,
fed to the real sfdisk, writes exactly the bytes that `-y` wrote."""

from __future__ import annotations

import random
import re
import shutil
import subprocess

import pytest

from xen2kvm import mbr
from xen2kvm.units import MIB

pytestmark = pytest.mark.skipif(not shutil.which("sfdisk"),
                                reason="sfdisk (apt package fdisk) is missing")
SIZE = 16 * MIB


def shell_image(path, n: int, seed: int) -> bytes:
    """A shell disk: boot code, a disk signature, an old label, code after the MBR."""
    rnd = random.Random(seed)
    head = bytearray(rnd.randbytes(n * 512))
    head[444:446] = bytes(2)  # unused by every MBR boot code; sfdisk zeroes it
    head[446:512] = mbr.build(63, 1000)[446:512]
    with open(path, "wb") as f:
        f.truncate(SIZE)
        f.write(head)
        f.seek(SIZE // 2)
        f.write(rnd.randbytes(4096))
    return bytes(head)


def sfdisk_script(dry_out: str, volume: str, image) -> str:
    """The dry-run's sfdisk command (the comment under the partition-table write), pointed at
    an image file instead of the volume."""
    m = re.search(r"^# sfdisk .*?^# EOF$", dry_out, re.M | re.S)
    assert m, dry_out
    script = "\n".join(line[2:] for line in m.group(0).splitlines())
    return script.replace(f"/dev/storpool/{volume}", str(image))


@pytest.mark.parametrize("n,flag", [(32, ""), (2048, "-c")])
def test_prepare_keeps_the_boot_code_and_the_dry_run_is_what_sfdisk_does(fake_rig, tmp_path,
                                                                         n, flag):
    rig = fake_rig
    img = tmp_path / "shell.img"
    head = shell_image(img, n, seed=n)
    rig.ok("xen2kvm sim create-vm lnx --hypervisor xen --disk xd:12M")
    rig.ok(f"xen2kvm sim create-vm kvm --hypervisor kvm --disk kd:{SIZE}")
    rig.ok(f"xen2kvm sim import kvm kd {img}")
    dry = rig.ok(f"xen2kvmDisk -x xd -k kd {flag}")
    rig.ok(f"xen2kvmDisk -y -x xd -k kd {flag}")
    done = rig.read_volume("kd", 0, n * 512)
    assert done[:446] == head[:446] and done[512:] == head[512:]
    assert mbr.parse(done) == [mbr.Partition(n, 12 * MIB // 512, 0x83)]
    # the same script through the real sfdisk, on the shell image grown by N sectors
    with open(img, "r+b") as f:
        f.truncate(SIZE + n * 512)
    subprocess.run(["bash", "-c", sfdisk_script(dry.out, "kd", img)], check=True,
                   capture_output=True)
    assert img.read_bytes()[: n * 512] == done


def test_a_zero_signature_stays_zero_as_sfdisk_leaves_it(fake_rig, tmp_path):
    rig = fake_rig
    img = tmp_path / "blank.img"
    img.write_bytes(bytes(SIZE))
    rig.ok("xen2kvm sim create-vm lnx --hypervisor xen --disk xd:12M")
    rig.ok(f"xen2kvm sim create-vm kvm --hypervisor kvm --disk kd:{SIZE}")
    dry = rig.ok("xen2kvmDisk -x xd -k kd")
    rig.ok("xen2kvmDisk -y -x xd -k kd")
    done = rig.read_volume("kd", 0, 512)
    assert mbr.signature(done) == 0 and not mbr.has_boot_code(done)
    with open(img, "r+b") as f:
        f.truncate(SIZE + 32 * 512)
    subprocess.run(["bash", "-c", sfdisk_script(dry.out, "kd", img)], check=True,
                   capture_output=True)
    assert img.read_bytes()[:512] == done
