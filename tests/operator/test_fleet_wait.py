"""In the kernel lab: `fleet sync --wait` over two sshd "hosts" repeats the sync on every host
until both copies are done; off a terminal it prints one plain line per disk and round, and
`fleet status` shows the cluster's free space and the need of the migrations in progress."""

from __future__ import annotations

import re

import pytest

from ..fleet.test_fleet_lab import lab_farm  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.fleet, pytest.mark.lab, pytest.mark.progress]
MIB = 1 << 20


def test_fleet_sync_wait_until_every_host_is_in_sync(rig, lab_farm, tmp_path):  # noqa: F811
    a, b = lab_farm.start("hostA"), lab_farm.start("hostB")
    inv = lab_farm.inventory(tmp_path / "inv.ini", [a, b], client_ids={"hostA": 11, "hostB": 12})
    ssh = f"--inventory {inv} --known-hosts {lab_farm.known_hosts()}"
    rig.ok("xen2kvm tune --max 1024 -y")  # about 12 s: several rounds see it move
    for vm, xen, kvm, host in (("vmA", "xa", "ka", "hostA"), ("vmB", "xb", "kb", "hostB")):
        rig.create_vm(f"x{vm}", "xen", xen, 12 * MIB)
        rig.create_vm(vm, "kvm", kvm, 12 * MIB)
        rig.ok(f"xen2kvmDisk -y -x {xen} -k {kvm}")
        rig.ok(f"xen2kvm {ssh} --host {host} assemble {vm} --disk {kvm} -y")
    r = rig.ok(f"xen2kvm fleet status {ssh}")
    need = 3 * 2 * (32 * 512 + 12 * MIB)  # two disks, three copies each
    assert f"migrations in progress need {need / MIB:.1f} MiB more (2 disks)" in r.out, r
    # the lab's two "hosts" share one kernel: each sees both VMs' devices, and the claims let
    # only one of them change a disk at a time; the wait runs through one host, which syncs both
    one = lab_farm.inventory(tmp_path / "one.ini", [a], client_ids={"hostA": 11})
    r = rig.ok(f"xen2kvm fleet sync --inventory {one} --known-hosts {lab_farm.known_hosts()} "
               "--wait --interval 0.5 -y")
    assert re.search(r"^host[AB]: vmA ka: adding /dev/storpool/ka as leg 1", r.out, re.M), r
    assert re.search(r"^host[AB]: vm[AB] k[ab]: syncing [\d.]+% rate [\d.]+ \w+/s ETA "
                     r"\d+:\d\d:\d\d free after [\d.]+ \w+$", r.out, re.M), r.out
    assert re.search(r"^host[AB]: vmA: every disk is in sync", r.out, re.M), r.out
    assert re.search(r"^host[AB]: vmB: every disk is in sync", r.out, re.M), r.out
    for kvm in ("ka", "kb"):
        assert "xen" not in rig.volumes()[kvm].tags
    rig.ok(f"xen2kvm {ssh} --host hostA release vmA -y")
    rig.ok(f"xen2kvm {ssh} --host hostB release vmB -y")
