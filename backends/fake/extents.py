"""Volume contents on disk: a store is a list of extents, each a byte range of the volume
mapped onto a range of an immutable blob. Clones, snapshots and the resync copy extents, not
bytes, so a 1 TiB volume with 2 MiB written costs a few rows however often it is copied.
Holes read as zeros; writing zeros punches a hole. A blob is either bytes or a recipe (the
sim's seeded content), which is produced when read."""

from __future__ import annotations

import functools
import hashlib
import os
import random
from dataclasses import dataclass
from typing import Iterator, Union

from .db import Db

CHUNK = 64 * 1024
PIECE = 4 * 1024 * 1024


def data_ranges(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of a sparse file's data, in pieces of at most PIECE bytes."""
    pos = 0
    while pos < size:
        try:
            pos = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: nothing but a hole up to the end
            return
        end = os.lseek(fd, pos, os.SEEK_HOLE)
        while pos < end:
            n = min(PIECE, end - pos)
            yield pos, n
            pos += n


@dataclass(frozen=True)
class Recipe:
    """`length` bytes from `skip` into random.Random(seed).randbytes(size): the sim's content,
    written without being produced."""

    seed: int
    size: int
    skip: int = 0
    length: int = -1

    def __post_init__(self) -> None:
        if self.length < 0:
            object.__setattr__(self, "length", self.size - self.skip)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, part: slice) -> Recipe:
        lo, hi, _ = part.indices(self.length)
        return Recipe(self.seed, self.size, self.skip + lo, max(hi - lo, 0))

    def __bytes__(self) -> bytes:
        return _produce(self.seed, self.size)[self.skip: self.skip + self.length]


Data = Union[bytes, bytearray, memoryview, Recipe]


