"""What a step does, as data: the StorPool API request it sends, the argv it runs, the bytes it
writes or compares. A step's dry-run line is rendered from these, and `--format json` prints
them; tests/storpool/test_printed_is_executed.py runs every step type and checks that what the API,
the Runner and the device received equals them.

Device paths are printed as naming.volume_path spells them (/dev/storpool/<volume>).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from typing import Any, Optional, Union

API_ROOT = "/ctrl/1.0/"


def _note(line: str, note: str) -> str:
    return f"{line}   # {note}" if note else line


@dataclass(frozen=True)
class ApiCall:
    """One request to StorPool's JSON API (`POST /ctrl/1.0/<query>` with `body`); `cli` is the
    equivalent `storpool` command, printed as a comment."""

    query: str
    body: Any = None
    cli: str = ""
    method: str = "POST"

    @property
    def path(self) -> str:
        return API_ROOT + self.query

    def render(self) -> str:
        body = "" if self.body is None else " " + json.dumps(self.body)
        return _note(f"{self.method} {self.path}{body}", self.cli)

    def data(self) -> dict:
        return {"kind": "api", "method": self.method, "path": self.path, "body": self.body}


@dataclass(frozen=True)
class Run:
    """One command through the Runner, with `stdin` fed to it (a here-document when printed)."""

    argv: tuple[str, ...]
    stdin: Optional[str] = None
    note: str = ""

    def render(self) -> str:
        line = _note(shlex.join(self.argv), self.note)
        if self.stdin is None:
            return line
        head = f"# {self.note}\n" if self.note else ""
        return f"{head}{shlex.join(self.argv)} <<'EOF'\n{self.stdin.rstrip(chr(10))}\nEOF"

    def data(self) -> dict:
        return {"kind": "run", "argv": list(self.argv), "stdin": self.stdin}


@dataclass(frozen=True)
class Write:
    """`data` written at `offset` of a device (or a file such as a sysctl)."""

    path: str
    offset: int
    payload: bytes
    note: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()

    def render(self) -> str:
        text = self.payload.decode("ascii", "replace")
        if len(text) <= 32 and text.rstrip("\n").isprintable():  # a sysctl's value
            return _note(f"write {self.path} offset {self.offset} text {text!r}", self.note)
        return _note(f"write {self.path} offset {self.offset} length {len(self.payload)} "
                     f"sha256 {self.sha256}", self.note)

    def data(self) -> dict:
        return {"kind": "write", "path": self.path, "offset": self.offset,
                "length": len(self.payload), "sha256": self.sha256}


@dataclass(frozen=True)
class Copy:
    """`length` bytes from `source` at `source_offset` written to `path` at `offset`."""

    source: str
    source_offset: int
    path: str
    offset: int
    length: int
    note: str = ""

    def render(self) -> str:
        return _note(f"copy {self.source} offset {self.source_offset} length {self.length} "
                     f"to {self.path} offset {self.offset}", self.note)

    def data(self) -> dict:
        return {"kind": "copy", "source": self.source, "source_offset": self.source_offset,
                "path": self.path, "offset": self.offset, "length": self.length}


@dataclass(frozen=True)
class Compare:
    """Bytes [offset_a, +length) of `a` must equal bytes [offset_b, +length) of `b`."""

    a: str
    offset_a: int
    b: str
    offset_b: int
    length: int
    note: str = ""

    def render(self) -> str:
        return _note(f"compare {self.a} offset {self.offset_a} with {self.b} offset "
                     f"{self.offset_b} length {self.length}", self.note)

    def data(self) -> dict:
        return {"kind": "compare", "a": self.a, "offset_a": self.offset_a, "b": self.b,
                "offset_b": self.offset_b, "length": self.length}


@dataclass(frozen=True)
class Read:
    """A look at `length` bytes of a device at `offset`; `note` says what must be there."""

    path: str
    offset: int
    length: int
    note: str = ""

    def render(self) -> str:
        return _note(f"read {self.path} offset {self.offset} length {self.length}", self.note)

    def data(self) -> dict:
        return {"kind": "read", "path": self.path, "offset": self.offset, "length": self.length}


@dataclass(frozen=True)
class Remove:
    """A small file of the tool's on the host goes (removing one already gone is success)."""

    path: str
    note: str = ""

    def render(self) -> str:
        return _note(f"rm -f {shlex.quote(self.path)}", self.note)

    def data(self) -> dict:
        return {"kind": "remove", "path": self.path}


Action = Union[ApiCall, Run, Write, Copy, Compare, Read, Remove]
