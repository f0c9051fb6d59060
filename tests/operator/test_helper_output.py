"""The helper's output is shown as it runs, each line prefixed with its name, and is kept in
the audit log; a failing helper's words reach the operator too."""

from __future__ import annotations

import json
import stat
import sys

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

