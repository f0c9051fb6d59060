"""Backends, looked up by name: the only door from the core to a concrete backend.

`open(config)` opens one; `command_modules()` names the command-line commands backends
contribute. Import strings stay lazy so the fake never imports the StorPool bindings or
Fabric, and no core module imports a concrete backend (tests/unit/test_structure.py)."""

from __future__ import annotations

import importlib
from types import ModuleType

from xen2kvm.backend import BackendConfig, Backends
from xen2kvm.errors import UsageError

REGISTRY = {
    "fake": "xen2kvm.backends.fake",
    "storpool": "xen2kvm.backends.storpool",
}

# commands the fake contributes to `xen2kvm` (cli.py loads them from here): `sim` has
# add_parser(sub) and dispatch(ctx, args); `demo` has run(keep), on a cluster of its own
COMMANDS = {
    "sim": "xen2kvm.backends.fake.sim",
    "demo": "xen2kvm.backends.fake.demo",
}


def load(name: str) -> ModuleType:
    if name not in REGISTRY:
        raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(sorted(REGISTRY))}")
    return importlib.import_module(REGISTRY[name])


def open(config: BackendConfig) -> Backends:  # noqa: A001 -- the registry's one verb
    """The backend `config.backend` opened on `config`'s host (remote or local)."""
    return load(config.backend).open_backends(config)


def command_module(command: str) -> ModuleType:
    return importlib.import_module(COMMANDS[command])
