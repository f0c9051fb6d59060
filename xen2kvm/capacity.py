"""Will a migration fit? The resync writes the XEN data into the KVM volume (the clone is
copy-on-write and costs nothing until written), and StorPool keeps that data once per copy of
the template's replication, spread over its placement groups. A migration that would not fit
is refused before any change, with both numbers; one that leaves less than the margin warns.

Figures come from the cluster (VolumeTemplatesStatus: `availablePlace*`, `capacityPlace*`,
`replication`, `placeAll/Tail/Head`); the need of the migrations in progress is derived from
the world, as every phase is: a disk that is not yet in sync still needs what its resync has
left to copy (all of it when this host cannot see its progress).
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

from . import naming as nm
from .backend import TemplateSpace, Volume
from .errors import PlanError, UsageError
from .phases import IN_PROGRESS, Phase
from .units import GIB, KIB, MIB, SECTOR, TIB
from .world import Disk, World

MARGIN_ENV = "XEN2KVM_SPACE_MARGIN"
DEFAULT_MARGIN = 10.0  # percent of a placement group's capacity


def size_text(n: int) -> str:
    for suffix, unit in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if abs(n) >= unit:
            return f"{n / unit:.1f} {suffix}"
    return f"{n} B"


def margin_percent() -> float:
    raw = os.environ.get(MARGIN_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_MARGIN
    except ValueError:
        value = -1.0
    if not 0 <= value < 100:
        raise UsageError(f"{MARGIN_ENV}={raw!r} must be a percentage from 0 to 99")
    return value


def copies(t: TemplateSpace) -> dict[str, int]:
    """How the template's copies land: the last on placeTail, the first on placeHead when it
    has one, the others on placeAll (StorPool's placement rules)."""
    out: collections.Counter = collections.Counter()
    rest = max(t.replication, 1) - 1
    out[t.place_tail or t.place_all] += 1
    if t.place_head and rest:
        out[t.place_head] += 1
        rest -= 1
    if rest:
        out[t.place_all] += rest
    return dict(out)


def template_of(templates: Sequence[TemplateSpace], vol: Optional[Volume]) -> TemplateSpace:
    by_name = {t.name: t for t in templates}
    if vol is not None and vol.template in by_name:
        return by_name[vol.template]
    # no template of its own: judge it by the tightest one, never by the roomiest
    return min(templates, key=lambda t: min(t.free.values(), default=0))


def disk_need(w: World, d: Disk) -> int:
    """Client bytes the resync of `d` still has to write into its KVM volume."""
    if d.phase not in IN_PROGRESS or d.clone not in w.volumes:
        return 0
    st = d.status
    if d.phase == Phase.SYNCING and st is not None and st.total and not st.failed_legs:
        return max(st.total - st.done, 0) * SECTOR
    return d.n * SECTOR + w.volumes[d.clone].size_bytes


@dataclass
class Group:
    name: str
    free: int
    capacity: int
    pending: int = 0  # raw bytes the migrations in progress still need here
    migrations: int = 0

    def after(self, extra: int = 0) -> int:
        return self.free - self.pending - extra


@dataclass
class Survey:
    """Every placement group's free space and what the migrations in progress will take."""

    templates: list[TemplateSpace]
    groups: dict[str, Group] = field(default_factory=dict)
    disks: dict[str, tuple[int, str]] = field(default_factory=dict)  # kvm -> (raw need, group)

    @classmethod
    def read(cls, w: World, storage, exclude: Iterable[str] = ()) -> Survey:
        survey = cls(list(storage.template_space()))
        for t in survey.templates:
            for g, free in t.free.items():
                survey.groups.setdefault(g, Group(g, free, t.capacity.get(g, 0)))
        skip = set(exclude)
        for d in w.disks():
            need = disk_need(w, d)
            if d.kvm in skip or not survey.templates:
                continue
            spread = copies(template_of(survey.templates, w.volumes.get(d.kvm)))
            for g, c in spread.items():
                survey.group(g).pending += need * c
                survey.group(g).migrations += 1 if need else 0
            tight = min(spread, key=lambda g: survey.group(g).after())
            survey.disks[d.kvm] = (need * sum(spread.values()), tight)
        return survey

    def group(self, name: str) -> Group:
        return self.groups.setdefault(name, Group(name, 0, 0))


@dataclass(frozen=True)
class Warning:
    group: str
    after: int  # raw bytes left once the migrations are done
    capacity: int
    text: str


def _under_margin(g: Group, extra: int, margin: float) -> Optional[Warning]:
    floor = int(g.capacity * margin / 100)
    after = g.after(extra)
    if not g.capacity or after >= floor:
        return None
    return Warning(g.name, after, g.capacity, (
        f"placement group {g.name}: {size_text(after)} free after the migrations "
        f"({size_text(g.free)} free now, {size_text(g.pending + extra)} still to write), under "
        f"the {margin:g}% margin of {size_text(floor)}; watch the free space and migrate in "
        "smaller batches"))


def guard(w: World, storage, starting: Sequence[tuple[Volume, int]], what: str
          ) -> list[Warning]:
    """Refuse `what` when the client bytes it starts to need (per KVM volume), on top of what
    the migrations in progress still need, exceed StorPool's free space; else return the
    groups left under the margin."""
    margin = margin_percent()
    survey = Survey.read(w, storage, exclude=[v.name for v, _ in starting])
    if not survey.templates:
        return []
    extra: collections.Counter = collections.Counter()
    for vol, need in starting:
        for g, c in copies(template_of(survey.templates, vol)).items():
            extra[g] += need * c
    for g, need in sorted(extra.items()):
        grp = survey.group(g)
        if grp.after(need) < 0:
            raise PlanError(
                f"{what} does not fit: it needs {size_text(need)} in placement group {g} "
                f"(the data times the template's replication) on top of "
                f"{size_text(grp.pending)} for the migrations in progress, and StorPool "
                f"reports {size_text(grp.free)} free; make room or migrate fewer disks at once")
    notes = (_under_margin(grp, extra[g], margin) for g, grp in sorted(survey.groups.items()))
    return [n for n in notes if n]


def check_prepare(ctx, w: World, xen_id: str, kvm_id: str, n: int) -> None:
    """Case-2: the data lands at N in the KVM volume (the clone is copy-on-write), plus the
    metadata volumes the prepare creates."""
    xen, kvm = w.resolve(xen_id), w.resolve(kvm_id)
    clone = w.get(nm.clone_name(xen.name))
    size = clone.size_bytes if clone is not None else xen.size_bytes
    metas = sum(nm.META_SIZE_BYTES for m in nm.meta_names(kvm.name) if m not in w.volumes)
    need = n * SECTOR + size + metas
    for warning in guard(w, ctx.storage, [(kvm, need)], f"migrating {xen.name} to {kvm.name}"):
        ctx.warn(warning.text)


def check_clone(ctx, w: World) -> None:
    """Case-1 writes no data (a copy-on-write clone): only the margin is worth a word."""
    for warning in guard(w, ctx.storage, [], "case-1"):
        ctx.warn(warning.text)


class Watch:
    """`sync` checks the space on every round: a resync that would not fit is refused before
    the KVM leg joins; a group under the margin is reported once, and again each time its
    projection has shrunk by another percent of its capacity (`--wait` polls)."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    def check(self, ctx, w: World, starting: Sequence[Disk]) -> None:
        need = [(w.volumes[d.kvm], disk_need(w, d)) for d in starting if d.kvm in w.volumes]
        for warning in guard(w, ctx.storage, need, "the resync of "
                             + ", ".join(d.kvm for d in starting)):
            last = self.last.get(warning.group)
            if last is None or warning.after <= last - max(warning.capacity // 100, 1):
                self.last[warning.group] = warning.after
                ctx.warn(warning.text)


def fields(survey: Survey, kvm: str) -> dict:
    """A status row's space fields: this disk's projected need, its group's free space and
    the need of every migration in progress there (raw bytes, replication included)."""
    need, g = survey.disks.get(kvm, (0, ""))
    grp = survey.groups.get(g)
    return {"need_bytes": need, "placement": g or None,
            "free_bytes": grp.free if grp else None,
            "group_need_bytes": grp.pending if grp else None}


def summary(survey: Survey) -> list[str]:
    return [f"space: placement group {g.name}: {size_text(g.free)} free of "
            f"{size_text(g.capacity)}; migrations in progress need {size_text(g.pending)} more "
            f"({g.migrations} disk{'s' if g.migrations != 1 else ''}), leaving "
            f"{size_text(g.after())}" for g in sorted(survey.groups.values(), key=lambda g: g.name)]
