"""Fleet operation over SSH against real sshd instances on loopback."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import socket
import threading

import pytest

from xen2kvm import cli, mbr
from xen2kvm.backends.storpool.remote_host import RemoteHost
from xen2kvm.errors import (
    CommandFailed,
    DeviceError,
    HostKeyRefused,
    LockBusy,
    PlanError,
    Unreachable,
)
from xen2kvm.remote import HostSpec, SSHRunner
from xen2kvm.testing.sshd import free_port

from ..storpool.conftest import SPRig

pytestmark = pytest.mark.fleet
MIB = 1 << 20


def _spec(farm, host) -> HostSpec:
    return HostSpec(host.name, "127.0.0.1", host.port, "root", str(farm.client_key))


def test_ssh_runner_keeps_argv_whole(farm):
    h = farm.start("h1")
    r = SSHRunner(_spec(farm, h), known_hosts=str(farm.known_hosts()))
    try:
        res = r.run(["printf", "%s|", "a b;c", "$(id)", "'q'"])
        assert res.stdout == "a b;c|$(id)|'q'|" and res.rc == 0
        assert r.run(["cat"], input="table\n").stdout == "table\n"
        assert r.run(["sh", "-c", "exit 3"], check=False).rc == 3
        with pytest.raises(CommandFailed):
            r.run(["sh", "-c", "echo bad >&2; exit 4"])
    finally:
        r.close()


def test_host_keys_are_verified(farm, tmp_path):
    h1, h2 = farm.start("h1"), farm.start("h2")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyRefused, match="unknown SSH host key"):
        SSHRunner(_spec(farm, h1), known_hosts=str(empty)).run(["true"])
    SSHRunner(_spec(farm, h1), known_hosts=str(empty), accept_new_keys=True).run(["true"])
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(h2.known_hosts_line().replace(str(h2.port), str(h1.port)) + "\n")
    with pytest.raises(HostKeyRefused, match="CHANGED"):
        SSHRunner(_spec(farm, h1), known_hosts=str(wrong), accept_new_keys=True).run(["true"])


def test_unreachable_host_is_one_error(farm):
    spec = HostSpec("gone", "127.0.0.1", free_port(), "root", str(farm.client_key))
    with pytest.raises(Unreachable, match="host gone: cannot connect"):
        SSHRunner(spec, connect_timeout=3).run(["true"])


def fleet(argv, capsys):
    rc = cli.main(["--backend", "storpool", "fleet", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_status_across_hosts_with_one_down_and_one_failing(farm, emulator, tmp_path, capsys):
    hosts = [farm.start(f"h{i}") for i in range(1, 7)]
    broken = farm.start("h7", extra="SetEnv PATH=/nonexistent\n")
    down_port = free_port()
    inv = farm.inventory(tmp_path / "inv.ini", hosts + [broken], extra=[("h8", down_port)])
    kh = farm.known_hosts()
    rc, out, err = fleet(["status", "--inventory", str(inv), "--known-hosts", str(kh),
                          "--json"], capsys)
    report = json.loads(out)["hosts"]
    assert rc == 7, err
    assert report["h1"]["ok"], report["h1"]
    assert [h for h, r in report.items() if r["ok"]] == [f"h{i}" for i in range(1, 7)]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 2
    assert lines[0].startswith("xen2kvm: error: host h7: ")
    assert lines[1].startswith("xen2kvm: error: host h8: unreachable: host h8: cannot connect")
    rc, out, _ = fleet(["status", "--inventory", str(inv), "--known-hosts", str(kh)], capsys)
    assert "6 of 8 hosts ok" in out


def test_eight_hosts_one_unreachable(farm, emulator, tmp_path, capsys):
    hosts = [farm.start(f"h{i}") for i in range(1, 8)]
    inv = farm.inventory(tmp_path / "inv.ini", hosts, extra=[("h8", free_port())])
    emulator.calls.clear()
    rc, out, err = fleet(["status", "--inventory", str(inv), "--known-hosts",
                          str(farm.known_hosts())], capsys)
    assert rc != 0 and "7 of 8 hosts ok" in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "host h8" in lines[0] and "cannot connect" in lines[0]
    # one read of the cluster's lists serves every host's view
    # the free space is read once for all hosts too
    assert dict(emulator.calls) == {"VolumesList": 1, "AttachmentsList": 1, "SnapshotsList": 1,
                                    "VolumeTemplatesStatus": 1}


def test_a_changed_host_key_refuses_only_that_host(farm, emulator, tmp_path, capsys):
    h1, h2, h3 = (farm.start(n) for n in ("h1", "h2", "h3"))
    kh = farm.known_hosts(tmp_path / "kh")
    text = kh.read_text().splitlines()
    text[1] = h3.known_hosts_line().replace(str(h3.port), str(h2.port))
    kh.write_text("\n".join(text) + "\n")
    inv = farm.inventory(tmp_path / "inv.ini", [h1, h2, h3])
    rc, out, err = fleet(["status", "--inventory", str(inv), "--known-hosts", str(kh)], capsys)
    assert rc == 7 and "2 of 3 hosts ok" in out
    assert err.strip().count("\n") == 0 and "host h2" in err and "CHANGED" in err


@pytest.fixture
def listener():
    """A port that counts the connections made to it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    seen = []
    done = threading.Event()

    def accept():
        while not done.is_set():
            try:
                seen.append(sock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield sock.getsockname()[1], seen
    done.set()
    t.join()
    sock.close()


@pytest.mark.parametrize("argv,message", [
    (["status", "--hosts", "h1;reboot"], "has characters a host name cannot have"),
    (["status", "--hosts", "$(reboot)"], "has characters a host name cannot have"),
    (["release", "vm;reboot", "--hosts", "127.0.0.1@{port}"], "is not valid"),
    (["release", "--hosts", "127.0.0.1@{port}"], "needs the VMs"),
])
def test_metacharacters_are_refused_before_any_connection(argv, message, listener, capsys):
    port, seen = listener
    argv = [a.format(port=port) for a in argv]
    rc = cli.main(["--backend", "storpool", "fleet", *argv])
    err = capsys.readouterr().err
    assert rc != 0 and message in err and err.count("\n") == 1
    assert seen == []


def test_hosts_parse_errors():
    from xen2kvm.fleet import parse_hosts

    with pytest.raises(PlanError):
        parse_hosts("h1@notaport", None)
    with pytest.raises(Exception, match="give the hosts"):
        parse_hosts("", None)
    with contextlib.redirect_stderr(io.StringIO()):
        assert parse_hosts("h1,h2@2222", None)[1].port == 2222


def _locked_here(path) -> int:
    """Take the lock file as a run on the host itself would (blocking)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _free_within(path, seconds: float) -> bool:
    """Whether the lock can be taken within `seconds` (a blocking flock, not a sleep)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    t = threading.Thread(target=fcntl.flock, args=(fd, fcntl.LOCK_EX), daemon=True)
    t.start()
    t.join(seconds)
    free = not t.is_alive()
    if free:
        os.close(fd)
    return free


def test_a_run_over_ssh_takes_the_hosts_own_lock(farm, emulator, tmp_path, capsys):
    sp = SPRig(emulator)
    sp.create("ldisk", 8 * MIB, b"LNX-")
    sp.create("kdisk", 8 * MIB)
    h1 = farm.start("h1")
    argv = ["--backend", "storpool", "--inventory", str(farm.inventory(tmp_path / "i", [h1])),
            "--known-hosts", str(farm.known_hosts()), "--host", "h1",
            "prepare", "-x", "ldisk", "-k", "kdisk", "-y"]
    lock = tmp_path / "lock" / "h1" / "xen2kvm.lock"  # $XEN2KVM_LOCK_DIR/<host> on the host
    before = json.dumps(emulator.volumes, sort_keys=True)
    fd = _locked_here(lock)
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 3 and err.count("\n") == 1, err
    assert f"another xen2kvm run holds h1:{lock}" in err
    assert json.dumps(emulator.volumes, sort_keys=True) == before
    os.close(fd)
    assert cli.main(argv) == 0, capsys.readouterr()
    assert mbr.parse(sp.file_bytes("kdisk", 0, 512)) == [mbr.Partition(32, 16384, 0x83)]
    assert _free_within(lock, 10), "the run ended but its lock holder on the host did not"


def test_the_hosts_lock_ends_with_the_controllers_connection(farm, tmp_path):
    h = farm.start("h1")
    kh = str(farm.known_hosts())
    lock_dir = tmp_path / "lock"
    first = SSHRunner(_spec(farm, h), known_hosts=kh)
    release = RemoteHost("h1", first).hold_lock(str(lock_dir))
    second = RemoteHost("h1", SSHRunner(_spec(farm, h), known_hosts=kh))
    with pytest.raises(LockBusy, match="another xen2kvm run holds h1:"):
        second.hold_lock(str(lock_dir))
    fd = os.open(lock_dir / "xen2kvm.lock", os.O_RDWR)
    with pytest.raises(BlockingIOError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)
    # the controller vanishes without a goodbye: its TCP connection is cut
    first._conn.client.get_transport().sock.shutdown(socket.SHUT_RDWR)
    assert _free_within(lock_dir / "xen2kvm.lock", 10)
    release()  # after the cut: nothing left to release, and no error
    second.hold_lock(str(lock_dir))()


def test_a_host_without_flock_is_an_error_not_a_busy_lock(farm, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("env", "sh", "mkdir", "cat"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    h = farm.start("h1", extra=f"SetEnv PATH={bin_dir}\n")
    host = RemoteHost("h1", SSHRunner(_spec(farm, h), known_hosts=str(farm.known_hosts())))
    with pytest.raises(DeviceError, match="cannot take the run lock on h1: .*flock.*not found"):
        host.hold_lock(str(tmp_path / "lock"))
