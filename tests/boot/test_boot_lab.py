"""The real path boots: in the kernel lab (real dm linear + raid1, the real StorPool backend
against the emulator) a guest image is migrated, a file is written into its filesystem through
the raid1 device during the resync, and after sync and release the KVM volume boots in QEMU
on the host with that file's checksum in the marker (tests/boot/lab_path.py runs in UML)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from xen2kvm.testing import lab

from .test_boot_fake import assert_marker

pytestmark = [pytest.mark.boot, pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(lab.UML),
                                 reason="needs Debian's user-mode-linux (the kernel lab)")]
SCRIPT = Path(__file__).with_name("lab_path.py")


@pytest.mark.parametrize("combo,label", [
    ("legacy32", "lab: case-2 N=32 GRUB legacy shell"),
    ("grub2shell2048", "lab: case-2 N=2048 GRUB 2 shell"),
    ("inplace2048", "lab: in-place N=2048 guest GRUB 2")])
def test_the_real_path_boots(boot_images, tmp_path, monkeypatch, combo, label):
    out = tmp_path / "out"
    out.mkdir()
    # the host's folders are read-only in the lab: the run's audit record goes where it may write
    monkeypatch.setenv("XEN2KVM_AUDIT_LOG", str(out / "audit.jsonl"))
    rc = lab.run([sys.executable, str(SCRIPT), combo, str(boot_images), str(out)],
                 outdir=tmp_path / "lab", rw=[str(out)], timeout=1200, mem="3500M")
    assert rc == 0, f"the lab run of {combo} failed (exit {rc}); its output is above"
    assert_marker(out / f"{combo}.img", label, known=(out / "known.sha256").read_text())
