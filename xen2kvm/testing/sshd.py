"""Real sshd instances on loopback for tests and benchmarks (Debian's openssh-server).

Each instance has its own generated host key; one client key logs into all of them as root.
A host's root login shell reads Debian's stock root dot files, not this workstation's: sshd
runs in its own mount namespace with them bound over ~root/.bashrc and ~root/.profile (bash
reads .bashrc for every SSH command, and a developer's .bashrc can cost 100 processes each).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

SSHD = "/usr/sbin/sshd"
STOCK = Path("/usr/share/base-files")  # Debian's root dot files (dot.bashrc, dot.profile)
# $1 = folder with the stock files, $2 = root's home, then the sshd command line
STOCK_HOME = ('for f in .bashrc .profile; do [ ! -e "$2/$f" ] || '
              'mount --bind "$1/$f" "$2/$f" || exit 1; done; shift 2; exec "$@"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


@dataclass
class Sshd:
    name: str
    port: int
    host_pub: str
    proc: subprocess.Popen

    def known_hosts_line(self) -> str:
        kind, key = self.host_pub.split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {key}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class SshdFarm:
    def __init__(self, root: Path, stock_dotfiles: bool = True):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.client_key = root / "client"
        self.client_pub = keygen(self.client_key)
        (root / "authorized_keys").write_text(self.client_pub + "\n")
        os.chmod(root / "authorized_keys", 0o600)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation dir
        self.hosts: list[Sshd] = []
        self.stock_home: Optional[Path] = None
        if stock_dotfiles and shutil.which("unshare") and (STOCK / "dot.bashrc").exists() \
                and os.geteuid() == 0:
            self.stock_home = root / "stock-home"
            self.stock_home.mkdir(exist_ok=True)
            for f in ("bashrc", "profile"):
                shutil.copy(STOCK / f"dot.{f}", self.stock_home / f".{f}")

    def start(self, name: str, extra: str = "") -> Sshd:
        key = self.root / f"host-{name}"
        pub = keygen(key)
        port = free_port()
        cfg = self.root / f"sshd-{name}.conf"
        cfg.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\n"
            f"PidFile {self.root}/sshd-{name}.pid\n"
            f"AuthorizedKeysFile {self.root}/authorized_keys\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "StrictModes no\nLogLevel ERROR\nMaxStartups 64\nMaxSessions 64\n" + extra)
        argv = [SSHD, "-D", "-e", "-f", str(cfg)]
        if self.stock_home is not None:
            argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                    STOCK_HOME, "sh", str(self.stock_home), pwd.getpwuid(0).pw_dir, *argv]
        proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:  # wait until it listens (a bounded wait on an observable condition)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd {name} did not start") from None
                time.sleep(0.02)
        host = Sshd(name, port, pub, proc)
        self.hosts.append(host)
        return host

    def known_hosts(self, path: Optional[Path] = None, hosts=None) -> Path:
        path = path or self.root / "known_hosts"
        path.write_text("".join(h.known_hosts_line() + "\n" for h in (hosts or self.hosts)))
        return path

    def inventory(self, path: Path, hosts, client_ids=None, extra=()) -> Path:
        lines = []
        for i, h in enumerate(hosts):
            cid = (client_ids or {}).get(h.name, i + 1)
            lines.append(f"[{h.name}]\naddress = 127.0.0.1\nport = {h.port}\nuser = root\n"
                         f"key = {self.client_key}\nsp_ourid = {cid}\n")
        for name, port in extra:
            lines.append(f"[{name}]\naddress = 127.0.0.1\nport = {port}\n"
                         f"key = {self.client_key}\nsp_ourid = 99\n")
        path.write_text("\n".join(lines))
        return path

    def stop(self) -> None:
        for h in self.hosts:
            h.stop()
