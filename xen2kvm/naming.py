"""Every StorPool and device-mapper name the tool derives, and the tags it owns.

OnApp hands the tool disk identifiers; StorPool knows volumes. A disk identifier names the volume
called exactly that, or the one whose name ends in ':<identifier>' (LVMSP prefixes names with a
cluster part). The tool's own volumes (clones, metadata, replaced case-1 volumes) carry the tag
`xen2kvm=<role>` and are never taken for an operator's disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

from .errors import NotFound, PlanError

NAME_RE = re.compile(r"^[A-Za-z0-9_\-.:]+$")
TAG_NAME_RE = re.compile(r"^[A-Za-z0-9_\-.:]+$")
TAG_VALUE_RE = re.compile(r"^[A-Za-z0-9_\-.:]*$")
VM_RE = re.compile(r"^[A-Za-z0-9_.:]+$")
NAME_AND_TAGS_MAX = 200
RESERVED = {"list", "status"}

# Tags: `xen` on the KVM volume while it migrates, `vs` once done (both from the StorPool
# knowledge-base procedure); the rest are this tool's bookkeeping on its own volumes.
TAG_XEN = "xen"
TAG_VS = "vs"
TAG_ROLE = "xen2kvm"
TAG_KVM = "kvm"
TAG_N = "n"
TAG_KVM_SECTORS = "ksz"
TAG_HELPER = "helper"
ROLE_CLONE = "clone"
ROLE_META = "meta"
ROLE_REPLACED = "replaced"
OWN_ROLES = (ROLE_CLONE, ROLE_META, ROLE_REPLACED)
# meta1 carries leg1=joined from the sync that adds leg 1 to the raid1: the next assemble loads
# the two-leg table that resumes the copy instead of starting it again
TAG_LEG1 = "leg1"
LEG1_JOINED = "joined"
# the tag budget (NAME_AND_TAGS_MAX) is checked before the first change for the longest values
# tags get later: a VM identifier (vs=, check_vm) and a helper's label
VM_MAX = 64
HELPER_TAG_MAX = 32

# A run's claim on a volume it changes: a tag of its own per run (`x2kclaim.<host>.<pid>.<hex>`),
# so two claimants never overwrite each other and each sees the other on read-back.
CLAIM_PREFIX = "x2kclaim."
CLAIM_ROOM = len(CLAIM_PREFIX) + 48 + 2  # one claim key (host up to 32 characters) and "=1"

CLONE_PREFIX = "xen-"
DM_PREFIX = "xen2kvm-"
DM_LINEAR_SUFFIX = "-lin"
META_SIZE_BYTES = 4 * 1024 * 1024


def check_volume_name(name: str, what: str = "volume name") -> str:
    # "." and ".." pass StorPool's charset but name directories: /dev/storpool/.. is /dev
    if not name or len(name) >= NAME_AND_TAGS_MAX or not NAME_RE.match(name) or \
            name in RESERVED or name in (".", ".."):
        raise PlanError(
            f"{what} {name!r} is not a valid StorPool name; use letters, digits and _ - . : "
            f"(not only dots, under {NAME_AND_TAGS_MAX} characters)"
        )
    return name


def check_vm(vm: str) -> str:
    if not vm or len(vm) > VM_MAX or not VM_RE.match(vm):
        raise PlanError(
            f"VM identifier {vm!r} is not valid; use letters, digits and _ . : (no dashes)"
        )
    return vm


def check_tags(volume: str, tags: Mapping[str, Optional[str]]) -> None:
    for key, value in tags.items():
        if not TAG_NAME_RE.match(key) or not TAG_VALUE_RE.match(value or ""):
            raise PlanError(f"tag {key}={value} on {volume} has characters StorPool refuses")
    total = len(volume) + sum(len(k) + 1 + len(v or "") for k, v in tags.items())
    if total > NAME_AND_TAGS_MAX:
        raise PlanError(
            f"volume {volume} with its tags would be {total} bytes, over StorPool's "
            f"{NAME_AND_TAGS_MAX}; use shorter volume names"
        )


def room_for_later_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """`tags` with the later ones at their longest (a clone's vs= and helper=)."""
    return {**tags, TAG_HELPER: "x" * HELPER_TAG_MAX, TAG_VS: "x" * VM_MAX}


def check_claimable(volume: str, tags: Mapping[str, Optional[str]]) -> None:
    """An operator's volume with every tag it will carry must leave room for a run's claim."""
    check_tags(volume, {**{k: v for k, v in tags.items() if not k.startswith(CLAIM_PREFIX)},
                        CLAIM_PREFIX: "x" * (CLAIM_ROOM - len(CLAIM_PREFIX) - 1)})


def claim_key(host: str, pid: int, token: str) -> str:
    key = f"{CLAIM_PREFIX}{host}.{pid}.{token}"
    if len(key) + 2 > CLAIM_ROOM or not TAG_NAME_RE.match(key):
        raise PlanError(f"host name {host!r} is too long or has characters a StorPool tag "
                        "cannot hold; use a shorter --host")
    return key


def claims(tags: Mapping[str, str]) -> list[str]:
    """The holders (host.pid.token) of the claims a volume carries."""
    return sorted(k[len(CLAIM_PREFIX):] for k in tags if k.startswith(CLAIM_PREFIX))


def is_own(tags: Mapping[str, str]) -> bool:
    return tags.get(TAG_ROLE) in OWN_ROLES


def resolve(identifier: str, volumes: Iterable[tuple[str, Mapping[str, str]]]) -> str:
    """The one operator volume an OnApp disk identifier names."""
    check_volume_name(identifier, "disk identifier")
    names = [n for n, tags in volumes if not is_own(tags)]
    if identifier in names:
        return identifier
    hits = [n for n in names if n.endswith(":" + identifier)]
    if not hits:
        raise NotFound(f"no StorPool volume named {identifier} or *:{identifier}; check the id")
    if len(hits) > 1:
        raise PlanError(
            f"disk identifier {identifier} is ambiguous ({', '.join(sorted(hits))}); "
            "give the full volume name"
        )
    return hits[0]


def disk_of(volume: str) -> str:
    """The OnApp disk identifier inside a volume name."""
    return volume.rsplit(":", 1)[-1]


def clone_name(xen_volume: str) -> str:
    return CLONE_PREFIX + xen_volume


def xen_of_clone(clone: str) -> str:
    return clone[len(CLONE_PREFIX):]


def meta_names(kvm_volume: str) -> tuple[str, str]:
    return (f"x2km0-{kvm_volume}", f"x2km1-{kvm_volume}")


def replaced_name(kvm_volume: str) -> str:
    return f"x2kold-{kvm_volume}"


def dm_raid(vm: str, disk: str) -> str:
    return f"{DM_PREFIX}{vm}-{disk}"


def dm_linear(vm: str, disk: str) -> str:
    return dm_raid(vm, disk) + DM_LINEAR_SUFFIX


def parse_dm_name(name: str) -> Optional[tuple[str, str, bool]]:
    """(vm, disk, is_linear) for a device this tool made, else None."""
    if not name.startswith(DM_PREFIX):
        return None
    rest = name[len(DM_PREFIX):]
    vm, sep, disk = rest.partition("-")
    if not sep or not disk:
        return None
    linear = disk.endswith(DM_LINEAR_SUFFIX)
    if linear:
        disk = disk[: -len(DM_LINEAR_SUFFIX)]
    return vm, disk, linear


@dataclass(frozen=True)
class DevicePaths:
    """Where a host's block devices appear: StorPool volumes in <root>/storpool, dm devices in
    <root>/mapper (dmsetup is told the same root). The one source of device paths: the dm tables
    the planner writes, the host's I/O and the kernel's tables read back all come from it, so a
    moved root (XEN2KVM_DEV_ROOT: the API emulator, the lab) cannot make them disagree."""

    root: str = "/dev"

    def volume(self, name: str) -> str:
        return f"{self.volumes}/{name}"

    def mapper(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/mapper/{name}"

    @property
    def volumes(self) -> str:
        return f"{self.root.rstrip('/')}/storpool"


DEFAULT_PATHS = DevicePaths()


def volume_path(name: str, paths: DevicePaths = DEFAULT_PATHS) -> str:
    return paths.volume(name)


def mapper_path(name: str, paths: DevicePaths = DEFAULT_PATHS) -> str:
    return paths.mapper(name)


# Recovery points: StorPool snapshots taken before the tool first changes a pre-existing volume.
# Snapshots do not inherit volume tags, so a recovery point carries what abort needs in its own
# tags: the migration it belongs to (`m`, the KVM volume), the volume it was taken of (`v`,
# left out when that is `m`: StorPool gives a name and its tags 200 bytes), its generation
# (`g`, a new one per migration of the same volume), the volume's tags then (`o.<tag>`),
# `c1=1` for case-1; later `vm=<VM>` at the first power-on, `ab=1` once aborted, `ran=1`
# once the VM ran from its raw KVM volume after the end (what makes it purgeable).
SNAP_NAME_RE = re.compile(r"^\*?[A-Za-z0-9_\-.:@]+$")
ROLE_RP = "rp"
ROLE_UNDO = "undo"
TAG_RP_VOLUME = "v"
TAG_RP_MIGRATION = "m"
TAG_RP_GEN = "g"
TAG_RP_CASE1 = "c1"
TAG_RP_ABORTED = "ab"
TAG_RP_RAN = "ran"
TAG_RP_VM = "vm"
ORIG_TAG_PREFIX = "o."


def recovery_point_name(volume: str, gen: int) -> str:
    return f"x2krp{gen}-{volume}"


def undo_point_name(volume: str, gen: int) -> str:
    return f"x2kundo{gen}-{volume}"


def recovery_tags(volume: str, migration: str, gen: int, original: Mapping[str, str],
                  case1: bool = False) -> dict[str, str]:
    tags = {TAG_ROLE: ROLE_RP, TAG_RP_MIGRATION: migration, TAG_RP_GEN: str(gen)}
    if volume != migration:
        tags[TAG_RP_VOLUME] = volume
    if case1:
        tags[TAG_RP_CASE1] = "1"
    tags.update({ORIG_TAG_PREFIX + k: v for k, v in sorted(original.items())})
    return tags


def rp_volume(tags: Mapping[str, str]) -> str:
    """The volume a recovery (or undo) point was taken of."""
    return tags.get(TAG_RP_VOLUME) or tags.get(TAG_RP_MIGRATION, "")


def original_tags(rp_tags: Mapping[str, str]) -> dict[str, str]:
    """The volume's own tags when the recovery point was taken."""
    n = len(ORIG_TAG_PREFIX)
    return {k[n:]: v for k, v in rp_tags.items() if k.startswith(ORIG_TAG_PREFIX)}


def check_recovery_tags(snapshot: str, tags: Mapping[str, Optional[str]]) -> None:
    """Refuse before any change when a recovery point could not record what abort needs
    (StorPool's 200 bytes for a name and its tags), with room for the later marks."""
    if len(snapshot) >= NAME_AND_TAGS_MAX or not SNAP_NAME_RE.match(snapshot):
        raise PlanError(f"recovery point name {snapshot} is not a valid StorPool snapshot "
                        "name; use shorter volume names")
    try:
        check_tags(snapshot, {**tags, TAG_RP_ABORTED: "1", TAG_RP_RAN: "1",
                              TAG_RP_VM: "x" * VM_MAX})
    except PlanError as exc:
        raise PlanError(f"recovery point {snapshot} could not record what abort needs: "
                        f"{exc}") from None
