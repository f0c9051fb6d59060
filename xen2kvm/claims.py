"""A run's claim on the operator's volumes it changes (issue 10): one tag per run, set and read
back before the first change, released at the end; so two controllers, on one host or on
two, never interleave on a disk. Steps like the others, shown in the dry-run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import naming
from .actions import Action
from .errors import ClaimBusy
from .steps import CloneVolume, CreateFromSnapshot, CreateVolume, SetTags, Step


@dataclass(frozen=True)
class Claim(Step):
    """Tag each volume the run changes with this run's own key, then read them back: any other
    claim means another run (on any host) got there too, and this one backs off. Two racing
    claimants may both back off, never both proceed."""

    names: tuple[str, ...]
    key: str
    take_over: tuple[str, ...] = ()  # stale claims (crashed runs) the operator said to remove

    def actions(self) -> tuple[Action, ...]:
        drop = [SetTags(n, {k: None}) for n, k in self.take_over]
        mine = [SetTags(n, {self.key: "1"}) for n in self.names]
        return tuple(a for st in [*drop, *mine] for a in st.actions())

    def render(self) -> str:
        return super().render() + "\n# read back: no other run's x2kclaim.* tag"

    def apply(self, ctx) -> None:
        for name, key in self.take_over:
            ctx.storage.set_tags(name, {key: None})
        for name in self.names:
            ctx.storage.set_tags(name, {self.key: "1"})
        now = ctx.storage.volumes_by_name()
        mine = self.key[len(naming.CLAIM_PREFIX):]
        for name in self.names:
            others = [h for h in naming.claims(now[name].tags if name in now else {})
                      if h != mine]
            if others:
                Unclaim(self.key).apply(ctx)
                raise ClaimBusy(claim_message(name, others[0]))


def claim_message(volume: str, holder: str) -> str:
    host, _, rest = holder.rpartition(".")[0].rpartition(".")
    return (f"{volume} is claimed by another xen2kvm run ({holder}: host {host}, pid {rest}); "
            "wait for it to finish, or if that run died, rerun with --take-over")


@dataclass(frozen=True)
class Unclaim(Step):
    key: str

    def actions(self) -> tuple[Action, ...]:
        """One request per volume that carries the claim when it runs (read then)."""
        return SetTags(f"<each volume tagged {self.key}>", {self.key: None}).actions()

    def apply(self, ctx) -> None:
        for v in ctx.storage.list_volumes():
            if self.key in v.tags:
                ctx.storage.set_tags(v.name, {self.key: None})


def born_claimed(steps: list, key: str) -> list:
    """An operator's volume this run creates (case-1's clone under the KVM name, abort's
    re-creation) carries the run's claim from its first moment: no other run can slip in
    between its creation and a claim."""
    made = (CloneVolume, CreateVolume, CreateFromSnapshot)
    return [dataclasses.replace(st, tags={**st.tags, key: "1"})
            if isinstance(st, made) and not naming.is_own(st.tags) else st for st in steps]


VOLUME_FIELDS = ("name", "volume", "source", "clone", "original", "meta1")


def volumes_changed(steps, existing) -> tuple[str, ...]:
    """The existing volumes a list of steps names (changes, or reads that must stay put)."""
    out: dict[str, None] = {}
    for st in steps:
        for f in VOLUME_FIELDS:
            value = getattr(st, f, None)
            if isinstance(value, str) and value in existing:
                out[value] = None
    return tuple(out)
