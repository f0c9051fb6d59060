"""Local edges (issue 10, findings 8-9): the lock folder, the helper's environment, Ctrl-C and a
closed stdout. Observed through files, exit codes, stderr and the fake cluster's state."""

from __future__ import annotations

import os
import pwd
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from xen2kvm import interrupts, lockdir, steps
from xen2kvm.errors import LockBusy, PlanError
from xen2kvm.helper import run as run_helper
from xen2kvm.process import Runner

from ..conftest import FakeRig

PREPARE = "xen2kvmDisk -y -x ldisk -k kdisk"


# the lock folder -------------------------------------------------------------------------------
def test_a_planted_symlink_is_refused_and_nothing_is_created_where_it_points(tmp_path):
    target = tmp_path / "victim"
    target.mkdir()
    (tmp_path / "lock").symlink_to(target)
    with pytest.raises(PlanError, match="is a symlink; remove it"):
        lockdir.acquire(str(tmp_path / "lock"))
    assert list(target.iterdir()) == []


def test_a_planted_lock_file_symlink_is_refused(tmp_path):
    folder = tmp_path / "lock"
    folder.mkdir(mode=0o700)
    (folder / lockdir.LOCK_FILE).symlink_to(tmp_path / "etc-shadow")
    with pytest.raises(PlanError, match="is a symlink; remove it"):
        lockdir.acquire(str(folder))
    assert not (tmp_path / "etc-shadow").exists()


def test_the_folder_is_created_private_and_the_holder_is_named(tmp_path):
    folder = tmp_path / "run" / "lock" / "xen2kvm"
    release = lockdir.acquire(str(folder))
    try:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE((folder / lockdir.LOCK_FILE).stat().st_mode) == 0o600
        with pytest.raises(LockBusy, match=rf"holds {folder}/xen2kvm.lock \(pid {os.getpid()}\)"):
            lockdir.acquire(str(folder))
    finally:
        release()
    lockdir.acquire(str(folder))()


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_a_folder_others_can_write_is_refused(tmp_path, mode):
    folder = tmp_path / "lock"
    folder.mkdir()
    folder.chmod(mode)
    with pytest.raises(PlanError, match="is writable by others.*chmod go-w"):
        lockdir.acquire(str(folder))
    assert list(folder.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a folder to another user")
def test_a_folder_of_another_user_is_refused(tmp_path):
    folder = tmp_path / "lock"
    folder.mkdir(mode=0o700)
    os.chown(folder, pwd.getpwnam("nobody").pw_uid, -1)
    with pytest.raises(PlanError, match="belongs to uid .* not to you"):
        lockdir.acquire(str(folder))


# the helper's environment ----------------------------------------------------------------------
def test_the_helper_runs_without_secrets(tmp_path, monkeypatch):
    out = tmp_path / "env.txt"
    helper = tmp_path / "helper.py"
    helper.write_text(f"#!{sys.executable}\nimport os, sys\n"
                      f"open({str(out)!r}, 'w').write(repr(dict(os.environ)))\n")
    helper.chmod(0o755)
    monkeypatch.setenv("SP_AUTH_TOKEN", "tok-123-SECRET")
    monkeypatch.setenv("DB_PASSWORD", "hunter2")
    monkeypatch.setenv("innocent_name", "holds tok-123-SECRET inside")
    monkeypatch.setenv("KEEP_ME", "yes")
    run_helper(Runner(secrets=["tok-123-SECRET"]), [str(helper)], "/dev/null")
    env = eval(out.read_text())  # noqa: S307 -- our own helper's repr of a dict of strings
    assert env["KEEP_ME"] == "yes" and env["LC_ALL"] == "C"
    assert not {"SP_AUTH_TOKEN", "DB_PASSWORD", "innocent_name"} & set(env)
    assert "tok-123" not in out.read_text() and "hunter2" not in out.read_text()


# Ctrl-C -----------------------------------------------------------------------------------------
def _fake_pair(tmp_path) -> FakeRig:
    rig = FakeRig(tmp_path / "cluster")
    rig.create_vm("lnx1", "xen", "ldisk", 4 << 20)
    rig.create_vm("kvmlnx", "kvm", "kdisk", 4 << 20)
    return rig


def _end_state(rig: FakeRig) -> dict:
    return {n: (v.size_bytes, v.tags, v.attached, rig.read_volume(n, 0, v.size_bytes))
            for n, v in rig.volumes().items()}


@pytest.mark.parametrize("step", [steps.GrowVolume, steps.WritePartitionTable, steps.SetTags])
def test_ctrl_c_mid_plan_is_one_line_exit_130_and_a_rerun_finishes(tmp_path, monkeypatch, step):
    reference = _fake_pair(tmp_path / "reference")
    reference.ok(PREPARE)
    rig = _fake_pair(tmp_path)
    original = step.apply

    def interrupted(self, ctx):
        monkeypatch.setattr(step, "apply", original)
        raise KeyboardInterrupt

    monkeypatch.setattr(step, "apply", interrupted)
    r = rig.run(PREPARE)
    # the only error line (a KVM volume without boot code also gets its warning line)
    errors = [line for line in r.err.splitlines() if ": warning: " not in line]
    assert r.rc == 130 and errors == ["xen2kvmDisk: error: interrupted between steps; rerun the "
                                      "same command to finish"], r
    rig.ok(PREPARE)
    assert _end_state(rig) == _end_state(reference)


def test_ctrl_c_waits_for_the_call_in_flight():
    previous = signal.getsignal(signal.SIGINT)
    interrupts.install()
    finished = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with interrupts.call_in_flight():
                os.kill(os.getpid(), signal.SIGINT)
                finished.append("the call")  # reached: the signal was only noted
        with pytest.raises(KeyboardInterrupt):  # outside a call it stops at once
            os.kill(os.getpid(), signal.SIGINT)
            finished.append("never")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert finished == ["the call"]


# a closed stdout --------------------------------------------------------------------------------
def test_a_reader_that_goes_away_leaves_no_traceback(tmp_path):
    rig = _fake_pair(tmp_path)
    exe = Path(sys.executable).with_name("xen2kvmDisk")
    proc = subprocess.Popen([str(exe), "--backend", "fake", "--state", str(rig.state),
                             "-x", "ldisk", "-k", "kdisk"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # as `| head -0` does before the tool writes
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141 and err == "", err


# rates: tune's rule wherever a rate is taken ------------------------------------------------------
@pytest.mark.parametrize("command", ["xen2kvm assemble kvmlnx --disk kdisk {rates} -y",
                                     "xen2kvm sync kvmlnx {rates} -y",
                                     "xen2kvm fleet sync --hosts nosuchhost {rates} -y",
                                     "xen2kvm tune {tune} -y"])
@pytest.mark.parametrize("rates,tune,message", [
    ("--max-rate -5", "--max -5", "-5 is out of range"),
    ("--max-rate 0", "--max 0", "0 is out of range"),
    ("--min-rate 5000 --max-rate 10", "--min 5000 --max 10", "must not exceed"),
    (f"--max-rate {10**21}", f"--max {10**21}", "is out of range; give a positive number"),
])
def test_bad_rates_are_refused_before_anything(tmp_path, command, rates, tune, message):
    rig = _fake_pair(tmp_path)
    before = rig.fingerprint()
    r = rig.run(command.format(rates=rates, tune=tune))
    assert r.rc == 3 and r.err.count("\n") == 1 and message in r.err, r
    assert rig.fingerprint() == before
