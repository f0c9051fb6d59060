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
        self.serial: Optional[int] = None
        self.rows: dict[str, dict[str, tuple[int, dict[str, str]]]] = {}
        self.attached: Optional[dict[str, tuple[str, ...]]] = None
        self._made: dict[str, list] = {}

    def reset(self, serial: Optional[int] = None) -> None:
        self.serial, self.rows, self.attached, self._made = serial, {}, None, {}

    def note(self, kind: str, name: str, doc: Optional[dict], tags: dict[str, str]) -> None:
        """This process wrote a row: keep the listing in step (or forget it)."""
        if kind == "attachments":
            if self.attached is not None:
                self.attached[name] = tuple(sorted(doc["v"])) if doc else ()
            self._made.pop("volumes", None)
        elif kind in self.rows:
            if doc is None:
                self.rows[kind].pop(name, None)
            else:
                self.rows[kind][name] = (doc["size_bytes"], tags)
            self._made.pop(kind, None)

    def volumes(self) -> list[Volume]:
        if "volumes" not in self._made:
            att = self.attached or {}
            self._made["volumes"] = [Volume(n, size, dict(tags), att.get(n, ()))
                                     for n, (size, tags) in sorted(self.rows["volumes"].items())]
        return list(self._made["volumes"])

    def snapshots(self) -> list[Snapshot]:
        if "snapshots" not in self._made:
            self._made["snapshots"] = [Snapshot(n, size, dict(tags)) for n, (size, tags)
                                       in sorted(self.rows["snapshots"].items())]
        return list(self._made["snapshots"])


_BY_FILE: dict[str, Listing] = {}


def for_file(path: str) -> Listing:
    """The listing of one database file in this process (an in-memory database has its own)."""
    if path == ":memory:":
        return Listing()
    return _BY_FILE.setdefault(path, Listing())
