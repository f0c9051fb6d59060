"""Golden dry-runs: every flow planned on a world built from literals (no backend), rendered as
the dry-run prints it and compared byte for byte with tests/golden/<flow>.txt.

A deliberate change of what the tool prints: regenerate with
    XEN2KVM_REGOLDEN=1 .venv/bin/pytest tests/golden -q
and review the diff of tests/golden/*.txt like code.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from xen2kvm import abort, plans
from xen2kvm import naming as nm
from xen2kvm.backend import Snapshot, Volume
from xen2kvm.dmstatus import parse_status
from xen2kvm.world import World

HERE = Path(__file__).parent
HOST, CLIENT, VM = "kvm1", 7, "web1"
GIB = 1 << 30
TARGETS = {"raid": (1, 15, 1)}
XEN_SECTORS = GIB // 512


def world(volumes, dm=None, statuses=None, snapshots=()) -> World:
    return World({v.name: v for v in volumes}, HOST, dict(dm or {}),
                 {k: parse_status(v) for k, v in (statuses or {}).items()},
                 {x.name: x for x in snapshots}, client=CLIENT)


def fresh(xen="xd", kvm="kd", inplace=False) -> World:
    """OnApp's two volumes (one for in-place), nothing done yet."""
    vols = [Volume(kvm, GIB, {"owner": "onapp"}, (), "hybrid")]
    if not inplace:
        vols.append(Volume(xen, GIB, {"owner": "onapp"}))
    return world(vols)


def _points(n: int) -> list[Snapshot]:
    return [Snapshot(f"x2krp1-{v}", GIB, nm.recovery_tags(v, "kd", 1, {"owner": "onapp"}))
            for v in ("kd", "xd")[:n]]


def prepared(n=32, xen_tag=True, attached=(), vs=None, joined=None) -> list[Volume]:
    """The volumes after `prepare -x xd -k kd` (N sectors); `joined`: leg 1 joined once
    (default: when attached, i.e. the VM runs)."""
    joined = bool(attached) if joined is None else joined
    clone_tags = {"xen2kvm": "clone", "kvm": "kd", "n": str(n), "ksz": str(XEN_SECTORS)}
    own = {"vs": vs} if vs else {}
    return [
        Volume("kd", GIB + n * 512, {"owner": "onapp", **({"xen": "xen-xd"} if xen_tag else {})},
               attached, "hybrid"),
        Volume("xd", GIB, {"owner": "onapp", **own}),
        Volume("xen-xd", GIB, {**clone_tags, **own}, attached),
        *(Volume(m, nm.META_SIZE_BYTES, {"xen2kvm": "meta", "kvm": "kd", **own,
                                         **({"leg1": "joined"} if m.startswith("x2km1") and
                                            joined else {})}, attached)
          for m in nm.meta_names("kd")),
    ]


def running(legs: int, in_sync: bool = False, vs=None, xen_tag=True) -> World:
    """VM web1 runs on the raid1 of kd: one leg (assembled) or two (syncing or in sync)."""
    total = 32 + XEN_SECTORS
    raid, lin = nm.dm_raid(VM, "kd"), nm.dm_linear(VM, "kd")
    dm = {lin: f"0 32 linear /dev/storpool/kd 0\n32 {XEN_SECTORS} linear /dev/storpool/xen-xd 0",
          raid: f"0 {total} raid raid1 ..."}
    done = total if in_sync else total // 4
    health = "A" * legs if legs == 1 or in_sync else "Aa"
    status = f"0 {total} raid raid1 {legs} {health} {done}/{total} " + \
        ("idle" if in_sync or legs == 1 else "recover") + " 0 0 -"
    vols = prepared(attached=(HOST,) if legs == 2 else (HOST,), vs=vs, xen_tag=xen_tag)
    if legs == 1:  # not joined yet
        vols = [Volume(v.name, v.size_bytes, {k: t for k, t in v.tags.items() if k != "leg1"},
                       v.attached, v.template) for v in vols]
    return world(vols, dm, {raid: status}, _points(2))


FLOWS = {
    "prepare-n32": lambda: plans.plan_prepare(fresh(), "xd", "kd", 32),
    "prepare-n2048": lambda: plans.plan_prepare(fresh(), "xd", "kd", 2048),
    "prepare-inplace": lambda: plans.plan_prepare(fresh("kd", "kd", True), "kd", "kd", 32),
    "prepare-helper-bootloader": lambda: plans.plan_prepare(
        fresh(), "xd", "kd", 32, ("/usr/sbin/fix-fstab",), ("xen2kvm-guest",), "/run/lock/x"),
    "case1": lambda: plans.plan_clone(fresh(), "xd", "kd", VM),
    "assemble": lambda: plans.plan_assemble(world(prepared(), snapshots=_points(2)), VM,
                                            ["kd"], TARGETS),
    "assemble-joined": lambda: plans.plan_assemble(
        world(prepared(joined=True), snapshots=_points(2)), VM, ["kd"], TARGETS),
    "sync-start": lambda: plans.plan_sync(running(1), VM, TARGETS),
    "sync-progress": lambda: plans.plan_sync(running(2), VM, TARGETS),
    "sync-finish": lambda: plans.plan_sync(running(2, in_sync=True), VM, TARGETS),
    "release": lambda: plans.plan_release(running(2, True, vs=VM, xen_tag=False), VM),
    "cleanup": lambda: plans.plan_cleanup(world(prepared(xen_tag=False, vs=VM)), VM),
    "abort": lambda: abort.plan_abort(world(prepared(), snapshots=_points(2)), None, "kd"),
}


def render(plan: plans.Plan) -> str:
    """What the dry-run prints for a plan (without the run's claim steps, which carry a
    per-run key), then the plan as `--format json` prints it."""
    lines = [*plan.notes, *(f"error: {f}" for f in plan.failures)]
    lines += [f"# {len(plan.steps)} steps:", *(st.render() for st in plan.steps)]
    return "\n".join(lines) + "\n--- json\n" + json.dumps(plan.data(), indent=1) + "\n"


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_golden_dry_run(flow):
    path = HERE / f"{flow}.txt"
    got = render(FLOWS[flow]())
    if os.environ.get("XEN2KVM_REGOLDEN") == "1":
        path.write_text(got)
    assert path.exists(), f"no {path.name}: run with XEN2KVM_REGOLDEN=1 to create it"
    assert got == path.read_text(), f"{flow}: the dry-run changed; see this module's docstring"


PLANNERS = {
    "assemble": (lambda: world(prepared(), snapshots=_points(2)),
                 lambda w: plans.plan_assemble(w, VM, ["kd"], TARGETS)),
    "assemble-joined": (lambda: world(prepared(joined=True), snapshots=_points(2)),
                        lambda w: plans.plan_assemble(w, VM, ["kd"], TARGETS)),
    "sync-start": (lambda: running(1), lambda w: plans.plan_sync(w, VM, TARGETS)),
    "sync-finish": (lambda: running(2, True), lambda w: plans.plan_sync(w, VM, TARGETS)),
    "prepare-inplace": (lambda: fresh("kd", "kd", True),
                        lambda w: plans.plan_prepare(w, "kd", "kd", 32)),
    "release": (lambda: running(2, True, vs=VM, xen_tag=False),
                lambda w: plans.plan_release(w, VM)),
}


@pytest.mark.parametrize("flow", sorted(PLANNERS))
def test_planning_does_not_change_the_world_it_reads(flow):
    make, planner = PLANNERS[flow]
    w = make()
    before = copy.deepcopy(w)
    planner(w)
    assert w == before
