"""The StorPool API emulator on loopback and a configuration that points the real backend at it."""

from __future__ import annotations

import contextlib
import io
import logging
import shlex
from pathlib import Path

import pytest

from xen2kvm import cli, legacy
from xen2kvm.testing.emulator import Emulator, serve

TOKEN = "tok-8c1f2e-SECRET"
HOST = "kvm1"
OUR_ID = 7


@pytest.fixture
def emulator(tmp_path, monkeypatch):
    emu = Emulator(tmp_path / "data", TOKEN, tmp_path / "dev")
    server = serve(emu)
    port = server.server_address[1]
    conf = tmp_path / "storpool.conf"
    conf.write_text(f"SP_API_HTTP_HOST=127.0.0.1\nSP_API_HTTP_PORT={port}\n"
                    f"SP_AUTH_TOKEN={TOKEN}\n\n[{HOST}]\nSP_OURID={OUR_ID}\n")
    for var in ("SP_API_HTTP_HOST", "SP_API_HTTP_PORT", "SP_AUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XEN2KVM_STORPOOL_CONF", str(conf))
    monkeypatch.setenv("XEN2KVM_DEV_ROOT", str(tmp_path / "dev"))
    monkeypatch.setenv("XEN2KVM_LOCK_DIR", str(tmp_path / "lock"))
    monkeypatch.setenv("XEN2KVM_API_RETRY_DELAY", "0")
    emu.port = port
    emu.conf = conf
    yield emu
    server.shutdown()
    server.server_close()
    emu.shutdown_devices()


class SPRig:
    PROGRAMS = {"xen2kvm": cli.main, "xen2kvmDisk": legacy.main}

    def __init__(self, emu: Emulator):
        self.emu = emu
        self.vars: dict[str, str] = {}
        self.log = io.StringIO()

    def run(self, command: str):
        argv = shlex.split(command.format(**self.vars))
        out, err = io.StringIO(), io.StringIO()
        handler = logging.StreamHandler(self.log)
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = self.PROGRAMS[argv[0]](["--backend", "storpool", "--host", HOST,
                                             *argv[1:]])
        finally:
            root.removeHandler(handler)
        self.out, self.err = out.getvalue(), err.getvalue()
        return rc

    def ok(self, command: str) -> str:
        rc = self.run(command)
        assert rc == 0, (command, self.out, self.err)
        return self.out

    def create(self, name: str, size: int, pattern: bytes = b"") -> None:
        """A volume made by OnApp; XEN ones get recognisable data in their file."""
        self.emu.handle("VolumeCreate", [], {"name": name, "size": size})
        if pattern:
            with open(self.emu.path(name), "r+b") as f:
                for off in range(0, size, size // 8):
                    f.seek(off)
                    f.write(pattern * (4096 // len(pattern)))

    def file_bytes(self, name: str, offset: int, length: int) -> bytes:
        with open(self.emu.path(name), "rb") as f:
            f.seek(offset)
            return f.read(length)

    def tags(self, name: str) -> dict:
        return dict(self.emu.volumes[name]["tags"])

    def file(self, name: str) -> Path:
        return self.emu.path(name)


@pytest.fixture
def sp(emulator):
    return SPRig(emulator)
