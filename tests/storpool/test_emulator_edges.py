"""The emulator's own edges (issue 10, finding 12): a refusal changes nothing, a malformed
request gets HTTP 400 in StorPool's error envelope, SIGTERM/SIGINT detach what it attached,
its files are private, and its token never needs to be in argv."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import TOKEN

pytestmark = pytest.mark.storpool
HUGE = 10**21


def _raw(port: int, head: bytes, body: bytes = b"") -> tuple[int, dict]:
    """Whatever bytes a broken client sends; the reply must be an HTTP status and the envelope."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head + body)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def _post(query: str, length: str) -> bytes:
    return (f"POST /ctrl/1.0/{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Storpool v1:{TOKEN}"
            f"\r\nContent-Length: {length}\r\n\r\n").encode()


@pytest.mark.parametrize("length,body", [
    ("9", b"{not json"), ("abc", b"{}"), ("-5", b"{}"), ("99999999999", b"{}"),
    ("40", b'{"name": "v"'), ("2", b"[]"), ("4", b"null"),
])
def test_a_malformed_request_gets_400_in_the_envelope_and_changes_nothing(emulator, length,
                                                                          body):
    before = json.dumps(emulator.volumes, sort_keys=True)
    status, reply = _raw(emulator.port, _post("VolumeCreate", length), body)
    assert status == 400 and reply["error"]["name"] == "invalidParam", reply
    assert reply["error"]["transient"] is False
    assert json.dumps(emulator.volumes, sort_keys=True) == before


@pytest.mark.parametrize("query,body", [
    ("VolumeCreate", {"name": "big", "size": HUGE}),
    ("VolumeCreate", {"name": "big", "size": HUGE, "tags": {"t": "x"}}),
    ("VolumeCreate", {"name": "big", "baseOn": "v", "size": HUGE}),
    ("VolumeUpdate/v", {"sizeAdd": HUGE}),
    ("VolumeUpdate/v", {"size": HUGE, "tags": {"t": "x"}}),
])
def test_an_impossible_size_is_refused_with_nothing_kept(emulator, query, body):
    emulator.handle("VolumeCreate", [], {"name": "v", "size": 1 << 20})
    before = (json.dumps(emulator.volumes, sort_keys=True), sorted(os.listdir(emulator.data)),
              emulator.generation)
    raw = json.dumps(body).encode()
    status, reply = _raw(emulator.port, _post(query, str(len(raw))), raw)
    assert status == 400 and reply["error"]["name"] == "invalidParam", reply
    assert (json.dumps(emulator.volumes, sort_keys=True), sorted(os.listdir(emulator.data)),
            emulator.generation) == before
    assert emulator.path("v").stat().st_size == 1 << 20


def _start(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("xen2kvm-storpool-emulator")
    proc = subprocess.Popen([str(exe), "--listen", "127.0.0.1:0", "--data", str(tmp_path / "d"),
                             "--dev-root", str(tmp_path / "dev"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    return proc


def _port(proc: subprocess.Popen) -> int:
    line = proc.stdout.readline()
    assert "StorPool API emulator on" in line, (line, proc.stderr.read())
    return int(line.split(":")[1].split(",")[0])


def _call(port: int, query: str, body, token: str = TOKEN) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", f"/ctrl/1.0/{query}", json.dumps(body),
                 {"Authorization": f"Storpool v1:{token}"})
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_detaches_and_files_are_private(tmp_path, sig):
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    proc = _start(tmp_path, "--token-file", str(token))
    try:
        port = _port(proc)
        assert _call(port, "VolumeCreate", {"name": "v", "size": 1 << 20}) == 200
        assert _call(port, "VolumesReassignWait",
                     {"reassign": [{"volume": "v", "rw": [1]}]}) == 200
        link = tmp_path / "dev" / "storpool" / "v"
        assert link.is_symlink()
        loop = os.readlink(link)
    finally:
        proc.send_signal(sig)
        rc = proc.wait(60)
    assert rc == 0 and not link.is_symlink() and TOKEN not in " ".join(proc.args)
    if loop.startswith("/dev/loop"):  # as root: the loop device is gone too
        out = subprocess.run(["losetup", "-j", str(next((tmp_path / "d").glob("*.img")))],
                             capture_output=True, text=True).stdout
        assert out == ""
    for path in (tmp_path / "d").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o700


def test_the_token_comes_from_the_environment_and_argv_is_deprecated(tmp_path):
    proc = _start(tmp_path, env={"SP_AUTH_TOKEN": "from-env"})
    try:
        port = _port(proc)
        assert _call(port, "VolumeCreate", {"name": "v", "size": 512}, "from-env") == 200
        assert _call(port, "VolumeCreate", {"name": "w", "size": 512}, "wrong") == 401
    finally:
        proc.terminate()
        proc.wait(60)
    old = _start(tmp_path / "old", "--token", "T", env={"SP_AUTH_TOKEN": ""})
    try:
        _port(old)
    finally:
        old.terminate()
        old.wait(60)
    assert "--token is deprecated" in old.stderr.read()
    none = _start(tmp_path / "none", env={"SP_AUTH_TOKEN": ""})
    assert none.wait(60) != 0 and "no token" in none.stderr.read()
