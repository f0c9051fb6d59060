"""What one invocation works with: the backends, the output, dry-run or `-y`, and the lock."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Optional, TextIO

from xen2kvm import backends as registry

from . import lockdir
from .errors import UsageError
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
    # operator completeness: which command line runs (messages, the audit record)
    prog: str = "xen2kvm"
    argv: tuple[str, ...] = ()


@dataclass
class Ctx:
    opts: Options
    out: TextIO = field(default_factory=lambda: sys.stdout)
    backends: Any = None
    _lock: Any = None  # what releases the run lock
    _audit: Any = None  # operator completeness: this run's audit record (xen2kvm/audit.py)

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

    # operator completeness: warnings, the audit record, the helper's output ------------------
    def warn(self, text: str) -> None:
        print(f"{self.opts.prog}: warning: {text}", file=sys.stderr)
        self.audit.warning(text)

    @property
    def audit(self):
        if self._audit is None:
            from . import audit

            runner = getattr(self.host, "runner", None) or Runner()
            self._audit = audit.Audit(audit.path_for(self.backends), self.opts.prog,
                                      self.opts.argv, self.host.name, runner.redact)

            def helper_line(line: str) -> None:  # shown as it comes, and kept
                self.say(line)
                self._audit.output(line)

            runner.helper_sink = helper_line
        return self._audit

    def finish(self, rc: int, error: Optional[BaseException] = None) -> None:
        if self._audit is not None:
            self._audit.finish(rc, error)

    def world(self) -> World:
        return World.read(self.storage, self.host)

    def lock(self) -> None:
        """One mutating run per host at a time: two runs for the same disk never interleave."""
        remote_dir = getattr(self.backends, "remote_lock_dir", None)
        if remote_dir is not None:  # the host's own lock, taken over SSH
            self._lock = self.host.hold_lock(remote_dir)
            return
        # checked and opened without following links: see lockdir.py
        self._lock = lockdir.acquire(getattr(self.backends, "lock_dir", None)
                                     or "/run/lock/xen2kvm")

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
            self.audit.begin()
            for step in plan.steps:
                self.say("+ " + step.render().replace("\n", "\n  "))
                try:
                    step.apply(self)
                except BaseException as exc:
                    self.audit.step(step.render(), exc)
                    raise
                self.audit.step(step.render())
        for failure in plan.failures:
            print(f"{self.opts.prog}: error: {failure}", file=sys.stderr)
            self.audit.warning(failure)
        return 6 if plan.failures else 0

    def close(self) -> None:
        if self.backends is not None:
            self.backends.close()
        if self._lock is not None:
            self._lock()
            self._lock = None
