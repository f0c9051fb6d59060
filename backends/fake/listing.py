"""What `list_volumes` and `list_snapshots` return, kept in this process between commands.

A rehearsal drives thousands of commands through one process; each reads the whole listing,
as the real tool reads StorPool's. The database has a serial that every writing transaction
bumps: while it is the one this process last saw, the listing kept here is current, and this
process's own writes update it row by row. Another process's write changes the serial, and
the next listing is read again from the database.
"""

from __future__ import annotations

import bisect
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
        # the objects last listed, by name, changed in place as rows change (a call changes
        # one row among thousands); in name order but for names added since (`_added`)
        self._by: dict[str, dict[str, Volume | Snapshot]] = {}
        self._added: dict[str, set[str]] = {}
        # kinds whose dict lost names: CPython copies a dict with holes entry by entry, one
        # without them in one block (thousands of times faster), so it is made anew once
        self._holes: set[str] = set()

    def has(self, kind: str) -> bool:
        """Whether the rows of a kind ("volumes", "snapshots", "attachments") are here."""
        return (self.attached if kind == "attachments" else self.rows.get(kind)) is not None

    def load(self, kind: str, rows: dict) -> None:
        """The rows of a kind as read: (size, tags) by name, or the hosts by volume name."""
        if kind == "attachments":
            self.attached = rows
        else:
            self.rows[kind] = rows

    def note(self, kind: str, name: str, doc: Optional[dict], tags: dict[str, str]) -> None:
        """This process wrote a row: keep the listing in step."""
        if kind == "attachments":
            if self.attached is not None:
                self.attached[name] = tuple(sorted(doc["v"])) if doc else ()
            if name in self.rows.get("volumes", {}):
                self._patch("volumes", name)
        elif kind in self.rows:
            if doc is None:
                self.rows[kind].pop(name, None)
            else:
                self.rows[kind][name] = (doc["size_bytes"], tags)
            self._patch(kind, name)

    def _patch(self, kind: str, name: str) -> None:
        listed = self._by.get(kind)
        if listed is None:
            return
        if name not in self.rows[kind]:
            if listed.pop(name, None) is not None:
                self._holes.add(kind)
            return
        if name not in listed:
            self._added.setdefault(kind, set()).add(name)
        listed[name] = self._make(kind, name)

    def _make(self, kind: str, name: str) -> Volume | Snapshot:
        size, tags = self.rows[kind][name]
        if kind == "snapshots":
            return Snapshot(name, size, dict(tags))
        return Volume(name, size, dict(tags), (self.attached or {}).get(name, ()))

    def by_name(self, kind: str) -> dict:
        """Every object of a kind by name, in name order: a new dict (the objects are
        shared, and frozen)."""
        if kind not in self._by:
            self._by[kind] = {n: self._make(kind, n) for n in sorted(self.rows[kind])}
        elif kind in self._added or kind in self._holes:
            self._by[kind] = self._in_order(self._by[kind], self._added.pop(kind, set()))
            self._holes.discard(kind)
        return dict(self._by[kind])

    @staticmethod
    def _in_order(listed: dict, added: set[str]) -> dict:
        """`listed` in name order again: the names added since it was are at its end, and
        go to their places one by one (a few, among thousands already in order)."""
        names = list(listed)
        tail = len([n for n in added if n in listed])
        ordered = names[:len(names) - tail]
        for name in names[len(names) - tail:]:
            bisect.insort(ordered, name)
        return {n: listed[n] for n in ordered}


_BY_FILE: dict[str, Listing] = {}


def for_file(path: str) -> Listing:
    """The listing of one database file in this process (an in-memory database has its own)."""
    if path == ":memory:":
        return Listing()
    if path not in _BY_FILE:
        _BY_FILE[path] = Listing()
    return _BY_FILE[path]
