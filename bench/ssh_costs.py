"""What one host costs over SSH, with this tool's SSH Runner against a real sshd on loopback.
Run as root:  .venv/bin/python bench/ssh_costs.py [--no-quickack]

Prints the wall time of the first command after login and of later ones, and the host's own
CPU (sshd, its session, the shell) per connection for: connect only, connect + `true`, and
connect + the dm snapshot `fleet status` runs. --no-quickack reads the socket plainly, to show
the delayed-ACK stall the Runner avoids.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from fleet_status import cpu_seconds

from xen2kvm import remote
from xen2kvm.backends.storpool import remote_host
from xen2kvm.remote import HostSpec, SSHRunner
from xen2kvm.testing.sshd import SshdFarm

RUNS = 30


def settled(pid: int) -> float:
    """The sshd's CPU once every session it served has ended and been reaped."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if not children:
            break
        time.sleep(0.01)
    return cpu_seconds([pid])


def main() -> int:
    if "--no-quickack" in sys.argv[1:]:
        remote._QuickAckSocket.wrap = staticmethod(lambda sock: sock)
    snapshot = ["sh", "-c", remote_host.SNAPSHOT, "sh", "/nonexistent", *remote_host.DM_INFO]
    with tempfile.TemporaryDirectory() as d:
        farm = SshdFarm(Path(d) / "ssh")
        h = farm.start("h0")
        spec = HostSpec("h0", "127.0.0.1", h.port, "root", str(farm.client_key))
        kh = str(farm.known_hosts())

        def runner() -> SSHRunner:
            r = SSHRunner(spec, known_hosts=kh)
            r._connect()
            return r

        after_login, later = [], []
        for _ in range(RUNS):
            r = runner()
            for times in (after_login, later, later):
                t0 = time.monotonic()
                r.run(["true"])
                times.append(time.monotonic() - t0)
            r.close()
        rows = [f"first command after login {statistics.median(after_login) * 1000:.1f} ms, "
                f"later commands {statistics.median(later) * 1000:.1f} ms (medians)"]
        for label, argv in (("connect only", None), ("connect + true", ["true"]),
                            ("connect + dm snapshot", snapshot)):
            before = settled(h.proc.pid)
            for _ in range(RUNS):
                r = runner()
                if argv:
                    r.run(argv, check=False)
                r.close()
            used = (settled(h.proc.pid) - before) / RUNS
            rows.append(f"{label}: host CPU {used * 1000:.1f} ms per connection")
        farm.stop()
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
