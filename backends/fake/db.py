"""The fake cluster's database: one SQLite file (WAL) in the state folder, a table per kind of
object, and an identity map so that the model's code works on plain objects.

A row is loaded the first time a transaction touches it and written back at commit only when
its encoding changed, so a command costs what it touches. Rows hold JSON and numbers, never
code: a planted state file can at worst be refused as unreadable.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from typing import Optional

from xen2kvm.errors import BackendError

from . import listing
from .rows import Codec, Table

DB_FILE = "cluster.db"
BUSY_SECONDS = 600  # a writer waits this long for another process's call to finish
SCHEMA_VERSION = 2
SCOPED = ("dm",)
TABLES = ("volumes", "snapshots", "attachments", "hosts", "dm", "vms", "meta")

SCHEMA = """
CREATE TABLE IF NOT EXISTS volumes (scope TEXT, name TEXT, doc TEXT, store INTEGER,
                                    PRIMARY KEY (scope, name));
CREATE TABLE IF NOT EXISTS snapshots (scope TEXT, name TEXT, doc TEXT, store INTEGER,
                                      PRIMARY KEY (scope, name));
CREATE TABLE IF NOT EXISTS tags (kind TEXT, owner TEXT, key TEXT, value TEXT,
                                 PRIMARY KEY (kind, owner, key));
CREATE TABLE IF NOT EXISTS attachments (scope TEXT, name TEXT, doc TEXT, store INTEGER,
                                        PRIMARY KEY (scope, name));
CREATE TABLE IF NOT EXISTS hosts (scope TEXT, name TEXT, doc TEXT, store INTEGER,
                                  PRIMARY KEY (scope, name));
CREATE TABLE IF NOT EXISTS dm (scope TEXT, name TEXT, doc TEXT, store INTEGER,
                               PRIMARY KEY (scope, name));
CREATE TABLE IF NOT EXISTS vms (scope TEXT, name TEXT, doc TEXT, store INTEGER,
                                PRIMARY KEY (scope, name));
CREATE INDEX IF NOT EXISTS vms_open ON vms (store);
CREATE TABLE IF NOT EXISTS meta (scope TEXT, name TEXT, doc TEXT, store INTEGER,
                                 PRIMARY KEY (scope, name));
CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, seed INTEGER, size INTEGER,
                                  data BLOB);
CREATE TABLE IF NOT EXISTS extents (store INTEGER, start INTEGER, end INTEGER,
                                    blob INTEGER, boff INTEGER, PRIMARY KEY (store, start));
