"""The API's checks on names, tags and sizes, and the error it answers with."""

from __future__ import annotations

import re
from typing import Any

NAME_RE = re.compile(r"^[A-Za-z0-9_\-.:]+$")
SNAP_NAME_RE = re.compile(r"^\*?[A-Za-z0-9_\-.:@]+$")
TAG_NAME_RE = re.compile(r"^[A-Za-z0-9_\-.:]+$")
TAG_VALUE_RE = re.compile(r"^[A-Za-z0-9_\-.:]*$")
READS = {"VolumesList", "Volume", "AttachmentsList", "VolumeGetInfo", "SnapshotsList",
         "Snapshot", "VolumeTemplatesStatus"}


class ApiFailure(Exception):
    def __init__(self, name: str, descr: str, status: int = 500, transient: bool = False):
        super().__init__(descr)
        self.name, self.descr, self.status, self.transient = name, descr, status, transient

    def envelope(self) -> dict:
        return {"error": {"name": self.name, "descr": self.descr, "transient": self.transient}}


def invalid(descr: str) -> ApiFailure:
    return ApiFailure("invalidParam", descr, 400)


def check_name(name: Any) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) >= 200 \
            or name in ("list", "status"):
        raise invalid(f"Invalid volume name {name!r}")


def check_snapshot_name(name: Any) -> None:
    if not isinstance(name, str) or not SNAP_NAME_RE.match(name) or len(name) >= 200:
        raise invalid(f"Invalid snapshot name {name!r}")


def check_size(size: Any, what: str = "size") -> None:
    if not isinstance(size, int) or size <= 0 or size % 512:
        raise invalid(f"{what} must be a positive multiple of 512")


def check_tags(name: str, tags: dict) -> None:
    for k, v in tags.items():
        if not TAG_NAME_RE.match(str(k)) or not isinstance(v, str) or \
                not TAG_VALUE_RE.match(v):
            raise invalid(f"Invalid tag {k}={v}")
    if len(name) + sum(len(k) + 1 + len(v) for k, v in tags.items()) > 200:
        raise invalid("The volume name including tags exceeds 200 bytes")


def merged_tags(old: dict, new: dict) -> dict:
    """Tags after an update: an empty value removes the tag."""
    return {k: v for k, v in {**old, **new}.items() if v}
