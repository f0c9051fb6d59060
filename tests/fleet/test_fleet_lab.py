"""In the kernel lab: two sshd "hosts" run a fleet sync whose dm work is real."""

from __future__ import annotations

import os

import pytest

from xen2kvm.dmstatus import parse_status
from xen2kvm.testing.sshd import SSHD, SshdFarm

pytestmark = [pytest.mark.fleet, pytest.mark.lab]
MIB = 1 << 20


@pytest.fixture
def lab_farm(rig, backend_name, tmp_path):
    if backend_name != "lab":
        pytest.skip("runs with --backend lab")
    if not os.path.exists(SSHD):
        pytest.skip("needs openssh-server")
    f = SshdFarm(tmp_path / "ssh")
    yield f
    f.stop()


def test_fleet_sync_with_real_dm_ends_byte_identical(rig, lab_farm, tmp_path):
    a, b = lab_farm.start("hostA"), lab_farm.start("hostB")
    inv = lab_farm.inventory(tmp_path / "inv.ini", [a, b], client_ids={"hostA": 11, "hostB": 12})
    kh = lab_farm.known_hosts()
    ssh = f"--inventory {inv} --known-hosts {kh}"
    for vm, xen, kvm, host in (("vmA", "xa", "ka", "hostA"), ("vmB", "xb", "kb", "hostB")):
        rig.create_vm(f"x{vm}", "xen", xen, 12 * MIB)
        rig.create_vm(vm, "kvm", kvm, 12 * MIB)
        rig.ok(f"xen2kvmDisk -y -x {xen} -k {kvm}")
        r = rig.ok(f"xen2kvm {ssh} --host {host} assemble {vm} --disk {kvm} -y")
        assert "dmsetup create xen2kvm-" in r.out
    assert rig.volumes()["ka"].attached == ("client11",)
    assert rig.volumes()["kb"].attached == ("client12",)
    rig.guest_write("vmA", "ka", 32 * 512 + 4096, 8192, 1)
    r = rig.ok(f"xen2kvm fleet sync {ssh} -y")
    assert "2 of 2 hosts ok" in r.out and "as leg 1" in r.out
    rig.guest_write("vmB", "kb", 32 * 512 + 5 * MIB, 65536, 2)
    for disk in ("vmA-ka", "vmB-kb"):
        rig.wait_resync(lambda d=disk: parse_status(rig.dm_status(f"xen2kvm-{d}")))
    # the lab's "hosts" share one kernel, so both see both VMs: each disk's claim lets one
    # host retag it while the other is refused (exit 3 there; when both back off, neither),
    # as two controllers should be; the next fleet sync finds the rest
    out = ""
    for _ in range(3):
        r = rig.run(f"xen2kvm fleet sync {ssh} -y")
        out += r.out
        if r.rc == 0:
            break
        assert "is claimed by another xen2kvm run" in r.out + r.err, r
    assert r.rc == 0, r
    assert "hostA: vmA: every disk is in sync" in out and "hostB: vmB" in out
    r = rig.ok(f"xen2kvm fleet status {ssh} --json")
    assert '"phase": "migrated"' in r.out
    for xen, kvm in (("xa", "ka"), ("xb", "kb")):
        assert "xen" not in rig.volumes()[kvm].tags
        want = bytearray(rig.xen_data[xen])
        for _vm, disk, off, data in rig.writes:
            if disk == kvm:
                want[off - 32 * 512: off - 32 * 512 + len(data)] = data
        assert rig.read_volume(kvm, 32 * 512, len(want)) == bytes(want)
    # the lab's "hosts" share one kernel, so each VM is released where it runs
    rig.ok(f"xen2kvm {ssh} --host hostA release vmA -y")
    rig.ok(f"xen2kvm {ssh} --host hostB release vmB -y")
    assert rig.dm_tables() == {}
