"""A third rig for the fast suite: the real StorPool backend against the API emulator, with
no kernel underneath (attached volumes are links to the emulator's files, no dm). It runs the
@storpoolonly scenarios, which need the HTTP API but not device-mapper, on any machine and as
any user; the kernel lab runs them again with loop devices and dm."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from xen2kvm.testing.emulator import Emulator, serve

from .conftest import Rig
from .labrig import HOST, OUR_ID, TOKEN, LabRig


class ApiRig(LabRig):

    def __init__(self, tmp: Path):
        Rig.__init__(self)  # not LabRig's: that one mounts a tmpfs and reads the kernel's sysctls
        self.tmp = tmp
        self.data = tmp / "data"
        self.emu = Emulator(self.data, TOKEN, tmp / "dev", use_loop=False)
        self.server = serve(self.emu)
        conf = tmp / "storpool.conf"
        conf.write_text(f"SP_API_HTTP_HOST=127.0.0.1\nSP_API_HTTP_PORT="
                        f"{self.server.server_address[1]}\nSP_AUTH_TOKEN={TOKEN}\n\n"
                        f"[{HOST}]\nSP_OURID={OUR_ID}\n")
        self.env = {"XEN2KVM_STORPOOL_CONF": str(conf), "XEN2KVM_DEV_ROOT": str(tmp / "dev"),
                    "XEN2KVM_LOCK_DIR": str(tmp / "lock"), "XEN2KVM_API_RETRY_DELAY": "0"}
        self._saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        self.vms: dict[str, dict] = {}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.emu.shutdown_devices()
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def dm_tables(self) -> dict[str, str]:
        return {}

    def fingerprint(self) -> bytes:
        """Every volume's record, attachments and data."""
        h = hashlib.sha256()
        with self.emu.lock:
            h.update(json.dumps([self.emu.volumes, sorted(
                (k, sorted(v.items())) for k, v in self.emu.attachments.items())],
                sort_keys=True).encode())
            for name in sorted(self.emu.volumes):
                h.update(self.emu.path(name).read_bytes())
        return h.digest()
