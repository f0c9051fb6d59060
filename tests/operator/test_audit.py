"""The audit trail: after the demo, `xen2kvm history` lists every run that changed something,
with its steps; dry-runs and queries leave no record; the token never reaches the log."""

from __future__ import annotations

import json
import re
import shlex
import stat
import sys

import pytest

from xen2kvm import cli
from xen2kvm.backends.fake import demo

from ..storpool.conftest import TOKEN, SPRig, emulator  # noqa: F401  (the fixture)


def _history(state, *args: str) -> str:
    return _run(["--backend", "fake", "--state", str(state), "history", *args])


def _run(argv) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(argv) == 0
    return out.getvalue()


def _changing_runs(demo_output: str) -> list[str]:
    """The demo's commands whose output shows executed steps (`+ ...` lines)."""
    runs = []
    for block in re.split(r"\n(?=\$ )", demo_output):
        head, _, body = block.partition("\n")
        if head.startswith("$ ") and any(x.startswith("+ ") for x in body.splitlines()):
            runs.append(head[2:])
    return runs


def test_history_after_the_demo_lists_every_changing_run(tmp_path, capsys):
    state = tmp_path / "demo"
    assert demo.run(str(state)) == 0
    changing = _changing_runs(capsys.readouterr().out)
    assert len(changing) >= 10  # prepares, case-1, sync, hooks, cleanups, tune
    records = [json.loads(x) for x in _history(state, "--json").splitlines()]
    assert [f"{r['argv'][0]} {shlex.join(r['argv'][5:])}" for r in records] == changing
    for r in records:
        assert r["steps"] and all(s["ok"] for s in r["steps"]) and r["outcome"] == "ok"
        assert r["user"] and r["host"] == "kvm1" and r["time"] <= r["end"]
    text = _history(state)
    for r in records:
        assert f"{' '.join(r['argv'])} -> ok (exit 0)" in text
        for s in r["steps"]:
            assert f"  ok  {s['step'].splitlines()[0]}" in text
    one = _history(state, "kdisk2")
    assert "-x ldisk2 -k kdisk2" in one and "-x ldisk1 -k kdisk1" not in one
    assert "storpool volume kdisk2 update size +16K" in one


def _leaky_helper(tmp_path, conf) -> str:
    """A helper that prints the StorPool configuration it can read, token and all."""
    path = tmp_path / "leaky"
    path.write_text(f"#!{sys.executable}\nprint(open({str(conf)!r}).read())\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.storpool
def test_the_audit_log_holds_no_secret(emulator, tmp_path, audit_log):  # noqa: F811
    sp = SPRig(emulator)
    emulator.handle("VolumeCreate", [], {"name": "ldisk", "size": 8 << 20})
    emulator.handle("VolumeCreate", [], {"name": "kdisk", "size": 8 << 20})
    sp.ok("xen2kvmDisk -x ldisk -k kdisk")  # a dry-run leaves no record
    sp.ok(f"xen2kvmDisk -y -x ldisk -k kdisk -p {_leaky_helper(tmp_path, emulator.conf)}")
    assert "[leaky] SP_AUTH_TOKEN=***" in sp.out and TOKEN not in sp.out
    sp.ok("xen2kvm status")  # nor does a query
    raw = audit_log.read_bytes()
    assert TOKEN.encode() not in raw
    (rec,) = [json.loads(x) for x in raw.decode().splitlines()]
    assert "[leaky] SP_AUTH_TOKEN=***" in rec["output"]
    assert rec["argv"][:2] == ["xen2kvmDisk", "--backend"] and rec["host"] == "kvm1"


@pytest.mark.storpool
def test_a_run_that_cannot_keep_its_record_changes_nothing(emulator, tmp_path,  # noqa: F811
                                                          monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XEN2KVM_AUDIT_LOG", str(blocker / "audit.jsonl"))
    sp = SPRig(emulator)
    emulator.handle("VolumeCreate", [], {"name": "ldisk", "size": 8 << 20})
    emulator.handle("VolumeCreate", [], {"name": "kdisk", "size": 8 << 20})
    before = json.dumps(emulator.volumes, sort_keys=True)
    assert sp.run("xen2kvmDisk -y -x ldisk -k kdisk") == 3
    assert sp.err.startswith("xen2kvmDisk: error: cannot write the audit log ")
    assert "XEN2KVM_AUDIT_LOG" in sp.err and len(sp.err.strip().splitlines()) == 1
    assert json.dumps(emulator.volumes, sort_keys=True) == before
