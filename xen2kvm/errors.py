"""Every error the tool raises, in one place.

The command line turns any `Xen2KvmError` into one line on stderr and the class's exit code;
`XEN2KVM_DEBUG=1` re-raises instead, for a traceback.
"""

from __future__ import annotations

from typing import Optional, Sequence


class Xen2KvmError(Exception):
    """Base class: a problem the operator can act on."""

    exit_code = 1


class UsageError(Xen2KvmError):
    """The command line itself is wrong."""

    exit_code = 2


class PlanError(Xen2KvmError):
    """A precondition failed; raised before anything was changed."""

    exit_code = 3


class NotFound(PlanError):
    pass


class BackendError(Xen2KvmError):
    """The storage or host refused or failed a call."""

    exit_code = 4

    def __init__(self, name: str, descr: str, transient: bool = False):
        super().__init__(f"{name}: {descr}")
        self.name = name
        self.descr = descr
        self.transient = transient


class InjectedFault(BackendError):
    """A fault the fake was told to inject (a simulated crash)."""

    def __init__(self, call: str, k: int):
        super().__init__("injectedFault", f"simulated failure of mutating call #{k} ({call})")
        self.k = k


class DeviceError(BackendError):
    """A device-mapper or block-device operation failed."""


class CommandFailed(Xen2KvmError):
    """An external command exited non-zero."""

    exit_code = 4

    def __init__(self, argv: Sequence[str], rc: int, stderr: str):
        tail = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        super().__init__(f"command {' '.join(argv[:2])} failed (exit {rc}): {tail}")
        self.argv = list(argv)
        self.rc = rc
        self.stderr = stderr


class HelperFailed(Xen2KvmError):
    exit_code = 4


class LegFailed(Xen2KvmError):
    """A raid1 leg is dead: never retag, tell the operator how to recover."""

    exit_code = 6


class VerifyMismatch(Xen2KvmError):
    exit_code = 5

    def __init__(self, message: str, offset: Optional[int] = None):
        super().__init__(message)
        self.offset = offset


class LockBusy(PlanError):
    pass


class Unreachable(BackendError):
    """An SSH host could not be reached or logged into."""

    def __init__(self, host: str, reason: str):
        super().__init__("unreachable", f"host {host}: {reason}")
        self.host = host


class HostKeyRefused(PlanError):
    """The SSH host key is unknown or changed: refused unless the operator accepts it."""


class ClaimBusy(PlanError):
    """Another run (on any host) holds a claim on a volume this run would change."""
