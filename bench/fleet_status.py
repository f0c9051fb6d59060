"""Parallelism of `xen2kvm fleet status`: 8 hosts against 1, real sshd on loopback, the StorPool
API emulator. Run as root:  .venv/bin/python bench/fleet_status.py [--workstation-dotfiles]

Reported (medians): `xen2kvm` as fresh processes, what an operator waits for, and runs in this
process, without the interpreter's start-up. The 8 "hosts" share this machine's cores with the
controller, so their own sshd, shell and dmsetup work, which a real fleet does on 8 machines at
once, queues here; the last line gives that work and the floor it sets. The hosts read Debian's
stock root dot files; --workstation-dotfiles lets them read this machine's instead.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xen2kvm import cli
from xen2kvm.testing.emulator import Emulator, serve
from xen2kvm.testing.sshd import SshdFarm


def in_process(argv: list[str]) -> float:
    t0 = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = cli.main(argv)
    assert rc == 0, rc
    return time.monotonic() - t0


def as_process(argv: list[str]) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "xen2kvm.cli", *argv], check=True,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def median(how, argv: list[str], runs: int) -> float:
    how(argv)  # warm-up: imports, first connections
    return statistics.median(how(argv) for _ in range(runs))


def cpu_seconds(pids) -> float:
    """CPU used by these processes and their reaped children (each sshd's sessions)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def host_cpu(argv: list[str], pids, runs: int = 20) -> float:
    """The hosts' CPU for one run (sshd, its session, the shell and dmsetup)."""
    before = cpu_seconds(pids)
    for _ in range(runs):
        in_process(argv)
    return (cpu_seconds(pids) - before) / runs


def main() -> int:
    stock = "--workstation-dotfiles" not in sys.argv[1:]
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
        farm = SshdFarm(tmp / "ssh", stock_dotfiles=stock)
        hosts = [farm.start(f"h{i}") for i in range(8)]
        base = ["--backend", "storpool", "fleet", "status", "--known-hosts",
                str(farm.known_hosts())]
        one = base + ["--inventory", str(farm.inventory(tmp / "one.ini", hosts[:1]))]
        eight = base + ["--inventory", str(farm.inventory(tmp / "eight.ini", hosts))]
        rows = []
        for label, how, runs in (("processes", as_process, 5), ("in-process", in_process, 9)):
            m1, m8 = median(how, one, runs), median(how, eight, runs)
            ms = median(how, eight + ["--parallel", "1"], 3)
            rows.append(f"{label:<10}  1 host {m1:.3f} s   8 hosts {m8:.3f} s (ratio {m8 / m1:.2f},"
                        f" goal <= 2)   8 one at a time {ms:.3f} s (ratio {ms / m1:.2f})")
        pids = [h.proc.pid for h in hosts]
        per_run = host_cpu(eight, pids)
        farm.stop()
        server.shutdown()
    cores = os.cpu_count() or 1
    rows.append(f"the 8 hosts' own CPU per 8-host run: {per_run * 1000:.0f} ms, so on {cores} "
                f"shared cores no 8-host run here can take less than {per_run / cores * 1000:.0f}"
                " ms")
    dots = "Debian's stock" if stock else "this workstation's"
    print(f"fleet status, medians ({dots} root dot files on the hosts, {os.cpu_count()} cores "
          "shared by the controller and the hosts):")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
