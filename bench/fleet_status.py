"""Parallelism of `xen2kvm fleet status`: 8 hosts against 1 (real sshd on loopback, the
StorPool API emulator). Run as root: .venv/bin/python bench/fleet_status.py   (not a test)
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from xen2kvm import cli
from xen2kvm.backends.storpool.emulator import Emulator, serve
from xen2kvm.testing_sshd import SshdFarm


def timed(argv: list[str]) -> float:
    t0 = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = cli.main(argv)
    assert rc == 0, rc
    return time.monotonic() - t0


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        emu = Emulator(tmp / "data", "T", tmp / "dev", use_loop=False)
        for i in range(200):
            emu.handle("VolumeCreate", [], {"name": f"vol{i}", "size": 1 << 20})
        server = serve(emu)
        conf = tmp / "sp.conf"
        conf.write_text(f"SP_API_HTTP_PORT={server.server_address[1]}\nSP_AUTH_TOKEN=T\n")
        os.environ.update({"XEN2KVM_STORPOOL_CONF": str(conf), "XEN2KVM_DEV_ROOT": str(tmp / "dev"),
                           "XEN2KVM_LOCK_DIR": str(tmp / "lock")})
        farm = SshdFarm(tmp / "ssh")
        hosts = [farm.start(f"h{i}") for i in range(8)]
        kh = farm.known_hosts()
        inv1 = farm.inventory(tmp / "one.ini", hosts[:1])
        inv8 = farm.inventory(tmp / "eight.ini", hosts)
        base = ["--backend", "storpool", "fleet", "status", "--known-hosts", str(kh)]
        one = [timed(base + ["--inventory", str(inv1)]) for _ in range(5)]
        eight = [timed(base + ["--inventory", str(inv8)]) for _ in range(5)]
        serial = [timed(base + ["--inventory", str(inv8), "--parallel", "1"]) for _ in range(3)]
        farm.stop()
        server.shutdown()
    m1, m8, ms = statistics.median(one), statistics.median(eight), statistics.median(serial)
    print(f"fleet status, median of runs: 1 host {m1:.2f} s; 8 hosts in parallel {m8:.2f} s "
          f"(ratio {m8 / m1:.2f}, goal <= 2); 8 hosts one at a time {ms:.2f} s "
          f"(ratio {ms / m1:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
