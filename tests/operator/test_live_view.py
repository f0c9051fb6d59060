"""`sync --wait` as a person sees it: run under a pseudo terminal (tmux), its screen captured
mid-resync on the fake (XEN2KVM_FAKE_PACE makes the virtual resync take real seconds), the
rows asserted; Ctrl-C leaves the resync going; off a terminal it prints plain lines."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.progress

BIN = Path(sys.executable).parent
DOCS = Path(__file__).resolve().parents[2] / "docs" / "live-view.txt"
ROW = re.compile(r"│ kvm1vm\s+│ (kdisk2?)\s+│ syncing\s+│ [━╸╺ ]+│\s+([\d.]+)%\s+│\s+([\d.]+ \w+/s)"
                 r"\s+│\s+(\d+:\d\d:\d\d)\s+│\s+([\d.]+ \w+)\s+│")
SETTLE = 60.0


def _x(state: Path, *args: str) -> str:
    proc = subprocess.run([str(BIN / "xen2kvm"), "--backend", "fake", "--state", str(state),
                           *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc
    return proc.stdout


@pytest.fixture
def syncing_vm(tmp_path) -> Path:
    """Two disks prepared and assembled, resync limited to 1 MiB/s: about a minute of
    virtual time to copy."""
    state = tmp_path / "cluster"
    _x(state, "sim", "create-vm", "lnx1", "--hypervisor", "xen", "--disk", "ldisk:48M,ldisk2:32M")
    _x(state, "sim", "create-vm", "kvm1vm", "--hypervisor", "kvm", "--disk",
       "kdisk:48M,kdisk2:32M")
    for xen, kvm in (("ldisk", "kdisk"), ("ldisk2", "kdisk2")):
        subprocess.run([str(BIN / "xen2kvmDisk"), "--backend", "fake", "--state", str(state),
                        "-y", "-x", xen, "-k", kvm], check=True, capture_output=True)
    _x(state, "tune", "--max", "1024", "-y")
    _x(state, "sim", "power", "on", "kvm1vm")
    return state


class Tmux:
    """A tmux server of this test's own (its own socket), killed at the end."""

    def __init__(self) -> None:
        self.socket = f"xen2kvm-test-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, check=True, timeout=30).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "live")

    def wait_for(self, found, what: str) -> str:
        deadline = time.monotonic() + SETTLE
        while time.monotonic() < deadline:
            screen = self.screen()
            if found(screen):
                return screen
            time.sleep(0.1)  # polling an observable screen, not waiting for a guess
        raise AssertionError(f"timed out waiting for {what}; screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def tmux():
    if not shutil.which("tmux"):
        if os.geteuid() != 0:
            pytest.skip("tmux is not installed (scripts/test.sh installs it as root)")
        raise AssertionError("tmux is missing: run scripts/test.sh as root to install it")
    t = Tmux()
    yield t
    t.close()


def _rows(screen: str) -> dict[str, tuple]:
    return {m.group(1): m.groups()[1:] for m in ROW.finditer(screen)}


def test_live_view_mid_resync_then_ctrl_c_leaves_it_running(syncing_vm, tmux):
    cmd = [str(BIN / "xen2kvm"), "--backend", "fake", "--state", str(syncing_vm), "sync",
           "kvm1vm", "--wait", "-y"]
    # COLUMNS from pytest's terminal would override the pane's width
    tmux("new-session", "-d", "-x", "110", "-y", "24", "-s", "live", "env", "-u", "COLUMNS",
         "-u", "LINES", "XEN2KVM_FAKE_PACE=0.25", *cmd)
    tmux("set-option", "-t", "live", "remain-on-exit", "on")

    def mid(screen: str) -> bool:
        rows = _rows(screen)
        return len(rows) == 2 and all(0 < float(r[0]) < 100 and r[1] != "0 B/s"
                                      for r in rows.values())

    screen = tmux.wait_for(mid, "both disks mid-resync with a rate")
    rows = _rows(screen)
    for _pct, rate, eta, free in rows.values():
        assert rate.endswith("KiB/s") or rate.endswith("MiB/s"), rows
        assert eta != "0:00:00" and free.endswith("TiB"), rows
    assert "Ctrl-C leaves the resync running" in screen
    # the run's own lines stay above (the API lines are long: the first disk's may scroll off)
    assert "as leg 1; the resync of" in screen
    if os.environ.get("XEN2KVM_UPDATE_DOCS"):
        DOCS.write_text("$ xen2kvm sync kvm1vm --wait -y   # on a terminal, mid-resync\n"
                        + screen.rstrip() + "\n")
    tmux("send-keys", "-t", "live", "C-c")
    tmux.wait_for(lambda s: "interrupted" in s, "the interrupt message")
    text = " ".join(tmux.screen().split())
    assert ("xen2kvm: interrupted: the resync goes on in the kernel; watch it again with "
            "`xen2kvm sync kvm1vm --wait -y`") in text
    state = json.loads(_x(syncing_vm, "status", "--json"))
    assert {r["disk"]: r["phase"] for r in state} == {"kdisk": "syncing", "kdisk2": "syncing"}
    assert all(0 < r["done"] < r["total"] for r in state)


def test_off_a_terminal_sync_wait_prints_plain_lines(syncing_vm):
    out = _x(syncing_vm, "sync", "kvm1vm", "--wait", "-y")
    assert "\x1b[" not in out and "━" not in out
    lines = [x for x in out.splitlines() if re.match(r"kvm1vm kdisk: syncing [\d.]+% rate", x)]
    assert len(lines) > 5
    assert re.search(r"rate 1\.0 MiB/s ETA 0:00:\d\d free after [\d.]+ TiB", out), out
    assert "every disk is in sync" in out


def test_docs_example_is_a_captured_screen():
    text = DOCS.read_text()
    assert text.startswith("$ xen2kvm sync kvm1vm --wait -y") and len(_rows(text)) == 2
