"""A guest image whose build fails FAILS the run; only a missing prerequisite (root, a tool)
skips. Each image-building test is run in a pytest of its own against a mirror that cannot
answer: debootstrap fails within seconds, and the outcome must be an error, not a skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEAD_MIRROR = "http://127.0.0.1:9/debian"  # the discard port: nothing answers there

pytestmark = [
    pytest.mark.guest,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the image builds need root"),
    pytest.mark.skipif(not shutil.which("debootstrap"), reason="needs debootstrap (apt)"),
]


@pytest.mark.parametrize("test", [
    "tests/guest/test_debootstrap.py::test_a_debootstrapped_debian",
    "tests/boot/test_boot_fake.py::test_case1_whole_disk",
])
def test_a_failed_build_is_an_error_not_a_skip(test, tmp_path):
    env = dict(os.environ, XEN2KVM_DEBIAN_MIRROR=DEAD_MIRROR,
               XEN2KVM_TEST_IMAGES=str(tmp_path / "images"))  # no cached build to reuse
    pytest_bin = Path(sys.executable).with_name("pytest")
    res = subprocess.run([str(pytest_bin), test, "-q", "-rs", "--basetemp",
                          str(tmp_path / "inner")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    summary = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-2000:]
    assert "skipped" not in summary and ("error" in summary or "failed" in summary), summary
    assert "127.0.0.1:9" in res.stdout, res.stdout[-3000:]  # the cause is named
