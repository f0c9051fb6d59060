"""The fake's listing is patched in place as rows change (backends/fake/listing.py); after any
sequence of changes it must list what a fresh read of the rows lists, in name order."""

import random

from xen2kvm.backend import Snapshot, Volume
from xen2kvm.backends.fake.listing import Listing


def test_the_patched_listing_equals_a_fresh_one_after_every_change():
    rng = random.Random(3)
    kept = Listing()
    for kind in ("volumes", "snapshots", "attachments"):
        kept.load(kind, {})
    for step in range(2000):
        kind = rng.choice(["volumes", "snapshots", "attachments"])
        name = f"n{rng.randrange(60):02d}"
        if kind == "attachments":
            hosts = rng.choice([[], ["kvm1"], ["kvm1", "kvm2"]])
            kept.note(kind, name, {"v": hosts} if hosts else None, {})
        elif rng.random() < 0.35:
            kept.note(kind, name, None, {})
        else:
            kept.note(kind, name, {"size_bytes": 512 * rng.randrange(1, 9)},
                      {"k": str(rng.randrange(3))})
        if rng.random() < 0.3:  # a listing now and then: the patches then come in batches
            fresh = {n: Volume(n, size, dict(tags), kept.attached.get(n, ()))
                     for n, (size, tags) in sorted(kept.rows["volumes"].items())}
            assert list(kept.by_name("volumes").items()) == list(fresh.items()), step
            fresh = {n: Snapshot(n, size, dict(tags))
                     for n, (size, tags) in sorted(kept.rows["snapshots"].items())}
            assert list(kept.by_name("snapshots").items()) == list(fresh.items()), step
