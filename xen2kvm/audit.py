"""The audit trail: every run that changes something appends one JSON line — when, who, on
which host, the command line, each step with its result, the helper's output, warnings and
the outcome — to `/var/log/xen2kvm/audit.jsonl` (XEN2KVM_AUDIT_LOG moves it; the fake keeps
its log in its state folder). Like LVM's /etc/lvm/archive it is for people reading back what
happened. Every line passes the Runner's redaction: secrets are never written.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import platform
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

from .errors import PlanError

if TYPE_CHECKING:
    from .backend import Backends

ENV = "XEN2KVM_AUDIT_LOG"
DEFAULT_PATH = "/var/log/xen2kvm/audit.jsonl"
_WORDS = re.compile(r"[^A-Za-z0-9_.:-]+")


def path_for(backends: Backends) -> Path:
    own = backends.audit_path  # the fake: inside its state folder
    return Path(own or os.environ.get(ENV) or DEFAULT_PATH)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _user() -> str:
    user = getpass.getuser()
    sudo = os.environ.get("SUDO_USER")
    return f"{sudo} (as {user})" if sudo and sudo != user else user


class Audit:
    """What one run did; written by `finish` only when the run attempted a change."""

    def __init__(self, path: Path, prog: str, argv: Sequence[str], host: str,
                 redact: Callable[[str], str]):
        self.path, self.redact = path, redact
        self.ready = False
        self.record: dict[str, Any] = {
            "time": _now(), "user": _user(), "host": host, "controller": platform.node(),
            "argv": [prog, *argv], "steps": [], "output": [], "warnings": []}

    def begin(self) -> None:
        """Before the first change: a run that could not leave its record is refused."""
        if self.ready:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a"):
                pass
        except OSError as exc:
            raise PlanError(f"cannot write the audit log {self.path} ({exc.strerror}); run as "
                            f"root or set {ENV} to a writable file") from None
        self.ready = True

    def step(self, rendered: str, error: Optional[BaseException] = None) -> None:
        entry: dict[str, Any] = {"step": rendered, "ok": error is None}
        if error is not None:
            entry["error"] = str(error)
        self.record["steps"].append(entry)

    def output(self, line: str) -> None:
        self.record["output"].append(line)

    def warning(self, text: str) -> None:
        self.record["warnings"].append(text)

    def finish(self, rc: int, error: Optional[BaseException] = None) -> None:
        if not self.record["steps"] or not self.ready:
            return
        self.record.update(end=_now(), exit=rc,
                           outcome="ok" if rc == 0 and error is None else "failed")
        if error is not None:
            self.record["error"] = str(error)
        line = self.redact(json.dumps(self.record, sort_keys=True)) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # whole lines, whoever else is appending
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        self.record["steps"] = []


def records(path: Path, subject: Optional[str] = None) -> Iterator[tuple[str, dict]]:
    """(raw line, parsed) of every record, or of those naming `subject` (a VM or a disk)."""
    if not path.exists():
        return
    for raw in path.read_text().splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            continue  # a line cut short by a full disk: skip it, keep the rest readable
        text = " ".join([*rec.get("argv", []), *(s["step"] for s in rec.get("steps", []))])
        if subject is None or subject in _WORDS.split(text):
            yield raw, rec


def show(rec: dict) -> list[str]:
    """A record as an operator reads it: one header line, then each step and output line."""
    argv = " ".join(rec.get("argv", []))
    head = (f"{rec.get('time')} {rec.get('user')}@{rec.get('host')} {argv} -> "
            f"{rec.get('outcome')} (exit {rec.get('exit')})")
    lines = [head]
    for s in rec.get("steps", []):
        first = s["step"].splitlines()[0] if s["step"] else ""
        lines.append(f"  {'ok ' if s['ok'] else 'ERR'} {first}"
                     + ("" if s["ok"] else f"  ! {s.get('error')}"))
    lines += [f"  | {line}" for line in rec.get("output", [])]
    lines += [f"  warning: {w}" for w in rec.get("warnings", [])]
    if rec.get("error"):
        lines.append(f"  error: {rec['error']}")
    return lines


def history(ctx: Any, subject: Optional[str], as_json: bool) -> int:
    """`xen2kvm history [VM|DISK] [--json]`: what changed, oldest first."""
    path = path_for(ctx.backends)
    found = list(records(path, subject))
    if as_json:
        for raw, _ in found:
            ctx.say(raw)
        return 0
    if not found:
        ctx.say(f"no changing run{' for ' + subject if subject else ''} is recorded in {path}")
    for _, rec in found:
        for line in show(rec):
            ctx.say(line)
    return 0
