"""What one invocation works with: the backends, the output, dry-run or `-y`, and the lock."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TextIO, Union

from xen2kvm import backends as registry

from . import claims as cl
from . import naming as nm
from . import steps as s
from .backend import (
    BackendConfig,
    Backends,
    HostBackend,
    ListCache,
    SSHOptions,
    StorageBackend,
)
from .errors import ClaimBusy, UsageError
from .plans import Plan
from .process import Runner
from .remote import HostSpec, parse_hosts
from .world import World


@dataclass
class Options:
    backend: str = "storpool"
    state: Optional[str] = None
    host: Optional[str] = None
    yes: bool = False
    inventory: Optional[str] = None  # with --host H listed in it, H's steps run over SSH
    known_hosts: Optional[str] = None
    take_over: bool = False  # remove other runs' claims (the operator says they crashed)
    format: str = "text"  # json: each plan, and each step as run, as one JSON line
    # operator completeness: which command line runs (messages, the audit record)
    prog: str = "xen2kvm"
    argv: tuple[str, ...] = ()
    accept_new_keys: bool = False  # SSH: trust a host whose key is not known yet

    def config(self, remote: Optional[HostSpec] = None,
               shared: Optional[ListCache] = None) -> BackendConfig:
        """What the backend opens with: `remote` (or --host found in --inventory) runs the
        host's steps on that host."""
        if remote is None and self.inventory:
            specs = {spec.name: spec for spec in parse_hosts(None, self.inventory)}
            if self.host not in specs:
                raise UsageError(f"host {self.host} is not in the inventory {self.inventory}")
            remote = specs[self.host]
        return BackendConfig(self.backend, Runner(), self.state, self.host, remote,
                             SSHOptions(self.known_hosts, self.accept_new_keys),
                             remote.client_id if remote else None, shared)

Planner = Callable[[World], Plan]


