"""Hosts over SSH: their specs (`--hosts`, an inventory) and the SSH Runner, which has the same
`run(argv)` and result types as the local Runner, over Fabric.

Commands stay argument lists up to the wire, where `shlex.join` quotes them for the remote
shell; nothing is built by concatenation. Host keys are checked against known_hosts: an unknown
key is refused unless the operator accepts new keys, a changed key is always refused.
"""

from __future__ import annotations

import configparser
import contextlib
import io
import re
import shlex
import socket
import time
from dataclasses import dataclass
from typing import Optional, Sequence

from .errors import HostKeyRefused, PlanError, Unreachable, UsageError
from .process import CommandResult, Runner, log

HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
# what the local Runner sets, set on the host too (sshd passes no locale we could rely on)
REMOTE_ENV = ("env", "LC_ALL=C", "DM_DISABLE_UDEV=1")


@dataclass(frozen=True)
class HostSpec:
    name: str
    address: str
    port: int = 22
    user: str = "root"
    key_file: Optional[str] = None
    client_id: Optional[int] = None

    def check(self) -> HostSpec:
        for what, value in (("host name", self.name), ("address", self.address),
                            ("user", self.user)):
            if not HOST_RE.match(value):
                raise PlanError(f"{what} {value!r} has characters a host name cannot have; "
                                "use letters, digits and . _ : -")
        if not 0 < self.port < 65536:
            raise PlanError(f"port {self.port} of host {self.name} is not a TCP port")
        return self


def parse_hosts(hosts: Optional[str], inventory: Optional[str], user: str = "root",
                key_file: Optional[str] = None) -> list[HostSpec]:
    """--hosts h1,h2[:port] or an inventory (INI: [name] address= port= user= key= sp_ourid=)."""
    specs: list[HostSpec] = []
    if inventory:
        cp = configparser.ConfigParser()
        try:
            if not cp.read(inventory):
                raise UsageError(f"inventory {inventory} cannot be read")
        except configparser.Error as exc:
            raise UsageError(f"inventory {inventory}: {str(exc).splitlines()[0]}") from None
        for name in cp.sections():
            s = cp[name]
            try:
                specs.append(HostSpec(name, s.get("address", name), s.getint("port", 22),
                                      s.get("user", user), s.get("key", key_file),
                                      s.getint("sp_ourid") if s.get("sp_ourid") else None))
            except ValueError as exc:
                raise UsageError(f"inventory {inventory} [{name}]: {exc}") from None
    for item in (hosts or "").split(","):
        if item.strip():
            name, _, port = item.strip().partition("@")
            specs.append(HostSpec(name, name, int(port) if port.isdigit() else 22, user,
                                  key_file))
            if port and not port.isdigit():
                raise PlanError(f"port {port!r} of host {name!r} is not a number")
    if not specs:
        raise UsageError("give the hosts: --hosts h1,h2 or --inventory FILE")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UsageError("a host is named twice")
    return [s.check() for s in specs]


class _QuickAckSocket:
    """The SSH socket, acknowledging every read at once (Linux TCP_QUICKACK, which the kernel
    clears again, so it is renewed after each read). Right after login sshd sends two small
    packets in a row under Nagle; the second waited for our ACK of the first, which the kernel
    delays 40 ms when we have nothing to send: the first command on every connection took
    ~50 ms instead of ~7 (paramiko reads through this object; the rest goes to the socket)."""

    def __init__(self, sock: socket.socket):
        self._sock = sock

    @classmethod
    def wrap(cls, sock: socket.socket):
        return cls(sock) if hasattr(socket, "TCP_QUICKACK") else sock

    def recv(self, n: int) -> bytes:
        data = self._sock.recv(n)
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return data

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def _fabric_config():
    from fabric import Config
    from fabric.runners import Remote

    class PromptRemote(Remote):
        # invoke polls for a command's end every input_sleep (10 ms by default); a command
        # over an open connection takes ~5 ms, so the default doubled every one of them
        input_sleep = 0.002

    return Config(overrides={"runners": {"remote": PromptRemote}})


