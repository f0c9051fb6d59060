"""The lab runner boots a real kernel and hands back the guest command's exit code."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from xen2kvm.testing import lab

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(lab.have_dm(), reason="runs on the host, not inside the lab"),
    pytest.mark.skipif(os.geteuid() != 0 and not Path(lab.UML).exists(),
                       reason="needs user-mode-linux (installed by scripts/test.sh as root)"),
]


@pytest.mark.parametrize("command,rc", [
    (["sh", "-c", "dmsetup targets | grep -q '^raid ' && exit 0"], 0),
    (["sh", "-c", "exit 5"], 5),
    (["sh", "-c", "echo c > /proc/sysrq-trigger; sleep 60"], lab.CRASH_RC),
])
def test_exit_codes_come_back(tmp_path, command, rc):
    assert lab.run(command, tmp_path / "out", timeout=120, stream=io.StringIO()) == rc


def test_a_hung_guest_times_out(tmp_path):
    out = io.StringIO()
    assert lab.run(["sleep", "600"], tmp_path / "out", timeout=8, stream=out) == lab.TIMEOUT_RC
