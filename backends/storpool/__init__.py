"""The real backend: StorPool through its API (official bindings) and the KVM host's kernel
through dmsetup. Settings come from the StorPool configuration (see config.py);
XEN2KVM_DEV_ROOT moves /dev (for the API emulator), XEN2KVM_LOCK_DIR the run lock."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Callable, Optional

from xen2kvm import lockdir
from xen2kvm.backend import BackendConfig, ListCache
from xen2kvm.process import Runner
from xen2kvm.remote import SSHRunner

from . import config
from .client import Client
from .host import LocalHost
from .remote_host import RemoteHost
from .storage import StorPoolStorage

DEFAULT_LOCK_DIR = "/run/lock/xen2kvm"


class StorPoolBackends:
    """`runner` decides where the host steps run: locally, or over SSH (then the client ID
    may come from an inventory instead of the host's section of the StorPool config)."""

    def __init__(self, host: Optional[str], runner: Runner, remote: bool = False,
                 client_id: Optional[int] = None, shared: Optional[ListCache] = None):
        hostname = host or platform.node()
        settings = config.load(hostname)
        self.runner, self.remote = runner, remote
        self.audit_path: Optional[Path] = None  # XEN2KVM_AUDIT_LOG or the default
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
        if remote and lock_root:
            self.lock_dir = os.path.join(lock_root, hostname)
        self.host.note_dir = Path(self.lock_dir)  # beside the lock

    def lock(self) -> Callable[[], None]:
        if self.remote:  # the host's own lock, taken over SSH
            return self.host.hold_lock(self.lock_dir)
        # checked and opened without following links: see lockdir.py
        return lockdir.acquire(self.lock_dir)

    def close(self) -> None:
        if isinstance(self.runner, SSHRunner):  # the run lock's holder ends with it
            self.runner.close()


def open_backends(cfg: BackendConfig) -> StorPoolBackends:
    """A remote host's steps run over SSH, with the client id its inventory gives."""
    if cfg.remote is None:
        return StorPoolBackends(cfg.host, cfg.runner, client_id=cfg.client_id,
                                shared=cfg.shared)
    runner = SSHRunner(cfg.remote, cfg.ssh.known_hosts, cfg.ssh.accept_new_keys)
    client_id = cfg.client_id if cfg.client_id is not None else cfg.remote.client_id
    return StorPoolBackends(cfg.remote.name, runner, remote=True, client_id=client_id,
                            shared=cfg.shared)
