"""The emulator refuses what StorPool refuses (raw requests, past the bindings' own checks)."""

from __future__ import annotations

import pytest
from storpool import spapi

from .conftest import TOKEN

pytestmark = pytest.mark.storpool


@pytest.fixture
def api(emulator):
    return spapi.Api(port=emulator.port, auth=TOKEN, transientRetries=0)


def refused(api, method, query, body, name, text=""):
    with pytest.raises(spapi.ApiError) as exc:
        api(method, False, query, body)
    err = exc.value.json["error"]
    assert err["name"] == name and text in err["descr"], err
    return err


def test_names_tags_and_sizes(api):
    refused(api, "POST", "VolumeCreate", {"name": "bad name", "size": 512}, "invalidParam")
    refused(api, "POST", "VolumeCreate", {"name": "x" * 200, "size": 512}, "invalidParam")
    refused(api, "POST", "VolumeCreate", {"name": "v", "size": 1000}, "invalidParam", "512")
    refused(api, "POST", "VolumeCreate", {"name": "v", "size": 512, "tags": {"a b": "c"}},
            "invalidParam", "tag")
    refused(api, "POST", "VolumeCreate", {"name": "v", "size": 512, "tags": {"a": "c d"}},
            "invalidParam", "tag")
    refused(api, "POST", "VolumeCreate", {"name": "v", "size": 512, "tags": {"k": "v" * 199}},
            "invalidParam", "200 bytes")
    api("POST", False, "VolumeCreate", {"name": "v", "size": 4096})
    refused(api, "POST", "VolumeCreate", {"name": "v", "size": 4096}, "objectExists")
    refused(api, "POST", "VolumeUpdate/v", {"sizeAdd": 100}, "invalidParam")
    refused(api, "POST", "VolumeUpdate/v", {"size": 2048}, "invalidParam", "shrinkOk")
    api("POST", False, "VolumeUpdate/v", {"size": 2048, "shrinkOk": True})
    refused(api, "POST", "VolumeDelete/nosuch", None, "objectDoesNotExist")
    refused(api, "POST", "VolumeUpdate/nosuch", {"sizeAdd": 512}, "objectDoesNotExist")
    refused(api, "POST", "VolumeCreate", {"name": "c", "baseOn": "nosuch"}, "objectDoesNotExist")
    api("POST", False, "VolumeCreate", {"name": "w", "size": 4096})
    refused(api, "POST", "VolumeUpdate/v", {"rename": "w"}, "objectExists")


def test_attached_volumes_are_busy(api, emulator):
    api("POST", False, "VolumeCreate", {"name": "v", "size": 8192})
    api("POST", False, "VolumesReassignWait", {"reassign": [{"volume": "v", "rw": [3]}]})
    assert (emulator.devices.dir / "v").exists()
    refused(api, "POST", "VolumeDelete/v", None, "busy", "is open at client 3")
    refused(api, "POST", "VolumeUpdate/v", {"size": 4096, "shrinkOk": True}, "busy",
            "is open at client 3")
    refused(api, "POST", "VolumesReassignWait", {"reassign": [{"volume": "v", "rw": [4]}]},
            "busy")
    api("POST", False, "VolumesReassign", [{"volume": "v", "detach": "all"}])
    assert not (emulator.devices.dir / "v").exists()
    api("POST", False, "VolumeDelete/v", None)


def test_token_is_checked(emulator):
    bad = spapi.Api(port=emulator.port, auth="wrong", transientRetries=0)
    with pytest.raises(spapi.ApiError) as exc:
        bad.volumesList()
    assert exc.value.status == 401


def test_clones_are_copy_on_write(api, emulator):
    api("POST", False, "VolumeCreate", {"name": "p", "size": 1 << 20})
    with open(emulator.path("p"), "r+b") as f:
        f.write(b"parent")
    api("POST", False, "VolumeCreate", {"name": "c", "baseOn": "p"})
    with open(emulator.path("p"), "r+b") as f:
        f.write(b"PARENT")
    with open(emulator.path("c"), "rb") as f:
        assert f.read(6) == b"parent"
    assert emulator.volumes["c"]["size"] == 1 << 20


def test_faults_are_injected_per_endpoint(api, emulator):
    emulator.inject("VolumesList", 1, transient=True)
    err = refused(api, "GET", "VolumesList", None, "transientError")
    assert err["transient"] is True
    assert api("GET", False, "VolumesList", None) == []
    emulator.inject("VolumeCreate", 1, transient=False)
    refused(api, "POST", "VolumeCreate", {"name": "v", "size": 512}, "injectedFault")
    assert emulator.calls["VolumesList"] == 2


def test_snapshot_endpoints_refuse_what_storpool_refuses(api, emulator):
    api("POST", False, "VolumeCreate", {"name": "v", "size": 4096})
    refused(api, "POST", "VolumeSnapshot/v", {"name": "bad name"}, "invalidParam")
    refused(api, "POST", "VolumeSnapshot/v", {"name": "s", "tags": {"k": "v" * 199}},
            "invalidParam", "200 bytes")
    api("POST", False, "VolumeSnapshot/v", {"name": "s"})
    refused(api, "POST", "VolumeSnapshot/v", {"name": "s"}, "objectExists")
    refused(api, "POST", "SnapshotDelete/nosuch", None, "objectDoesNotExist")
    refused(api, "POST", "VolumeRevert/v", {"toSnapshot": "nosuch"}, "objectDoesNotExist")
    api("POST", False, "VolumesReassignWait", {"reassign": [{"volume": "v", "rw": [3]}]})
    refused(api, "POST", "VolumeRevert/v", {"toSnapshot": "s"}, "busy", "open at client 3")
    assert [x["name"] for x in api("GET", False, "SnapshotsList", None)] == ["s"]
