"""The fake cluster's state: StorPool volumes with tags and attachments, KVM hosts with their
device-mapper devices, OnApp-like VMs for rehearsals, a virtual clock and a fault hook.

It lives in a SQLite database (db.py) so that separate command-line calls share one simulated
cluster; volume contents are extents on disk (extents.py).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from xen2kvm.errors import InjectedFault, PlanError

from .db import Codec, Db
from .extents import ExtentStore
from .latency import GuestIo

OLD_STATE_FILE = "cluster.pickle"
DEFAULT_SYSCTL = {"dev.raid.speed_limit_min": 1000, "dev.raid.speed_limit_max": 200000}
RAID_VERSION = (1, 15, 1)
LINEAR_VERSION = (1, 4, 0)
# operator completeness: the one template and placement group of the fake, its raw capacity
TEMPLATE, PLACEMENT, REPLICATION = "default", "default", 3
DEFAULT_CAPACITY = 100 * 1024 ** 4
# StorPool's largest volume: not stated in docs/storpool.md or /work/shared/reference, so the
# fake assumes 1 PiB, far above any OnApp disk; one constant to correct
MAX_VOLUME_BYTES = 1024 ** 5
MAX_TICK_SECONDS = 10 ** 9  # 31 years of virtual time in one tick is a typo, not a rehearsal


@dataclass
class FakeVolume:
    name: str
    size_bytes: int
    tags: dict[str, str]
    store: ExtentStore
    failing: bool = False  # writes fail with EIO, as on a full backing store
    lineage: int = 0  # which snapshots it may be reverted to (those taken of the same lineage)


@dataclass
class FakeSnapshot:
    """Read-only, copy-on-write (shares the volume's chunks), tags of its own."""

    name: str
    size_bytes: int
    tags: dict[str, str]
    store: ExtentStore
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
    down: bool = False  # answers no call, as an unreachable host (`sim host down`)


@dataclass
class SimVM:
    name: str
    hypervisor: str
    disks: dict[str, str]  # disk identifier -> volume name
    host: Optional[str] = None
    running: bool = False
    opened: list[str] = field(default_factory=list)  # device paths the "qemu" holds open




def _volume_codec(db: Db, kind: type) -> Codec:
    fields = [f.name for f in dataclasses.fields(kind) if f.name not in ("name", "store")]

    def encode(v: Any) -> dict:
        doc = {f: getattr(v, f) for f in fields}
        doc["tags"] = dict(doc["tags"])
        return doc | {"store": v.store.id}

    def decode(name: str, doc: dict) -> Any:
        return kind(name=name, **doc | {"store": ExtentStore(db, doc["store"])})

    return Codec(encode, decode, tags=kind.__name__, index=lambda v: v.store.id)


def _plain_codec(kind: Optional[type], index: Optional[Callable[[Any], int]] = None) -> Codec:
    """A dataclass as its fields (or, without a kind, a JSON value as itself)."""
    if kind is None:
        return Codec(lambda v: {"v": v}, lambda name, doc: doc["v"])
    return Codec(lambda v: {k: val for k, val in dataclasses.asdict(v).items() if k != "name"},
                 lambda name, doc: kind(name=name, **doc), index=index)


def _dm_codec() -> Codec:
    def decode(name: str, doc: dict) -> DmDev:
        raid = RaidState(**doc["raid"]) if doc["raid"] else None
        if raid:
            raid.legs = [tuple(leg) for leg in raid.legs]
        io = doc["io"] and GuestIo(**doc["io"])
        if io:
            io.schedule = [tuple(x) for x in io.schedule]
            io.history = [tuple(x) for x in io.history]
        return DmDev(name, doc["table"], raid, doc["open_count"], io)

    return Codec(lambda d: {k: v for k, v in dataclasses.asdict(d).items() if k != "name"},
                 decode, index=_busy_clock)


def _busy_clock(dev: DmDev) -> int:
    """1 for a device that virtual time changes (a resync, a modelled guest): a tick reads
    only those."""
    return int(dev.io is not None or (dev.raid is not None and dev.raid.action == "recover"))


def _meta(key: str, default: Any) -> property:
    def get(self: Cluster) -> Any:
        return self.meta.get(key, default)

    def put(self: Cluster, value: Any) -> None:
        self.meta[key] = value

    return property(get, put)


class Cluster:
    """The whole cluster as tables of objects, each row loaded when first touched."""

    clock = _meta("clock", 0.0)
    fault_at = _meta("fault_at", None)
    mutations = _meta("mutations", 0)
    next_lineage = _meta("next_lineage", 1)
    capacity = _meta("capacity", DEFAULT_CAPACITY)  # raw bytes of the group (`sim capacity`)

    def __init__(self, db: Optional[Db] = None):
        self.db = db or Db(":memory:")
        self.volumes = self.db.table("volumes", _volume_codec(self.db, FakeVolume))
        self.snapshots = self.db.table("snapshots", _volume_codec(self.db, FakeSnapshot))
        self.attachments = self.db.table("attachments", _plain_codec(None))
        self.hosts = self.db.table("hosts", self._host_codec())
        # indexed: whether the VM holds devices open, so that a detach searches only those
        self.vms = self.db.table("vms", _plain_codec(SimVM, lambda vm: int(bool(vm.opened))))
        self.meta = self.db.table("meta", _plain_codec(None))

    def _host_codec(self) -> Codec:
        def encode(h: HostState) -> dict:
            return {"client_id": h.client_id, "sysctl": h.sysctl,
                    "raid_version": list(h.raid_version), "notes": h.notes, "down": h.down}

        def decode(name: str, doc: dict) -> HostState:
            return HostState(name, doc["client_id"], self.dm_of(name), doc["sysctl"],
                             tuple(doc["raid_version"]), doc["notes"], doc["down"])

        return Codec(encode, decode)

    def dm_of(self, host: str):
        return self.db.table("dm", _dm_codec(), scope=host)

    def host(self, name: str) -> HostState:
        if name not in self.hosts:
            self.hosts[name] = HostState(name, len(self.hosts) + 1, self.dm_of(name))
        return self.hosts[name]

    def new_store(self) -> ExtentStore:
        return ExtentStore.new(self.db)

    def new_lineage(self) -> int:
        self.next_lineage += 1
        return self.next_lineage

    def mutate(self, call: str) -> None:
        """Every state-changing call passes here first: the fault hook."""
        self.mutations += 1
        if self.fault_at is not None and self.mutations >= self.fault_at:
            k = self.mutations
            self.fault_at = None
            raise InjectedFault(call, k)

    def used_bytes(self) -> int:
        """Raw bytes stored: every distinct piece of data once per copy (clones share their
        parent's data until written, as StorPool's copy-on-write clones do)."""
        self.db.flush()
        return self.db.sql("SELECT bytes FROM used").fetchone()[0] * REPLICATION

    def volume_list(self) -> dict:
        """What the API's volume list returns, by name; kept between commands (listing.py)."""
        return self._listed("volumes", "FakeVolume")

    def snapshot_list(self) -> dict:
        return self._listed("snapshots", "FakeSnapshot")

    def _listed(self, table: str, kind: str) -> dict:
        self.db.flush()
        kept = self.db.listing
        if not kept.has(table):
            tags = self.db.all_tags(kind)
            rows = self.db.sql(f"SELECT name, json_extract(doc, '$.size_bytes') FROM {table}")
            kept.load(table, {name: (size, tags.get(name, {})) for name, size in rows})
        if not kept.has("attachments"):
            kept.load("attachments", {n: tuple(sorted(a))
                                      for n, a in self.attachments.scan().items()})
        return kept.by_name(table)

    def holders(self, host: str, path: str) -> list[str]:
        """What holds a device open on a host: dm devices mapping it, VMs running on it. The
        database searches the rows, so a detach does not read the whole cluster."""
        self.db.flush()
        dms = self.db.sql("SELECT name, json_extract(doc, '$.table') FROM dm WHERE scope=? "
                          "AND instr(json_extract(doc, '$.table'), ?)", (host, path)).fetchall()
        # a row written before the VMs' index column existed has none there: searched too
        vms = self.db.sql("SELECT vms.name FROM vms, json_each(vms.doc, '$.opened') o WHERE "
                          "(vms.store IS NULL OR vms.store=1) AND o.value=? AND "
                          "json_extract(vms.doc, '$.host')=?", (path, host))
        return ([f"dm {n}" for n, table in dms if path in table.split()] +
                sorted(f"VM {n}" for n, in vms.fetchall()))

    def pristine(self) -> bool:
        """Nothing but hosts looked at: a new cluster with no change worth a folder."""
        self.db.flush()
        if any(self.db.sql(f"SELECT 1 FROM {t} LIMIT 1").fetchone()
               for t in ("volumes", "snapshots", "attachments", "dm", "vms", "meta", "extents")):
            return False
        return all(h == HostState(h.name, h.client_id, h.dm) for h in self.hosts.values())

    def inject_fault(self, k: int) -> None:
        """Fail the k-th mutating call from now on (1 = the next one)."""
        self.mutations = 0
        self.fault_at = k


def check_seconds(seconds: float) -> float:
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_TICK_SECONDS:
        raise PlanError(f"virtual time must pass by a finite number of seconds between 0 and "
                        f"{MAX_TICK_SECONDS}, not {seconds}")
    return seconds
