"""The operator's helper (`-p PROGRAM`): run on the block device of a volume, its output shown
line by line with a `[name] ` prefix, its failure the end of the step with its last word.
A host runs it through its Runner, so it runs where the device is."""

from __future__ import annotations

import os
from typing import Callable, Sequence

from .errors import HelperFailed
from .process import Runner

TIMEOUT = 3600.0


def show(line: str) -> None:
    print(line, flush=True)


def run(runner: Runner, argv: Sequence[str], path: str,
        sink: Callable[[str], None] = show) -> None:
    prefix = f"[{os.path.basename(argv[0])}] "
    res = runner.stream([*argv, path], lambda line: sink(prefix + line), timeout=TIMEOUT)
    if res.rc != 0:
        raise HelperFailed(f"helper {argv[0]} exited {res.rc}: "
                           f"{runner.redact(res.last_line('no error output'))}; "
                           "fix it and rerun the same command")
