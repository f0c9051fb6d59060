"""How long `xen2kvm status` takes to give up on an API that is down or hangs, with the default
timeout, retries and budget (XEN2KVM_API_TIMEOUT 20 s, 5 retries, 120 s), and how many retry
lines it printed on the way. Takes about 2.5 minutes:  .venv/bin/python bench/api_give_up.py

Reported as the share of the retry budget used (a ratio: at most 1 is the goal) and the seconds
until the first line on stderr (the issue: no output at 40 s, about 31 minutes in all).
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from xen2kvm import cli
from xen2kvm.testing.emulator import Emulator, serve

BUDGET = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _give_up(port: int, tmp: Path) -> tuple[float, int, str]:
    conf = tmp / f"sp{port}.conf"
    conf.write_text(f"SP_API_HTTP_HOST=127.0.0.1\nSP_API_HTTP_PORT={port}\nSP_AUTH_TOKEN=T\n"
                    "[kvm1]\nSP_OURID=1\n")
    os.environ.update(XEN2KVM_STORPOOL_CONF=str(conf), XEN2KVM_LOCK_DIR=str(tmp / "lock"))
    err = io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stderr(err):
        rc = cli.main(["--host", "kvm1", "status"])
    assert rc == 4, err.getvalue()
    lines = err.getvalue().splitlines()
    return time.monotonic() - start, len(lines) - 1, lines[-1]


def main() -> None:
    for var in ("SP_AUTH_TOKEN", "XEN2KVM_API_TIMEOUT", "XEN2KVM_API_RETRIES",
                "XEN2KVM_API_RETRY_BUDGET", "XEN2KVM_API_RETRY_DELAY"):
        os.environ.pop(var, None)
    tmp = Path(tempfile.mkdtemp())
    emu = Emulator(tmp / "data", "T", tmp / "dev")
    server = serve(emu)
    emu.misreply("VolumesList", "hang", count=1000)
    for what, port in (("down", _free_port()), ("hanging", server.server_address[1])):
        seconds, retries, last = _give_up(port, tmp)
        print(f"API {what}: gave up after {seconds:.1f} s = {seconds / BUDGET:.2f} of the "
              f"budget, {retries} retry lines; {last}", flush=True)
    emu.release.set()
    server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
