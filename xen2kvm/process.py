"""The one way external commands run: argument lists, a timeout, LC_ALL=C, a log line each,
and a small flight recorder that is dumped when something fails."""

from __future__ import annotations

import collections
import logging
import os
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable, Deque, Optional, Sequence

from . import interrupts
from .errors import CommandFailed

log = logging.getLogger("xen2kvm.run")


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str
    seconds: float

    def last_line(self, default: str) -> str:
        """The last line of stderr: what a failing tool says last is why it failed."""
        return (self.stderr.strip().splitlines() or [default])[-1]


SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET", "PASSWD")


def clean_environment(secrets: Sequence[str] = ()) -> dict[str, str]:
    """The environment for commands (the operator's helper among them): nothing named like a secret
    (SP_AUTH_TOKEN above all) or holding a known one: a helper is any program the operator
    names, and it has no business with the cluster's credentials."""
    return {k: v for k, v in os.environ.items()
            if not any(word in k.upper() for word in SECRET_WORDS)
            and not any(secret in v for secret in secrets)}


class Runner:
    """Runs argv lists locally. Subclasses (SSH) keep the same signature and result type."""

    def __init__(self, default_timeout: float = 600.0, secrets: Sequence[str] = ()):
        self.default_timeout = default_timeout
        self.secrets = [s for s in secrets if s]
        self.recorder: Deque[CommandResult] = collections.deque(maxlen=32)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def run(
        self,
        argv: Sequence[str],
        *,
        input: Optional[str] = None,
        timeout: Optional[float] = None,
        check: bool = True,
    ) -> CommandResult:
        argv = tuple(str(a) for a in argv)
        log.info("Running: %s", self.redact(shlex.join(argv)))
        env = dict(clean_environment(self.secrets), LC_ALL="C")
        start = time.monotonic()
        try:
            with interrupts.call_in_flight():  # Ctrl-C waits for the command: see interrupts
                proc = subprocess.run(
                    list(argv),
                    input=input,
                    capture_output=True,
                    text=True,
                    timeout=timeout or self.default_timeout,
                    env=env,
                    start_new_session=True,
                )
            result = CommandResult(argv, proc.returncode, proc.stdout, proc.stderr,
                                   time.monotonic() - start)
        except FileNotFoundError:
            result = CommandResult(argv, 127, "", f"{argv[0]}: command not found", 0.0)
        except subprocess.TimeoutExpired:
            result = CommandResult(argv, 124, "", f"timed out after {timeout}s",
                                   time.monotonic() - start)
        return self._finish(result, check)

    def _finish(self, result: CommandResult, check: bool) -> CommandResult:
        """Record, log, and raise on failure: the same for every kind of Runner."""
        self.recorder.append(result)
        if result.rc != 0:
            log.warning("exit %d: %s", result.rc, self.redact(result.stderr.strip()))
            if check:
                self.dump()
                raise CommandFailed(result.argv, result.rc, self.redact(result.stderr))
        return result

    def stream(self, argv: Sequence[str], emit: Callable[[str], None],
               timeout: float = 3600.0) -> CommandResult:
        """Run argv (never raising on its exit code), handing each line of its stdout and
        stderr to `emit`, redacted. Here, as the lines come; a Runner that runs commands
        elsewhere (a subclass with its own run(): SSH) hands them over when it has ended."""
        if type(self).run is not Runner.run:
            res = self.run(argv, check=False, timeout=timeout)
            for line in (res.stdout + res.stderr).splitlines():
                emit(self.redact(line))
            return res
        return self._stream_here(tuple(str(a) for a in argv), emit, timeout)

    def _stream_here(self, argv: tuple[str, ...], emit: Callable[[str], None],
                     timeout: float) -> CommandResult:
        log.info("Running: %s", self.redact(shlex.join(argv)))
        start, kept, lock = time.monotonic(), {1: [], 2: []}, threading.Lock()
        try:
            proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True,
                                    env=dict(clean_environment(self.secrets), LC_ALL="C"),
                                    start_new_session=True)
        except FileNotFoundError:
            return self._finish(CommandResult(argv, 127, "", f"{argv[0]}: command not found",
                                              0.0), False)

        def pump(pipe, fd: int) -> None:
            for line in pipe:
                kept[fd].append(line)
                with lock:  # one whole line at a time from either pipe
                    emit(self.redact(line.rstrip("\n")))

        pumps = [threading.Thread(target=pump, args=(p, fd), daemon=True)
                 for p, fd in ((proc.stdout, 1), (proc.stderr, 2))]
        for t in pumps:
            t.start()
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = 124
            kept[2].append(f"timed out after {timeout}s\n")
        for t in pumps:  # a child the helper left behind may hold its pipes open
            t.join(5.0)
        return self._finish(CommandResult(argv, rc, "".join(kept[1]), "".join(kept[2]),
                                          time.monotonic() - start), False)

    def dump(self) -> None:
        for r in self.recorder:
            log.debug("recorded: %s -> %d", self.redact(shlex.join(r.argv)), r.rc)
