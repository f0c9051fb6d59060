"""Issue 10 guards in isolation: the fake's shared state folder, the swapped-disk signatures,
the claim protocol's refusals and the room a claim needs in a volume's tag budget."""

from __future__ import annotations

import contextlib
import os
import subprocess

import pytest

from xen2kvm import cli, mbr, naming, signatures
from xen2kvm.backends.fake import FakeBackends
from xen2kvm.errors import PlanError
from xen2kvm.process import Runner


def test_two_processes_never_lose_each_others_calls(tmp_path):
    """Two backends on one folder, calls interleaved: each sees the other's, none is lost."""
    a = FakeBackends(str(tmp_path), "kvm1", Runner())
    b = FakeBackends(str(tmp_path), "kvm2", Runner())
    a.storage.create_volume("v1", 4096, {})
    b.storage.create_volume("v2", 4096, {})
    a.storage.set_tags("v2", {"from": "a"})
    b.storage.set_tags("v1", {"from": "b"})
    a.close()
    b.close()
    seen = {v.name: v.tags for v in FakeBackends(str(tmp_path), "kvm1", Runner())
            .storage.list_volumes()}
    assert seen == {"v1": {"from": "b"}, "v2": {"from": "a"}}


@contextlib.contextmanager
def read_only(folder):
    """As root a mode-0555 folder is still writable: then a read-only mount of it."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_state_folder_is_one_line_and_changes_nothing(tmp_path, capsys):
    state = tmp_path / "c"
    assert cli.main(["--backend", "fake", "--state", str(state), "sim", "create-vm", "v",
                     "--hypervisor", "kvm", "--disk", "d:1M"]) == 0
    before = sorted((p.name, p.read_bytes()) for p in state.iterdir() if p.is_file())
    capsys.readouterr()
    with read_only(state):
        rc = cli.main(["--backend", "fake", "--state", str(state), "sim", "create-vm", "w",
                       "--hypervisor", "kvm", "--disk", "e:1M"])
    err = capsys.readouterr().err
    assert rc == 3 and "is read-only; make it writable" in err and len(err.splitlines()) == 1
    assert sorted((p.name, p.read_bytes()) for p in state.iterdir() if p.is_file()) == before


def test_a_bare_ext4_is_a_xen_disk_a_partitioned_disk_is_not(tmp_path):
    image = tmp_path / "img"
    image.write_bytes(bytes(8 << 20))
    subprocess.run(["mkfs.ext4", "-F", "-q", str(image)], check=True)
    head = image.read_bytes()[:signatures.HEAD_BYTES]
    assert signatures.bare_filesystem(head) == "ext2/3/4"
    labelled = mbr.build(32, 1000) + head[512:]
    assert signatures.bare_filesystem(labelled) is None
    assert signatures.bare_filesystem(bytes(signatures.HEAD_BYTES)) is None
    swap = bytearray(signatures.HEAD_BYTES)
    swap[4086:4096] = b"SWAPSPACE2"
    assert signatures.bare_filesystem(bytes(swap)) == "swap"


def test_a_claim_key_fits_its_room_and_a_long_host_is_refused():
    key = naming.claim_key("h" * 32, 4194304, "abcdef")
    assert len(key) + 2 <= naming.CLAIM_ROOM
    assert naming.claims({key: "1", "xen": "x"}) == ["h" * 32 + ".4194304.abcdef"]
    with pytest.raises(PlanError, match="too long"):
        naming.claim_key("h" * 60, 1, "abcdef")
    naming.check_tags("v" * 100, {"kvm": "k" * 60})
    with pytest.raises(PlanError, match="over StorPool's 200"):
        naming.check_claimable("v" * 100, {"kvm": "k" * 60})  # 100 + 64 + the claim's room
