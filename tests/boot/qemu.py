"""Boot a disk image under QEMU (TCG, SeaBIOS) from the disk alone and wait for the marker."""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .images import MARKER_PREFIX

TIMEOUT = 240.0  # seconds; a measured boot takes 20-35 s on TCG


@dataclass(frozen=True)
class Boot:
    seconds: float  # from QEMU's start to the marker line
    fields: dict  # root=, spec=, opts=, known= of the marker line
    console: str


def boot(image: Path, timeout: float = TIMEOUT) -> Boot:
    """-snapshot: the image is never written. No -kernel/-initrd: the disk's own boot code."""
    with tempfile.TemporaryDirectory(prefix="xen2kvm-qemu-") as tmp:
        log = Path(tmp) / "serial.log"
        argv = ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", "1024", "-smp", "1",
                "-display", "none", "-monitor", "none", "-no-reboot", "-snapshot",
                "-serial", f"file:{log}",
                "-drive", f"file={image},format=raw,if=virtio,cache=unsafe"]
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            line = _wait_marker(proc, log, start + timeout)
            seconds = time.monotonic() - start
            try:
                proc.wait(timeout=60)  # the guest powers itself off
            except subprocess.TimeoutExpired:
                pass
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            console = log.read_text(errors="replace") if log.exists() else ""
        if line is None:
            tail = "\n".join(console.splitlines()[-25:])
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise AssertionError(f"{image.name} did not reach the marker in {timeout:.0f} s "
                                 f"(qemu exit {proc.returncode} {err.strip()}); last console "
                                 f"lines:\n{tail}")
        fields = dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)
        return Boot(seconds, fields, console)


def _wait_marker(proc: subprocess.Popen, log: Path, deadline: float):
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        for line in text.splitlines():
            if line.startswith(MARKER_PREFIX):
                return line.strip()
        if proc.poll() is not None:
            return None
        time.sleep(0.25)  # polling the console of a running guest, not a timed assertion
    return None
