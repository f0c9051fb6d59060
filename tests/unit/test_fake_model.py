"""The fake refuses what StorPool and the kernel refuse, with the same error names."""

from __future__ import annotations

import pytest

from xen2kvm.backends.fake import model
from xen2kvm.backends.fake.db import Db
from xen2kvm.backends.fake.extents import CHUNK, ExtentStore
from xen2kvm.backends.fake.host import FakeHost
from xen2kvm.backends.fake.storage import FakeStorage
from xen2kvm.errors import BackendError, DeviceError, InjectedFault


@pytest.fixture
def sp():
    return FakeStorage(model.Cluster())


def _name(exc) -> str:
    return exc.value.name


def test_storpool_rules(sp):
    sp.create_volume("v1", 1024, {"a": "b"})
    with pytest.raises(BackendError) as e:
        sp.create_volume("v1", 1024, {})
    assert _name(e) == "objectExists"
    for bad in ("bad name", "x" * 200, "list"):
        with pytest.raises(BackendError) as e:
            sp.create_volume(bad, 1024, {})
        assert _name(e) == "invalidParam"
    for size in (0, 100, -512):
        with pytest.raises(BackendError):
            sp.create_volume("v2", size, {})
    with pytest.raises(BackendError):
        sp.grow_volume("v1", 100)
    with pytest.raises(BackendError) as e:
        sp.set_tags("v1", {"bad key": "x"})
    with pytest.raises(BackendError) as e:
        sp.set_tags("v1", {"k": "v" * 200})
    with pytest.raises(BackendError) as e:
        sp.clone_volume("c", "nosuch", {})
    assert _name(e) == "objectDoesNotExist"
    sp.set_tags("v1", {"a": None, "c": "d"})
    assert sp.list_volumes()[0].tags == {"c": "d"}


def test_attached_volumes_cannot_be_deleted_renamed_or_double_attached(sp):
    sp.create_volume("v1", 4096, {})
    sp.create_volume("v2", 4096, {})
    sp.attach("v1", "h1")
    sp.attach("v1", "h1")  # idempotent
    for call in (lambda: sp.delete_volume("v1"), lambda: sp.rename_volume("v1", "v3"),
                 lambda: sp.attach("v1", "h2")):
        with pytest.raises(BackendError) as e:
            call()
        assert _name(e) == "busy" and "is open at client" in str(e.value)
    with pytest.raises(BackendError) as e:
        sp.rename_volume("v2", "v1")
    assert _name(e) == "objectExists"
    sp.detach("v1")
    sp.detach("v1")
    sp.rename_volume("v1", "v3")
    sp.delete_volume("v3")
    sp.delete_volume("v3")  # already gone: the goal holds
    assert [v.name for v in sp.list_volumes()] == ["v2"]


def test_dm_model_refuses_like_the_kernel():
    c = model.Cluster()
    sp, host = FakeStorage(c), FakeHost(c, "h1")
    sp.create_volume("a", 8192, {})
    sp.create_volume("m", 8192, {})
    with pytest.raises(DeviceError):
        host.dm_create("l", "0 16 linear /dev/storpool/a 0")  # not attached here
    sp.attach("a", "h1")
    sp.attach("m", "h1")
    with pytest.raises(DeviceError):
        host.dm_create("l", "0 17 linear /dev/storpool/a 0")  # past the end
    host.dm_create("l", "0 16 linear /dev/storpool/a 0")
    with pytest.raises(DeviceError):
        host.dm_create("l", "0 16 linear /dev/storpool/a 0")
    with pytest.raises(DeviceError, match="too small"):
        host.dm_create("r", "0 32 raid raid1 1 0 1 /dev/storpool/m /dev/mapper/l")
    host.dm_create("r", "0 16 raid raid1 1 0 1 /dev/storpool/m /dev/mapper/l")
    with pytest.raises(DeviceError, match="busy"):
        host.dm_remove("l")
    with pytest.raises(BackendError, match="open at client"):
        sp.detach("a", "h1")
    host.open_device("/dev/mapper/r", 1)
    with pytest.raises(DeviceError, match="busy"):
        host.dm_remove("r")
    host.open_device("/dev/mapper/r", -1)
    host.dm_remove("r")
    host.dm_remove("r")
    with pytest.raises(DeviceError):
        host.dm_reload("r", "0 16 linear /dev/storpool/a 0")
    with pytest.raises(DeviceError):
        host.dm_status("r")
    # the kernel's reads stop at the end of the device (a short read), they do not fail
    assert len(host.read("/dev/storpool/a", 8000, 1024)) == 8192 - 8000
    assert host.read("/dev/storpool/a", 9000, 1024) == b""
    with pytest.raises(DeviceError, match="ENOSPC|past the end"):
        host.write("/dev/storpool/a", 8000, bytes(1024))
    assert host.dm_status("l") == "0 16 linear"
    with pytest.raises(DeviceError):
        host.sysctl_get("no.such")


def test_fault_hook_fails_the_kth_mutation_once():
    c = model.Cluster()
    sp = FakeStorage(c)
    c.inject_fault(2)
    sp.create_volume("a", 512, {})
    with pytest.raises(InjectedFault):
        sp.create_volume("b", 512, {})
    sp.create_volume("b", 512, {})
    assert [v.name for v in sp.list_volumes()] == ["a", "b"]


