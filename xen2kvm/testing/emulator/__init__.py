"""The StorPool API emulator (see core)."""

from .core import DEFAULT_CAPACITY, ApiFailure, Emulator, serve

__all__ = ["DEFAULT_CAPACITY", "ApiFailure", "Emulator", "serve"]
