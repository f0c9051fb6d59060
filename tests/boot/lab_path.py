"""Run inside the kernel lab (user-mode-linux, real dm-raid, the real StorPool backend against
the emulator): migrate a real guest image, write a file into the guest's filesystem through
the raid1 device while the resync runs, finish, and leave the KVM volume as a sparse file in
OUTDIR for QEMU on the host (test_boot_lab.py).

    python tests/boot/lab_path.py COMBO IMAGES OUTDIR
    (COMBO: legacy32, grub2shell2048 or inplace2048)
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.labrig import LabRig  # noqa: E402
from xen2kvm import naming  # noqa: E402
from xen2kvm.dmstatus import parse_status  # noqa: E402

HELPER = str(Path(sys.executable).with_name("xen2kvm-guest"))
GIB = 1024**3
SHELLS = {"legacy32": (32, "kd", "shell-legacy.img", ""),
          "grub2shell2048": (2048, "kd", "shell-grub2.img", " -c")}
NEW_KNOWN = b"written through the raid1 device during the resync\n"


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def put(rig: LabRig, volume: str, image: Path) -> None:
    sh("dd", f"if={image}", f"of={rig.emu.path(volume)}", "bs=1M", "conv=sparse,notrunc")


def write_known_during_resync(rig: LabRig, vm: str, disk: str, n: int) -> None:
    raid = naming.mapper_path(naming.dm_raid(vm, disk))
    mnt = Path(tempfile.mkdtemp())
    sh("mount", "-t", "ext4", "-o", f"loop,offset={n * 512}", raid, str(mnt))
    try:
        (mnt / "root/known").write_bytes(NEW_KNOWN)
    finally:
        sh("umount", str(mnt))
    st = parse_status(rig.dm_status(naming.dm_raid(vm, disk)))
    assert st.done < st.total, f"the resync had ended before the write: {st}"
    print(f"wrote /root/known through {raid} at resync {st.done}/{st.total}", flush=True)


def migrate(combo: str, images: Path, out: Path, tmp: Path) -> None:
    rig = LabRig(tmp, data_size="2400m")
    try:
        n, disk, shell_img, flag = SHELLS.get(combo, (2048, "xd", "", ""))
        rig.create_volume("xd", GIB)
        put(rig, "xd", images / "xen.img")
        if shell_img:
            rig.create_volume("kd", GIB)
            put(rig, "kd", images / shell_img)
            shell = rig.read_volume("kd", 0, n * 512)
            rig.ok(f"xen2kvmDisk -y -x xd -k kd{flag} -p {HELPER}")
            after = rig.read_volume("kd", 0, n * 512)  # the shell's boot code is kept
            assert after[:446] == shell[:446] and after[512:] == shell[512:]
        else:
            rig.ok(f"xen2kvm prepare -x xd -k xd --no-dos --helper {HELPER} "
                   f"--boot-loader guest -y")
        rig.vms["kvm"] = {"hypervisor": "kvm", "disks": [disk], "fds": [], "running": False}
        rig.ok("xen2kvm tune --max 40000 -y")  # so the write lands while the copy runs
        rig.power("kvm", "on")
        rig.ok("xen2kvm sync kvm -y")
        write_known_during_resync(rig, "kvm", disk, n)
        rig.ok("xen2kvm tune --reset -y")
        rig.ok("xen2kvm sync kvm --wait -y")
        rig.power("kvm", "off")
        sh("cp", "--sparse=always", str(rig.emu.path(disk)), str(out / f"{combo}.img"))
    finally:
        rig.close()


def main() -> int:
    combo, images, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    tmp = Path(tempfile.mkdtemp())
    try:
        migrate(combo, images, out, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (out / "known.sha256").write_text(hashlib.sha256(NEW_KNOWN).hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main())
