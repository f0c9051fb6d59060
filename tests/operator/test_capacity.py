"""The capacity rules on their own: how copies land on placement groups, the StorPool
template status as the real API shapes it, and a refusal through the real bindings against
the emulator."""

from __future__ import annotations

import pytest

from xen2kvm import capacity
from xen2kvm.backend import TemplateSpace, Volume
from xen2kvm.backends.storpool.storage import _template
from xen2kvm.errors import PlanError
from xen2kvm.world import World

from ..storpool.conftest import SPRig, emulator  # noqa: F401  (the fixture)

MIB = 1 << 20


def test_copies_follow_placeall_placetail_and_placehead():
    t = TemplateSpace("hybrid", 3, "ssd", "hdd")
    assert capacity.copies(t) == {"ssd": 2, "hdd": 1}
    assert capacity.copies(TemplateSpace("h", 3, "ssd", "hdd", "nvme")) == \
        {"nvme": 1, "ssd": 1, "hdd": 1}
    assert capacity.copies(TemplateSpace("one", 3, "ssd", "ssd")) == {"ssd": 3}
    assert capacity.copies(TemplateSpace("two", 2, "a", "b", "c")) == {"b": 1, "c": 1}


def test_template_status_is_read_per_placement_group():
    raw = {"name": "hybrid", "placeAll": "ssd", "placeTail": "hdd", "placeHead": "",
           "replication": 3, "availablePlaceAll": 10, "availablePlaceTail": 20,
           "availablePlaceHead": 0, "capacityPlaceAll": 100, "capacityPlaceTail": 200,
           "capacityPlaceHead": 0, "stored": {"free": 3, "capacity": 33}}
    t = _template(raw)
    assert (t.free, t.capacity) == ({"ssd": 10, "hdd": 20}, {"ssd": 100, "hdd": 200})
    assert _template({**raw, "replication": "-"}).replication == 3


class _Storage:
    def __init__(self, *templates: TemplateSpace):
        self.templates = list(templates)

    def template_space(self) -> list[TemplateSpace]:
        return self.templates


def test_the_tight_group_of_a_hybrid_template_refuses():
    w = World({"k": Volume("k", 64 * MIB, template="hybrid")}, "kvm1", {})
    roomy_ssd = TemplateSpace("hybrid", 3, "ssd", "hdd", "", {"ssd": 1 << 40, "hdd": 50 * MIB},
                              {"ssd": 2 << 40, "hdd": 1 << 40})
    with pytest.raises(PlanError, match=r"needs 64\.0 MiB in placement group hdd .* "
                                        r"reports 50\.0 MiB free"):
        capacity.guard(w, _Storage(roomy_ssd), [(w.volumes["k"], 64 * MIB)], "this")
    (warning,) = capacity.guard(w, _Storage(roomy_ssd), [(w.volumes["k"], 40 * MIB)], "this")
    assert warning.group == "hdd" and warning.after == 10 * MIB  # fits, under the margin


@pytest.mark.storpool
def test_refused_through_the_real_bindings(emulator):  # noqa: F811
    sp = SPRig(emulator)
    emulator.handle("VolumeCreate", [], {"name": "ldisk", "size": 8 * MIB})
    emulator.handle("VolumeCreate", [], {"name": "kdisk", "size": 8 * MIB})
    emulator.capacity = emulator.used_bytes() + 20 * MIB
    assert sp.run("xen2kvmDisk -y -x ldisk -k kdisk") == 3
    assert "needs 48.0 MiB in placement group default" in sp.err
    assert "StorPool reports 20.0 MiB free" in sp.err
    assert emulator.volumes["kdisk"]["size"] == 8 * MIB and "xen-ldisk" not in emulator.volumes
