"""The guest images, built once per machine and recipe (see images.py)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from . import images

TOOLS = ("debootstrap", "qemu-system-x86_64", "sfdisk", "partx", "losetup", "mkfs.ext4",
         "apt-get", "dpkg-deb", "chroot")


@pytest.fixture(scope="session")
def boot_images() -> Path:
    """Skips without root or a tool (the reason says which); a failed build FAILS."""
    if os.geteuid() != 0:
        pytest.skip("building and booting the guest images needs root (debootstrap, chroot, "
                    "loop devices)")
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (scripts/test.sh installs them as root)")
    start = time.monotonic()
    folder = images.ensure_images()
    print(f"\nguest images: {folder} ready in {time.monotonic() - start:.0f} s "
          f"(built in {(folder / 'build-seconds').read_text().strip()} s)")
    return folder