@dataclass
class Ctx:
    opts: Options
    out: TextIO = field(default_factory=lambda: sys.stdout)
    backends: Optional[Backends] = None
    _lock: Optional[Callable[[], None]] = None  # what releases the run lock
    _claim_key: str = ""
    last: Optional[tuple[World, Plan]] = None  # the world and plan the last run() acted on
    _audit: Any = None  # operator completeness: this run's audit record (xen2kvm/audit.py)

    @classmethod
    def open(cls, opts: Options, out: Optional[TextIO] = None,
             config: Optional[BackendConfig] = None) -> Ctx:
        """The backends through the registry, on `config` (default: the options')."""
        ctx = cls(opts, out or sys.stdout)
        ctx.backends = registry.open(config or opts.config())
        return ctx

    @property
    def storage(self) -> StorageBackend:
        return self.backends.storage

    @property
    def host(self) -> HostBackend:
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

            runner = self.backends.runner
            self._audit = audit.Audit(audit.path_for(self.backends), self.opts.prog,
                                      self.opts.argv, self.host.name, runner.redact)

            def helper_line(line: str) -> None:  # shown as it comes, and kept
                self.say(line)
                self._audit.output(line)

            self.host.helper_sink = helper_line
        return self._audit

    def finish(self, rc: int, error: Optional[BaseException] = None) -> None:
        if self._audit is not None:
            self._audit.finish(rc, error)

    def world(self) -> World:
        return World.read(self.storage, self.host)

    def lock(self) -> None:
        """One mutating run per host at a time: two runs for the same disk never interleave."""
        self._lock = self.backends.lock()

    def ensure_lock(self) -> None:
        """Hold the run lock from now on (a run that changes the host outside plan steps)."""
        if self._lock is None:
            self.lock()

    def run(self, planner: Union[Plan, Planner]) -> int:
        """Print the plan (dry-run) or execute it (-y): under the host lock and a claim on each
        volume it changes, planned again from a fresh read, so nothing read before the lock
        is acted on. The claim and its release are steps like the others."""
        replan = planner if callable(planner) else (lambda _w: planner)
        w = self.world()
        plan = replan(w)
        self.last = (w, plan)
        for note in plan.notes if self.opts.format == "text" else ():
            self.say(note)
        claim = self._claim(w, plan.steps, ())
        if claim:
            plan.steps = cl.born_claimed(plan.steps, claim.key)
        wrapped = [claim, *plan.steps, cl.Unclaim(claim.key)] if claim else plan.steps
        if self.opts.format == "json":  # the plan as planned; with -y each step follows
            self.say(json.dumps({"dry_run": not self.opts.yes,
                                 **Plan(wrapped, plan.notes, plan.failures).data()}))
        if plan.steps and not self.opts.yes and self.opts.format == "text":
            self.say(f"# dry-run: nothing changed; add -y to run these {len(wrapped)} steps:")
            for step in wrapped:
                self.say(step.render())
        elif plan.steps and self.opts.yes:
            plan = self._execute(replan, plan, claim)
        if self.opts.take_over and self.opts.yes:
            self._drop_own_host_claims()
        for failure in plan.failures:
            print(f"{self.opts.prog}: error: {failure}", file=sys.stderr)
            self.audit.warning(failure)
        return 6 if plan.failures else 0

    def _claim(self, w: World, steps: list, held: tuple[str, ...]) -> Optional[cl.Claim]:
        # the operator's volumes: the tool's own are reached only through them (their tag
        # budget has no room for a claim)
        names = tuple(n for n in cl.volumes_changed(steps, w.volumes)
                      if n not in held and not nm.is_own(w.volumes[n].tags))
        if not names:
            return None
        if not self._claim_key:
            self._claim_key = nm.claim_key(self.host.name, os.getpid(), secrets.token_hex(3))
        mine = self._claim_key[len(nm.CLAIM_PREFIX):]
        foreign = [(n, h) for n in names for h in nm.claims(w.volumes[n].tags) if h != mine]
        # a claim is set and released only under this host's run lock, and the Claim step runs
        # under it: a claim of this host is then a run's that died or could not release it
        # (the API failed), and is taken over; a live run of this host holds the lock (LockBusy)
        others = [(n, h) for n, h in foreign if h.rsplit(".", 2)[0] != self.host.name]
        if others and not self.opts.take_over:
            raise ClaimBusy(cl.claim_message(*others[0]))
        return cl.Claim(names, self._claim_key,
                       tuple((n, nm.CLAIM_PREFIX + h) for n, h in foreign))

    def _world_unclaimed(self, claim: cl.Claim) -> World:
        """The fresh world as a planner must see it: without this run's own claim (a recovery
        point must not record it, a plan must not differ for it). Only the volumes it claimed
        carry its key: the key names this process and a random token."""
        w = self.world()
        w.volumes = dict(w.volumes)  # a new dict: what w derived is stale
        for name in claim.names:
            v = w.volumes.get(name)
            if v is not None and claim.key in v.tags:
                w.volumes[name] = dataclasses.replace(
                    v, tags={k: t for k, t in v.tags.items() if k != claim.key})
        return w

    def _drop_own_host_claims(self) -> None:
        """--take-over: a crash left claims of this host, maybe on volumes the plan no longer
        touches; under the host lock every claim of this host is a dead run's (claims are
        set only under it)."""
        if self._lock is None:
            self.lock()
        for v in self.world().volumes.values():
            for holder in nm.claims(v.tags):
                if holder.rsplit(".", 2)[0] == self.host.name:
                    self._apply(s.SetTags(v.name, {nm.CLAIM_PREFIX + holder: None}))

    def _apply(self, step: s.Step) -> None:
        self.audit.begin()  # a run that could not leave its audit record changes nothing
        self.say(json.dumps({"run": step.data()}) if self.opts.format == "json"
                 else "+ " + step.render().replace("\n", "\n  "))
        try:
            step.apply(self)
        except BaseException as exc:
            self.audit.step(step.render(), exc)
            raise
        self.audit.step(step.render())

    def _execute(self, replan: Planner, plan: Plan, claim: Optional[cl.Claim]) -> Plan:
        if self._lock is None:
            self.lock()
        if claim is None:  # nothing to claim (host-only steps): the host lock is enough
            for step in plan.steps:
                self._apply(step)
            return plan
        try:
            self._apply(claim)
            w = self._world_unclaimed(claim)
            fresh = replan(w)
            fresh.steps = cl.born_claimed(fresh.steps, claim.key)
            self.last = (w, fresh)
            if fresh.steps != plan.steps:
                self.say(f"# the cluster changed since it was read; running the fresh plan "
                         f"({len(fresh.steps)} steps)")
                for note in fresh.notes:
                    self.say(note)
            more = self._claim(w, fresh.steps, claim.names)
            for step in ([more] if more else []) + fresh.steps:
                self._apply(step)
        except BaseException:
            # not printed (stdout may be the broken pipe); the first error is the one to report
            with contextlib.suppress(Exception):
                cl.Unclaim(claim.key).apply(self)
            raise
        self._apply(cl.Unclaim(claim.key))
        return fresh

    def close(self) -> None:
        if self.backends is not None:
            self.backends.close()
        if self._lock is not None:
            self._lock()
            self._lock = None
