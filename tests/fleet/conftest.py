from __future__ import annotations

import os
import shutil

import pytest

from xen2kvm.testing.sshd import SSHD, SshdFarm

from ..storpool.conftest import emulator  # noqa: F401  (the same API emulator)


@pytest.fixture
def farm(tmp_path):
    if os.geteuid() != 0 or not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
        pytest.skip("needs root and openssh-server (installed by scripts/test.sh)")
    f = SshdFarm(tmp_path / "ssh")
    yield f
    f.stop()
