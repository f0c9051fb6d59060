"""Every StorPool backend call through the real bindings against the emulator."""

from __future__ import annotations

import os

import pytest

from xen2kvm.backend import ListCache
from xen2kvm.backends.storpool import StorPoolBackends, config
from xen2kvm.errors import BackendError, UsageError
from xen2kvm.process import Runner

from .conftest import HOST, OUR_ID, TOKEN

pytestmark = pytest.mark.storpool


@pytest.fixture
def be(emulator):
    return StorPoolBackends(HOST, Runner())


def test_configuration_sections_and_environment(emulator, monkeypatch):
    s = config.load(HOST)
    assert (s.host, s.port, s.token, s.our_id) == ("127.0.0.1", emulator.port, TOKEN, OUR_ID)
    assert config.load("otherhost").our_id is None
    monkeypatch.setenv("SP_API_HTTP_PORT", "4242")
    assert config.load(HOST).port == 4242
    monkeypatch.setenv("SP_API_HTTP_PORT", "many")
    with pytest.raises(UsageError, match="bad number"):
        config.load(HOST)


def test_configuration_files_in_etc(fs, monkeypatch):
    """The default paths, with pyfakefs: /etc/storpool.conf, conf.d in order, host section."""
    for var in ("XEN2KVM_STORPOOL_CONF", "SP_API_HTTP_HOST", "SP_API_HTTP_PORT", "SP_AUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(UsageError, match="/etc/storpool.conf is missing"):
        config.load("h1")
    fs.create_file("/etc/storpool.conf", contents="SP_API_HTTP_HOST=10.1.1.1\n[h1]\nSP_OURID=3\n")
    with pytest.raises(UsageError, match="SP_AUTH_TOKEN is not set"):
        config.load("h1")
    fs.create_file("/etc/storpool.conf.d/b.conf", contents="SP_AUTH_TOKEN=second\n")
    fs.create_file("/etc/storpool.conf.d/a.conf", contents="SP_AUTH_TOKEN=first\n")
    fs.create_file("/etc/storpool.conf.d/.hidden.conf", contents="SP_AUTH_TOKEN=hidden\n")
    s = config.load("h1")
    assert (s.host, s.token, s.our_id) == ("10.1.1.1", "second", 3)
    monkeypatch.setenv("SP_AUTH_TOKEN", "from-env")
    assert config.load("h1").token == "from-env"


def test_volume_calls(be, emulator):
    st = be.storage
    st.create_volume("v1", 1 << 20, {"a": "1"})
    assert [(v.name, v.size_bytes, dict(v.tags)) for v in st.list_volumes()] == [
        ("v1", 1 << 20, {"a": "1"})]
    st.clone_volume("c1", "v1", {"xen2kvm": "clone"})
    assert st.get("c1").tags == {"xen2kvm": "clone"} and st.get("c1").size_bytes == 1 << 20
    st.grow_volume("v1", 16384)
    assert st.get("v1").size_bytes == (1 << 20) + 16384
    st.set_tags("v1", {"xen": "c1", "a": None})
    assert st.get("v1").tags == {"xen": "c1"}
    st.rename_volume("c1", "c2")
    assert st.get("c1") is None and st.get("c2") is not None
    st.attach("v1", HOST)
    st.attach("v1", HOST)
    assert st.list_volumes()[1].attached == (HOST,)
    assert os.path.exists(be.host.device_path("v1"))
    be.host.write(be.host.device_path("v1"), 512, b"hello")
    assert be.host.read(be.host.device_path("v1"), 512, 5) == b"hello"
    st.detach("v1", HOST)
    st.detach("v1")
    assert st.list_volumes()[1].attached == ()
    st.attach("v1", HOST)
    with pytest.raises(BackendError, match="busy"):  # as on the fake: the plan detaches
        st.delete_volume("v1")
    st.detach("v1")
    st.delete_volume("v1")  # already gone: success
    assert [v.name for v in st.list_volumes()] == ["c2"]
    with pytest.raises(BackendError, match="objectDoesNotExist"):
        st.grow_volume("nosuch", 512)
    with pytest.raises(BackendError, match="no StorPool client ID"):
        st.attach("c2", "elsewhere")


def test_other_clients_show_by_id(be, emulator):
    be.storage.create_volume("v", 4096, {})
    emulator.handle("VolumesReassignWait", [], {"reassign": [{"volume": "v", "rw": [12]}]})
    assert be.storage.list_volumes()[0].attached == ("client12",)
    with pytest.raises(BackendError, match="is open at client 12"):
        be.storage.attach("v", HOST)


def test_shared_lists_are_read_once_and_labelled_per_host(emulator):
    shared = ListCache()
    a = StorPoolBackends("hA", Runner(), client_id=11, shared=shared).storage
    b = StorPoolBackends("hB", Runner(), client_id=12, shared=shared).storage
    a.create_volume("v", 4096, {"t": "1"})
    a.create_volume("w", 4096, {})
    emulator.handle("VolumesReassignWait", [], {"reassign": [{"volume": "v", "rw": [11]}]})
    emulator.calls.clear()
    seen_a, seen_b = a.list_volumes(), b.list_volumes()
    assert [(v.name, v.attached) for v in seen_a] == [("v", ("hA",)), ("w", ())]
    assert [(v.name, v.attached) for v in seen_b] == [("v", ("client11",)), ("w", ())]
    assert seen_a[0].tags == {"t": "1"} and dict(emulator.calls) == {
        "VolumesList": 1, "AttachmentsList": 1}
    # the shared picture is one moment's (runs that change things do not share one)
    a.create_volume("x", 4096, {})
    assert [v.name for v in b.list_volumes()] == ["v", "w"]


def test_transient_errors_are_retried_others_are_not(be, emulator):
    emulator.inject("VolumeCreate", 3, transient=True)
    be.storage.create_volume("v", 4096, {})
    emulator.inject("VolumeUpdate", 1, transient=False)
    with pytest.raises(BackendError, match="injected failure of VolumeUpdate"):
        be.storage.grow_volume("v", 512)
    assert be.storage.get("v").size_bytes == 4096


def test_wrong_token_and_unreachable_api(emulator, monkeypatch):
    monkeypatch.setenv("SP_AUTH_TOKEN", "wrong")
    with pytest.raises(BackendError, match="refused the token"):
        StorPoolBackends(HOST, Runner()).storage.list_volumes()
    monkeypatch.setenv("SP_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("SP_API_HTTP_PORT", "1")
    with pytest.raises(BackendError, match="StorPool API 127.0.0.1:1 VolumesList: cannot reach it"):
        StorPoolBackends(HOST, Runner()).storage.list_volumes()


def test_the_registry_opens_a_local_or_a_remote_host(emulator, tmp_path):
    from xen2kvm import backends as registry
    from xen2kvm.backend import BackendConfig, Backends
    from xen2kvm.remote import HostSpec, SSHRunner

    local = registry.open(BackendConfig("storpool", Runner(), host=HOST))
    assert isinstance(local, Backends) and local.lock_dir == str(tmp_path / "lock")
    assert local.storage.client_id(HOST) == OUR_ID and local.audit_path is None
    release = local.lock()  # the lock folder on this machine
    assert (tmp_path / "lock" / "xen2kvm.lock").exists()
    release()
    # a remote host: its steps over SSH (connected on first use), the inventory's client id,
    # and (XEN2KVM_LOCK_DIR set: several "hosts" on one machine) a lock folder of its own
    spec = HostSpec("kvm-b", "127.0.0.1", 1, client_id=12)
    remote = registry.open(BackendConfig("storpool", Runner(), remote=spec))
    assert isinstance(remote, Backends) and isinstance(remote.runner, SSHRunner)
    assert remote.host.name == "kvm-b" and remote.storage.client_id("kvm-b") == 12
    assert remote.lock_dir == str(tmp_path / "lock" / "kvm-b")
    remote.close()
