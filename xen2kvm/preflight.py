"""What a command can check before its first change, checked first.

Without these a run made its clone, metadata and grow and only then found that the host has
no StorPool client id, that the device root is missing (a 30 s wait, a volume left attached)
or that the helper does not exist (exit 127). Each check runs where the steps run (locally or
over SSH, through the host's Runner) and refuses with the cause and the fix (exit 3), in a
dry-run as with -y: a dry-run shows what -y would do, and -y would refuse.
"""

from __future__ import annotations

from typing import Sequence

from .errors import BackendError, PlanError

# a bare name is looked up on PATH; a path must be a regular executable file
HELPER_CHECK = ('case "$1" in */*) test -f "$1" && test -x "$1";; '
                '*) command -v -- "$1" >/dev/null;; esac')


def _client_id(ctx) -> None:
    client_id = getattr(ctx.storage, "client_id", None)
    if client_id is None:  # the fake names hosts, it has no client ids
        return
    try:
        client_id(ctx.host.name)
    except BackendError as exc:
        raise PlanError(f"{exc.descr} (needed to attach volumes on {ctx.host.name}); nothing "
                        "was changed") from None


def _dev_root(ctx) -> None:
    root = getattr(ctx.host, "dev_root", None)
    if root is None:
        return
    if ctx.host.runner.run(["test", "-d", str(root)], check=False).rc != 0:
        raise PlanError(f"device root {root} does not exist on {ctx.host.name}, so attached "
                        "volumes cannot appear; fix XEN2KVM_DEV_ROOT (default /dev)")


def _helper(ctx, program: str) -> None:
    found = ctx.host.runner.run(["sh", "-c", HELPER_CHECK, "sh", program], check=False)
    if found.rc != 0:
        raise PlanError(f"helper {program} does not exist or is not executable on "
                        f"{ctx.host.name}; install it (chmod +x) or fix the -p/--helper path")


def check(ctx, *, attaches: bool = True, helper: Sequence[str] = ()) -> None:
    """Refuse now what would otherwise fail after the first change."""
    if attaches:
        _client_id(ctx)
        _dev_root(ctx)
    if helper:
        _helper(ctx, helper[0])
