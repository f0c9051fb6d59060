"""What `list_volumes` and `list_snapshots` return, kept in this process between commands.

A rehearsal drives thousands of commands through one process; each reads the whole listing,
as the real tool reads StorPool's. The database has a serial that every writing transaction
bumps: while it is the one this process last saw, the listing kept here is current, and this
process's own writes update it row by row. Another process's write changes the serial, and
the next listing is read again from the database.
"""

from __future__ import annotations

from typing import Optional

from xen2kvm.backend import Snapshot, Volume

KINDS = ("volumes", "snapshots")


class Listing:
    def __init__(self) -> None:
        self.reset()

    def reset(self, serial: Optional[int] = None) -> None:
        self.serial = serial
        self.rows: dict[str, dict[str, tuple[int, dict[str, str]]]] = {}
        self.attached: Optional[dict[str, tuple[str, ...]]] = None
        self._made: dict[str, dict[str, object]] = {k: {} for k in KINDS}
        self._order: dict[str, list[str]] = {}
        self._out: dict[str, list] = {}  # the last list made, while nothing of its kind changed

    def note(self, kind: str, name: str, doc: Optional[dict], tags: dict[str, str]) -> None:
        """This process wrote a row: keep the listing in step."""
        if kind == "attachments":
            if self.attached is not None:
                self.attached[name] = tuple(sorted(doc["v"])) if doc else ()
            self._made["volumes"].pop(name, None)
            self._out.pop("volumes", None)
        elif kind in self.rows:
            rows = self.rows[kind]
            if (name in rows) != (doc is not None):
                self._order.pop(kind, None)
            if doc is None:
                rows.pop(name, None)
            else:
                rows[name] = (doc["size_bytes"], tags)
            self._made[kind].pop(name, None)
            self._out.pop(kind, None)

    def _listed(self, kind: str, make) -> list:
        if kind in self._out:
            return list(self._out[kind])
        rows, made = self.rows[kind], self._made[kind]
        if kind not in self._order:
            self._order[kind] = sorted(rows)
        out = []
        for name in self._order[kind]:
            obj = made.get(name)
            if obj is None:
                obj = made[name] = make(name, *rows[name])
            out.append(obj)
        self._out[kind] = out
        return list(out)

    def volumes(self) -> list[Volume]:
        att = self.attached or {}
        return self._listed("volumes", lambda n, size, tags: Volume(n, size, dict(tags),
                                                                    att.get(n, ())))

    def snapshots(self) -> list[Snapshot]:
        return self._listed("snapshots", lambda n, size, tags: Snapshot(n, size, dict(tags)))


_BY_FILE: dict[str, Listing] = {}


def for_file(path: str) -> Listing:
    """The listing of one database file in this process (an in-memory database has its own)."""
    if path == ":memory:":
        return Listing()
    return _BY_FILE.setdefault(path, Listing())
