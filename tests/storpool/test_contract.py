"""StorPool's rules, one contract for the fake and for the real backend against the API
emulator. Both are opened through the registry and driven only through the StorageBackend and
HostBackend protocols (xen2kvm/backend.py): the same calls, the same outcomes, and a refusal of
the same kind (exception class and StorPool error name) that changes nothing."""

from __future__ import annotations

import json

import pytest

from xen2kvm import backends
from xen2kvm.backend import BackendConfig
from xen2kvm.errors import BackendError
from xen2kvm.process import Runner

from .conftest import HOST

pytestmark = pytest.mark.storpool
MIB = 1 << 20
OTHER = "client12"  # another hypervisor: the StorPool backend names other clients by ID


class Side:
    """One backend's storage and this host, with data put and read through the host's device
    (attached for the access, detached again so the rules see the volume as it was)."""

    def __init__(self, kind: str, state_dir: str) -> None:
        self.kind = kind
        self.backends = backends.open(BackendConfig(kind, Runner(), state=state_dir, host=HOST))
        self.storage, self.host = self.backends.storage, self.backends.host

    def _on_device(self, name: str, use):
        self.storage.attach(name, HOST)
        try:
            return use(self.host.device_path(name))
        finally:
            self.storage.detach(name, HOST)

    def write(self, name: str, offset: int, data: bytes) -> None:
        self._on_device(name, lambda path: self.host.write(path, offset, data))

    def read(self, name: str, offset: int, length: int) -> bytes:
        return self._on_device(name, lambda path: self.host.read(path, offset, length))

    def world(self) -> str:
        """Everything a refusal must leave as it was."""
        st = self.storage
        return json.dumps([[(v.name, v.size_bytes, dict(v.tags), v.attached)
                            for v in st.list_volumes()],
                           [(s.name, s.size_bytes, dict(s.tags)) for s in st.list_snapshots()]])


@pytest.fixture(params=["fake", "storpool"])
def side(request, tmp_path):
    if request.param == "storpool":
        request.getfixturevalue("emulator")  # the API on loopback; the config points at it
    return Side(request.param, str(tmp_path / "fake-state"))


def refused(side: Side, call, *args) -> str:
    """Call, expect a BackendError (the class itself: no subclass, no other error), check
    that nothing changed, and give the StorPool error name."""
    before = side.world()
    with pytest.raises(Exception) as exc:
        call(*args)
    assert type(exc.value) is BackendError, (side.kind, repr(exc.value))
    assert side.world() == before, (side.kind, call, args)
    return exc.value.name


def sizes(side: Side) -> dict[str, int]:
    return {v.name: v.size_bytes for v in side.storage.list_volumes()}


# volumes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["bad name", "x" * 200, "list", "a/b", ""])
def test_a_bad_volume_name_is_invalid(side, bad):
    assert refused(side, side.storage.create_volume, bad, MIB, {}) == "invalidParam"


@pytest.mark.parametrize("size", [0, 100, -512, 1000])
def test_sizes_are_positive_multiples_of_512(side, size):
    assert refused(side, side.storage.create_volume, "v", size, {}) == "invalidParam"


@pytest.mark.parametrize("tags", [{"a b": "c"}, {"a": "c d"}, {"k": "v" * 199},
                                  {"k": "x" * 150, "l": "y" * 50}])
def test_bad_tags_are_invalid_on_create_and_on_update(side, tags):
    st = side.storage
    assert refused(side, st.create_volume, "v", MIB, tags) == "invalidParam"
    st.create_volume("v", MIB, {})
    assert refused(side, st.set_tags, "v", tags) == "invalidParam"


def test_create_grow_tag_rename_delete(side):
    st = side.storage
    st.create_volume("v", MIB, {"a": "b", "k": "1"})
    st.grow_volume("v", 16 * 512)
    st.set_tags("v", {"a": None, "c": "d"})  # None removes, others stay
    st.rename_volume("v", "w")
    assert [(v.name, v.size_bytes, dict(v.tags), v.attached) for v in st.list_volumes()] == \
        [("w", MIB + 8192, {"k": "1", "c": "d"}, ())]
    st.delete_volume("w")
    st.delete_volume("w")  # gone already: the goal holds
    assert st.list_volumes() == []


