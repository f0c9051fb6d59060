"""A fail-closed scripted Runner: it plays a script from tests/data/scripted/ and fails on any
command the script does not hold next, so a test proves the exact argv (and stdin) a host sends
and what it makes of the answers, without a real host, sshd or kernel.

A script is a JSON list of commands, in the order they must come:

    {"argv": ["sysctl", "-n", "dev.raid.speed_limit_max"], "rc": 0, "stdout": "200000\\n"}

`input` is the exact stdin expected (left out: none may be sent); `stdout` and `stderr` may be
lists of lines (each ends with a newline). An argv word "@module.NAME" stands for the constant
NAME of xen2kvm.backends.storpool.<module> (the shell scripts), so the files do not copy them;
"{root}" and the like are filled in from the keywords the test passes to `load`.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from xen2kvm.process import CommandResult, Runner

DATA = Path(__file__).parent / "data" / "scripted"
NO_INPUT = object()


class ScriptMismatch(AssertionError):
    """A command the script did not expect there: never an error the code under test handles."""


@dataclass(frozen=True)
class Expected:
    argv: tuple[str, ...]
    input: object
    rc: int
    stdout: str
    stderr: str


def _text(value: Union[str, list[str]]) -> str:
    return "".join(f"{line}\n" for line in value) if isinstance(value, list) else value


def _word(word: str, fill: dict[str, str]) -> str:
    if word.startswith("@"):
        module, name = word[1:].split(".", 1)
        return getattr(importlib.import_module(f"xen2kvm.backends.storpool.{module}"), name)
    return word.format(**fill) if fill else word


def load(name: str, **fill: str) -> list[Expected]:
    script = json.loads((DATA / name).read_text())
    return [Expected(tuple(_word(w, fill) for w in c["argv"]),
                     _text(c["input"]).format(**fill) if "input" in c else NO_INPUT,
                     int(c.get("rc", 0)), _text(c.get("stdout", "")).format(**fill),
                     _text(c.get("stderr", ""))) for c in script]


class ScriptedRunner(Runner):
    def __init__(self, script: Sequence[Expected], secrets: Sequence[str] = ()):
        super().__init__(secrets=secrets)
        self.script = list(script)
        self.sent: list[tuple[str, ...]] = []
        self.failure: Optional[ScriptMismatch] = None

    def _fail(self, text: str) -> None:
        # kept as well as raised: code that swallowed it still fails the test in done()
        self.failure = ScriptMismatch(f"command #{len(self.sent)}: {text}")
        raise self.failure

    def run(self, argv: Sequence[str], *, input: Optional[str] = None,
            timeout: Optional[float] = None, check: bool = True) -> CommandResult:
        argv = tuple(str(a) for a in argv)
        self.sent.append(argv)
        if not self.script:
            self._fail(f"not in the script: {argv}")
        want = self.script.pop(0)
        if argv != want.argv:
            self._fail(f"sent {argv}\n  the script expects {want.argv}")
        if (NO_INPUT if input is None else input) != want.input:
            self._fail(f"stdin {input!r} of {argv}, the script expects "
                       f"{None if want.input is NO_INPUT else want.input!r}")
        return self._finish(CommandResult(argv, want.rc, want.stdout, want.stderr, 0.0), check)

    def done(self) -> None:
        """Every scripted command came, and nothing else."""
        if self.failure is not None:
            raise self.failure
        assert not self.script, f"never sent: {[c.argv for c in self.script]}"
