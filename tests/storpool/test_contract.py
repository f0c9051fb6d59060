"""Snapshot rules, one contract for the fake and for the real backend against the emulator:
the same calls, the same outcomes, the same error names."""

from __future__ import annotations

import pytest

from xen2kvm.backends.fake.model import Cluster
from xen2kvm.backends.fake.storage import FakeStorage
from xen2kvm.backends.storpool import StorPoolBackends
from xen2kvm.errors import BackendError
from xen2kvm.process import Runner

from .conftest import HOST

pytestmark = pytest.mark.storpool
MIB = 1 << 20


class FakeSide:
    def __init__(self) -> None:
        self.cluster = Cluster()
        self.storage = FakeStorage(self.cluster)

    def write(self, name: str, offset: int, data: bytes) -> None:
        self.cluster.volumes[name].store.write(offset, data)

    def read(self, name: str, offset: int, length: int) -> bytes:
        return self.cluster.volumes[name].store.read(offset, length)


class EmulatorSide:
    def __init__(self, emulator) -> None:
        self.emu = emulator
        self.storage = StorPoolBackends(HOST, Runner()).storage

    def write(self, name: str, offset: int, data: bytes) -> None:
        with open(self.emu.path(name), "r+b") as f:
            f.seek(offset)
            f.write(data)

    def read(self, name: str, offset: int, length: int) -> bytes:
        with open(self.emu.path(name), "rb") as f:
            f.seek(offset)
            return f.read(length).ljust(length, b"\0")


@pytest.fixture(params=["fake", "emulator"])
def side(request):
    if request.param == "fake":
        return FakeSide()
    return EmulatorSide(request.getfixturevalue("emulator"))


def _error(call, *args) -> str:
    with pytest.raises(BackendError) as exc:
        call(*args)
    return exc.value.name


def test_a_snapshot_keeps_the_data_size_and_its_own_tags(side):
    st = side.storage
    st.create_volume("v", MIB, {"owner": "onapp"})
    side.write("v", 4096, b"BEFORE")
    st.create_snapshot("v", "x2krp1-v", {"xen2kvm": "rp", "o.owner": "onapp"})
    side.write("v", 4096, b"AFTER!")
    st.grow_volume("v", 16384)
    snaps = {x.name: x for x in st.list_snapshots()}
    assert snaps["x2krp1-v"].size_bytes == MIB
    assert snaps["x2krp1-v"].tags == {"xen2kvm": "rp", "o.owner": "onapp"}  # not v's tags
    st.set_snapshot_tags("x2krp1-v", {"ab": "1", "o.owner": None})
    assert {x.name: x.tags for x in st.list_snapshots()}["x2krp1-v"] == {"xen2kvm": "rp",
                                                                         "ab": "1"}
    st.revert_volume("v", "x2krp1-v")
    assert side.read("v", 4096, 6) == b"BEFORE"
    assert {v.name: v.size_bytes for v in st.list_volumes()}["v"] == MIB
    st.create_from_snapshot("w", "x2krp1-v", {"k": "1"})
    w = {v.name: v for v in st.list_volumes()}["w"]
    assert (w.size_bytes, dict(w.tags), side.read("w", 4096, 6)) == (MIB, {"k": "1"}, b"BEFORE")
    st.delete_snapshot("x2krp1-v")
    st.delete_snapshot("x2krp1-v")  # gone already: the goal holds
    assert st.list_snapshots() == []
    assert side.read("w", 4096, 6) == b"BEFORE"


def test_snapshot_rules_and_error_names(side):
    st = side.storage
    st.create_volume("v", MIB, {})
    st.create_volume("u", MIB, {})
    st.create_snapshot("v", "s1", {})
    assert _error(st.create_snapshot, "v", "s1", {}) == "objectExists"
    assert _error(st.create_snapshot, "nosuch", "s2", {}) == "objectDoesNotExist"
    assert _error(st.create_snapshot, "v", "s3", {"k": "x" * 150, "l": "y" * 50}) == "invalidParam"
    assert _error(st.revert_volume, "v", "nosuch") == "objectDoesNotExist"
    assert _error(st.revert_volume, "u", "s1") == "invalidParam"  # not a snapshot of u
    assert _error(st.create_from_snapshot, "u", "s1", {}) == "objectExists"
    assert _error(st.set_snapshot_tags, "nosuch", {"a": "1"}) == "objectDoesNotExist"
    st.attach("v", HOST)
    assert _error(st.revert_volume, "v", "s1") == "busy"
    st.detach("v", HOST)
    st.revert_volume("v", "s1")
    assert sorted(x.name for x in st.list_snapshots()) == ["s1"]


def test_a_renamed_volume_reverts_to_its_own_snapshot(side):
    """Case-1 abort renames `x2kold-` back and reverts it: a snapshot follows the volume."""
    st = side.storage
    st.create_volume("k", MIB, {})
    side.write("k", 0, b"KVMDATA")
    st.create_snapshot("k", "x2krp1-k", {})
    st.rename_volume("k", "x2kold-k")
    st.clone_volume("k", "x2kold-k", {})
    assert _error(st.revert_volume, "k", "x2krp1-k") == "invalidParam"
    st.delete_volume("k")
    st.rename_volume("x2kold-k", "k")
    side.write("k", 0, b"changed")
    st.revert_volume("k", "x2krp1-k")
    assert side.read("k", 0, 7) == b"KVMDATA"
