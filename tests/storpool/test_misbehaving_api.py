"""An API (or a proxy in front of it) that answers with something other than StorPool's
envelope, answers late or not at all: every shape at every mutating call is one line naming
the API address and the call, exit 4, no traceback; a rerun against a healthy API ends in the
same state as a run that was never disturbed. "slow" and "hang" use a 1 s timeout (short, yet
long for a healthy call on a loaded machine) and a reply held on an Event, never a sleep."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest

from xen2kvm.testing.emulator import Emulator, serve
from xen2kvm.testing.emulator.misreplies import MISREPLIES

from .conftest import HOST, OUR_ID, TOKEN, SPRig

pytestmark = pytest.mark.storpool
MIB = 1 << 20
PREPARE, CLEANUP = "xen2kvmDisk -y -x ldisk -k kdisk", "xen2kvm cleanup -y"
# the mutating calls and a command whose run makes that call
MUTATING = {"VolumeCreate": PREPARE, "VolumeUpdate": PREPARE, "VolumesReassignWait": PREPARE,
            "VolumeDelete": CLEANUP}
SHAPES = sorted(MISREPLIES)


def _setup(sp: SPRig, command: str) -> None:
    for name, pattern in (("wdisk", b"WIN!"), ("kwdisk", b""), ("ldisk", b"LNX-"),
                          ("kdisk", b"")):
        sp.create(name, 8 * MIB, pattern)
    if command == CLEANUP:
        sp.ok("xen2kvmDisk -y -x wdisk -k kwdisk -b")


def end_state(emu: Emulator) -> dict:
    """Names, sizes, tags, attachments and data of every volume (ids and times differ)."""
    with emu.lock:
        return {"volumes": {n: (v["size"], v["tags"], hashlib.sha256(
                    emu.path(n).read_bytes()).hexdigest()) for n, v in emu.volumes.items()},
                "attachments": json.dumps(emu.attachments, sort_keys=True)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The end state of each command run on an API that behaves."""
    out = {}
    for command in (PREPARE, CLEANUP):
        tmp = tmp_path_factory.mktemp("reference")
        emu = Emulator(tmp / "data", TOKEN, tmp / "dev")
        server = serve(emu)
        conf = tmp / "storpool.conf"
        conf.write_text(f"SP_API_HTTP_HOST=127.0.0.1\nSP_API_HTTP_PORT="
                        f"{server.server_address[1]}\nSP_AUTH_TOKEN={TOKEN}\n\n"
                        f"[{HOST}]\nSP_OURID={OUR_ID}\n")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("XEN2KVM_STORPOOL_CONF", str(conf))
            mp.setenv("XEN2KVM_DEV_ROOT", str(tmp / "dev"))
            mp.setenv("XEN2KVM_LOCK_DIR", str(tmp / "lock"))
            sp = SPRig(emu)
            _setup(sp, command)
            sp.ok(command)
        server.shutdown()
        server.server_close()
        out[command] = end_state(emu)
    return out


@pytest.fixture
def strict(monkeypatch):
    """No retries and a short timeout: each shape gives exactly one line."""
    monkeypatch.setenv("XEN2KVM_API_RETRIES", "0")
    monkeypatch.setenv("XEN2KVM_API_TIMEOUT", "1")
    return monkeypatch


def _released(emu: Emulator, env: pytest.MonkeyPatch) -> None:
    """Let held replies go, wait until the emulator has answered them, and give the rerun
    the default timeout and retries."""
    emu.release.set()
    with emu.idle:
        assert emu.idle.wait_for(lambda: emu.held == 0, timeout=30)
    env.delenv("XEN2KVM_API_RETRIES", raising=False)
    env.delenv("XEN2KVM_API_TIMEOUT", raising=False)


def _one_line(sp: SPRig, call: str) -> str:
    lines = sp.err.splitlines()
    assert len(lines) == 1, sp.err
    assert "Traceback" not in sp.err and "Expecting value" not in sp.err
    assert f"StorPool API 127.0.0.1:{sp.emu.port} {call}" in lines[0], lines[0]
    assert "rerun" in lines[0]
    return lines[0]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("endpoint", sorted(MUTATING))
def test_a_bad_reply_to_a_change_is_one_line_and_a_rerun_converges(sp, strict, reference,
                                                                   endpoint, shape):
    command = MUTATING[endpoint]
    _setup(sp, command)
    xen = hashlib.sha256(sp.file("ldisk").read_bytes()).hexdigest()
    sp.emu.misreply(endpoint, shape)
    assert sp.run(command) == 4, (sp.out, sp.err)
    _one_line(sp, endpoint)
    _released(sp.emu, strict)
    sp.ok(command)
    assert end_state(sp.emu) == reference[command]
    assert hashlib.sha256(sp.file("ldisk").read_bytes()).hexdigest() == xen


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("endpoint", ["VolumesList", "AttachmentsList"])
def test_a_bad_reply_to_a_read_is_one_line_and_changes_nothing(sp, strict, reference,
                                                               endpoint, shape):
    _setup(sp, PREPARE)
    before = end_state(sp.emu)
    sp.emu.misreply(endpoint, shape)
    assert sp.run(PREPARE) == 4, (sp.out, sp.err)
    _one_line(sp, endpoint)
    _released(sp.emu, strict)
    assert end_state(sp.emu) == before
    sp.ok(PREPARE)
    assert end_state(sp.emu) == reference[PREPARE]


def test_retries_say_so_on_stderr_and_never_show_the_token(sp, strict):
    strict.delenv("XEN2KVM_API_RETRIES")
    _setup(sp, PREPARE)
    sp.emu.misreply("VolumesList", "hang", count=2)
    done = threading.Event()

    def run() -> None:
        sp.run("xen2kvm status")
        done.set()

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(30)
    _released(sp.emu, strict)
    assert done.is_set() and "ldisk" not in sp.err
    lines = sp.err.splitlines()
    assert [line.split("; ")[-1] for line in lines] == ["retry 1 of 5 in 0 s",
                                                        "retry 2 of 5 in 0 s"]
    assert all(f"StorPool API 127.0.0.1:{sp.emu.port} VolumesList: no reply" in line
               for line in lines)
    assert TOKEN not in sp.err + sp.out + sp.log.getvalue()


def test_a_timed_out_change_is_never_resent(sp, strict):
    """The API may still apply a change whose reply timed out: resending a sizeAdd would
    grow the volume twice. The run stops; the rerun finds the grow done."""
    strict.delenv("XEN2KVM_API_RETRIES")
    _setup(sp, PREPARE)
    size = sp.emu.volumes["kdisk"]["size"]
    sp.emu.misreply("VolumeUpdate", "slow")
    assert sp.run(PREPARE) == 4
    line = _one_line(sp, "VolumeUpdate")
    assert "unknownOutcome" in line
    _released(sp.emu, strict)
    sp.ok(PREPARE)
    assert sp.emu.volumes["kdisk"]["size"] == size + 32 * 512
    assert sp.emu.calls["VolumeUpdate"] >= 2


def test_timeouts_and_budget_are_validated(sp, monkeypatch):
    _setup(sp, PREPARE)
    monkeypatch.setenv("XEN2KVM_API_TIMEOUT", "soon")
    assert sp.run("xen2kvm status") == 2
    assert sp.err.count("\n") == 1 and "XEN2KVM_API_TIMEOUT=soon" in sp.err