def test_existing_and_missing_objects(side):
    st = side.storage
    st.create_volume("v", MIB, {})
    st.create_volume("w", MIB, {})
    assert refused(side, st.create_volume, "v", MIB, {}) == "objectExists"
    assert refused(side, st.clone_volume, "v", "w", {}) == "objectExists"
    assert refused(side, st.rename_volume, "v", "w") == "objectExists"
    assert refused(side, st.clone_volume, "c", "nosuch", {}) == "objectDoesNotExist"
    assert refused(side, st.grow_volume, "nosuch", 512) == "objectDoesNotExist"
    assert refused(side, st.set_tags, "nosuch", {"a": "1"}) == "objectDoesNotExist"
    assert refused(side, st.rename_volume, "nosuch", "x") == "objectDoesNotExist"
    assert refused(side, st.grow_volume, "v", 100) == "invalidParam"


def test_an_attached_volume_is_busy_for_delete_rename_and_another_host(side):
    st = side.storage
    st.create_volume("v", 4096, {})
    st.create_volume("w", 4096, {})
    st.attach("v", HOST)
    st.attach("v", HOST)  # already: a no-op
    assert {v.name: v.attached for v in st.list_volumes()} == {"v": (HOST,), "w": ()}
    for call, args in ((st.delete_volume, ("v",)), (st.rename_volume, ("v", "v2")),
                       (st.attach, ("v", OTHER))):
        assert refused(side, call, *args) == "busy"
        with pytest.raises(BackendError, match="is open at client"):
            call(*args)
    st.detach("v", HOST)
    st.detach("v", HOST)  # already: a no-op
    st.attach("w", OTHER)
    st.detach("w")  # from every host
    st.rename_volume("v", "v2")
    st.delete_volume("v2")
    assert [(v.name, v.attached) for v in st.list_volumes()] == [("w", ())]


def test_a_clone_is_a_copy_on_write_copy(side):
    st = side.storage
    st.create_volume("p", MIB, {"owner": "onapp"})
    side.write("p", 8192, b"parent")
    st.clone_volume("c", "p", {"k": "1"})
    side.write("p", 8192, b"PARENT")
    side.write("c", 0, b"child")
    assert side.read("c", 8192, 6) == b"parent" and side.read("p", 0, 5) == b"\0" * 5
    c = {v.name: v for v in st.list_volumes()}["c"]
    assert (c.size_bytes, dict(c.tags)) == (MIB, {"k": "1"})  # the parent's size, own tags


# snapshots ----------------------------------------------------------------------------------
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
    assert sizes(side)["v"] == MIB
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
    assert refused(side, st.create_snapshot, "v", "s1", {}) == "objectExists"
    assert refused(side, st.create_snapshot, "nosuch", "s2", {}) == "objectDoesNotExist"
    assert refused(side, st.create_snapshot, "v", "bad name", {}) == "invalidParam"
    assert refused(side, st.create_snapshot, "v", "s3",
                   {"k": "x" * 150, "l": "y" * 50}) == "invalidParam"
    assert refused(side, st.revert_volume, "v", "nosuch") == "objectDoesNotExist"
    assert refused(side, st.revert_volume, "u", "s1") == "invalidParam"  # not a snapshot of u
    assert refused(side, st.create_from_snapshot, "u", "s1", {}) == "objectExists"
    assert refused(side, st.create_from_snapshot, "n", "nosuch", {}) == "objectDoesNotExist"
    assert refused(side, st.set_snapshot_tags, "nosuch", {"a": "1"}) == "objectDoesNotExist"
    assert refused(side, st.set_snapshot_tags, "s1", {"a b": "1"}) == "invalidParam"
    st.attach("v", HOST)
    assert refused(side, st.revert_volume, "v", "s1") == "busy"
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
    assert refused(side, st.revert_volume, "k", "x2krp1-k") == "invalidParam"
    st.delete_volume("k")
    st.rename_volume("x2kold-k", "k")
    side.write("k", 0, b"changed")
    st.revert_volume("k", "x2krp1-k")
    assert side.read("k", 0, 7) == b"KVMDATA"
