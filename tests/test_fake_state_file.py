"""A planted state file cannot run code, a damaged one changes nothing, and no pickle anywhere
(issue 13). The fake's state is `cluster.db` (SQLite); a folder of the old format
(`cluster.pickle`) is refused with one line telling the user to recreate it, and nothing of the
pickle is loaded."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = "import sys; from xen2kvm.cli import main; sys.exit(main(sys.argv[1:]))"
# read-only and mutating: neither may load, change or create anything in a refused folder
COMMANDS = (["sim", "show", "--json"], ["status", "--json"],
            ["sim", "create-vm", "vnew", "--hypervisor", "kvm", "--disk", "dnew:8M"])


def _xen2kvm(state: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, "--backend", "fake", "--state",
                           str(state), *args], capture_output=True, text=True, timeout=120)


def _listing(folder: Path) -> list:
    return sorted((str(p.relative_to(folder)), p.read_bytes() if p.is_file() else None)
                  for p in folder.rglob("*"))


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"want one line on stderr, got: {err!r}"
    return lines[0]


# the old format's header: a magic, then 16 bytes the old model skipped unread
OLD_HEADER = b"x2kfake1" + b"0" * 16


def _malicious_pickle(marker: Path) -> bytes:
    """Protocol-0 opcodes, written by hand: GLOBAL posix.mkdir, MARK, UNICODE path, TUPLE,
    REDUCE, STOP. Unpickling it calls posix.mkdir(marker). With OLD_HEADER in front, the pickle
    model (main at 1eb597b) made the marker folder when any fake command ran: the payload is
    live."""
    return b"cposix\nmkdir\n(V" + str(marker).encode() + b"\ntR."


@pytest.mark.parametrize("header", [OLD_HEADER, b""], ids=["old-format", "bare"])
def test_a_planted_old_pickle_runs_no_code_and_is_refused(tmp_path, header):
    state, marker = tmp_path / "cluster", tmp_path / "PWNED"
    state.mkdir()
    (state / "cluster.pickle").write_bytes(header + _malicious_pickle(marker))
    before = _listing(state)
    for args in COMMANDS:
        run = _xen2kvm(state, *args)
        assert not marker.exists(), f"{args}: the planted pickle ran code"
        assert run.returncode != 0, (args, run.stdout)
        line = _one_line(run.stderr)
        assert "cluster.pickle" in line, line
        assert "recreate" in line or "new folder" in line, line
        assert _listing(state) == before, f"{args}: the refused folder changed"


def _damage(state: Path, how: str) -> None:
    db = state / "cluster.db"
    if how == "garbage":
        db.write_bytes(b"this is not a database\n" * 400)
    elif how == "empty":
        db.write_bytes(b"")
    else:  # a real cluster's file cut short
        assert _xen2kvm(state, *COMMANDS[2][:-2], "--disk", "d1:8M").returncode == 0
        for extra in state.glob("cluster.db-*"):  # the write-ahead log, folded in or not
            extra.unlink()
        assert db.is_file(), f"the fake's state is not in {db}: {_listing(state)}"
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 2 + 100])


@pytest.mark.parametrize("how", ["garbage", "empty", "truncated"])
def test_a_damaged_state_file_is_refused_and_nothing_changes(tmp_path, how):
    state = tmp_path / "cluster"
    state.mkdir()
    _damage(state, how)
    before = _listing(state)
    for args in COMMANDS:
        run = _xen2kvm(state, *args)
        assert run.returncode != 0, (how, args, run.stdout)
        line = _one_line(run.stderr)
        assert "cluster.db" in line, line
        assert _listing(state) == before, f"{how} {args}: the refused folder changed"


# the ways Python code deserialises objects that can run code; written so that this file's
# own patterns do not match themselves
FORBIDDEN = [re.compile(p, re.M) for p in (
    r"^\s*(import|from)\s+(c[P]ickle|[p]ickle|_pickle|shelve|dill|cloudpickle|marshal)\b",
    r"^\s*import\s+.*,\s*(c[P]ickle|[p]ickle|shelve|dill|marshal)\b",
    r"\b[c][P]ickle\b",
    r"\b(marshal)\.loads?\b",
    r"\b(shelve)\.open\b",
    r"\b(dill)\.",
    r"(__import__|import_module)\(\s*[\"'](c[P]ickle|[p]ickle|_pickle|shelve|dill|marshal)[\"']",
)]
SCANNED = ("xen2kvm", "backends", "tests", "bench", "scripts", "features", "vagrant")


def _python_files() -> list[Path]:
    files = [p for p in ROOT.glob("*.py")]
    for top in SCANNED:
        for p in (ROOT / top).rglob("*"):
            if not p.is_file() or "__pycache__" in p.parts:
                continue
            if p.suffix == ".py" or p.read_bytes()[:64].startswith(b"#!") and \
                    b"python" in p.read_bytes()[:64]:
                files.append(p)
    return sorted(files)


def test_no_pickle_anywhere_in_the_project():
    files = _python_files()
    assert ROOT / "tests" / "test_fake_state_file.py" in files and len(files) > 50
    found = [f"{p.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0).strip()}"
             for p in files for text in [p.read_text(errors="replace")]
             for pattern in FORBIDDEN for m in pattern.finditer(text)]
    assert not found, "deserialisers that can run code:\n" + "\n".join(found)
