"""The planners of recovery points, abort and purge: a world in, steps out (no backend)."""

from __future__ import annotations

import pytest

from xen2kvm import abort, plans
from xen2kvm import steps as s
from xen2kvm.backend import Snapshot, Volume
from xen2kvm.errors import NotFound, PlanError
from xen2kvm.world import World

M = 1 << 20


def world(*vols: Volume, snaps: tuple[Snapshot, ...] = (), dm=None) -> World:
    return World({v.name: v for v in vols}, "kvm1", dm or {}, {},
                 {x.name: x for x in snaps})


def kinds(plan) -> list[str]:
    return [type(x).__name__ for x in plan.steps]


def rp(volume: str, migration: str, **extra: str) -> Snapshot:
    tags = {"xen2kvm": "rp", "m": migration, "g": "1", **extra}
    if volume != migration:
        tags["v"] = volume
    return Snapshot(f"x2krp1-{volume}", 16 * M, tags)


def test_prepare_takes_recovery_points_before_any_change_and_records_the_tags():
    w = world(Volume("ldisk", 16 * M), Volume("kdisk", 16 * M, {"owner": "onapp"}))
    plan = plans.plan_prepare(w, "ldisk", "kdisk", 32)
    first, second = plan.steps[1:3]  # after the look for swapped -x/-k, which changes nothing
    assert kinds(plan)[:4] == ["CheckNotXenDisk", "TakeRecoveryPoint", "TakeRecoveryPoint",
                               "CloneVolume"]
    assert first == s.TakeRecoveryPoint("kdisk", "x2krp1-kdisk", {
        "xen2kvm": "rp", "m": "kdisk", "g": "1", "o.owner": "onapp"})
    assert second.volume == "ldisk" and second.tags["v"] == "ldisk"
    assert first.render() == (
        'POST /ctrl/1.0/VolumeSnapshot/kdisk {"name": "x2krp1-kdisk", "tags": {"xen2kvm": "rp", '
        '"m": "kdisk", "g": "1", "o.owner": "onapp"}}   # storpool volume kdisk snapshot '
        'x2krp1-kdisk tag xen2kvm=rp tag m=kdisk tag g=1 tag o.owner=onapp')


