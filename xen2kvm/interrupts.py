"""Ctrl-C between external calls, never inside one.

An API request or a command (dmsetup, sfdisk, the helper) cut off half-way leaves an unknown
outcome; one that finishes leaves a state the next run reads back. So while a call is in
flight a SIGINT is only noted, and raised as KeyboardInterrupt when the call returns. The
commands themselves run in their own session (process.py) so that the terminal's SIGINT does
not reach them either. A step that makes several calls may stop between them: every step is
derived again from the re-read state on the rerun, so the same command finishes it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

_state = {"depth": 0, "pending": False}
_lock = threading.Lock()


def _on_sigint(signum: int, frame: Any) -> None:
    with _lock:
        if _state["depth"]:
            _state["pending"] = True
            return
    raise KeyboardInterrupt


def install() -> None:
    """From the command line's main thread: Ctrl-C waits for the call in flight."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)


@contextlib.contextmanager
def call_in_flight() -> Iterator[None]:
    with _lock:
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            fire = _state["pending"] and not _state["depth"] and \
                threading.current_thread() is threading.main_thread()
            if fire:
                _state["pending"] = False
        if fire:
            raise KeyboardInterrupt
