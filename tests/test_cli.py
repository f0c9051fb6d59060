"""The command lines' edges: usage errors, the demo, the Runner, the lock, the real backend stub."""

from __future__ import annotations

import sys

import pytest

from xen2kvm import cli, legacy
from xen2kvm.errors import CommandFailed
from xen2kvm.process import Runner


def test_demo_runs_both_cases_and_verifies(tmp_path, capsys):
    assert cli.main(["demo", "--keep", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert out.count("identical") == 3 and "DIFFERENT" not in out
    assert "syncing" in out and "every disk is in sync" in out
    assert (tmp_path / "demo" / "cluster.db").exists()


def test_storpool_backend_without_configuration_is_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("XEN2KVM_STORPOOL_CONF", str(tmp_path / "missing.conf"))
    assert cli.main(["--backend", "storpool", "status"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.conf is missing" in err


@pytest.mark.parametrize("argv,message", [
    (["--backend", "fake", "status"], "needs a state folder"),
    (["--backend", "nosuch", "status"], "unknown backend"),
    (["prepare", "-x", "a"], "required"),
])
def test_usage_errors_are_one_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("argv", [["abort"], ["purge", "vm1", "--disk", "d"]])
def test_abort_and_purge_take_a_vm_or_a_disk(argv, tmp_path, capsys):
    assert cli.main(["--backend", "fake", "--state", str(tmp_path / "c"), *argv]) == 2
    err = capsys.readouterr().err
    assert "takes a VM or --disk" in err and err.count("\n") == 1
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("argv,message", [
    (["-z", "-x", "a"], "-z takes only -m VM"),
    (["-m", "vm", "-k", "b"], "-m takes only a VM id"),
    (["-Z", "-z"], "-Z takes only -m VM"),
])
def test_legacy_flag_combinations(argv, message, tmp_path, capsys):
    assert legacy.main(["--backend", "fake", "--state", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_sim_commands_refuse_bad_input(fake_rig):
    rig = fake_rig
    rig.ok("xen2kvm sim create-vm vm1 --hypervisor kvm --disk d1:1M")
    for command, message in [
        ("xen2kvm sim create-vm vm1 --hypervisor kvm --disk d2:1M", "exists already"),
        ("xen2kvm sim power off vm1", "is not running"),
        ("xen2kvm sim write vm1 d1 0 512 --seed 1", "powered off"),
        ("xen2kvm sim power on nosuch", "no simulated VM"),
        ("xen2kvm sim fail-volume nosuch", "no volume"),
        ("xen2kvm sim create-vm vm2 --hypervisor kvm --disk d2:ten", "bad size"),
    ]:
        r = rig.run(command)
        assert r.rc != 0 and message in r.err, (command, r)
    rig.ok("xen2kvm sim power on vm1")
    assert rig.run("xen2kvm sim power on vm1").rc != 0
    assert "no disk d9" in rig.run("xen2kvm sim write vm1 d9 0 512 --seed 1").err


def test_tune_refuses_nonsense(fake_rig):
    rig = fake_rig
    assert "positive" in rig.run("xen2kvm tune --max 0 -y").err
    assert "must not exceed" in rig.run("xen2kvm tune --min 5000 --max 4000 -y").err
    out = rig.ok("xen2kvm tune").out
    assert "speed_limit_max=200000" in out


def test_runner_runs_argv_lists_and_redacts_secrets():
    r = Runner(secrets=["s3cret"])
    res = r.run([sys.executable, "-c", "print('hello')"])
    assert res.rc == 0 and res.stdout == "hello\n" and res.argv[0] == sys.executable
    with pytest.raises(CommandFailed) as exc:
        r.run([sys.executable, "-c", "import sys; sys.exit('bad s3cret')"])
    assert "s3cret" not in str(exc.value) and "***" in exc.value.stderr
    assert r.run(["/nonexistent/tool"], check=False).rc == 127
    assert len(r.recorder) == 3


def test_sync_without_devices_and_release_without_devices(fake_rig):
    rig = fake_rig
    assert "nothing to sync" in rig.ok("xen2kvm sync -y").out
    assert "nothing to release" in rig.ok("xen2kvm release vm1 -y").out
    assert "nothing to clean up" in rig.ok("xen2kvm cleanup -y").out
