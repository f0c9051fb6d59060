"""The in-memory model of StorPool plus KVM hosts, saved in a folder between calls."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from xen2kvm.errors import UsageError
from xen2kvm.process import Runner

from . import model
from .host import FakeHost
from .storage import FakeStorage

DEFAULT_HOST = "kvm1"


class FakeBackends:
    """The storage and the local host of one invocation; `close()` saves what changed."""

    def __init__(self, state_dir: Optional[str], host: Optional[str], runner: Runner):
        if not state_dir:
            raise UsageError("the fake backend needs a state folder: --state DIR or XEN2KVM_STATE")
        self.state_dir = Path(state_dir)
        self.cluster = model.load(self.state_dir)
        self._generation = self.cluster.generation
        self.runner = runner
        self.storage = FakeStorage(self.cluster)
        self.host = self.host_named(host or DEFAULT_HOST)
        self.lock_dir = self.state_dir
        self.audit_path = self.state_dir / "audit.jsonl"  # operator completeness: its audit log

    def host_named(self, name: str) -> FakeHost:
        return FakeHost(self.cluster, name, self.runner)

    def close(self) -> None:
        if self.cluster.generation != self._generation:
            model.save(self.cluster, self.state_dir)
            self._generation = self.cluster.generation


def open_backends(state_dir: Optional[str], host: Optional[str], runner: Runner) -> FakeBackends:
    return FakeBackends(state_dir, host, runner)
