"""What the core needs from a cluster (StorageBackend) and from one KVM host (HostBackend).

Queries run in dry-run too; every other method changes state and is only reached from a step
that `-y` executes. Methods are idempotent where the contract says so, so a rerun after a crash
completes what a half-finished step left.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    Any,
    Callable,
    Hashable,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    runtime_checkable,
)

from .naming import DevicePaths
from .process import Runner
from .remote import HostSpec
from .throttle import IoCounters


@dataclass(frozen=True)
class Volume:
    name: str
    size_bytes: int
    tags: Mapping[str, str] = field(default_factory=dict)
    attached: tuple[str, ...] = ()  # host names this volume is attached to
    template: str = ""


@dataclass(frozen=True)
class Snapshot:
    """A StorPool snapshot: read-only, copy-on-write, with tags of its own."""

    name: str
    size_bytes: int
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TemplateSpace:
    """One template as VolumeTemplatesStatus reports it: its replication, its placement groups
    (placeHead may be empty) and StorPool's estimate of each group's free and total raw bytes."""

    name: str
    replication: int
    place_all: str
    place_tail: str
    place_head: str = ""
    free: Mapping[str, int] = field(default_factory=dict)  # placement group -> bytes
    capacity: Mapping[str, int] = field(default_factory=dict)


class StorageBackend(Protocol):
    """Cluster-wide StorPool operations."""

    def list_volumes(self) -> list[Volume]:
        """All volumes with tags and attachments, in a constant number of calls."""

    def volumes_by_name(self) -> dict[str, Volume]:
        """`list_volumes` as a new dict by name, in name order (a model that keeps its
        listing between calls hands out a copy of it instead of building one)."""

    def create_volume(self, name: str, size_bytes: int, tags: Mapping[str, str],
                      template: str = "") -> None: ...

    def clone_volume(self, name: str, source: str, tags: Mapping[str, str]) -> None:
        """A copy-on-write copy of `source` (StorPool `baseOn`)."""

    def grow_volume(self, name: str, add_bytes: int) -> None: ...

    def set_tags(self, name: str, tags: Mapping[str, Optional[str]]) -> None:
        """Set the given tags; a None value removes the tag. Others are left alone."""

    def rename_volume(self, name: str, new_name: str) -> None: ...

    def delete_volume(self, name: str) -> None:
        """Delete a detached volume; deleting one already gone is success."""

    def snapshots_by_name(self) -> dict[str, Snapshot]:
        """`list_snapshots` as a new dict by name, in name order."""

    def list_snapshots(self) -> list[Snapshot]:
        """All snapshots with their tags, in one call."""

    def create_snapshot(self, volume: str, name: str, tags: Mapping[str, str]) -> None:
        """A named copy-on-write snapshot of `volume` (StorPool `VolumeSnapshot`)."""

    def set_snapshot_tags(self, name: str, tags: Mapping[str, Optional[str]]) -> None:
        """As set_tags, for a snapshot."""

    def delete_snapshot(self, name: str) -> None:
        """Delete a snapshot; deleting one already gone is success."""

    def revert_volume(self, name: str, snapshot: str) -> None:
        """Content and size of `name` become those of `snapshot`, one taken of it
        (StorPool `VolumeRevert`); the volume must be detached."""

    def create_from_snapshot(self, name: str, snapshot: str, tags: Mapping[str, str]) -> None:
        """A new volume whose parent is `snapshot` (StorPool `VolumeCreate` with `parent`)."""

    def attach(self, name: str, host: str) -> None:
        """Attach read-write to `host`; a no-op when it already is."""

    def detach(self, name: str, host: Optional[str] = None) -> None:
        """Detach from `host`, or from every host when None."""

    # operator completeness: the capacity check (xen2kvm/capacity.py)
    def template_space(self) -> list[TemplateSpace]:
        """Every template's placement and free space (one VolumeTemplatesStatus call)."""


