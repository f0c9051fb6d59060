"""Chaos (issue 10): two controllers as real processes on one fake cluster, on the same host or
on two hosts, running prepare, case-1, in-place, sync, abort or cleanup, started at seeded
points of each other's call sequence, and `kill -9` of one of them after a seeded number of its
calls. After each run: the XEN data and the KVM volume's own data are intact, the KVM volume
grew at most once, tags are consistent, and a rerun (taking over a dead run's claims)
converges to exactly what an undisturbed run leaves (abort: every byte of the KVM volume back).

The controllers are forked from this process (a fork costs milliseconds, a fresh interpreter
~0.2 s) and run the real command-line entry points; the fake makes every call one transaction
under the database's write lock, so they interleave at call granularity as on a real cluster.
The interleaving is steered, not slept into: each controller waits for its turn before every
call, and the parent hands out turns one call at a time, in a seeded order (the second
controller starts once the first has made j calls); the victim kills itself with SIGKILL right
after its k-th call. Every call is logged (in order, under the cluster lock), and the distinct
logs are the interleavings.

XEN2KVM_CHAOS_RUNS (default 200) and XEN2KVM_CHAOS_SEED (default 10) set the budget and seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from xen2kvm import cli, legacy, naming
from xen2kvm.backends.fake import FakeBackends
from xen2kvm.backends.fake.sim import seeded
from xen2kvm.process import Runner

pytestmark = pytest.mark.chaos

RUNS = int(os.environ.get("XEN2KVM_CHAOS_RUNS", "200"))
SEED = int(os.environ.get("XEN2KVM_CHAOS_SEED", "10"))
SIZE = 1024 * 1024
KSIZE = 2 * SIZE
N = 32
LOG = "chaos.log"

OPS = {  # name: (setup commands, the command both controllers run)
    "prepare": ([], "xen2kvmDisk -y -x xd -k kd"),
    "case-1": ([], "xen2kvmDisk -y -x xd -k kd -b"),
    "in-place": ([], "xen2kvmDisk -y -x xd -k xd"),
    "sync": (["xen2kvmDisk -y -x xd -k kd", "xen2kvm sim power on kvm",
              "xen2kvmDisk -y -m kvm", "xen2kvm sim tick 3600"], "xen2kvmDisk -y -m kvm"),
    "abort": (["xen2kvmDisk -y -x xd -k kd", "xen2kvm sim power on kvm",
               "xen2kvm sync kvm -y", "xen2kvm sim tick 1", "xen2kvm sim power off kvm"],
              "xen2kvm abort --disk kd -y"),
    "cleanup": (["xen2kvmDisk -y -x xd -k kd", "xen2kvm sim power on kvm",
                 "xen2kvm sync kvm --wait -y", "xen2kvm sim power off kvm"],
                "xen2kvmDisk -y -z -m kvm"),
}


def run(state: Path, command: str, host: str = "kvm1") -> tuple[int, str]:
    prog, *args = command.split()
    main = {"xen2kvm": cli.main, "xen2kvmDisk": legacy.main}[prog]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(["--backend", "fake", "--state", str(state), "--host", host, *args])
    return rc, out.getvalue()


def base(state: Path) -> dict[str, str]:
    """A XEN disk and a KVM disk, both full of seeded data; their digests."""
    for cmd in ("xen2kvm sim create-vm lnx --hypervisor xen --disk xd:1M",
                "xen2kvm sim create-vm kvm --hypervisor kvm --disk kd:2M"):
        assert run(state, cmd)[0] == 0
    b = FakeBackends(str(state), "kvm1", Runner())
    b.cluster.volumes["kd"].store.write(0, seeded(77, KSIZE))
    b.close()
    return {v: digest(state, v) for v in ("xd", "kd")}


@contextlib.contextmanager
def cluster(state: Path):
    """The model, read directly, and closed after: a database left open until the garbage
    collector gets to it folds its log in and removes it at a moment of its choosing (such as
    in the middle of the rmtree of its folder)."""
    b = FakeBackends(str(state), "kvm1", Runner())
    try:
        yield b.cluster
    finally:
        b.close()


def digest(state: Path, volume: str, start: int = 0, end: int = 0) -> str:
    with cluster(state) as c:
        vol = c.volumes[volume]
        return hashlib.sha256(vol.store.read(start, (end or vol.size_bytes) - start)).hexdigest()


def observable(state: Path) -> tuple:
    with cluster(state) as c:
        vols = tuple((v.name, v.size_bytes, tuple(sorted(v.tags.items())),
                      tuple(sorted(c.attachments.get(v.name, {}))),
                      hashlib.sha256(v.store.read(0, v.size_bytes)).hexdigest())
                     for v in sorted(c.volumes.values(), key=lambda v: v.name))
        dms = tuple((h.name, tuple(sorted((n, d.table) for n, d in h.dm.items())))
                    for h in sorted(c.hosts.values(), key=lambda h: h.name) if h.dm)
    return vols, dms


def _traced(label: str, log_fd: int, turns: tuple[int, int], kill_at: int):
    """Wrap the fake's per-call transaction: wait for this controller's turn, log the call
    in cluster order, say it is done, and SIGKILL this process right after call `kill_at`."""
    original = FakeBackends.transaction
    calls = [0]
    grant, done = turns

    @contextlib.contextmanager
    def transaction(self, atomic=False):
        outer = self._depth == 0
        if outer:
            os.read(grant, 1)  # the parent's scheduler: one call at a time, in its order
        with original(self, atomic):
            before = self.cluster.db.conn.total_changes
            yield
            if outer:  # still under the database's write lock: the log is in cluster order
                self.cluster.db.flush()
                changed = self.cluster.db.conn.total_changes != before
                os.write(log_fd, f"{label}{int(changed)}\n".encode())
        if outer:
            calls[0] += 1
            os.write(done, b".")
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    FakeBackends.transaction = transaction


def spawn(state: Path, label: str, command: str, host: str, kill_at: int) -> tuple[int, int, int]:
    """A controller of its own, forked; returns its pid and the ends of its two pipes the
    parent keeps: where it grants a call, where it hears the call is done (or, at the end of
    the file, that the controller is gone)."""
    grant_r, grant_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(grant_r)
        os.close(done_w)
        return pid, grant_w, done_r
    try:  # the child: its command to its end or its SIGKILL
        os.close(grant_w)
        os.close(done_r)
        sys.settrace(None)  # coverage's tracer would only slow it: a child never reports
        log_fd = os.open(state / LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        _traced(label, log_fd, (grant_r, done_w), kill_at)
        rc, out = run(state, command, host)
        (state / f"{label}.out").write_text(out)
    except BaseException:
        rc = 99
    os._exit(rc)


def _turn(grant: int, done: int) -> bool:
    """Let one controller make one call; False once it is gone."""
    with contextlib.suppress(BrokenPipeError):
        os.write(grant, b".")
    return os.read(done, 1) == b"."


def race(state: Path, command: str, hosts: tuple[str, str], rng: random.Random) -> tuple:
    """The interleaving is drawn, not timed: A makes its first `start_after` calls alone,
    then each next call goes to A or B as the seeded generator says."""
    start_after = rng.randrange(0, 12)
    victim = rng.choice("AB-")
    kills = {lab: (rng.randrange(1, 30) if victim == lab else 0) for lab in "AB"}
    kids = {"A": spawn(state, "A", command, hosts[0], kills["A"])}
    live = ["A"]
    for step in itertools.count():
        if "B" not in kids and (step >= start_after or not live):
            kids["B"] = spawn(state, "B", command, hosts[1], kills["B"])
            live.append("B")
        if not live:
            break
        lab = live[0] if step < start_after else rng.choice(live)
        if not _turn(*kids[lab][1:]):
            live.remove(lab)
    rcs = {}
    for lab, (pid, grant, done) in kids.items():
        rcs[lab] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        os.close(grant)
        os.close(done)
    return rcs, (state / LOG).read_text().split()


def check_invariant(state: Path, op: str, orig: dict[str, str], context: str,
                    done: bool = False) -> None:
    with cluster(state) as c:
        _check_invariant(c, state, op, orig, context, done)


def _check_invariant(c, state: Path, op: str, orig: dict[str, str], context: str,
                     done: bool) -> None:
    assert digest(state, "xd") == orig["xd"] or op == "in-place", context
    # a KVM-side tag always names a clone made for that volume (but mid-abort, which deletes
    # the clone before it puts the KVM volume's tags back: its rerun finishes that)
    for v in (c.volumes.values() if op != "abort" or done else ()):
        clone = c.volumes.get(v.tags.get(naming.TAG_XEN, ""))
        assert naming.TAG_XEN not in v.tags or (
            clone is not None and clone.tags.get(naming.TAG_KVM) == v.name), context
    if op == "in-place":  # the original keeps all but sector 0, the clone all of it
        assert "xen-xd" not in c.volumes or digest(state, "xen-xd") == orig["xd"], context
        assert c.volumes["xd"].size_bytes in (SIZE, SIZE + N * 512), f"{context}: grew twice"
        assert digest(state, "xd", 512, SIZE) == orig["xd_tail"], context
        return
    if op == "case-1":
        old = naming.replaced_name("kd")
        holder = old if old in c.volumes else "kd"
        assert digest(state, holder) == orig["kd"], context
        return
    kd = c.volumes["kd"]
    assert kd.size_bytes in (KSIZE, KSIZE + N * 512), f"{context}: kd grew twice"
    if op == "abort" and done:  # every byte of the KVM volume back
        assert digest(state, "kd") == orig["kd"], context
    assert digest(state, "kd", 512, KSIZE) == orig["kd_tail"] or op != "prepare", context


def converge(state: Path, command: str, hosts: tuple[str, ...]) -> None:
    """The operator reruns the command with --take-over on each host a controller ran on."""
    for host in dict.fromkeys(hosts):
        rc, out = run(state, command + " --take-over", host)
        assert rc == 0, out
    with cluster(state) as c:
        left = [n for n, v in c.volumes.items() if naming.claims(v.tags)]
    assert not left, f"claims left on {left}"


def test_chaos_two_controllers_and_kill_9(tmp_path):
    rng = random.Random(SEED)
    seeds, reference, fixtures = {}, {}, {}
    for op, (setup, command) in OPS.items():
        folder = tmp_path / f"fixture-{op}"
        orig = base(folder)
        orig["kd_tail"] = digest(folder, "kd", 512, KSIZE)
        orig["xd_tail"] = digest(folder, "xd", 512, SIZE)
        for cmd in setup:
            assert run(folder, cmd)[0] == 0, cmd
        fixtures[op] = (folder, orig)
        ref = tmp_path / f"ref-{op}"
        shutil.copytree(folder, ref)
        assert run(ref, command)[0] == 0
        reference[op] = observable(ref)
    began, logs, kinds = time.monotonic(), set(), {}
    ops = sorted(OPS)
    for i in range(RUNS):
        op = ops[i % len(ops)]
        hosts = ("kvm1", "kvm1") if i // len(ops) % 2 == 0 else ("kvm1", "kvm2")
        if op == "sync":
            hosts = ("kvm1", "kvm1")  # the raid1 lives on kvm1: kvm2 has nothing to sync
        seed = rng.randrange(1 << 30)
        seeds[i] = seed
        folder, orig = fixtures[op]
        state = tmp_path / f"run{i}"
        shutil.copytree(folder, state)
        context = f"run {i} ({op}, {hosts}, seed {seed}; XEN2KVM_CHAOS_SEED={SEED})"
        rcs, log = race(state, OPS[op][1], hosts, random.Random(seed))
        outs = {p.name: p.read_text()[-400:] for p in state.glob("?.out")}
        assert all(rc in (0, 3, -9) for rc in rcs.values()), f"{context}: {rcs} {outs}"
        logs.add((op, hosts, tuple(log)))
        kinds[op] = kinds.get(op, 0) + 1
        check_invariant(state, op, orig, context)
        converge(state, OPS[op][1], hosts)
        check_invariant(state, op, orig, context, done=True)
        assert observable(state) == reference[op], f"{context}: did not converge"
        shutil.rmtree(state)
    wall = time.monotonic() - began
    print(f"\nchaos: {RUNS} runs, {len(logs)} distinct interleavings, {wall:.1f} s, "
          f"seed {SEED}, per op {kinds}")
    assert len(logs) > RUNS // 2
