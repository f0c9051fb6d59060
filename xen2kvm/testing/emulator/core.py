"""The emulator: the cluster's endpoints behind one lock, and the hooks tests fail it with
(per-endpoint faults, the k-th change failing as a crash would, replies that are not the
envelope, replies held back)."""

from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import Any, Optional

from .misreplies import MISREPLIES
from .rules import READS, ApiFailure
from .snapshots import SnapshotEndpoints
from .volumes import VolumeEndpoints

DEFAULT_CAPACITY = 100 * 1024 ** 4  # raw bytes of the one placement group, "default"


class Emulator(VolumeEndpoints, SnapshotEndpoints):
    def __init__(self, data: Path, token: str, dev_root: Path, use_loop: Optional[bool] = None,
                 capacity: int = DEFAULT_CAPACITY):
        super().__init__(data, dev_root, use_loop)
        self.capacity = capacity
        self.token = token
        self.calls: collections.Counter = collections.Counter()
        self.faults: dict[str, list] = {}
        self.misreplies: dict[str, list] = {}
        self.release = threading.Event()  # lets "slow"/"hang" replies go
        self.held = 0  # requests waiting on `release`
        self.idle = threading.Condition(self.lock)  # notified when `held` drops
        self.change_fault: Optional[int] = None

    # fault injection ---------------------------------------------------------------------
    def inject(self, endpoint: str, count: int, transient: bool = True) -> None:
        """The next `count` calls of `endpoint` fail (transiently or not)."""
        with self.lock:
            self.faults[endpoint] = [count, transient]

    def misreply(self, endpoint: str, shape: str, count: int = 1) -> None:
        """The next `count` calls of `endpoint` get a reply that is not the envelope (a proxy
        or a broken API: see MISREPLIES); the request itself is not applied, except "slow"
        which applies it once `release` is set, after the client gave up waiting."""
        if shape not in MISREPLIES:
            raise ValueError(f"unknown reply shape {shape}")
        with self.lock:
            self.misreplies[endpoint] = [count, shape]

    def take_misreply(self, endpoint: str) -> Optional[str]:
        with self.lock:
            pending = self.misreplies.get(endpoint)
            if not pending or pending[0] <= 0:
                return None
            pending[0] -= 1
            return pending[1]

    def fail_change(self, k: int) -> None:
        """The k-th change from now (any endpoint but a read) fails, as a crash would."""
        with self.lock:
            self.change_fault = k

    def _injected(self, query: str) -> None:
        if query not in READS and self.change_fault is not None:
            self.change_fault -= 1
            if self.change_fault <= 0:
                self.change_fault = None
                raise ApiFailure("injectedFault", f"injected failure of {query}", 500)
        fault = self.faults.get(query)
        if fault and fault[0] > 0:
            fault[0] -= 1
            raise ApiFailure("injectedFault" if not fault[1] else "transientError",
                             f"injected failure of {query}", 500, fault[1])

    # endpoints ---------------------------------------------------------------------------
    def handle(self, query: str, args: list[str], body: Any) -> Any:
        with self.lock:
            self._injected(query)
            handler = getattr(self, f"do_{query}", None)
            if handler is None:
                raise ApiFailure("invalidParam", f"unknown query {query}", 404)
            result = handler(*args, body) if body is not None or query not in READS \
                else handler(*args)
            if query not in READS:
                self.generation += 1
                self._save()
            return result
