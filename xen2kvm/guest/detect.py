"""Which distribution and release a guest root filesystem holds, from its own files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from xen2kvm.errors import PlanError


@dataclass(frozen=True)
class Guest:
    family: str  # "centos" (RHEL-like) or "debian" (Debian, Ubuntu)
    name: str
    major: int
    init: str  # "sysv", "upstart" or "systemd"
    grub: str  # "legacy" or "grub2"


def _read(root: Path, rel: str) -> str:
    path = root / rel.lstrip("/")
    return path.read_text(errors="replace") if path.is_file() else ""


def detect(root: Path) -> Guest:
    redhat = _read(root, "/etc/redhat-release") or _read(root, "/etc/centos-release")
    if redhat:
        m = re.search(r"release (\d+)", redhat)
        if not m:
            raise PlanError(f"cannot read the release from /etc/redhat-release: {redhat.strip()!r}")
        major = int(m.group(1))
        if major not in (5, 6, 7):
            raise PlanError(f"{redhat.strip()} is not supported (CentOS/RHEL 5, 6, 7 are); "
                            "write your own helper")
        init = {5: "sysv", 6: "upstart", 7: "systemd"}[major]
        return Guest("centos", redhat.split(" release")[0].strip(), major, init,
                     "grub2" if major >= 7 else "legacy")
    os_release = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', _read(root, "/etc/os-release"), re.M))
    if os_release.get("ID") in ("debian", "ubuntu") or _read(root, "/etc/debian_version"):
        ident = os_release.get("ID", "debian")
        version = os_release.get("VERSION_ID") or _read(root, "/etc/debian_version")
        m = re.match(r"(\d+)", version.strip())
        major = int(m.group(1)) if m else 0
        old_ubuntu = ident == "ubuntu" and major and major < 15
        init = "upstart" if old_ubuntu else "systemd"
        return Guest("debian", ident, major, init, "grub2")
    raise PlanError("no known distribution on this filesystem (no /etc/redhat-release, "
                    "/etc/os-release or /etc/debian_version); write your own helper")
