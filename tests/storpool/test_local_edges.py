"""XEN2KVM_LOCK_DIR and host settings with the StorPool backend (issue 10, findings 9-10): one
line, the README's exit code, nothing changed."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

pytestmark = pytest.mark.storpool
MIB = 1 << 20
PREPARE = "xen2kvmDisk -y -x ldisk -k kdisk"


def _pair(sp) -> str:
    sp.create("ldisk", 8 * MIB, b"LNX-")
    sp.create("kdisk", 8 * MIB)
    return json.dumps(sp.emu.volumes, sort_keys=True)


@pytest.mark.parametrize("where,message", [
    ("file", "is not a directory; remove it or point XEN2KVM_LOCK_DIR"),
    ("/proc/xen2kvm-lock", "cannot be used"),
    ("file/below", "cannot be used"),
])
def test_a_bad_lock_dir_is_one_line_with_exit_3(sp, tmp_path, monkeypatch, where, message):
    (tmp_path / "file").write_text("x")
    before = _pair(sp)
    monkeypatch.setenv("XEN2KVM_LOCK_DIR", where if where.startswith("/") else
                       str(tmp_path / where))
    assert sp.run(PREPARE) == 3
    assert sp.err.count("\n") == 1 and message in sp.err and "Traceback" not in sp.err, sp.err
    assert json.dumps(sp.emu.volumes, sort_keys=True) == before


def test_no_client_id_is_refused_before_the_clone(sp, monkeypatch):
    before = _pair(sp)
    sp.emu.conf.write_text(sp.emu.conf.read_text().replace("SP_OURID=7\n", ""))
    assert sp.run(PREPARE) == 3
    assert "no StorPool client ID for host kvm1" in sp.err and sp.err.count("\n") == 1
    assert json.dumps(sp.emu.volumes, sort_keys=True) == before
    assert sum(sp.emu.calls[c] for c in ("VolumeCreate", "VolumeUpdate")) == 0


def test_a_missing_device_root_is_refused_at_once(sp, tmp_path, monkeypatch):
    before = _pair(sp)
    monkeypatch.setenv("XEN2KVM_DEV_ROOT", str(tmp_path / "nodev"))
    assert sp.run(PREPARE) == 3
    assert f"device root {tmp_path / 'nodev'} does not exist" in sp.err
    assert json.dumps(sp.emu.volumes, sort_keys=True) == before and not sp.emu.attachments


@pytest.mark.parametrize("helper", ["/nonexistent/helper", "no-such-helper-on-path",
                                    "{tmp}/not-executable"])
def test_a_helper_that_cannot_run_is_refused_before_the_clone(sp, tmp_path, helper):
    (tmp_path / "not-executable").write_text("#!/bin/sh\n")
    helper = helper.format(tmp=tmp_path)
    before = _pair(sp)
    assert sp.run(f"{PREPARE} -p {helper}") == 3
    assert f"helper {helper} does not exist or is not executable" in sp.err
    assert json.dumps(sp.emu.volumes, sort_keys=True) == before
    sp.ok(PREPARE.replace("-y ", ""))  # and a dry-run without the helper still plans


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only tmpfs needs root")
@pytest.mark.parametrize("below,message", [
    ("lock", "cannot be used (Read-only file system)"),
    ("", "cannot be opened (Read-only file system); point XEN2KVM_LOCK_DIR"),
])
def test_a_read_only_lock_dir_is_one_line_with_exit_3(sp, tmp_path, monkeypatch, below,
                                                      message):
    before = _pair(sp)
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,mode=0700", "tmpfs", str(ro)], check=True)
    try:
        monkeypatch.setenv("XEN2KVM_LOCK_DIR", str(ro / below) if below else str(ro))
        assert sp.run(PREPARE) == 3
    finally:
        subprocess.run(["umount", str(ro)], check=True)
    assert sp.err.count("\n") == 1 and message in sp.err, sp.err
    assert json.dumps(sp.emu.volumes, sort_keys=True) == before
