"""The real backend: StorPool through its API (official bindings) and the KVM host's kernel
through dmsetup. Settings come from the StorPool configuration (see config.py);
XEN2KVM_DEV_ROOT moves /dev (for the API emulator), XEN2KVM_LOCK_DIR the run lock."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Optional

from xen2kvm.process import Runner

from . import config
from .client import Client, SharedLists
from .host import LocalHost
from .remote_host import RemoteHost
from .storage import StorPoolStorage

DEFAULT_LOCK_DIR = "/run/lock/xen2kvm"


class StorPoolBackends:
    """`runner` decides where the host steps run: locally, or over SSH (then the client ID
    may come from an inventory instead of the host's section of the StorPool config)."""

    def __init__(self, host: Optional[str], runner: Runner, remote: bool = False,
                 client_id: Optional[int] = None, shared: Optional[SharedLists] = None):
        hostname = host or platform.node()
        settings = config.load(hostname)
        runner.secrets.append(settings.token)
        self.settings = settings
        self.client = Client(settings)
        our_id = client_id if client_id is not None else settings.our_id
        self.storage = StorPoolStorage(self.client, hostname, our_id, shared)
        host_class = RemoteHost if remote else LocalHost
        self.host = host_class(hostname, runner, os.environ.get("XEN2KVM_DEV_ROOT", "/dev"))
        lock_root = os.environ.get("XEN2KVM_LOCK_DIR")
        self.lock_dir = lock_root or DEFAULT_LOCK_DIR
        # over SSH, the host's own lock: the one a run there takes; XEN2KVM_LOCK_DIR
        # (rehearsals, tests: several "hosts" on one machine) gives each host a folder
        self.remote_lock_dir: Optional[str] = None
        if remote:
            self.remote_lock_dir = os.path.join(lock_root, hostname) if lock_root \
                else DEFAULT_LOCK_DIR
        self.host.note_dir = Path(self.remote_lock_dir or self.lock_dir)  # beside the lock

    def close(self) -> None:
        pass


def open_backends(state_dir, host, runner: Runner) -> StorPoolBackends:
    return StorPoolBackends(host, runner)
