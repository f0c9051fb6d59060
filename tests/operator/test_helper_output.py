"""The helper's output is shown as it runs, each line prefixed with its name, and is kept in
the audit log; a failing helper's words reach the operator too."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.helper

DIFF = ["--- a/etc/fstab", "+++ b/etc/fstab", "@@ -1 +1 @@",
        "-/dev/xvda1 / ext4 defaults 0 1", "+UUID=0b1c / ext4 defaults 0 1"]


def _helper(tmp_path, rc: int = 0) -> str:
    """A helper that talks as xen2kvm-guest does: the diff on stdout, a warning on stderr."""
    path = tmp_path / "guest-fix"
    path.write_text(f"#!{sys.executable}\nimport sys\n"
                    f"print({chr(10).join(DIFF)!r}, flush=True)\n"
                    "print('warning: no KVM kernel installed', file=sys.stderr, flush=True)\n"
                    f"sys.exit({rc})\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def cluster(fake_rig):
    fake_rig.create_vm("lnx1", "xen", "ldisk", 8 << 20)
    fake_rig.create_vm("kvmlnx", "kvm", "kdisk", 8 << 20)
    return fake_rig


def test_diff_appears_in_the_output_and_in_the_audit_log(cluster, tmp_path):
    out = cluster.ok(f"xen2kvmDisk -y -x ldisk -k kdisk -p {_helper(tmp_path)}").out
    lines = out.splitlines()
    for line in DIFF:
        assert f"[guest-fix] {line}" in lines
    assert "[guest-fix] warning: no KVM kernel installed" in lines
    records = [json.loads(x) for x in (cluster.state / "audit.jsonl").read_text().splitlines()]
    prepare = records[-1]
    assert prepare["argv"][0] == "xen2kvmDisk" and "-p" in prepare["argv"]
    assert [f"[guest-fix] {line}" for line in DIFF] == \
        [x for x in prepare["output"] if "warning" not in x]
    assert any(s["step"].startswith(_helper(tmp_path)) and s["ok"] for s in prepare["steps"])
    assert prepare["outcome"] == "ok"


def test_a_failing_helper_is_recorded_with_its_words(cluster, tmp_path):
    r = cluster.run(f"xen2kvmDisk -y -x ldisk -k kdisk -p {_helper(tmp_path, 3)}")
    assert r.rc == 4 and "warning: no KVM kernel installed" in r.err
    assert "[guest-fix] +UUID=0b1c / ext4 defaults 0 1" in r.out
    rec = json.loads((cluster.state / "audit.jsonl").read_text().splitlines()[-1])
    assert rec["outcome"] == "failed" and rec["exit"] == 4
    failed = [s for s in rec["steps"] if not s["ok"]]
    assert len(failed) == 1 and "exited 3" in failed[0]["error"]
    assert cluster.volumes()["xen-ldisk"].tags["helper"] == "guest-fix"


@pytest.mark.guest
@pytest.mark.skipif(os.geteuid() != 0, reason="xen2kvm-guest mounts images: needs root")
@pytest.mark.skipif(not shutil.which("mkfs.ext4"), reason="needs e2fsprogs")
def test_xen2kvm_guest_diff_reaches_the_operator_and_the_log(fake_rig, tmp_path):
    """The helper we ship, on a CentOS 7 image: its unified diff is in the prepare's output
    and in the audit record, line for line."""
    from ..guest.test_guest_helper import UUID, image

    img = Path(image(tmp_path, "centos7")).read_bytes()
    fake_rig.ok(f"xen2kvm sim create-vm lnx --hypervisor xen --disk xd:{len(img)}")
    fake_rig.ok(f"xen2kvm sim create-vm kvm --hypervisor kvm --disk kd:{len(img)}")
    b = fake_rig.backends()
    b.cluster.volumes["xd"].store.discard(0, len(img))
    b.cluster.volumes["xd"].store.write(0, img)
    b.cluster.generation += 1
    b.close()
    helper = str(Path(sys.executable).with_name("xen2kvm-guest"))
    out = fake_rig.ok(f"xen2kvmDisk -y -x xd -k kd -p {helper}").out
    shown = [x for x in out.splitlines() if x.startswith("[xen2kvm-guest] ")]
    assert "[xen2kvm-guest] --- a/etc/fstab" in shown
    assert any(x.startswith(f"[xen2kvm-guest] +UUID={UUID}") for x in shown), shown
    rec = json.loads((fake_rig.state / "audit.jsonl").read_text().splitlines()[-1])
    assert rec["output"] == shown
