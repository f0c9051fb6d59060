"""The helper's copies of the guest's own GRUB files into /boot/grub (bootfiles.py)."""

from __future__ import annotations

from xen2kvm.guest import bootfiles


def tree(tmp_path):
    root = tmp_path / "guest"
    grub2 = root / "usr/lib/grub/i386-pc"
    grub2.mkdir(parents=True)
    for name in ("normal.mod", "ext2.mod", "command.lst", "boot.img"):
        (grub2 / name).write_bytes(name.encode())
    legacy = root / "usr/share/grub/x86_64-redhat"
    legacy.mkdir(parents=True)
    for name in bootfiles.LEGACY_STAGES:
        (legacy / name).write_bytes(name.encode() * 3)
    return root


def test_copies_what_is_missing_or_differs_then_nothing(tmp_path):
    root = tree(tmp_path)
    (root / "boot/grub").mkdir(parents=True)
    (root / "boot/grub/stage1").write_bytes(b"stage1" * 3)  # already the same
    copies = bootfiles.plan(root)
    assert [(c.src, c.dst, c.names) for c in copies] == [
        ("usr/lib/grub/i386-pc", "boot/grub/i386-pc", ("command.lst", "ext2.mod", "normal.mod")),
        ("usr/share/grub/x86_64-redhat", "boot/grub", ("stage2", "e2fs_stage1_5"))]
    assert copies[0].describe().startswith("# copy 3 files /usr/lib/grub/i386-pc/ ->")
    bootfiles.write(copies, root)
    assert (root / "boot/grub/i386-pc/normal.mod").read_bytes() == b"normal.mod"
    assert not (root / "boot/grub/i386-pc/boot.img").exists()  # not a module: stays out
    assert bootfiles.plan(root) == []
    (root / "boot/grub/i386-pc/normal.mod").write_bytes(b"another GRUB version")
    assert [c.names for c in bootfiles.plan(root)] == [("normal.mod",)]


def test_a_guest_without_grub_gets_no_copies(tmp_path):
    (tmp_path / "etc").mkdir()
    assert bootfiles.plan(tmp_path) == []
    assert bootfiles.grub2_dir(tmp_path) is None and bootfiles.legacy_dir(tmp_path) is None
