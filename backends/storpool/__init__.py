"""The real backend: StorPool through its API (official bindings) and the KVM host's kernel
through dmsetup. Settings come from the StorPool configuration (see config.py);
XEN2KVM_DEV_ROOT moves /dev (for the API emulator), XEN2KVM_LOCK_DIR the run lock."""

from __future__ import annotations

import os
import platform
from typing import Optional

from xen2kvm.process import Runner

from . import config
from .client import Client
from .host import LocalHost
from .storage import StorPoolStorage


class StorPoolBackends:
    def __init__(self, host: Optional[str], runner: Runner):
        hostname = host or platform.node()
        settings = config.load(hostname)
        runner.secrets.append(settings.token)
        self.settings = settings
        self.client = Client(settings)
        self.storage = StorPoolStorage(self.client, hostname, settings.our_id)
        self.host = LocalHost(hostname, runner, os.environ.get("XEN2KVM_DEV_ROOT", "/dev"))
        self.lock_dir = os.environ.get("XEN2KVM_LOCK_DIR", "/run/lock/xen2kvm")

    def close(self) -> None:
        pass


def open_backends(state_dir, host, runner: Runner) -> StorPoolBackends:
    return StorPoolBackends(host, runner)