class HostBackend(Protocol):
    """One KVM hypervisor: block devices, device-mapper, sysctls, the helper."""

    name: str
    paths: DevicePaths  # where its device nodes are: the dm tables and the I/O use them alike
    helper_sink: Callable[[str], None]  # where the helper's output goes, line by line

    def device_path(self, volume: str) -> str: ...

    def read(self, path: str, offset: int, length: int) -> bytes: ...

    def write(self, path: str, offset: int, data: bytes) -> None: ...

    def first_difference(
        self, path_a: str, offset_a: int, path_b: str, offset_b: int, length: int
    ) -> Optional[int]:
        """Offset (relative) of the first differing byte, or None when equal."""

    def dm_tables(self) -> dict[str, str]:
        """Every dm device on the host with its table."""

    def dm_status(self, name: str) -> str: ...

    def dm_snapshot(self) -> tuple[dict[str, str], dict[str, str]]:
        """Tables and status lines of every dm device, read together (one round trip)."""

    def dm_targets(self) -> dict[str, tuple[int, ...]]: ...

    def dm_create(self, name: str, table: str) -> None: ...

    def dm_reload(self, name: str, table: str) -> None:
        """Load the table, suspend, resume: the live swap."""

    def dm_remove(self, name: str) -> None: ...

    def dm_io(self, names: Sequence[str]) -> dict[str, IoCounters]:
        """Cumulative write counters of dm devices, in one round trip (precise: dm statistics
        regions of this tool, made on first use)."""

    def dm_io_stop(self, names: Sequence[str]) -> None:
        """Remove what dm_io made on the devices."""

    def note_get(self, name: str) -> Optional[str]:
        """A small file the tool keeps beside the host's run lock (None: there is none)."""

    def note_set(self, name: str, text: Optional[str]) -> None:
        """Write the note durably, or remove it (None)."""

    def note_path(self, name: str) -> str:
        """Where the note lives on the host (what a step that removes it prints)."""

    def sysctl_get(self, key: str) -> int: ...

    def sysctl_set(self, key: str, value: int) -> None: ...

    def run_helper(self, argv: Sequence[str], volume: str) -> None:
        """Run the helper with the volume's block device path as last argument."""

    def sleep(self, seconds: float) -> None:
        """Let time pass (virtual on the fake)."""


class ListCache:
    """The cluster's lists read once for many hosts' views (fleet status): one consistent
    picture, however many hosts are shown. Only for reads: a run that changes anything reads
    its own lists again. A backend keys what it keeps by where it read it from."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lists: dict[Hashable, Any] = {}

    def get(self, key: Hashable, read: Callable[[], Any]) -> Any:
        with self._lock:  # the first host reads, the others wait for its answer
            if key not in self._lists:
                self._lists[key] = read()
            return self._lists[key]


@dataclass(frozen=True)
class SSHOptions:
    known_hosts: Optional[str] = None  # None: the system's
    accept_new_keys: bool = False  # trust an unknown host key (never a changed one)


@dataclass(frozen=True)
class BackendConfig:
    """Everything a backend is opened with (`xen2kvm.backends.open`)."""

    backend: str  # a name in the registry
    runner: Runner  # the local commands' Runner
    state: Optional[str] = None  # the fake cluster's folder
    host: Optional[str] = None  # the KVM host this runs on (None: the backend's default)
    remote: Optional[HostSpec] = None  # that host's steps run on it (real: over SSH)
    ssh: SSHOptions = SSHOptions()
    client_id: Optional[int] = None  # the host's StorPool client id (None: from its config)
    shared: Optional[ListCache] = None  # lists read once for many hosts (reads only)

    @property
    def host_name(self) -> Optional[str]:
        return self.remote.name if self.remote is not None else self.host


@runtime_checkable
class Backends(Protocol):
    """One opened backend: the cluster's storage and the host the steps run on."""

    storage: StorageBackend
    host: HostBackend
    runner: Runner  # where the host's commands run (redaction, the helper's output)
    lock_dir: str  # the run lock's folder on that host; the tool's notes are kept beside it
    audit_path: Optional[Path]  # None: XEN2KVM_AUDIT_LOG or the default (audit.py)

    def lock(self) -> Callable[[], None]:
        """Take the host's run lock (LockBusy when another run holds it); returns its
        release."""

    def close(self) -> None: ...