def test_extent_store_reads_back_shares_copies_and_keeps_holes_free():
    s = ExtentStore.new(Db(":memory:"))
    s.write(CHUNK - 3, b"abcdef")
    assert s.read(CHUNK - 4, 8) == b"\0abcdef\0"
    assert list(s.extents(0, 4 * CHUNK)) == [(CHUNK - 3, CHUNK + 3)]
    s.discard(CHUNK - 3, 3)
    assert s.read(CHUNK - 3, 6) == b"\0\0\0def"
    s.write(CHUNK, bytes(3))  # zeros punch a hole, as a thin volume keeps them
    assert s.allocated_bytes == 0 and list(s.extents(0, 10 * CHUNK)) == []
    s.write(10**12, b"x" * CHUNK * 2)
    assert s.read(10**12 - 1, 2 * CHUNK + 2) == b"\0" + b"x" * 2 * CHUNK + b"\0"
    copy = s.copy()
    copy.write(10**12, b"y")
    assert s.read(10**12, 1) == b"x" and copy.read(10**12, 2) == b"yx"
    assert s.refs(10**12 + 1, 10) == copy.refs(10**12 + 1, 10)  # shared, not copied
    assert s.digest() != copy.digest()


def _blobs(path) -> dict[int, bytes]:
    import sqlite3
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT id, data FROM blobs").fetchall())
    finally:
        conn.close()


def test_data_no_extent_refers_to_is_deleted_at_the_end_of_the_call(tmp_path):
    path = str(tmp_path / "c.db")
    db = Db(path)
    db.begin()
    vol = ExtentStore.new(db)
    vol.write(0, b"a" * 1000)
    snap = vol.copy(counted=False)
    vol.write(0, b"b" * 1000)  # the a's live on in the snapshot
    db.commit()
    assert sorted(_blobs(path).values()) == [b"a" * 1000, b"b" * 1000]
    db.begin()
    vol.write(500, b"c" * 10)  # a split: the b's extent goes, and two pieces of it come back
    snap.drop()
    db.commit()
    assert sorted(_blobs(path).values()) == [b"b" * 1000, b"c" * 10]
    assert vol.read(0, 1000) == b"b" * 500 + b"c" * 10 + b"b" * 490
    db.begin()
    vol.drop()
    db.commit()
    # the newest blob waits: SQLite would give its id to the next one
    newest = max(_blobs(path))
    assert list(_blobs(path).values()) == [b"c" * 10]
    db.begin()
    ExtentStore.new(db).write(0, b"d")
    db.commit()
    assert [(i > newest, data) for i, data in _blobs(path).items()] == [(True, b"d")]
    db.park()


def test_a_state_file_from_before_the_collection_loses_its_dead_data_at_the_next_call(
        tmp_path):
    import sqlite3
    path = str(tmp_path / "c.db")
    db = Db(path)
    db.begin()
    ExtentStore.new(db).write(0, b"live")
    db.commit()
    db.park()
    old = sqlite3.connect(path)  # as the previous version left it: dead data, no collection
    old.executescript("DROP TRIGGER extent_loose; DROP TABLE loose; DROP INDEX extents_blob; "
                      "INSERT INTO blobs (size, data) VALUES (4, x'64656164'); "
                      "PRAGMA user_version=1;")
    old.close()
    db = Db(path)
    db.begin()
    ExtentStore.new(db).write(0, b"new")
    db.commit()
    db.park()
    assert sorted(_blobs(path).values()) == [b"live", b"new"]


def test_a_listing_kept_between_commands_sees_another_process_write(tmp_path):
    """The process keeps its volume list between commands (listing.py); a change another
    process commits in between must show in the next list, never a stale one."""
    import subprocess
    import sys

    from xen2kvm.backends.fake import FakeBackends
    from xen2kvm.process import Runner

    state = str(tmp_path / "c")
    here = FakeBackends(state, "h1", Runner())
    here.storage.create_volume("mine", 512, {"a": "1"})
    assert [(v.name, dict(v.tags)) for v in here.storage.list_volumes()] == [("mine", {"a": "1"})]
    other = ("from xen2kvm.backends.fake import FakeBackends\n"
             "from xen2kvm.process import Runner\n"
             f"b = FakeBackends({state!r}, 'h2', Runner())\n"
             "b.storage.create_volume('theirs', 1024, {})\n"
             "b.storage.set_tags('mine', {'a': None, 'b': '2'})\n"
             "b.storage.attach('mine', 'h2')\n"
             "b.close()\n")
    subprocess.run([sys.executable, "-c", other], check=True, timeout=60)
    assert [(v.name, v.size_bytes, dict(v.tags), v.attached)
            for v in here.storage.list_volumes()] == [("mine", 512, {"b": "2"}, ("h2",)),
                                                      ("theirs", 1024, {}, ())]
    here.storage.delete_snapshot("none")  # a write of this process after theirs
    here.storage.create_snapshot("theirs", "snap", {})
    assert [s.name for s in here.storage.list_snapshots()] == ["snap"]
