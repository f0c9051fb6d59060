"""Calls through StorPool's bindings with this tool's retry rules.

The bindings' own retries are switched off: they would resend a request after a connection
reset, and a resent `sizeAdd` grows twice. Here only `transient` API errors are retried
blindly; after a connection failure a read is retried, and a change is first checked (`done`)
against freshly read state.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from typing import Any, Callable, Optional

from xen2kvm.errors import BackendError

from .config import Settings


class Client:
    def __init__(self, settings: Settings, retries: int = 5,
                 sleep: Callable[[float], None] = time.sleep, timeout: float = 300.0):
        from storpool import spapi

        self.spapi = spapi
        self.settings = settings
        self.api = spapi.Api(host=settings.host, port=settings.port, auth=settings.token,
                             timeout=timeout, transientRetries=0)
        self.retries = retries
        self.sleep = sleep
        self.delay = float(os.environ.get("XEN2KVM_API_RETRY_DELAY", "1"))

    def call(self, method: str, *args: Any, done: Optional[Callable[[], bool]] = None,
             mutating: bool = False) -> Any:
        attempt = 0
        while True:
            try:
                return getattr(self.api, method)(*args, returnRawAPIData=True)
            except self.spapi.ApiError as exc:
                err = exc.json.get("error", {}) if isinstance(exc.json, dict) else {}
                name, descr = err.get("name", f"http{exc.status}"), err.get("descr", str(exc))
                if exc.status == 401 or name == "authError":
                    raise BackendError("authError", "the StorPool API refused the token "
                                       "(check SP_AUTH_TOKEN)") from None
                if not err.get("transient") or attempt >= self.retries:
                    raise BackendError(name, f"{method}: {descr}",
                                       bool(err.get("transient"))) from None
            except (OSError, http.client.HTTPException) as exc:
                if attempt >= self.retries:
                    raise self._unreachable(exc) from None
                if mutating:
                    if done is not None and self._safe(done):
                        return None
                    if done is None and not isinstance(exc, ConnectionRefusedError):
                        raise BackendError("unknownOutcome", f"{method}: the connection failed "
                                           "mid-call; rerun the command to re-read the state"
                                           ) from None
            attempt += 1
            self.sleep(min(self.delay * 2 ** attempt, 30.0))

    def _safe(self, check: Callable[[], bool]) -> bool:
        try:
            return check()
        except (OSError, http.client.HTTPException, BackendError):
            return False

    def _unreachable(self, exc: Exception) -> BackendError:
        s = self.settings
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return BackendError("unreachable",
                            f"cannot reach the StorPool API at {s.host}:{s.port} ({reason})")


class SharedLists:
    """The cluster's volume and attachment lists read once for many hosts' views (fleet
    status): one consistent picture, two API calls and one parse however many hosts are
    shown. Only for reads: a run that changes anything reads its own lists again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lists: dict[tuple, Any] = {}

    def get(self, client: Client, what: str, read: Callable[[], Any]) -> Any:
        s = client.settings
        key = (s.host, s.port, s.token, what)
        with self._lock:  # the first host reads, the others wait for its answer
            if key not in self._lists:
                self._lists[key] = read()
            return self._lists[key]