def test_a_rerun_keeps_the_first_recovery_point():
    """After a crash past the grow, a second point would capture changed data: none is taken."""
    clone = Volume("xen-ldisk", 16 * M, {"xen2kvm": "clone", "kvm": "kdisk", "n": "32",
                                         "ksz": str(16 * M // 512)})
    w = world(Volume("ldisk", 16 * M), Volume("kdisk", 16 * M + 32 * 512), clone,
              snaps=(rp("kdisk", "kdisk"), rp("ldisk", "kdisk")))
    assert "TakeRecoveryPoint" not in kinds(plans.plan_prepare(w, "ldisk", "kdisk", 32))


def test_a_new_migration_after_an_abort_gets_a_new_generation():
    w = world(Volume("ldisk", 16 * M), Volume("kdisk", 16 * M),
              snaps=(rp("kdisk", "kdisk", ab="1"), rp("ldisk", "kdisk", ab="1")))
    names = [x.snapshot for x in plans.plan_prepare(w, "ldisk", "kdisk", 32).steps
             if isinstance(x, s.TakeRecoveryPoint)]
    assert names == ["x2krp2-kdisk", "x2krp2-ldisk"]


def test_case1_recovery_point_comes_before_the_tag_and_the_rename():
    w = world(Volume("wdisk", 16 * M), Volume("kwdisk", 16 * M))
    plan = plans.plan_clone(w, "wdisk", "kwdisk")
    assert kinds(plan)[:4] == ["CheckNotXenDisk", "TakeRecoveryPoint", "SetTags",
                               "RenameVolume"]
    assert plan.steps[1].tags["c1"] == "1"


def test_names_too_long_for_a_recovery_point_are_refused_before_any_change():
    long = "c" * 52  # the clone's tags fit, the recovery point's do not
    w = world(Volume("ldisk", 16 * M), Volume(long, 16 * M))
    with pytest.raises(PlanError, match="could not record what abort needs.*over StorPool"):
        plans.plan_prepare(w, "ldisk", long, 32)


def test_abort_takes_an_undo_point_before_it_reverts_and_marks_before_it_retags():
    w = world(Volume("ldisk", 16 * M, {"vs": "vm1"}), Volume("kdisk", 16 * M + 16384),
              snaps=(rp("kdisk", "kdisk"), rp("ldisk", "kdisk")))
    plan = abort.plan_abort(w, None, "kdisk")
    assert kinds(plan) == ["TakeRecoveryPoint", "RevertVolume", "TakeRecoveryPoint",
                           "RevertVolume", "SetSnapshotTags", "SetSnapshotTags", "SetTags"]
    assert plan.steps[-1] == s.SetTags("ldisk", {"vs": None})


def test_abort_of_a_cleaned_case1_recreates_the_volume_from_its_recovery_point():
    w = world(Volume("wdisk", 16 * M), Volume("kwdisk", 16 * M),
              snaps=(rp("kwdisk", "kwdisk", c1="1"),))
    plan = abort.plan_abort(w, None, "kwdisk")
    assert kinds(plan)[:3] == ["TakeRecoveryPoint", "DeleteVolume", "CreateFromSnapshot"]
    assert plan.steps[-1] == s.SetTags("kwdisk", {"xen2kvm": None, "kvm": None})


def test_abort_refuses_while_a_volume_is_in_use_and_names_the_fix():
    w = world(Volume("ldisk", 16 * M), Volume("kdisk", 16 * M, {}, ("client9",)),
              snaps=(rp("kdisk", "kdisk"),))
    with pytest.raises(PlanError, match=r"in use \(client9\); power the VM off"):
        abort.plan_abort(w, None, "kdisk")
    with pytest.raises(NotFound, match="no recovery point names disk other"):
        abort.plan_abort(w, None, "other")


def test_purge_needs_a_run_from_the_raw_volume():
    w = world(Volume("kdisk", 16 * M), snaps=(rp("kdisk", "kdisk"),))
    with pytest.raises(PlanError, match="has not run from /dev/storpool/kdisk"):
        abort.plan_purge(w, None, "kdisk")
    assert abort.plan_purge(w, None, None, every=True).steps == []
    w = world(Volume("kdisk", 16 * M), Volume("x2kold-kdisk", 16 * M),
              snaps=(rp("kdisk", "kdisk", ran="1", c1="1"),))
    assert abort.plan_purge(w, None, "kdisk").steps == [s.DeleteSnapshot("x2krp1-kdisk"),
                                                        s.DeleteVolume("x2kold-kdisk")]


def test_cleanup_keeps_x2kold_while_the_replace_is_unfinished_or_unrecoverable():
    old = Volume("x2kold-kwdisk", 16 * M, {"xen2kvm": "replaced", "kvm": "kwdisk"})
    unfinished = plans.plan_cleanup(world(old, snaps=(rp("kwdisk", "kwdisk", c1="1"),)), None)
    assert unfinished.steps == [] and "unfinished" in unfinished.notes[0]
    no_point = plans.plan_cleanup(world(old, Volume("kwdisk", 16 * M)), None)
    assert no_point.steps == [] and "no recovery point" in no_point.notes[0]
    done = plans.plan_cleanup(world(old, Volume("kwdisk", 16 * M),
                                    snaps=(rp("kwdisk", "kwdisk", c1="1"),)), None)
    assert done.steps == [s.DeleteVolume("x2kold-kwdisk")]


def test_power_on_marks_ran_only_once_the_migration_ended():
    from xen2kvm import recovery

    kdisk = Volume("kdisk", 16 * M + 16384)
    half = world(kdisk, Volume("xen-ldisk", 16 * M, {"xen2kvm": "clone", "kvm": "kdisk"}),
                 snaps=(rp("kdisk", "kdisk"),))
    assert recovery.mark_ran(half, kdisk, "vm1") == []  # a prepare that did not finish
    done = world(kdisk, snaps=(rp("kdisk", "kdisk", vm="vm1"), rp("ldisk", "kdisk", ran="1")))
    assert recovery.mark_ran(done, kdisk, "vm2") == [
        s.SetSnapshotTags("x2krp1-kdisk", {"ran": "1", "vm": "vm1"})]
    replacing = world(Volume("kwdisk", 8 * M), Volume("x2kold-kwdisk", 16 * M),
                      snaps=(rp("kwdisk", "kwdisk", c1="1"),))
    assert recovery.mark_ran(replacing, replacing.volumes["kwdisk"], "vm1") == []
