"""What a world derives is carried from one world to the next (world.py: `memo`, `tagged`):
a fleet's rehearsal reads thousands of volumes per command. Whatever the changes between two
reads, the carried result must be the one a fresh process would derive."""

import random

from xen2kvm import naming as nm
from xen2kvm import recovery
from xen2kvm import world as wm
from xen2kvm.backend import Snapshot, Volume
from xen2kvm.world import World


def fresh(kind: str, objs: dict, tag: str) -> dict:
    """The index as a process that never saw an earlier world derives it."""
    out: dict = {}
    for name in sorted(objs):
        value = objs[name].tags.get(tag)
        if value is not None:
            out.setdefault(value, []).append(name)
    return {value: tuple(names) for value, names in out.items()}


def test_the_carried_index_equals_a_fresh_one_after_every_kind_of_change():
    rng = random.Random(7)
    values = ["a", "b", "c", None]
    vols = {f"v{i:03d}": Volume(f"v{i:03d}", 512, {nm.TAG_ROLE: rng.choice("xyz")})
            for i in range(200)}
    snaps: dict = {}
    wm._DERIVED.clear()
    for step in range(300):
        vols, snaps = dict(vols), dict(snaps)  # each read is a new listing
        for _ in range(rng.choice([0, 1, 2, 3, 40])):  # 40: more than an eighth changed
            what = rng.random()
            name = f"s{rng.randrange(300):03d}"
            if what < 0.4:  # a new snapshot, or one retagged
                tags = {t: v for t in (nm.TAG_RP_MIGRATION, nm.TAG_RP_VOLUME)
                        if (v := rng.choice(values))}
                snaps[name] = Snapshot(name, 512, tags)
            elif what < 0.6:
                snaps.pop(name, None)
            elif what < 0.7 and name in snaps:  # a new object equal to the old one
                old = snaps[name]
                snaps[name] = Snapshot(old.name, old.size_bytes, dict(old.tags))
            else:  # a volume changes role, or loses it
                v = rng.choice(sorted(vols))
                tags = {nm.TAG_ROLE: r} if (r := rng.choice(values)) else {}
                vols[v] = Volume(v, 512, tags)
        if rng.random() < 0.3:  # the listing's order is not always the names'
            snaps = dict(rng.sample(sorted(snaps.items()), len(snaps)))
        w = World(vols, "kvm1", {}, {}, snaps)
        assert w.tagged("volumes", nm.TAG_ROLE) == fresh("volumes", vols, nm.TAG_ROLE), step
        for tag in (nm.TAG_RP_MIGRATION, nm.TAG_RP_VOLUME):
            assert w.tagged("snapshots", tag) == fresh("snapshots", snaps, tag), step


def test_a_dict_changed_in_place_after_a_world_derived_is_not_taken_for_the_old_one():
    wm._DERIVED.clear()
    vols = {"k": Volume("k", 512, {nm.TAG_ROLE: nm.ROLE_CLONE})}
    first = World(vols, "kvm1", {})
    assert [v.name for v in first.own(nm.ROLE_CLONE)] == ["k"]
    vols["k2"] = Volume("k2", 512, {nm.TAG_ROLE: nm.ROLE_CLONE})  # the same dict, grown
    assert [v.name for v in World(vols, "kvm1", {}).own(nm.ROLE_CLONE)] == ["k", "k2"]
    del vols["k"], vols["k2"]
    vols["k3"] = Volume("k3", 512, {})  # same length as before, other contents
    assert World(vols, "kvm1", {}).own(nm.ROLE_CLONE) == []


def test_the_latest_recovery_group_follows_the_snapshots_across_worlds():
    wm._DERIVED.clear()

    def rp(volume: str, gen: int, **extra: str) -> Snapshot:
        return Snapshot(nm.recovery_point_name(volume, gen), 512,
                        nm.recovery_tags(volume, "kvm", gen, {}) | extra)

    snaps = {x.name: x for x in (rp("kvm", 1), rp("xen", 1))}
    w = World({}, "kvm1", {}, {}, dict(snaps))
    assert recovery.latest(w, "kvm").gen == 1
    assert recovery.latest(w, "kvm").volumes() == ["kvm", "xen"]
    snaps.update({x.name: x for x in (rp("kvm", 2),)})
    w = World({}, "kvm1", {}, {}, dict(snaps))
    assert recovery.latest(w, "kvm").gen == 2 and recovery.latest(w, "kvm").volumes() == ["kvm"]
    del snaps[nm.recovery_point_name("kvm", 2)]
    w = World({}, "kvm1", {}, {}, dict(snaps))
    assert recovery.latest(w, "kvm").gen == 1
    assert [g.gen for g in recovery.groups(w)] == [1]