@functools.lru_cache(maxsize=8)
def _produce(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


class ExtentStore:
    def __init__(self, db: Db, ident: int):
        self.db, self.id = db, ident

    @classmethod
    def new(cls, db: Db, counted: bool = True) -> ExtentStore:
        """A store; a counted one (a volume's, not a snapshot's) adds its distinct pieces
        of data to the space used, which the database's triggers keep as extents come and
        go (db.py), so the space used costs one row to read."""
        ident = db.sql("INSERT INTO stores DEFAULT VALUES").lastrowid
        if counted:
            db.sql("INSERT INTO counted VALUES (?)", (ident,))
        return cls(db, ident)

    def copy(self, counted: bool = True) -> ExtentStore:
        other = ExtentStore.new(self.db, counted)
        self.db.sql("INSERT INTO extents SELECT ?, start, end, blob, boff FROM extents "
                    "WHERE store=?", (other.id, self.id))
        return other

    def drop(self) -> None:
        self.db.sql("DELETE FROM extents WHERE store=?", (self.id,))

    def _overlapping(self, lo: int, hi: int) -> list[tuple[int, int, int, int]]:
        return self.db.sql(
            "SELECT start, end, blob, boff FROM extents WHERE store=? AND start < ? AND "
            "start >= coalesce((SELECT max(start) FROM extents WHERE store=? AND start <= ?), ?)"
            " AND end > ? ORDER BY start", (self.id, hi, self.id, lo, lo, lo)).fetchall()

    def _blob(self, blob: int, boff: int, n: int) -> bytes:
        seed, size, data = self.db.sql("SELECT seed, size, data FROM blobs WHERE id=?",
                                       (blob,)).fetchone()
        if data is None:
            return _produce(seed, size)[boff: boff + n]
        return bytes(data[boff: boff + n])

    def read(self, offset: int, length: int) -> bytes:
        out = bytearray(length)
        for start, end, blob, boff in self._overlapping(offset, offset + length):
            lo, hi = max(start, offset), min(end, offset + length)
            out[lo - offset: hi - offset] = self._blob(blob, boff + lo - start, hi - lo)
        return bytes(out)

    def discard(self, offset: int, length: int) -> None:
        """Zero a range: cut the extents that reach into it."""
        end = offset + length
        if length <= 0:
            return
        for start, stop, blob, boff in self._overlapping(offset, end):
            self.db.sql("DELETE FROM extents WHERE store=? AND start=?", (self.id, start))
            if start < offset:
                self._put(start, offset, blob, boff)
            if stop > end:
                self._put(end, stop, blob, boff + end - start)

    def _put(self, start: int, end: int, blob: int, boff: int) -> None:
        self.db.sql("INSERT INTO extents VALUES (?, ?, ?, ?, ?)",
                    (self.id, start, end, blob, boff))

    def write(self, offset: int, data: Data) -> None:
        n = len(data)
        self.discard(offset, n)
        if n == 0:
            return
        if isinstance(data, Recipe):
            blob = self.db.sql("INSERT INTO blobs (seed, size) VALUES (?, ?)",
                               (data.seed, data.size)).lastrowid
            self._put(offset, offset + n, blob, data.skip)
            return
        data = bytes(data)
        if data.count(0) == n:
            return  # zeros are a hole, as a thin volume keeps them
        blob = self.db.sql("INSERT INTO blobs (size, data) VALUES (?, ?)", (n, data)).lastrowid
        self._put(offset, offset + n, blob, 0)

    def copy_from(self, src: ExtentStore, src_off: int, dst_off: int, length: int) -> None:
        """dst[dst_off, +length) = src[src_off, +length), by extent references."""
        rows = src._overlapping(src_off, src_off + length)
        self.discard(dst_off, length)
        for start, end, blob, boff in rows:
            lo, hi = max(start, src_off), min(end, src_off + length)
            self._put(dst_off + lo - src_off, dst_off + hi - src_off, blob, boff + lo - start)

    def extents(self, offset: int, length: int) -> Iterator[tuple[int, int]]:
        """(start, end) byte ranges within [offset, offset+length) that may hold data."""
        if length <= 0:
            return
        for start, end, _, _ in self._overlapping(offset, offset + length):
            yield max(offset, start), min(offset + length, end)

    def refs(self, offset: int, length: int) -> list[tuple[int, int, int, int]]:
        """(start, end, blob, blob offset) of the range, relative to `offset`: equal refs
        mean equal bytes without reading them."""
        out = []
        for start, end, blob, boff in self._overlapping(offset, offset + length):
            lo, hi = max(start, offset), min(end, offset + length)
            out.append((lo - offset, hi - offset, blob, boff + lo - start))
        return out

    def save(self, path: str, size: int) -> None:
        """The store as a sparse file of `size` bytes (a helper program works on it)."""
        with open(path, "wb") as f:
            f.truncate(size)
            for lo, hi in self.extents(0, size):
                os.pwrite(f.fileno(), self.read(lo, hi - lo), lo)

    def load(self, path: str) -> None:
        """The store becomes the sparse file's contents."""
        self.drop()
        with open(path, "rb") as f:
            for off, n in data_ranges(f.fileno(), os.fstat(f.fileno()).st_size):
                self.write(off, os.pread(f.fileno(), n, off))

    @property
    def allocated_bytes(self) -> int:
        row = self.db.sql("SELECT coalesce(sum(end - start), 0) FROM extents WHERE store=?",
                          (self.id,)).fetchone()
        return row[0]

    def digest(self) -> list[tuple[int, str]]:
        """(64 KiB chunk index, sha256) of every chunk holding data: equal contents give equal
        digests whatever the extents' layout."""
        chunks = sorted({i for start, end in self.extents(0, 1 << 62)
                         for i in range(start // CHUNK, (end - 1) // CHUNK + 1)})
        out = []
        for idx in chunks:
            data = self.read(idx * CHUNK, CHUNK)
            if data.count(0) != CHUNK:
                out.append((idx, hashlib.sha256(data).hexdigest()))
        return out
