"""Smoke run of bench/fake_scale.py: every lifecycle ends migrated, every figure is reported.
Asserts on what the benchmark observed on the fake cluster, never on a timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fake_scale.py"


def test_quick_run_migrates_every_vm_and_reports_every_command():
    res = subprocess.run([sys.executable, str(BENCH), "--quick", "--json"],
                         capture_output=True, text=True, check=True, timeout=600)
    out = json.loads(res.stdout)
    assert [r["command"] for r in out["per_command"]] == [
        "prepare", "sim power on", "sim write", "sync", "status --json"]
    for r in out["per_command"]:
        assert r["small_s"] > 0 and r["big_s"] > 0 and isinstance(r["pass"], bool)
    modes = {(r["processes"], r["vms"]) for r in out["lifecycle"]}
    assert modes == {(False, 2), (True, 1)}
    assert all(r["all_migrated"] for r in out["lifecycle"]) and out["all_migrated"]
    assert all(r["peak_rss_mib"] > 0 for r in out["lifecycle"])