class SSHRunner(Runner):
    def __init__(self, spec: HostSpec, known_hosts: Optional[str] = None,
                 accept_new_keys: bool = False, connect_timeout: float = 10.0,
                 default_timeout: float = 600.0, secrets: Sequence[str] = ()):
        super().__init__(default_timeout, secrets)
        self.spec = spec.check()
        self.known_hosts = known_hosts
        self.accept_new_keys = accept_new_keys
        self.connect_timeout = connect_timeout
        self._conn = None

    def _connect(self):
        if self._conn is not None:
            return self._conn
        import paramiko
        from fabric import Connection

        kwargs = {"allow_agent": False,
                  "look_for_keys": self.spec.key_file is None, "banner_timeout":
                  self.connect_timeout, "auth_timeout": self.connect_timeout}
        if self.spec.key_file:
            kwargs["key_filename"] = self.spec.key_file
        sock = None
        try:
            sock = socket.create_connection((self.spec.address, self.spec.port),
                                            timeout=self.connect_timeout)
            # sshd leaves Nagle on for sessions without a tty; with it on at both ends every
            # small request waits for a delayed ACK (40 ms on Linux): a third of a command
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(self.spec.address, user=self.spec.user, port=self.spec.port,
                              connect_kwargs={**kwargs, "sock": _QuickAckSocket.wrap(sock)},
                              connect_timeout=self.connect_timeout, config=_fabric_config())
            client = conn.client
            client.get_host_keys().clear()
            if self.known_hosts:
                client.load_host_keys(self.known_hosts)
            else:
                client.load_system_host_keys()
            client.set_missing_host_key_policy(
                paramiko.AutoAddPolicy() if self.accept_new_keys else paramiko.RejectPolicy())
            conn.open()
        except BaseException as exc:
            if sock is not None:
                sock.close()
            refusal = self._refusal(exc)
            if refusal is exc:
                raise
            raise refusal from None
        self._conn = conn
        return conn

    def _refusal(self, exc: BaseException) -> BaseException:
        """A failed connect as this tool's one-line error (others pass through unchanged)."""
        import paramiko

        name = self.spec.name
        if isinstance(exc, paramiko.BadHostKeyException):
            return HostKeyRefused(f"host {name}: its SSH host key CHANGED since it was "
                                  "recorded in known_hosts; check the host, then fix "
                                  "known_hosts")
        if isinstance(exc, paramiko.SSHException):
            if "not found in known_hosts" in str(exc):
                return HostKeyRefused(f"host {name}: unknown SSH host key; verify it and add "
                                      "it to known_hosts, or pass --accept-new-host-keys")
            return Unreachable(name, f"SSH failed: {exc}")
        if isinstance(exc, OSError):  # socket.timeout included
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            return Unreachable(name, f"cannot connect to {self.spec.address}:{self.spec.port} "
                                     f"({reason})")
        return exc

    def run(self, argv: Sequence[str], *, input: Optional[str] = None,
            timeout: Optional[float] = None, check: bool = True) -> CommandResult:
        argv = tuple(str(a) for a in argv)
        conn = self._connect()
        log.info("Running on %s: %s", self.spec.name, self.redact(shlex.join(argv)))
        remote = shlex.join([*REMOTE_ENV, *argv])
        start = time.monotonic()
        try:
            res = conn.run(remote, hide=True, warn=True, timeout=timeout or self.default_timeout,
                           in_stream=io.StringIO(input) if input is not None else False)
            result = CommandResult(argv, res.exited, res.stdout, res.stderr,
                                   time.monotonic() - start)
        except Exception as exc:  # invoke's CommandTimedOut and transport errors
            if "timed out" in str(exc).lower():
                result = CommandResult(argv, 124, "", f"timed out after {timeout}s",
                                       time.monotonic() - start)
            else:
                self._conn = None
                raise Unreachable(self.spec.name, f"SSH session failed: {exc}") from None
        return self._finish(result, check)

    def start(self, argv: Sequence[str]) -> HeldCommand:
        """Start a command that keeps running until closed (a lock holder, see HeldCommand)."""
        argv = tuple(str(a) for a in argv)
        conn = self._connect()
        log.info("Starting on %s: %s", self.spec.name, self.redact(shlex.join(argv)))
        try:
            channel = conn.create_session()
            channel.exec_command(shlex.join([*REMOTE_ENV, *argv]))
        except Exception as exc:  # transport errors
            self._conn = None
            raise Unreachable(self.spec.name, f"SSH session failed: {exc}") from None
        return HeldCommand(argv, channel)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class HeldCommand:
    """A remote command that runs while this object is open. Closing the SSH channel ends its
    stdin; a dropped connection makes sshd end the session: either way it stops, so a
    controller that dies never leaves it (or the lock it holds) behind."""

    def __init__(self, argv: tuple[str, ...], channel):
        self.argv = argv
        self.channel = channel
        self._stdout = channel.makefile("r")

    def first_line(self, timeout: float) -> str:
        """The first line of output, or "" when the command ended (or said nothing in time)."""
        self.channel.settimeout(timeout)
        try:
            return self._stdout.readline().strip()
        except (socket.timeout, OSError):
            return ""

    def finish(self, timeout: float = 10.0) -> CommandResult:
        """Wait for the end (after first_line said it did not start as hoped)."""
        if not self.channel.status_event.wait(timeout):
            self.close()
            return CommandResult(self.argv, 124, "", "did not end", 0.0)
        rc = self.channel.recv_exit_status()
        err = self.channel.makefile_stderr("r").read()
        err = err.decode(errors="replace") if isinstance(err, bytes) else err
        self.close()
        return CommandResult(self.argv, rc, "", err, 0.0)

    def close(self) -> None:
        self.channel.close()