CREATE TABLE IF NOT EXISTS stores (id INTEGER PRIMARY KEY AUTOINCREMENT);
CREATE TABLE IF NOT EXISTS counted (store INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS usage (blob INTEGER, boff INTEGER, n INTEGER, refs INTEGER,
                                  PRIMARY KEY (blob, boff, n));
CREATE TABLE IF NOT EXISTS used (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER);
INSERT OR IGNORE INTO used VALUES (0, 0);
CREATE TRIGGER IF NOT EXISTS extent_in AFTER INSERT ON extents
WHEN NEW.store IN (SELECT store FROM counted) BEGIN
  INSERT OR IGNORE INTO usage VALUES (NEW.blob, NEW.boff, NEW.end - NEW.start, 0);
  UPDATE used SET bytes = bytes + NEW.end - NEW.start WHERE (SELECT refs FROM usage WHERE
    blob = NEW.blob AND boff = NEW.boff AND n = NEW.end - NEW.start) = 0;
  UPDATE usage SET refs = refs + 1 WHERE blob = NEW.blob AND boff = NEW.boff
    AND n = NEW.end - NEW.start;
END;
CREATE TRIGGER IF NOT EXISTS extent_out AFTER DELETE ON extents
WHEN OLD.store IN (SELECT store FROM counted) BEGIN
  UPDATE usage SET refs = refs - 1 WHERE blob = OLD.blob AND boff = OLD.boff
    AND n = OLD.end - OLD.start;
  UPDATE used SET bytes = bytes - (OLD.end - OLD.start) WHERE (SELECT refs FROM usage WHERE
    blob = OLD.blob AND boff = OLD.boff AND n = OLD.end - OLD.start) = 0;
  DELETE FROM usage WHERE blob = OLD.blob AND boff = OLD.boff AND n = OLD.end - OLD.start
    AND refs = 0;
END;
CREATE TABLE IF NOT EXISTS serial (id INTEGER PRIMARY KEY CHECK (id = 0), n INTEGER);
INSERT OR IGNORE INTO serial VALUES (0, 0);
CREATE INDEX IF NOT EXISTS extents_blob ON extents (blob);
CREATE TABLE IF NOT EXISTS loose (blob INTEGER PRIMARY KEY);
CREATE TRIGGER IF NOT EXISTS extent_loose AFTER DELETE ON extents BEGIN
  INSERT OR IGNORE INTO loose VALUES (OLD.blob);
END;
INSERT OR IGNORE INTO loose SELECT id FROM blobs
  WHERE NOT EXISTS (SELECT 1 FROM extents WHERE blob = blobs.id);
"""


MAGIC = b"SQLite format 3\0"


def _damage(path: str) -> Optional[str]:
    """Why an existing state file cannot be a database, checked before SQLite opens (and
    might write to) it."""
    try:
        with open(path, "rb") as f:
            head = f.read(100)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror
    if size == 0:
        return "empty"
    page = int.from_bytes(head[16:18], "big") if len(head) == 100 else 0
    page = 65536 if page == 1 else page
    if head[:16] != MAGIC or not page or size % page:
        return "truncated or damaged"
    return None


class Db:
    def __init__(self, path: str):
        self.path = path
        why = None if path == ":memory:" else _damage(path)
        if why:
            raise BackendError("stateUnreadable", f"the fake cluster's state file {path} is "
                               f"unreadable ({why}); restore it from a copy, or give --state "
                               "a new folder; nothing was changed")
        try:
            self.conn: Optional[sqlite3.Connection] = self._connect()
            # the schema is created once (a command opens the file again, and the script is
            # a write of its own)
            if self.conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                self.conn.executescript(SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION};")
        except sqlite3.DatabaseError as exc:
            raise BackendError("stateUnreadable", f"the fake cluster's state file {path} is "
                               f"unreadable (truncated or damaged: {exc}); restore it from a "
                               "copy, or give --state a new folder; nothing was changed") from None
        self.tables: dict[tuple[str, str], Table] = {}
        self.in_txn = self.wrote = False
        self.lockfd: Optional[int] = None
        self.listing = listing.for_file(os.path.realpath(path) if path != ":memory:" else path)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_SECONDS)
        conn.execute("PRAGMA journal_mode=WAL")
        # a call is durable when it returns against a killed process (its commit is in the
        # kernel's page cache), which is what the model promises; flushing to the disk as
        # well, against a crash of the machine, cost a command 1.4 ms at every close
        conn.execute("PRAGMA synchronous=OFF")
        return conn

    def _queue(self, op: int) -> None:
        """Processes wait for a call of their own in the kernel's queue of a lock on the
        file: SQLite's own wait polls with growing sleeps, and a process making call after
        call would keep the others out, which a real cluster's API does not."""
        if self.path == ":memory:":
            return
        if self.lockfd is None:
            self.lockfd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        fcntl.flock(self.lockfd, op)

    def park(self) -> None:
        """Close the file now (SQLite folds its write-ahead log in and removes it), not
        whenever the garbage collector gets to it: the folder is left as it will stay. The
        next call opens it again."""
        if self.conn is not None and self.path != ":memory:" and not self.in_txn:
            self.conn.close()
            self.conn = None
            if self.lockfd is not None:
                os.close(self.lockfd)
                self.lockfd = None

    def sql(self, query: str, args: tuple = ()) -> sqlite3.Cursor:
        if query.startswith(("INSERT", "DELETE", "UPDATE")):
            self.wrote = True
        if self.conn is None:
            self.conn = self._connect()
        try:
            return self.conn.execute(query, args)
        except sqlite3.OperationalError as exc:
            raise BackendError("stateUnwritable", f"the fake cluster's state {self.path}: "
                               f"{exc}; make the folder writable") from None

    def table(self, kind: str, codec: Codec, scope: str = "") -> Table:
        key = (kind, scope)
        if key not in self.tables:
            self.tables[key] = Table(self, kind, codec, scope)
        return self.tables[key]

    def tags(self, kind: str, owner: str) -> dict[str, str]:
        rows = self.sql("SELECT key, value FROM tags WHERE kind=? AND owner=?", (kind, owner))
        return dict(rows.fetchall())

    def all_tags(self, kind: str) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for owner, key, value in self.sql("SELECT owner, key, value FROM tags WHERE kind=?",
                                          (kind,)):
            out.setdefault(owner, {})[key] = value
        return out

    def set_tags(self, kind: str, owner: str, tags: dict[str, str]) -> None:
        if self.tags(kind, owner) == tags:
            return
        self.sql("DELETE FROM tags WHERE kind=? AND owner=?", (kind, owner))
        self.wrote = True
        self.conn.executemany("INSERT INTO tags VALUES (?, ?, ?, ?)",
                              [(kind, owner, k, v) for k, v in tags.items()])

    def flush(self) -> None:
        for table in list(self.tables.values()):
            table.flush()

    def begin(self) -> None:
        """Start a call: the write lock of the database is taken now, so the call sees every
        other process's last commit; then keep what was changed outside a call (tests edit
        the model directly) and forget the rows read before."""
        self._queue(fcntl.LOCK_EX)
        try:
            self.sql("BEGIN IMMEDIATE")
        except BaseException:
            self._queue(fcntl.LOCK_UN)
            raise
        self.in_txn, self.wrote = True, False
        serial = self.sql("SELECT n FROM serial").fetchone()[0]
        if serial != self.listing.serial:
            self.listing.reset(serial)  # another process wrote: read the listing anew
        self.flush()
        self._forget()

    def touched(self) -> bool:
        """Rows were read outside a call (and may have been changed there)."""
        return any(table._cache or table._loaded for table in self.tables.values())

    def _forget(self) -> None:
        for table in self.tables.values():
            table.clear_cache()

    def commit(self) -> None:
        """End a call: its changed rows are written, and every row it read is forgotten
        (the next call reads afresh; only rows read outside a call are left to compare)."""
        try:
            self.flush()
        finally:
            self._forget()
            if self.wrote:  # every writing call tells the other processes' listings
                self._collect()
                self.sql("UPDATE serial SET n = n + 1")
                self.listing.serial = self.sql("SELECT n FROM serial").fetchone()[0]
            self.in_txn = False
            try:
                self.sql("COMMIT")
            finally:
                self._queue(fcntl.LOCK_UN)

    def _collect(self) -> None:
        """Delete the blobs this call left without an extent. It is done at commit, not by a
        trigger on the delete, because a split deletes an extent before it puts its pieces back.
        The newest blob waits in `loose` for a newer one: SQLite would give its id to the
        next blob, and an id is what says two extents hold the same bytes
        (FakeHost.first_difference)."""
        if self.sql("SELECT 1 FROM loose LIMIT 1").fetchone():
            newest = self.sql("SELECT max(id) FROM blobs").fetchone()[0]
            self.sql("DELETE FROM blobs WHERE id IN (SELECT blob FROM loose) AND id < ? AND "
                     "NOT EXISTS (SELECT 1 FROM extents WHERE blob = blobs.id)", (newest,))
            self.sql("DELETE FROM loose WHERE blob < ?", (newest,))

    def rollback(self) -> None:
        self.in_txn = False
        self._forget()
        self.listing.reset()
        try:
            self.sql("ROLLBACK")
        finally:
            self._queue(fcntl.LOCK_UN)

    def adopt(self, other: Db) -> None:
        """Become `other` (a new file), taking this one's rows along: a new cluster's first
        change. Another process may have created the same cluster meanwhile: refuse then
        rather than overwrite it."""
        other.sql("BEGIN IMMEDIATE")
        try:
            if any(other.sql(f"SELECT 1 FROM {t} LIMIT 1").fetchone()
                   for t in TABLES if t != "hosts"):
                raise BackendError("stateConflict", f"another process created a fake cluster "
                                   f"in {other.path} meanwhile; rerun the command on it")
            other.sql("COMMIT")
        except BaseException:
            other.sql("ROLLBACK")
            raise
        self.conn.backup(other.conn)
        self.conn.close()
        self.conn, self.path, self.listing = other.conn, other.path, other.listing
        self.listing.reset()

