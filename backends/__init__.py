"""Backends, looked up by name. Import strings stay lazy so the fake never imports the StorPool
bindings or Fabric."""

from __future__ import annotations

import importlib

REGISTRY = {
    "fake": "xen2kvm.backends.fake",
    "storpool": "xen2kvm.backends.storpool",
}


def load(name: str):
    from xen2kvm.errors import UsageError

    if name not in REGISTRY:
        raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(sorted(REGISTRY))}")
    return importlib.import_module(REGISTRY[name])
