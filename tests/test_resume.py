"""Resume after a crash: fail the k-th mutating call for every k, rerun the same command, and
reach the same final state and bytes as an uninterrupted run (docs/architecture.md §2)."""

from __future__ import annotations

import stat
import sys

import pytest

from xen2kvm.backends.fake.sim import seeded

pytestmark = pytest.mark.resume


def observable(rig) -> tuple:
    """Everything an operator could see: volumes, tags, attachments, bytes, dm devices."""
    b = rig.backends()
    c = b.cluster
    vols = []
    for v in sorted(c.volumes.values(), key=lambda v: v.name):
        vols.append((v.name, v.size_bytes, tuple(sorted(v.tags.items())),
                     tuple(sorted(c.attachments.get(v.name, {}))), tuple(v.store.digest())))
    for x in sorted(c.snapshots.values(), key=lambda x: x.name):
        vols.append((x.name, x.size_bytes, tuple(sorted(x.tags.items())), (),
                     tuple(x.store.digest())))
    dms = []
    for h in sorted(c.hosts):
        host = b.host_named(h)
        dms += [(h, n, t, host.dm_status(n)) for n, t in host.dm_tables().items()]
    return tuple(vols), tuple(dms)


def stop_vm_without_release(rig, vm: str) -> None:
    b = rig.backends()
    with b.transaction():
        sim_vm = b.cluster.vms[vm]
        for path in sim_vm.opened:
            b.host_named(sim_vm.host).open_device(path, -1)
        sim_vm.opened, sim_vm.running = [], False


def _base(rig, tmp_path):
    rig.ok("xen2kvm sim create-vm lnx1 --hypervisor xen --disk ldisk:8M,ldisk2:4M")
    rig.ok("xen2kvm sim create-vm kvmlnx --hypervisor kvm --disk kdisk:8M,kdisk2:4M")
    rig.ok("xen2kvm sim create-vm win1 --hypervisor xen --disk wdisk:4M")
    rig.ok("xen2kvm sim create-vm kvmwin --hypervisor kvm --disk kwdisk:4M")
    helper = tmp_path / "helper.py"
    helper.write_text(f"#!{sys.executable}\nimport sys\nf = open(sys.argv[1], 'r+b')\n"
                      "f.seek(4096)\nf.write(b'HELPED')\n")
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    rig.vars["helper"] = str(helper)


def _prepared_running(rig):
    rig.ok("xen2kvmDisk -y -x ldisk -k kdisk")
    rig.ok("xen2kvmDisk -y -x ldisk2 -k kdisk2")
    rig.ok("xen2kvm sim power on kvmlnx")
    rig.ok(f"xen2kvm sim write kvmlnx kdisk {32 * 512 + 8192} 4096 --seed 3")


def _synced(rig):
    _prepared_running(rig)
    rig.ok("xen2kvmDisk -y -m kvmlnx")
    rig.advance(3600)
    rig.ok(f"xen2kvm sim write kvmlnx kdisk2 {32 * 512} 4096 --seed 4")


def _migrated_stopped(rig):
    _synced(rig)
    rig.ok("xen2kvmDisk -y -m kvmlnx")
    stop_vm_without_release(rig, "kvmlnx")


def _released(rig):
    _migrated_stopped(rig)
    rig.ok("xen2kvm release kvmlnx -y")


def _syncing_stopped(rig):
    _prepared_running(rig)
    rig.ok("xen2kvmDisk -y -m kvmlnx")
    rig.advance(2)
    rig.ok("xen2kvm sim power off kvmlnx")


def _ran_raw(rig):
    _released(rig)
    rig.ok("xen2kvmDisk -y -z -m kvmlnx")
    rig.ok("xen2kvm sim power on kvmlnx")
    rig.ok("xen2kvm sim power off kvmlnx")


def _case1_cleaned(rig):
    rig.ok("xen2kvmDisk -y -x wdisk -k kwdisk -b")
    rig.ok("xen2kvmDisk -y -z")


FLOWS = {
    "prepare": (lambda rig: None, "xen2kvmDisk -y -x ldisk -k kdisk -c -p {helper}"),
    "prepare-in-place": (lambda rig: None, "xen2kvmDisk -y -x ldisk -k ldisk"),
    "case-1": (lambda rig: None, "xen2kvmDisk -y -x wdisk -k kwdisk -b"),
    "assemble": (lambda rig: (rig.ok("xen2kvmDisk -y -x ldisk -k kdisk"),
                              rig.ok("xen2kvmDisk -y -x ldisk2 -k kdisk2")),
                 "xen2kvm assemble kvmlnx --disk kdisk kdisk2 -y"),
    "sync-start": (lambda rig: (rig.ok("xen2kvmDisk -y -x ldisk -k kdisk"),
                                rig.ok("xen2kvmDisk -y -x ldisk2 -k kdisk2"),
                                rig.ok("xen2kvm sim power on kvmlnx")),
                   "xen2kvmDisk -y -m kvmlnx"),
    "sync-completion": (_synced, "xen2kvmDisk -y -m kvmlnx"),
    "release": (_migrated_stopped, "xen2kvm release kvmlnx -y"),
    "cleanup": (_released, "xen2kvmDisk -y -z -m kvmlnx"),
    "abort-syncing": (_syncing_stopped, "xen2kvm abort kvmlnx -y"),
    "abort-released": (_released, "xen2kvm abort kvmlnx -y"),
    "abort-case-1": (lambda rig: rig.ok("xen2kvmDisk -y -x wdisk -k kwdisk -b"),
                     "xen2kvm abort --disk kwdisk -y"),
    "abort-case-1-cleaned": (_case1_cleaned, "xen2kvm abort --disk kwdisk -y"),
    "abort-in-place": (lambda rig: rig.ok("xen2kvmDisk -y -x ldisk -k ldisk"),
                       "xen2kvm abort --disk ldisk -y"),
    "purge": (_ran_raw, "xen2kvm purge kvmlnx -y"),
}
COUNTS: dict[str, int] = {}


def _fresh(tmp_path, name, FakeRig):
    rig = FakeRig(tmp_path / name)
    _base(rig, tmp_path)
    return rig


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_every_crash_point_resumes_to_the_same_state(tmp_path, flow, fake_rig):
    FakeRig = type(fake_rig)
    setup, command = FLOWS[flow]
    ref = _fresh(tmp_path, "ref", FakeRig)
    setup(ref)
    b = ref.backends()
    b.cluster.mutations = 0
    b.close()
    ref.ok(command)
    mutations = ref.backends().cluster.mutations
    want = observable(ref)
    assert mutations > 0
    for k in range(1, mutations + 1):
        rig_k = _fresh(tmp_path, f"k{k}", FakeRig)
        setup(rig_k)
        rig_k.ok(f"xen2kvm sim fault {k}")
        crashed = rig_k.run(command)
        assert crashed.rc != 0 and "simulated failure" in crashed.err, (k, crashed)
        # a crash while releasing the run's claim leaves it: the operator takes it over
        rig_k.ok(command + " --take-over")
        assert observable(rig_k) == want, f"{flow}: crash at mutating call {k} did not resume"
    COUNTS[flow] = mutations
    print(f"\nresume {flow}: {mutations} crash points, all resumed")


def test_seeded_data_is_deterministic():
    assert seeded(5, 64) == seeded(5, 64) != seeded(6, 64)
