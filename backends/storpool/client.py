"""Calls through StorPool's bindings with this tool's retry rules.

The bindings' own retries are switched off: they would resend a request after a connection
reset, and a resent `sizeAdd` grows twice. Here only `transient` API errors are retried
blindly; after a connection failure a read is retried, and a change is first checked (`done`)
against freshly read state. A change whose reply timed out is never resent: the API may still
be applying it. A reply that is not the documented envelope is one line naming the API, the
call and what came back (see replies.py); connect/read timeouts and the whole retry time are
bounded (XEN2KVM_API_TIMEOUT, XEN2KVM_API_RETRY_BUDGET, XEN2KVM_API_RETRIES).
"""

from __future__ import annotations

import http.client
import os
import sys
import time
from typing import Any, Callable, Optional

from xen2kvm import interrupts
from xen2kvm.errors import BackendError, UsageError

from . import replies
from .config import Settings

MALFORMED = (ValueError, KeyError, TypeError, AttributeError, IndexError)


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = -1.0
    if value < 0:
        raise UsageError(f"{name}={raw} is not a number of seconds; unset it or give e.g. 20")
    return value


class Client:
    def __init__(self, settings: Settings, retries: Optional[int] = None,
                 sleep: Callable[[float], None] = time.sleep, timeout: Optional[float] = None):
        from storpool import spapi, spcatch

        self.spapi, self.refused_here = spapi, spcatch.InvalidArgumentError
        self.settings = settings
        self.timeout = timeout or _env_number("XEN2KVM_API_TIMEOUT", 20.0)
        self.api = spapi.Api(host=settings.host, port=settings.port, auth=settings.token,
                             timeout=self.timeout, transientRetries=0)
        self.retries = retries if retries is not None else \
            int(_env_number("XEN2KVM_API_RETRIES", 5))
        self.budget = _env_number("XEN2KVM_API_RETRY_BUDGET", 120.0)
        self.sleep = sleep
        self.delay = _env_number("XEN2KVM_API_RETRY_DELAY", 1.0)
        self.where = f"StorPool API {settings.host}:{settings.port}"

    def call(self, method: str, *args: Any, done: Optional[Callable[[], bool]] = None,
             mutating: bool = False) -> Any:
        attempt, start = 0, time.monotonic()
        call = f"{self.where} {method[:1].upper()}{method[1:]}"
        while True:
            try:
                with interrupts.call_in_flight():  # a request is never cut off half-way
                    data = getattr(self.api, method)(*args, returnRawAPIData=True)
                replies.check_data(method, data, mutating)
                return data
            except self.spapi.ApiError as exc:
                what = self._api_error(call, exc, self._given_up(attempt, start))
            except self.refused_here as exc:  # the bindings' own checks: nothing was sent
                raise BackendError("invalidParam", f"{call}: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                if self._connection_failed(call, exc, mutating, done, attempt, start):
                    return None
                what = replies.connection_failure(exc, self.timeout)
            except MALFORMED as exc:
                what = replies.describe(exc)
                if mutating and done is not None and self._safe(done):
                    return None
                outcome = "; the change may or may not have been made" if mutating else ""
                raise BackendError("badReply", f"{call}: {what}{outcome}; rerun the same "
                                   "command once the API answers properly") from None
            attempt += 1
            pause = min(self.delay * 2 ** attempt, 30.0)
            print(f"xen2kvm: {call}: {what}; retry {attempt} of {self.retries} in {pause:g} s",
                  file=sys.stderr, flush=True)
            self.sleep(pause)

    def _given_up(self, attempt: int, start: float) -> bool:
        """No retries left, or the next pause and a next attempt that waits its whole timeout
        would pass the budget: the run's API time stays within it however the API fails."""
        pause = min(self.delay * 2 ** (attempt + 1), 30.0)
        spent = time.monotonic() - start
        return attempt >= self.retries or spent + pause + self.timeout > self.budget

    def _api_error(self, call: str, exc: Any, given_up: bool) -> str:
        """A documented error: raise unless transient with retries left; else say what."""
        err = exc.json["error"]
        name, descr = str(err.get("name", f"http{exc.status}")), str(err.get("descr", exc))
        if exc.status == 401 or name == "authError":
            raise BackendError("authError", f"{self.where} refused the token "
                               "(check SP_AUTH_TOKEN)") from None
        if not err.get("transient") or given_up:
            raise BackendError(name, f"{call}: {descr}",
                               bool(err.get("transient"))) from None
        return f"{name} ({descr})"

    def _connection_failed(self, call: str, exc: Exception, mutating: bool,
                           done: Optional[Callable[[], bool]], attempt: int,
                           start: float) -> bool:
        """True when a change is found made; raises when a retry is not safe or not left."""
        what = replies.connection_failure(exc, self.timeout)
        if mutating and not isinstance(exc, ConnectionRefusedError):
            if done is not None and self._safe(done):
                return True
            if done is None or isinstance(exc, TimeoutError):
                raise BackendError("unknownOutcome", f"{call}: {what}; the API may still "
                                   "apply the change: rerun the same command to re-read the "
                                   "state") from None
        if self._given_up(attempt, start):
            tries = f" after {attempt} retries" if attempt else ""
            raise BackendError("unreachable", f"{call}: {what}{tries}; check that the API "
                               "runs and rerun the same command") from None
        return False  # a read, or a request that never reached the API: safe to resend

    def _safe(self, check: Callable[[], bool]) -> bool:
        try:
            return check()
        except (OSError, http.client.HTTPException, BackendError, *MALFORMED):
            return False

