"""StorPool configuration: /etc/storpool.conf, /etc/storpool.conf.d/*.conf, the section named
after the host, and the SP_API_HTTP_HOST / SP_API_HTTP_PORT / SP_AUTH_TOKEN environment
overrides, read by StorPool's own `storpool.spconfig`. `XEN2KVM_STORPOOL_CONF` points at
another file (its `.d` folder beside it), e.g. to rehearse against the API emulator."""

from __future__ import annotations

import os
import platform
import threading
from dataclasses import dataclass
from typing import Optional

from xen2kvm.errors import UsageError

_PARSE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    token: str
    our_id: Optional[int]
    hostname: str


def load(hostname: Optional[str] = None) -> Settings:
    try:
        from storpool import spconfig
    except ImportError:
        raise UsageError("the storpool backend needs the StorPool bindings: "
                         "pip install 'xen2kvm[storpool]'") from None
    hostname = hostname or platform.node()
    path = os.environ.get("XEN2KVM_STORPOOL_CONF")

    class Config(spconfig.SPConfig):
        PATH_CONFIG = path or spconfig.SPConfig.PATH_CONFIG
        PATH_CONFIG_DIR = (path + ".d") if path else spconfig.SPConfig.PATH_CONFIG_DIR

    if not os.path.isfile(Config.PATH_CONFIG):
        raise UsageError(f"StorPool configuration {Config.PATH_CONFIG} is missing; install it "
                         "or point XEN2KVM_STORPOOL_CONF at one")
    try:
        with _PARSE_LOCK:  # confget's parser keeps global state: one parse at a time
            cfg = Config(section=hostname)
    except (spconfig.SPConfigException, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot read the StorPool configuration: {reason}") from None
    token = cfg.get("SP_AUTH_TOKEN", "")
    if not token:
        raise UsageError(f"SP_AUTH_TOKEN is not set in {Config.PATH_CONFIG} or the environment")
    try:
        port = int(cfg.get("SP_API_HTTP_PORT", "81"))
        our_id = int(cfg["SP_OURID"]) if cfg.get("SP_OURID") else None
    except ValueError as exc:
        raise UsageError(f"bad number in the StorPool configuration: {exc}") from None
    return Settings(cfg.get("SP_API_HTTP_HOST", "127.0.0.1"), port, token, our_id, hostname)
