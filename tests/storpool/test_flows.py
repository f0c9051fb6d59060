"""Case-1, case-2 prepare and cleanup through both command lines against the emulator."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys

import pytest

from xen2kvm import mbr

from .conftest import TOKEN

pytestmark = pytest.mark.storpool
MIB = 1 << 20


def _helper(tmp_path) -> str:
    path = tmp_path / "helper.py"
    path.write_text(f"#!{sys.executable}\nimport sys\nwith open(sys.argv[1], 'r+b') as f:\n"
                    "    f.seek(2048)\n    f.write(b'CONVERTED')\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_case1_and_its_cleanup(sp):
    sp.create("wdisk", 8 * MIB, b"WIN!")
    sp.create("kwdisk", 8 * MIB)
    dry = sp.ok("xen2kvmDisk -x wdisk -k kwdisk -b")
    assert "storpool volume kwdisk baseOn wdisk tag x2kclaim." in dry  # born claimed
    assert set(sp.emu.volumes) == {"wdisk", "kwdisk"}
    sp.ok("xen2kvmDisk -y -x wdisk -k kwdisk -b")
    assert sp.file("kwdisk").read_bytes() == sp.file("wdisk").read_bytes()
    assert sp.tags("x2kold-kwdisk") == {"xen2kvm": "replaced", "kvm": "kwdisk"}
    sp.ok("xen2kvm cleanup -y")
    assert set(sp.emu.volumes) == {"wdisk", "kwdisk"}


@pytest.mark.parametrize("n,flags", [(32, ""), (2048, "-c")])
def test_case2_prepare_with_helper(sp, tmp_path, n, flags):
    sp.vars["helper"] = _helper(tmp_path)
    sp.create("ldisk", 16 * MIB, b"LNX-")
    sp.create("kdisk", 16 * MIB)
    before = json.dumps(sp.emu.volumes, sort_keys=True)
    dry = sp.ok(f"xen2kvmDisk -x ldisk -k kdisk {flags} -p {{helper}}")
    assert f"start={n}, size=32768, type=83" in dry
    assert json.dumps(sp.emu.volumes, sort_keys=True) == before
    sp.ok(f"xen2kvmDisk -y -x ldisk -k kdisk {flags} -p {{helper}}")
    assert sp.emu.volumes["kdisk"]["size"] == 16 * MIB + n * 512
    assert mbr.parse(sp.file_bytes("kdisk", 0, 512)) == [mbr.Partition(n, 32768, 0x83)]
    clone = sp.file("xen-ldisk").read_bytes()
    xen = sp.file("ldisk").read_bytes()
    assert clone[2048:2057] == b"CONVERTED" and xen[2048:2057] != b"CONVERTED"
    assert clone[:2048] == xen[:2048] and clone[4096:] == xen[4096:]
    assert sp.tags("kdisk") == {"xen": "xen-ldisk"}
    assert sp.tags("xen-ldisk")["helper"] == "ok" and sp.tags("xen-ldisk")["n"] == str(n)
    assert sp.emu.attachments == {}
    if shutil.which("sfdisk"):
        out = subprocess.run(["sfdisk", "--json", str(sp.file("kdisk"))], capture_output=True,
                             text=True, check=True).stdout
        part = json.loads(out)["partitiontable"]["partitions"][0]
        assert (part["start"], part["size"], part["type"]) == (n, 32768, "83")
    status = sp.ok("xen2kvm status --json")
    assert json.loads(status)[0]["phase"] == "prepared"
    # the migration completes in the kernel lab; tag it as sync would, then clean up
    for vol in ("ldisk", "xen-ldisk", "x2km0-kdisk", "x2km1-kdisk"):
        sp.emu.handle("VolumeUpdate", [vol], {"tags": {"vs": "vm1"}})
    sp.emu.handle("VolumeUpdate", ["kdisk"], {"tags": {"xen": ""}})
    sp.ok("xen2kvmDisk -y -z -m vm1")
    assert set(sp.emu.volumes) == {"ldisk", "kdisk"}


def test_refusals_change_nothing(sp):
    sp.create("ldisk", 16 * MIB, b"LNX-")
    sp.create("kdisk", 8 * MIB)
    before = json.dumps(sp.emu.volumes, sort_keys=True)
    assert sp.run("xen2kvmDisk -y -x ldisk -k kdisk") == 3
    assert "larger than the KVM disk's room" in sp.err and sp.err.count("\n") == 1
    sp.emu.handle("VolumesReassignWait", [], {"reassign": [{"volume": "ldisk", "rw": [9]}]})
    assert sp.run("xen2kvmDisk -y -x ldisk -k ldisk") == 3
    assert "attached to client9" in sp.err
    assert json.dumps(sp.emu.volumes, sort_keys=True) == before


@pytest.mark.parametrize("endpoint", ["VolumeCreate", "VolumeUpdate", "VolumesReassignWait",
                                      "VolumeDelete"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_transient_faults_are_ridden_out(sp, endpoint, k):
    sp.create("ldisk", 8 * MIB, b"LNX-")
    sp.create("kdisk", 8 * MIB)
    if endpoint == "VolumeDelete":
        sp.create("kwdisk", 8 * MIB)
        sp.ok("xen2kvmDisk -y -x ldisk -k kwdisk -b")
    sp.emu.inject(endpoint, k, transient=True)
    if endpoint == "VolumeDelete":
        sp.ok("xen2kvmDisk -y -z")
        assert "x2kold-kwdisk" not in sp.emu.volumes
        return
    sp.ok("xen2kvmDisk -y -x ldisk -k kdisk")
    assert sp.tags("kdisk") == {"xen": "xen-ldisk"}


@pytest.mark.parametrize("endpoint", ["VolumeCreate", "VolumeUpdate", "VolumesReassignWait",
                                      "VolumeDelete"])
def test_a_hard_fault_stops_with_one_line_and_a_rerun_finishes(sp, endpoint):
    sp.create("wdisk", 8 * MIB, b"WIN!")
    sp.create("kwdisk", 8 * MIB)
    sp.create("ldisk", 8 * MIB, b"LNX-")
    sp.create("kdisk", 8 * MIB)
    sp.ok("xen2kvmDisk -y -x wdisk -k kwdisk -b")
    command = "xen2kvm cleanup -y" if endpoint == "VolumeDelete" else \
        "xen2kvmDisk -y -x ldisk -k kdisk"
    sp.emu.inject(endpoint, 1, transient=False)
    assert sp.run(command) == 4
    assert "injected failure" in sp.err and sp.err.count("\n") == 1
    sp.ok(command)
    if endpoint == "VolumeDelete":
        assert "x2kold-kwdisk" not in sp.emu.volumes
    else:
        assert sp.tags("kdisk") == {"xen": "xen-ldisk"}


def test_the_token_never_shows(sp, tmp_path):
    sp.vars["helper"] = _helper(tmp_path)
    sp.create("ldisk", 8 * MIB, b"LNX-")
    sp.create("kdisk", 8 * MIB)
    seen = []
    for command in ("xen2kvmDisk -v -x ldisk -k kdisk -p {helper}",
                    "xen2kvmDisk -v -y -x ldisk -k kdisk -p {helper}",
                    "xen2kvm -v status", "xen2kvm -v status --json", "xen2kvm -v cleanup",
                    "xen2kvmDisk -v -y -x nosuch -k kdisk"):
        sp.run(command)
        seen += [sp.out, sp.err]
    seen.append(sp.log.getvalue())
    assert "Running:" in sp.log.getvalue()
    assert all(TOKEN not in text for text in seen)


def test_api_call_counts(sp, capsys):
    sp.create("ldisk", 8 * MIB, b"LNX-")
    sp.create("kdisk", 8 * MIB)
    sp.emu.calls.clear()
    sp.ok("xen2kvmDisk -y -x ldisk -k kdisk")
    prepare = sum(sp.emu.calls.values())
    for i in range(1000):
        sp.emu.handle("VolumeCreate", [], {"name": f"vol{i}", "size": 4096})
    sp.emu.calls.clear()
    sp.ok("xen2kvm status")
    status = dict(sp.emu.calls)
    # recovery points (SnapshotsList) and the free space (VolumeTemplatesStatus): one call each
    assert status == {"VolumesList": 1, "AttachmentsList": 1, "SnapshotsList": 1,
                      "VolumeTemplatesStatus": 1}
    with capsys.disabled():
        print(f"\nAPI calls: case-2 prepare of one disk {prepare}; status over 1002 volumes "
              f"{sum(status.values())} ({status})")
