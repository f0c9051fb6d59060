"""The real StorPool backend (StorPool API + dmsetup on the KVM host).

Not delivered yet: it is the work of the issues "Real StorPool backend through the official
bindings" and "Device-mapper half of the real backend". Until then it says so in one line.
"""

from __future__ import annotations

from xen2kvm.errors import UsageError


def open_backends(state_dir, host, runner):
    raise UsageError(
        "the storpool backend is not available in this version yet; rehearse with "
        "--backend fake --state DIR"
    )
