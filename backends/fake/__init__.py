"""The model of StorPool plus KVM hosts, kept in a SQLite database that many processes share.

Every call on the storage or a host is one transaction of the database: it takes the write
lock (`BEGIN IMMEDIATE`), reads the rows it touches, and commits what it changed when it
returns. Processes on the fake therefore interleave at call granularity as they do against a
real cluster, nothing is lost between them, and a `kill -9` leaves every completed call in
place. The run lock is per host (`lock-<host>/`), so two fake hosts can race as two real
hypervisors can.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from xen2kvm import lockdir
from xen2kvm.backend import BackendConfig
from xen2kvm.errors import PlanError, Unreachable, UsageError
from xen2kvm.process import Runner

from . import model
from .db import DB_FILE, Db
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
        self.cluster = model.Cluster(self._open_db())
        self.runner = runner
        self._depth = 0
        self.storage = _Synced(FakeStorage(self.cluster), self)
        host = host or DEFAULT_HOST
        self.lock_dir = str(self.state_dir / f"lock-{host}")
        self.audit_path = self.state_dir / "audit.jsonl"  # operator completeness: its audit log
        self.host = self.host_named(host)

    def _open_db(self) -> Db:
        where = self.state_dir
        if where.exists() and not where.is_dir():
            raise UsageError(f"the fake cluster's state folder {where} is not a folder; "
                             "give --state a folder (a new one starts an empty cluster)")
        if (where / model.OLD_STATE_FILE).exists():
            raise UsageError(f"{where / model.OLD_STATE_FILE} is a fake cluster in the old "
                             "pickle format, which is no longer read (nothing of it was "
                             "loaded); recreate the cluster in a new folder")
        self._pending = not where.exists()
        if self._pending:  # a new cluster's folder appears with its first change
            return Db(":memory:")
        return self._file_db()

    def _file_db(self) -> Db:
        where = self.state_dir
        try:
            where.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PlanError(f"cannot open the fake cluster's state folder {where} "
                            f"({exc.strerror}); fix its permissions") from None
        if not os.access(where, os.W_OK):
            raise PlanError(f"the fake cluster's state folder {where} is read-only; make it "
                            "writable (chmod u+w) or work on a copy")
        return Db(str(where / DB_FILE))

    def _persist(self) -> None:
        """Move a new cluster from memory into its folder once it holds a change."""
        if not self._pending or self.cluster.pristine():
            return
        self.cluster.db.adopt(self._file_db())
        self._pending = False

    def host_named(self, name: str) -> FakeHost:
        with self.transaction():
            host = FakeHost(self.cluster, name, self.runner)
        return _Synced(host, self, lambda: _reachable(host))

    @contextlib.contextmanager
    def transaction(self, atomic: bool = False) -> Iterator[None]:
        """One call: the database's write lock, the rows it touches, a commit when it
        returns. A failing call keeps what it did (a spent fault, a failed leg), as the real
        cluster does, unless it is `atomic` (a sim command that is all or nothing)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        db = self.cluster.db
        db.begin()
        self._depth = 1
        try:
            yield
        except BaseException:
            if atomic:
                db.rollback()
            else:
                db.commit()
            raise
        else:
            db.commit()
        finally:
            self._depth = 0
        self._persist()
        # XEN2KVM_FAKE_CALL_PAUSE=S: S real seconds after every call that changed something,
        # as a slow API spreads a command's changes in time (a kill at a random moment then
        # lands between two of them)
        pause = float(os.environ.get("XEN2KVM_FAKE_CALL_PAUSE") or 0)
        if pause > 0 and db.wrote:
            time.sleep(pause)

    def close(self) -> None:
        """Keep what was changed outside a call (tests edit the model directly)."""
        if not self._depth:
            if self.cluster.db.touched():
                with self.transaction():
                    pass  # what was changed outside a call is written, as one call
            self.cluster.db.park()

    def lock(self) -> Callable[[], None]:
        with self.transaction():
            _reachable(self.host._target)  # a real host's lock is taken on the host
        return lockdir.acquire(self.lock_dir)


def _reachable(host: FakeHost) -> None:
    """A host that is down (`sim host down H`) answers no call, as an unreachable SSH host."""
    if host.state.down:
        raise Unreachable(host.name, f"the fake host is down (`sim host up {host.name}` "
                          "brings it back)")


def open_backends(config: BackendConfig) -> FakeBackends:
    """A remote host of the fake is one of its hosts by name: the model has no SSH."""
    return FakeBackends(config.state, config.host_name, config.runner)
