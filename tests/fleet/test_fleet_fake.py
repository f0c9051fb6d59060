"""Fleet on the fake: eight hosts of one fake cluster, one of them down, without root or sshd.

The same fleet code runs as over SSH (fleet.py opens every host through the registry); a host
that is down is a fact of the model (`sim host down`): every call to it fails as an
unreachable SSH host's does.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest

from xen2kvm import cli
from xen2kvm import naming as nm
from xen2kvm.backends.fake import FakeBackends
from xen2kvm.dmstatus import parse_status
from xen2kvm.process import Runner

pytestmark = [pytest.mark.fleet, pytest.mark.fake]
MIB = 1 << 20
N = 32  # sectors: prepare without --no-dos
HOSTS = [f"kvm{i}" for i in range(1, 9)]
UP, DOWN = HOSTS[:-1], HOSTS[-1]


class Cluster:
    def __init__(self, state):
        self.state = state

    def run(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(["--backend", "fake", "--state", str(self.state), *argv])
        return rc, out.getvalue(), err.getvalue()

    def ok(self, *argv: str) -> str:
        rc, out, err = self.run(*argv)
        assert rc == 0, (argv, out, err)
        return out

    def fleet(self, *argv: str) -> tuple[int, str, str]:
        return self.run("fleet", *argv, "--hosts", ",".join(HOSTS))

    def model(self):
        return FakeBackends(str(self.state), "observer", Runner()).cluster


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """On each of eight hosts a VM whose disk is prepared (case-2) and assembled; then the
    last host goes down (built once; each test works on a copy)."""
    c = Cluster(tmp_path_factory.mktemp("fleet8") / "cluster")
    for i, host in enumerate(HOSTS, 1):
        c.ok("--host", "xen1", "sim", "create-vm", f"xvm{i}", "--hypervisor", "xen",
             "--disk", f"xd{i}:1M", "--seed", str(i))
        c.ok("sim", "create-vm", f"vm{i}", "--hypervisor", "kvm", "--disk", f"kd{i}:1M")
        c.ok("--host", host, "prepare", "-x", f"xd{i}", "-k", f"kd{i}", "-y")
        c.ok("--host", host, "assemble", f"vm{i}", "--disk", f"kd{i}", "-y")
    c.ok("sim", "host", "down", DOWN)
    return c.state


@pytest.fixture
def fleet8(built, tmp_path) -> Cluster:
    shutil.copytree(built, tmp_path / "cluster")
    return Cluster(tmp_path / "cluster")


def _raid(model, i: int):
    host = model.hosts[HOSTS[i - 1]]
    return host.dm.get(nm.dm_raid(f"vm{i}", f"kd{i}"))


def _down_line(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"xen2kvm: error: host {DOWN}: unreachable: host {DOWN}: ")


def test_sync_on_eight_hosts_with_one_down(fleet8):
    c = fleet8
    before = _raid(c.model(), 8).table
    rc, out, err = c.fleet("sync", "-y")
    assert rc == 7 and "7 of 8 hosts ok" in out
    _down_line(err)
    m = c.model()
    for i in range(1, 8):  # the KVM leg is in each reachable host's raid1, resyncing
        raid = _raid(m, i)
        assert len(raid.raid.legs) == 2 and nm.volume_path(f"kd{i}") in raid.table
    c.ok("sim", "tick", "60")
    rc, out, err = c.fleet("sync", "-y")
    assert rc == 7 and "7 of 8 hosts ok" in out
    _down_line(err)
    m = c.model()
    for i in range(1, 8):
        st = parse_status(FakeBackends(str(c.state), HOSTS[i - 1], Runner()).host
                          .dm_status(nm.dm_raid(f"vm{i}", f"kd{i}")))
        assert st.health == "AA" and st.done == st.total
        tags = m.volumes[f"kd{i}"].tags
        assert nm.TAG_XEN not in tags, tags  # retagged: migrated
        xen = m.volumes[f"xd{i}"].store.read(0, MIB)
        assert m.volumes[f"kd{i}"].store.read(N * 512, MIB) == xen
    # the host that was down: exactly as it was left, its disk not migrated
    assert _raid(m, 8).table == before and len(_raid(m, 8).raid.legs) == 1
    assert nm.TAG_XEN in m.volumes["kd8"].tags


def test_status_and_release_with_one_down(fleet8):
    c = fleet8
    rc, out, err = c.fleet("status", "--json")
    report = json.loads(out)["hosts"]
    assert rc == 7 and [h for h, r in report.items() if r["ok"]] == UP
    assert {row["vm"] for h in UP for row in report[h]["rows"]} == \
        {f"vm{i}" for i in range(1, 8)}
    assert "down" in report[DOWN]["error"] and report[DOWN]["rows"] == []
    _down_line(err)
    vms = [f"vm{i}" for i in range(1, 9)]
    rc, out, err = c.fleet("release", *vms)  # dry-run: nothing changes
    assert rc == 7 and all(_raid(c.model(), i) for i in range(1, 9))
    rc, out, err = c.fleet("release", *vms, "-y")
    assert rc == 7 and "7 of 8 hosts ok" in out
    _down_line(err)
    m = c.model()
    for host in UP:
        assert m.hosts[host].dm == {}, host  # every dm device of the VMs released
        # the clone and metadata volumes detached; the VM's own volume stays for its reboot
        i = UP.index(host) + 1
        assert [v for v, at in m.attachments.items() if host in at] == [f"kd{i}"], host
    assert set(m.hosts[DOWN].dm) == {nm.dm_raid("vm8", "kd8"), nm.dm_linear("vm8", "kd8")}
    c.ok("sim", "host", "up", DOWN)  # back up: the same command finishes there
    rc, out, err = c.fleet("release", "vm8", "-y")
    assert rc == 0 and "8 of 8 hosts ok" in out and c.model().hosts[DOWN].dm == {}


def test_a_host_that_is_down_refuses_single_commands_too(fleet8):
    rc, out, err = fleet8.run("--host", DOWN, "sync", "vm8", "-y")
    assert rc == 4 and err.startswith(f"xen2kvm: error: unreachable: host {DOWN}: ")
    assert err.count("\n") == 1


def test_fleet_wait_keeps_going_for_a_disk_in_sync_but_not_yet_retagged():
    """A disk can reach in-sync after its host's round planned: only the next round retags it
    (the lab's fleet --wait test caught a wait that stopped there). A VM with a failed disk is
    not retagged, so it does not keep the wait going."""
    from xen2kvm import fleet

    def row(vm, phase, problem=None, host="h1"):
        return {"host": host, "vm": vm, "phase": phase, "problem": problem}

    assert fleet._busy([row("a", "migrated"), row("b", "synced")])
    assert not fleet._busy([row("a", "migrated"), row("b", "released")])
    assert not fleet._busy([row("b", "synced"), row("b", "syncing", "leg 1 failed")])
    assert fleet._busy([row("b", "synced"), row("b", "syncing", "leg 1 failed", host="h2")])
