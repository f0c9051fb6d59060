"""Model fidelity (issue 13), through the command line on a fake state folder: I/O past the end
of a device fails or reads short as the kernel's does, `sim create-vm` is all or nothing, and
clock and size inputs outside what is possible are refused with nothing changed."""

from __future__ import annotations

import pytest

MIB = 1024 * 1024
DISK = 64 * MIB


@pytest.fixture
def vm(fake_rig):
    """A running VM with one 64 MiB disk whose last 4 KiB hold known bytes."""
    fake_rig.ok("xen2kvm sim create-vm v1 --hypervisor kvm --disk d1:64M")
    fake_rig.ok("xen2kvm sim power on v1")
    fake_rig.ok(f"xen2kvm sim write v1 d1 {DISK - 4096} 4096 --seed 7")
    fake_rig.ok("xen2kvm sim write v1 d1 0 4096 --seed 8")
    return fake_rig


def _disk(rig) -> bytes:
    return rig.ok(f"xen2kvm sim read v1 d1 0 {DISK}").data


def _show(rig) -> str:
    return rig.ok("xen2kvm sim show --json").out


def _refused(rig, command: str) -> str:
    """A refusal: non-zero, one line on stderr (returned)."""
    r = rig.run(command)
    assert r.rc != 0, (command, r)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, (command, r)
    return lines[0]


@pytest.mark.parametrize("offset", [4 * 1024 * MIB, DISK, DISK - 2048],
                         ids=["at-4GiB", "at-the-end", "into-the-end"])
def test_a_write_past_the_end_fails_with_enospc_and_changes_no_byte(vm, offset):
    before = _disk(vm)
    line = _refused(vm, f"xen2kvm sim write v1 d1 {offset} 4096 --seed 9")
    assert "ENOSPC" in line, line
    assert _disk(vm) == before


def test_a_read_across_the_end_is_short_and_past_it_is_empty(vm):
    tail = vm.ok(f"xen2kvm sim read v1 d1 {DISK - 4096} 4096").data
    assert len(tail) == 4096 and tail != bytes(4096)
    assert vm.ok(f"xen2kvm sim read v1 d1 {DISK - 100} 4096").data == tail[-100:]
    for offset in (DISK, DISK + 1, 4 * 1024 * MIB):
        assert vm.ok(f"xen2kvm sim read v1 d1 {offset} 4096").data == b""


def test_create_vm_with_a_disk_name_in_use_creates_nothing(vm):
    before = _show(vm)
    line = _refused(vm, "xen2kvm sim create-vm v2 --hypervisor kvm --disk n1:8M,d1:8M")
    assert "d1" in line, line
    assert _show(vm) == before
    assert '"v2"' not in before and '"n1"' not in before


@pytest.mark.parametrize("seconds", ["nan", "inf", "-- -inf", "-- -100", "-- -0.5"])
def test_tick_refuses_what_time_cannot_do(vm, seconds):
    vm.ok("xen2kvm sim tick 5")
    before = _show(vm)
    assert '"clock": 5.0' in before
    _refused(vm, f"xen2kvm sim tick {seconds}")
    assert _show(vm) == before


@pytest.mark.parametrize("disks", ["big:1000000000000000000000000000000T", "big:1025T",
                                   "ok:8M,big:1000000000000000000000000000000T",
                                   "ok:8M,big:2000T"])
def test_a_disk_above_1_pib_is_refused_and_nothing_is_created(vm, disks):
    before = _show(vm)
    _refused(vm, f"xen2kvm sim create-vm v3 --hypervisor kvm --disk {disks}")
    assert _show(vm) == before
