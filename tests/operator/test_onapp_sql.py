"""The in-place prepare prints the OnApp database change the operator must make, in its
dry-run and when it has run; values are filled in when given. The tool never runs it."""

from __future__ import annotations

import pytest

from xen2kvm import onapp

pytestmark = pytest.mark.inplace

PLACEHOLDERS = ("UPDATE virtual_machines SET hypervisor_id=<KVM hypervisor id> "
                "WHERE id=<OnApp VM id>;")


@pytest.fixture
def inplace(fake_rig):
    fake_rig.create_vm("lnx1", "xen", "ldisk", 8 << 20)
    fake_rig.move_to_kvm("lnx1")
    return fake_rig


def test_dry_run_prints_the_sql_with_placeholders(inplace):
    before = inplace.fingerprint()
    out = inplace.ok("xen2kvmDisk -x ldisk -k ldisk").out
    assert PLACEHOLDERS in out.splitlines()
    assert "After this prepare (-y)" in out
    assert "give --onapp-vm-id and --onapp-hypervisor-id" in out
    assert inplace.fingerprint() == before


def test_completion_prints_the_sql_with_the_values_given(inplace):
    out = inplace.ok("xen2kvm prepare -x ldisk -k ldisk --onapp-vm-id 4711 "
                     "--onapp-hypervisor-id 12 -y").out
    sql = "UPDATE virtual_machines SET hypervisor_id=12 WHERE id=4711;"
    assert sql in out.splitlines()
    assert "# OnApp: Now, with the VM still powered off" in out
    assert "placeholders" not in out
    assert inplace.volumes()["ldisk"].tags["xen"] == "xen-ldisk"  # the prepare did run


def test_legacy_takes_one_value_and_keeps_the_other_placeholder(inplace):
    out = inplace.ok("xen2kvmDisk -x ldisk -k ldisk --onapp-hypervisor-id 3").out
    assert "UPDATE virtual_machines SET hypervisor_id=3 WHERE id=<OnApp VM id>;" in out
    assert "give --onapp-vm-id" in out


def test_no_sql_for_a_shell_vm_migration(fake_rig):
    fake_rig.create_vm("lnx1", "xen", "ldisk", 8 << 20)
    fake_rig.create_vm("kvmlnx", "kvm", "kdisk", 8 << 20)
    out = fake_rig.ok("xen2kvmDisk -x ldisk -k kdisk").out
    assert "virtual_machines" not in out


def test_ids_must_be_numbers(inplace):
    r = inplace.run("xen2kvm prepare -x ldisk -k ldisk --onapp-vm-id '1; DROP TABLE disks'")
    assert r.rc == 2 and "invalid int value" in r.err
    assert onapp.sql(7, None).endswith("WHERE id=7;")
