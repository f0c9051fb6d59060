"""What one invocation works with: the backends, the output, dry-run or `-y`, and the lock."""

from __future__ import annotations

import fcntl
import functools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TextIO

from xen2kvm import backends as registry

from .errors import LockBusy, UsageError
from .plans import Plan
from .process import Runner
from .world import World


@dataclass
class Options:
    backend: str = "storpool"
    state: Optional[str] = None
    host: Optional[str] = None
    yes: bool = False
    inventory: Optional[str] = None  # with --host H listed in it, H's steps run over SSH
    known_hosts: Optional[str] = None


@dataclass
class Ctx:
    opts: Options
    out: TextIO = field(default_factory=lambda: sys.stdout)
    backends: Any = None
    _lock: Any = None  # what releases the run lock

    @classmethod
    def open(cls, opts: Options, out: Optional[TextIO] = None) -> Ctx:
        ctx = cls(opts, out or sys.stdout)
        if opts.inventory and opts.backend == "storpool":
            from xen2kvm.backends.storpool import StorPoolBackends

            from .fleet import parse_hosts
            from .remote import SSHRunner

            specs = {s.name: s for s in parse_hosts(None, opts.inventory)}
            if opts.host not in specs:
                raise UsageError(f"host {opts.host} is not in the inventory {opts.inventory}")
            spec = specs[opts.host]
            ctx.backends = StorPoolBackends(spec.name, SSHRunner(spec, opts.known_hosts),
                                            remote=True, client_id=spec.client_id)
            return ctx
        module = registry.load(opts.backend)
        ctx.backends = module.open_backends(opts.state, opts.host, Runner())
        return ctx

    @property
    def storage(self):
        return self.backends.storage

    @property
    def host(self):
        return self.backends.host

    def say(self, text: str) -> None:
        print(text, file=self.out)

    def world(self) -> World:
        return World.read(self.storage, self.host)

    def lock(self) -> None:
        """One mutating run per host at a time: two runs for the same disk never interleave."""
        remote_dir = getattr(self.backends, "remote_lock_dir", None)
        if remote_dir is not None:  # the host's own lock, taken over SSH
            self._lock = self.host.hold_lock(remote_dir)
            return
        lock_dir = Path(getattr(self.backends, "lock_dir", None) or "/run/lock/xen2kvm")
        lock_dir.mkdir(parents=True, exist_ok=True)
        path = lock_dir / "xen2kvm.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockBusy(f"another xen2kvm run holds {path}; wait for it to finish") from None
        self._lock = functools.partial(os.close, fd)

    def ensure_lock(self) -> None:
        """Hold the run lock from now on (a run that changes the host outside plan steps)."""
        if self._lock is None:
            self.lock()

    def run(self, plan: Plan) -> int:
        """Print the plan (dry-run) or execute it (-y); the same list either way."""
        for note in plan.notes:
            self.say(note)
        if plan.steps and not self.opts.yes:
            self.say(f"# dry-run: nothing changed; add -y to run these {len(plan.steps)} steps:")
            for step in plan.steps:
                self.say(step.render())
        elif plan.steps:
            if self._lock is None:
                self.lock()
            for step in plan.steps:
                self.say("+ " + step.render().replace("\n", "\n  "))
                step.apply(self)
        for failure in plan.failures:
            print(f"xen2kvm: error: {failure}", file=sys.stderr)
        return 6 if plan.failures else 0

    def close(self) -> None:
        if self.backends is not None:
            self.backends.close()
        if self._lock is not None:
            self._lock()
            self._lock = None
