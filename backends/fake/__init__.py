"""The in-memory model of StorPool plus KVM hosts, kept in a folder that many processes share.

Every call on the storage or a host is one transaction: under an exclusive lock on the state
folder the cluster is re-read when another process saved since, the call runs, and a change is
saved (write, rename) before the lock is let go. Processes on the fake therefore interleave at
call granularity as they do against a real cluster, nothing is lost between them, and a
`kill -9` leaves every completed call in place. The run lock is per host (`lock-<host>/`), so
two fake hosts can race as two real hypervisors can.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from xen2kvm import lockdir
from xen2kvm.backend import BackendConfig
from xen2kvm.errors import PlanError, Unreachable, UsageError
from xen2kvm.process import Runner

from . import model
from .host import FakeHost
from .storage import FakeStorage

DEFAULT_HOST = "kvm1"


class _Synced:
    """Every public method of the wrapped object runs as one transaction of the cluster."""

    def __init__(self, target: Any, backends: FakeBackends,
                 check: Callable[[], None] = lambda: None):
        self._target, self._backends, self._check = target, backends, check

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def call(*args, **kwargs):
            with self._backends.transaction():
                self._check()
                return attr(*args, **kwargs)

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        # a setting (the host's helper_sink) reaches the object, not this wrapper
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._target, name, value)


class FakeBackends:
    """The storage and the local host of one invocation on the shared state folder."""

    def __init__(self, state_dir: Optional[str], host: Optional[str], runner: Runner):
        if not state_dir:
            raise UsageError("the fake backend needs a state folder: --state DIR or XEN2KVM_STATE")
        self.state_dir = Path(state_dir)
        self._open_folder()
        self.runner = runner
        self._depth, self._seen = 0, None
        self.cluster = model.Cluster()
        self._generation = self.cluster.generation
        self._hosts: list[FakeHost] = []
        self.storage = _Synced(FakeStorage(self.cluster), self)
        host = host or DEFAULT_HOST
        self.lock_dir = str(self.state_dir / f"lock-{host}")
        self.audit_path = self.state_dir / "audit.jsonl"  # operator completeness: its audit log
        with self.transaction():
            self.host = self.host_named(host)

    def _open_folder(self) -> None:
        where = self.state_dir
        if where.exists() and not where.is_dir():
            raise UsageError(f"the fake cluster's state folder {where} is not a folder; "
                             "give --state a folder (a new one starts an empty cluster)")
        self._fd: Optional[int] = None
        if where.exists():  # a new cluster's folder appears with its first change
            self._attach_folder()

    def _attach_folder(self) -> None:
        where = self.state_dir
        try:
            where.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise PlanError(f"cannot open the fake cluster's state folder {where} "
                            f"({exc.strerror}); fix its permissions") from None
        if not os.access(where, os.W_OK):
            os.close(self._fd)
            self._fd = None
            raise PlanError(f"the fake cluster's state folder {where} is read-only; make it "
                            "writable (chmod u+w) or work on a copy")

    def host_named(self, name: str) -> FakeHost:
        with self.transaction():
            host = FakeHost(self.cluster, name, self.runner)
        self._hosts.append(host)
        return _Synced(host, self, lambda: _reachable(host))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Re-read what others saved, run, save what changed: all under the folder's lock."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        if self._fd is None and self.state_dir.exists():
            self._attach_folder()
        locked = self._fd is not None
        if locked:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._depth = 1
        try:
            if locked:
                self._refresh()
            try:
                yield
            finally:
                if not locked and self.cluster.generation != self._generation:
                    self._attach_folder()
                    fcntl.flock(self._fd, fcntl.LOCK_EX)
                    locked = True
                self._save_if_changed()
        finally:
            self._depth = 0
            if locked:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _refresh(self) -> None:
        seen = model.stamp(self.state_dir)
        if seen == self._seen:
            return
        fresh = model.load(self.state_dir)
        # the same object, new contents: the storage and hosts keep their reference
        self.cluster.__dict__.clear()
        self.cluster.__dict__.update(fresh.__dict__)
        for host in self._hosts:
            host.state = self.cluster.host(host.name)
        self._generation, self._seen = self.cluster.generation, seen

    def _save_if_changed(self) -> None:
        if self.cluster.generation != self._generation:
            model.save(self.cluster, self.state_dir)
            self._generation, self._seen = self.cluster.generation, model.stamp(self.state_dir)

    def close(self) -> None:
        """Save what the sim commands changed on the cluster object directly (they do not
        count generations) unless another process saved since this one's last call: then the
        copy here is stale, and saving it would undo that process's calls. The folder stays
        open: tests edit the model and close again."""
        if self._fd is None:
            empty = model.Cluster()
            for name in self.cluster.hosts:  # a host looked at is not a change
                empty.host(name)
            if model.dump(self.cluster) == model.dump(empty):
                return  # nothing to keep: no folder for a cluster that never changed
            self._attach_folder()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if model.stamp(self.state_dir) in (self._seen, None) and \
                    model.dump(self.cluster) != model.saved_bytes(self.state_dir):
                model.save(self.cluster, self.state_dir)
                self._generation, self._seen = (self.cluster.generation,
                                                model.stamp(self.state_dir))
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def lock(self) -> Callable[[], None]:
        with self.transaction():
            _reachable(self.host._target)  # a real host's lock is taken on the host
        return lockdir.acquire(self.lock_dir)

    def __del__(self) -> None:
        with contextlib.suppress(AttributeError, OSError, TypeError):
            os.close(self._fd)


def _reachable(host: FakeHost) -> None:
    """A host that is down (`sim host down H`) answers no call, as an unreachable SSH host."""
    if host.state.down:
        raise Unreachable(host.name, f"the fake host is down (`sim host up {host.name}` "
                          "brings it back)")


def open_backends(config: BackendConfig) -> FakeBackends:
    """A remote host of the fake is one of its hosts by name: the model has no SSH."""
    return FakeBackends(config.state, config.host_name, config.runner)
