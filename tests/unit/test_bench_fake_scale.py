"""bench/fake_scale.py runs end to end: its smoke run migrates every VM it creates (the
benchmark reads `status --json` at the end of each lifecycle) and reports every command. Its
timings are figures for the README, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fake_scale.py"


def test_the_scale_benchmark_migrates_every_vm_and_reports_every_command():
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--json"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    commands = {"prepare", "sim power on", "sim write", "sync", "status --json"}
    for size in ("small", "big"):
        assert set(result["per_command"][size]) == commands
    runs = result["one_process"] + result["processes"]
    assert runs and all(r["all_migrated"] and r["disks_migrated"] == 2 * r["vms"] for r in runs)
    assert all(r["peak_rss_mb"] > 0 for r in result["one_process"])
