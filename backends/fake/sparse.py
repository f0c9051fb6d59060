"""Sparse volume contents: only written 64 KiB chunks cost memory, so a 2 TiB volume with
1 MiB written holds 1 MiB. All-zero chunks are dropped, which keeps copies of holes free."""

from __future__ import annotations

from typing import Iterator

CHUNK = 64 * 1024
_ZERO = bytes(CHUNK)


class SparseStore:
    def __init__(self) -> None:
        self.chunks: dict[int, bytes] = {}

    def copy(self) -> SparseStore:
        other = SparseStore()
        other.chunks = dict(self.chunks)  # bytes are immutable: sharing them is copy-on-write
        return other

    def read(self, offset: int, length: int) -> bytes:
        out = bytearray(length)
        pos = offset
        end = offset + length
        while pos < end:
            idx, within = divmod(pos, CHUNK)
            take = min(CHUNK - within, end - pos)
            chunk = self.chunks.get(idx)
            if chunk is not None:
                out[pos - offset: pos - offset + take] = chunk[within: within + take]
            pos += take
        return bytes(out)

    def write(self, offset: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            idx, within = divmod(offset + pos, CHUNK)
            take = min(CHUNK - within, len(data) - pos)
            if take == CHUNK:
                new = bytes(data[pos: pos + take])
            else:
                buf = bytearray(self.chunks.get(idx, _ZERO))
                buf[within: within + take] = data[pos: pos + take]
                new = bytes(buf)
            if new == _ZERO:
                self.chunks.pop(idx, None)
            else:
                self.chunks[idx] = new
            pos += take

    def discard(self, offset: int, length: int) -> None:
        """Zero a range without allocating."""
        end = offset + length
        first, last = offset // CHUNK, (end - 1) // CHUNK
        if length <= 0:
            return
        if last - first > len(self.chunks):
            victims = [i for i in self.chunks if first <= i <= last]
        else:
            victims = [i for i in range(first, last + 1) if i in self.chunks]
        for idx in victims:
            lo, hi = max(offset, idx * CHUNK), min(end, (idx + 1) * CHUNK)
            if lo == idx * CHUNK and hi == (idx + 1) * CHUNK:
                del self.chunks[idx]
            else:
                self.write(lo, bytes(hi - lo))

    def extents(self, offset: int, length: int) -> Iterator[tuple[int, int]]:
        """(start, end) byte ranges within [offset, offset+length) that may hold data."""
        end = offset + length
        first, last = offset // CHUNK, (end - 1) // CHUNK
        if length <= 0:
            return
        if last - first > len(self.chunks):
            idxs = sorted(i for i in self.chunks if first <= i <= last)
        else:
            idxs = [i for i in range(first, last + 1) if i in self.chunks]
        for idx in idxs:
            yield max(offset, idx * CHUNK), min(end, (idx + 1) * CHUNK)

    @property
    def allocated_bytes(self) -> int:
        return len(self.chunks) * CHUNK
