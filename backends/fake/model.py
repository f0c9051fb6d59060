"""The fake cluster's state: StorPool volumes with tags and attachments, KVM hosts with their
device-mapper devices, OnApp-like VMs for rehearsals, a virtual clock and a fault hook.

It is saved to a folder so that separate command-line calls share one simulated cluster.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from xen2kvm.errors import BackendError, InjectedFault

from .latency import GuestIo
from .sparse import SparseStore

STATE_FILE = "cluster.pickle"
DEFAULT_SYSCTL = {"dev.raid.speed_limit_min": 1000, "dev.raid.speed_limit_max": 200000}
RAID_VERSION = (1, 15, 1)
LINEAR_VERSION = (1, 4, 0)
# operator completeness: the one template and placement group of the fake, its raw capacity
TEMPLATE, PLACEMENT, REPLICATION = "default", "default", 3
DEFAULT_CAPACITY = 100 * 1024 ** 4


@dataclass
class FakeVolume:
    name: str
    size_bytes: int
    tags: dict[str, str] = field(default_factory=dict)
    store: SparseStore = field(default_factory=SparseStore)
    failing: bool = False  # writes fail with EIO, as on a full backing store
    lineage: int = 0  # which snapshots it may be reverted to (those taken of the same lineage)


@dataclass
class FakeSnapshot:
    """Read-only, copy-on-write (shares the volume's chunks), tags of its own."""

    name: str
    size_bytes: int
    tags: dict[str, str]
    store: SparseStore
    lineage: int


@dataclass
class RaidState:
    total: int
    legs: list[tuple[str, str]]
    health: list[str]
    done: int
    action: str
    rates: dict[str, int] = field(default_factory=dict)


@dataclass
class DmDev:
    name: str
    table: str
    raid: Optional[RaidState] = None
    open_count: int = 0
    io: Optional[GuestIo] = None  # a modelled guest writing through it (latency.py)


@dataclass
class HostState:
    name: str
    client_id: int
    dm: dict[str, DmDev] = field(default_factory=dict)
    sysctl: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SYSCTL))
    raid_version: tuple[int, ...] = RAID_VERSION
    notes: dict[str, str] = field(default_factory=dict)  # files the tool keeps beside its lock
    down: bool = False  # answers no call, as an unreachable host (`sim host down`)


@dataclass
class SimVM:
    name: str
    hypervisor: str
    disks: dict[str, str]  # disk identifier -> volume name
    host: Optional[str] = None
    running: bool = False
    opened: list[str] = field(default_factory=list)  # device paths the "qemu" holds open


@dataclass
class Cluster:
    volumes: dict[str, FakeVolume] = field(default_factory=dict)
    snapshots: dict[str, FakeSnapshot] = field(default_factory=dict)
    next_lineage: int = 1
    attachments: dict[str, dict[str, str]] = field(default_factory=dict)
    hosts: dict[str, HostState] = field(default_factory=dict)
    vms: dict[str, SimVM] = field(default_factory=dict)
    clock: float = 0.0
    fault_at: Optional[int] = None
    mutations: int = 0
    generation: int = 0
    capacity: int = DEFAULT_CAPACITY  # raw bytes of the placement group (`sim capacity`)

    def host(self, name: str) -> HostState:
        if name not in self.hosts:
            self.hosts[name] = HostState(name, len(self.hosts) + 1)
        return self.hosts[name]

    def new_lineage(self) -> int:
        self.next_lineage += 1
        return self.next_lineage

    def mutate(self, call: str) -> None:
        """Every state-changing call passes here first: the fault hook and the dirty mark."""
        self.mutations += 1
        if self.fault_at is not None and self.mutations >= self.fault_at:
            k = self.mutations
            self.fault_at = None
            self.generation += 1  # the spent fault must be saved
            raise InjectedFault(call, k)
        self.generation += 1

    def used_bytes(self) -> int:
        """Raw bytes stored: every distinct chunk once per copy (clones share their parent's
        chunks until written, as StorPool's copy-on-write clones do)."""
        chunks = {id(c): len(c) for v in self.volumes.values() for c in v.store.chunks.values()}
        return sum(chunks.values()) * REPLICATION

    def inject_fault(self, k: int) -> None:
        """Fail the k-th mutating call from now on (1 = the next one)."""
        self.mutations = 0
        self.fault_at = k


MAGIC = b"x2kfake1"
STAMP_BYTES = len(MAGIC) + 16  # the magic, then a random token new with every save


def stamp(state_dir: Path) -> Optional[bytes]:
    """What identifies one saved version (file times and inode numbers repeat too easily)."""
    try:
        with open(Path(state_dir) / STATE_FILE, "rb") as f:
            return f.read(STAMP_BYTES)
    except FileNotFoundError:
        return None
    except OSError:  # a directory or unreadable: load() says what is wrong
        return b""


def load(state_dir: Path) -> Cluster:
    path = Path(state_dir) / STATE_FILE
    if not path.exists():
        return Cluster()
    try:
        with open(path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise ValueError("no magic")
            f.seek(STAMP_BYTES)
            cluster = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, AttributeError,
            ImportError, IndexError, TypeError) as exc:
        why = "empty" if path.is_file() and path.stat().st_size == 0 else (
            getattr(exc, "strerror", None) or "truncated or damaged")
        raise BackendError("stateUnreadable", f"the fake cluster's state file {path} is "
                           f"unreadable ({why}); restore it from a copy, or give --state a "
                           "new folder; nothing was changed") from None
    if not isinstance(cluster, Cluster):
        raise BackendError("stateUnreadable", f"{path} does not hold a fake cluster; restore "
                           "it from a copy, or give --state a new folder; nothing was changed")
    return cluster


def dump(cluster: Cluster) -> bytes:
    return pickle.dumps(cluster, protocol=4)


def saved_bytes(state_dir: Path) -> bytes:
    """The saved cluster's pickle, without the stamp."""
    path = Path(state_dir) / STATE_FILE
    return path.read_bytes()[STAMP_BYTES:] if path.is_file() else b""


def save(cluster: Cluster, state_dir: Path) -> None:
    state_dir = Path(state_dir)
    try:
        fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".cluster.")
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + os.urandom(STAMP_BYTES - len(MAGIC)) + dump(cluster))
        os.replace(tmp, state_dir / STATE_FILE)
    except OSError as exc:
        raise BackendError("stateUnwritable", f"cannot save the fake cluster in {state_dir} "
                           f"({exc.strerror}); make the folder writable; this change was "
                           "not saved") from None
