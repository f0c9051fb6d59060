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


def test_the_emulator_checks_what_the_bindings_check_before_sending(api):
    """The API itself refuses these too: raw requests, past the bindings' own checks (the
    rules through both backends: tests/storpool/test_contract.py)."""
    refused(api, "POST", "VolumeCreate", {"name": "bad name", "size": 512}, "invalidParam")
    refused(api, "POST", "VolumeCreate", {"name": "x" * 200, "size": 512}, "invalidParam")
    refused(api, "POST", "VolumeCreate", {"name": "v", "size": 1000}, "invalidParam", "512")
    refused(api, "POST", "VolumeCreate", {"name": "v", "size": 512, "tags": {"a b": "c"}},
            "invalidParam", "tag")
    refused(api, "POST", "VolumeCreate", {"name": "v", "size": 512, "tags": {"a": "c d"}},
            "invalidParam", "tag")
    api("POST", False, "VolumeCreate", {"name": "v", "size": 4096})
    refused(api, "POST", "VolumeUpdate/v", {"sizeAdd": 100}, "invalidParam")
    refused(api, "POST", "VolumeSnapshot/v", {"name": "bad name"}, "invalidParam")
    refused(api, "POST", "SnapshotDelete/nosuch", None, "objectDoesNotExist")


def test_a_shrink_needs_shrinkOk_and_a_detached_volume(api, emulator):
    """Not in the StorageBackend protocol (the tool never shrinks): the raw API only."""
    api("POST", False, "VolumeCreate", {"name": "v", "size": 8192})
    refused(api, "POST", "VolumeUpdate/v", {"size": 4096}, "invalidParam", "shrinkOk")
    api("POST", False, "VolumesReassignWait", {"reassign": [{"volume": "v", "rw": [3]}]})
    assert (emulator.devices.dir / "v").exists()
    refused(api, "POST", "VolumeUpdate/v", {"size": 4096, "shrinkOk": True}, "busy",
            "is open at client 3")
    api("POST", False, "VolumesReassign", [{"volume": "v", "detach": "all"}])
    assert not (emulator.devices.dir / "v").exists()
    api("POST", False, "VolumeUpdate/v", {"size": 4096, "shrinkOk": True})
    assert emulator.volumes["v"]["size"] == 4096 and emulator.path("v").stat().st_size == 4096


def test_token_is_checked(emulator):
    bad = spapi.Api(port=emulator.port, auth="wrong", transientRetries=0)
    with pytest.raises(spapi.ApiError) as exc:
        bad.volumesList()
    assert exc.value.status == 401


def test_faults_are_injected_per_endpoint(api, emulator):
    emulator.inject("VolumesList", 1, transient=True)
    err = refused(api, "GET", "VolumesList", None, "transientError")
    assert err["transient"] is True
    assert api("GET", False, "VolumesList", None) == []
    emulator.inject("VolumeCreate", 1, transient=False)
    refused(api, "POST", "VolumeCreate", {"name": "v", "size": 512}, "injectedFault")
    assert emulator.calls["VolumesList"] == 2
