"""One source for device paths: the planner's dm tables and the phases read back from the host's
tables use the host's DevicePaths, so a moved device root moves both (issue 12)."""

from __future__ import annotations

import os

from xen2kvm import plans
from xen2kvm import steps as s
from xen2kvm.backend import Volume
from xen2kvm.backends.storpool.host import LocalHost
from xen2kvm.backends.storpool.remote_host import RemoteHost
from xen2kvm.dmstatus import parse_status
from xen2kvm.naming import DevicePaths
from xen2kvm.phases import Phase
from xen2kvm.process import Runner
from xen2kvm.world import World

M = 1 << 20
ROOT = "/srv/x2k-dev"
TARGETS = {"raid": (1, 15, 1), "linear": (1, 4, 0)}


def _prepared(dm=None) -> World:
    clone = Volume("xen-ldisk", 16 * M, {"xen2kvm": "clone", "kvm": "kdisk", "n": "32",
                                         "ksz": str(16 * M // 512)}, ("kvm1",))
    vols = [Volume("ldisk", 16 * M), Volume("kdisk", 16 * M + 32 * 512, {"xen": "xen-ldisk"}),
            clone, *(Volume(f"x2km{i}-kdisk", 4 * M, {"xen2kvm": "meta"}) for i in (0, 1))]
    return World({v.name: v for v in vols}, "kvm1", dm or {}, paths=DevicePaths(ROOT))


def _words(plan) -> set[str]:
    text = "\n".join(x.render() for x in plan.steps
                     if isinstance(x, (s.DmCreate, s.AssembleRaid, s.DmReload)))
    return {w for w in text.split() if w.startswith("/")}


def test_the_planned_tables_name_devices_under_the_hosts_root():
    plan = plans.plan_assemble(_prepared(), "vm1", ["kdisk"], TARGETS)
    assert _words(plan) == {f"{ROOT}/storpool/kdisk", f"{ROOT}/storpool/xen-ldisk",
                            f"{ROOT}/storpool/x2km0-kdisk", f"{ROOT}/mapper/xen2kvm-vm1-kdisk-lin"}


def test_the_phase_is_read_from_tables_that_name_the_roots_paths():
    lin = f"0 32 linear {ROOT}/storpool/kdisk 0\n32 32768 linear {ROOT}/storpool/xen-ldisk 0"
    w = _prepared({"xen2kvm-vm1-kdisk-lin": lin, "xen2kvm-vm1-kdisk": "0 32800 raid raid1"})
    w.statuses["xen2kvm-vm1-kdisk"] = parse_status(
        "0 32800 raid raid1 1 A 32800/32800 idle 0 0 -")
    (d,) = w.disks()
    assert (d.vm, d.disk, d.phase) == ("vm1", "kdisk", Phase.ASSEMBLED)
    assert w.dm_using("xen-ldisk") == ["xen2kvm-vm1-kdisk-lin"]
    plan = plans.plan_sync(w, "vm1", TARGETS)
    assert f"{ROOT}/storpool/kdisk" in _words(plan)
    assert f"adding {ROOT}/storpool/kdisk as leg 1" in "\n".join(plan.notes)


def test_the_hosts_take_the_root_and_leave_the_environment_alone(monkeypatch):
    monkeypatch.delenv("DM_DISABLE_UDEV", raising=False)
    before = dict(os.environ)
    for host in (LocalHost("h", Runner(), ROOT), RemoteHost("h", Runner(), ROOT)):
        assert host.paths == DevicePaths(ROOT) and host.device_path("v") == f"{ROOT}/storpool/v"
    assert dict(os.environ) == before


def test_local_and_remote_hosts_only_choose_strategies():
    """What the host does lives in the core; a method added there runs through the Runner
    and the strategies, never on this machine for a remote host by inheritance."""
    assert not issubclass(RemoteHost, LocalHost)
    assert {n for n in vars(LocalHost) if not n.startswith("__")} == set()
    assert {n for n in vars(RemoteHost) if not n.startswith("__")} == {"hold_lock"}
