"""One kind of the fake cluster's rows as a dict of objects (db.py holds the file): a row is
loaded the first time a call touches it and written back at its commit only when its encoding
changed, so that the model's code works on plain objects and a command costs what it touches.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable, Iterator, MutableMapping, Optional

from xen2kvm.errors import BackendError

if TYPE_CHECKING:
    from .db import Db


class Codec:
    """How one kind of object becomes a row: its JSON document, and its tags and store id
    (kept in columns of their own so that SQL can reach them)."""

    def __init__(self, encode: Callable[[Any], dict], decode: Callable[[str, dict], Any],
                 tags: Optional[str] = None, index: Optional[Callable[[Any], int]] = None):
        self.encode, self.decode, self.tags = encode, decode, tags
        # the row's indexed column: a volume's store id, whether a dm device needs the clock,
        # whether a VM holds devices open
        self.index = index or (lambda obj: None)


class Table(MutableMapping):
    """One kind of row (within a scope, e.g. one host's dm devices) as a dict of objects."""

    def __init__(self, db: Db, kind: str, codec: Codec, scope: str = ""):
        self.db, self.kind, self.codec, self.scope = db, kind, codec, scope
        self._cache: dict[str, Any] = {}
        # name -> the fingerprint of the object read (None: no row)
        self._loaded: dict[str, Optional[str]] = {}

    def clear_cache(self) -> None:
        self._cache.clear()
        self._loaded.clear()

    def _row(self, name: str) -> Any:
        if name in self._loaded:
            return self._cache.get(name)
        row = self.db.sql(f"SELECT doc FROM {self.kind} WHERE scope=? AND name=?",
                          (self.scope, name)).fetchone()
        self._loaded[name] = None
        if row:
            self._keep(name, row[0])
        return self._cache.get(name)

    def _keep(self, name: str, text: str) -> None:
        obj = self._decode(name, text)
        self._cache[name] = obj
        self._loaded[name] = self._fingerprint(obj)  # with its tags: what a flush compares

    def _fingerprint(self, obj: Any) -> Optional[str]:
        """The object's encoding as text to compare, not to store: its repr is three times
        faster to make than its JSON, and a flush compares every row a call read."""
        return None if obj is None else repr(self.codec.encode(obj))

    def _decode(self, name: str, text: str, tags: Optional[dict] = None) -> Any:
        try:
            doc = json.loads(text)
            if self.codec.tags:
                doc["tags"] = self.db.tags(self.codec.tags, name) if tags is None else tags
            return self.codec.decode(name, doc)
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError("stateUnreadable", f"the fake cluster's {self.kind} row {name!r} "
                               f"is damaged ({exc}); give --state a new folder") from None

    def __getitem__(self, name: str) -> Any:
        obj = self._row(name)
        if obj is None:
            raise KeyError(name)
        return obj

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._row(name) is not None

    def __setitem__(self, name: str, obj: Any) -> None:
        self._row(name)
        self._cache[name] = obj

    def __delitem__(self, name: str) -> None:
        if self._row(name) is None:
            raise KeyError(name)
        del self._cache[name]

    def _names(self) -> list[str]:
        rows = self.db.sql(f"SELECT name, doc FROM {self.kind} WHERE scope=? ORDER BY name",
                           (self.scope,)).fetchall()
        for name, text in rows:
            if name not in self._loaded:
                self._keep(name, text)
        return sorted(self._cache)

    def scan(self) -> dict[str, Any]:
        """Every row, read in one query and decoded, not kept: what a listing reads (a change
        to these objects is not saved; change a row through the mapping)."""
        self.flush()
        rows = self.db.sql(f"SELECT name, doc FROM {self.kind} WHERE scope=? ORDER BY name",
                           (self.scope,)).fetchall()
        tags = self.db.all_tags(self.codec.tags) if self.codec.tags else {}
        return {name: self._cache[name] if name in self._cache else
                self._decode(name, text, tags.get(name, {})) for name, text in rows}

    def indexed(self, value: int) -> list[Any]:
        """The rows whose indexed column holds `value`, kept for change."""
        rows = self.db.sql(f"SELECT name, doc FROM {self.kind} WHERE scope=? AND store=?",
                           (self.scope, value)).fetchall()
        for name, text in rows:
            if name not in self._loaded:
                self._keep(name, text)
        return [o for n, o in sorted(self._cache.items())
                if o is not None and self.codec.index(o) == value]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        self.flush()
        return self.db.sql(f"SELECT count(*) FROM {self.kind} WHERE scope=?",
                           (self.scope,)).fetchone()[0]

    def flush(self) -> None:
        if not self._cache and not self._loaded:  # most calls touch a few of the tables
            return
        for name in set(self._loaded) | set(self._cache):
            obj = self._cache.get(name)
            doc = None if obj is None else self.codec.encode(obj)  # a new dict: ours to change
            seen = None if doc is None else repr(doc)
            if seen != self._loaded.get(name):
                self._write(name, doc)
                self._loaded[name] = seen

    def _write(self, name: str, doc: Optional[dict]) -> None:
        if doc is None:
            self.db.sql(f"DELETE FROM {self.kind} WHERE scope=? AND name=?", (self.scope, name))
            if self.codec.tags:
                self.db.set_tags(self.codec.tags, name, {})
            self.db.listing.note(self.kind, name, None, {})
            return
        tags = doc.pop("tags", {}) if self.codec.tags else {}
        self.db.listing.note(self.kind, name, doc, tags)
        self.db.sql(f"INSERT OR REPLACE INTO {self.kind} VALUES (?, ?, ?, ?)",
                    (self.scope, name, json.dumps(doc, sort_keys=True),
                     self.codec.index(self._cache[name])))
        if self.codec.tags:
            self.db.set_tags(self.codec.tags, name, tags)
