"""The emulated cluster's records (volumes, snapshots, attachments) and their state file."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Optional

from .files import Devices, private
from .rules import ApiFailure


class ClusterState:
    """What the endpoints read and change, under one lock; changes are saved after each."""

    def __init__(self, data: Path, dev_root: Path, use_loop: Optional[bool] = None):
        self.data = Path(data)
        self.data.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.devices = Devices(dev_root, use_loop)
        self.lock = threading.RLock()
        self.volumes: dict[str, dict[str, Any]] = {}
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.attachments: dict[str, dict[int, str]] = {}
        self.generation = 0
        self.next_id = 1
        self._load()

    def _state_file(self) -> Path:
        return self.data / "state.json"

    def _load(self) -> None:
        if self._state_file().exists():
            st = json.loads(self._state_file().read_text())
            self.volumes, self.generation, self.next_id = st["volumes"], st["gen"], st["next"]
            self.snapshots = st.get("snapshots", {})

    def _save(self) -> None:
        tmp = self.data / ".state.json.tmp"
        with private(tmp, "w") as f:
            f.write(json.dumps({"volumes": self.volumes, "gen": self.generation,
                                "next": self.next_id, "snapshots": self.snapshots}))
        os.replace(tmp, self._state_file())

    def path(self, name: str) -> Path:
        return self.data / f"{self.volumes[name]['globalId']}.img"

    def snap_path(self, name: str) -> Path:
        return self.data / f"{self.snapshots[name]['globalId']}.img"

    def _new_gid(self) -> str:
        gid = f"emu.{self.next_id:x}.{int(time.time()) % 100000:x}"
        self.next_id += 1
        return gid

    def _done(self) -> dict:
        """The reply of a change: its generation is the one the change makes."""
        return {"ok": True, "generation": self.generation + 1}

    def _vol(self, name: str) -> dict:
        if name not in self.volumes:
            raise ApiFailure("objectDoesNotExist", f"Volume {name} does not exist")
        return self.volumes[name]

    def _snap(self, name: str) -> dict:
        if name not in self.snapshots:
            raise ApiFailure("objectDoesNotExist", f"Snapshot {name} does not exist")
        return self.snapshots[name]

    def _busy(self, name: str, action: str) -> None:
        clients = self.attachments.get(name)
        if clients:
            ids = ",".join(str(c) for c in sorted(clients))
            raise ApiFailure("busy", f"Cannot {action} volume {name}: it is open at client {ids}")

    def used_bytes(self) -> int:
        """Raw bytes stored: the volume files' allocated blocks, three copies each."""
        return 3 * sum(os.stat(self.path(n)).st_blocks * 512 for n in self.volumes)

    def shutdown_devices(self) -> None:
        for name in list(self.attachments):
            self.devices.detach(name)
