"""The kernel lab: run a command inside a real Linux kernel with device-mapper and dm-raid.

Debian's user-mode-linux kernel runs as an ordinary process with the host's root mounted
read-only (hostfs), so the guest runs the host's python, pytest, dmsetup and losetup on this
checkout. The guest gets private tmpfs /run (TMPDIR=/run/tmp) and /dev/shm; OUTDIR and every
`--rw` path are writable. The guest command's exit code comes back through OUTDIR/guest-rc; a
timeout gives 124 and a guest that died without one 125.

    xen2kvm-lab [--timeout S] [--mem 1024M] [--rw PATH] [--out DIR] -- COMMAND...
"""

from __future__ import annotations

import argparse
import os
import selectors
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from ..errors import UsageError
from ..process import Runner

UML = "/usr/bin/linux.uml"
MODULES = "/usr/lib/uml/modules"
GUEST_MODULES = ("loop", "dm-mod", "raid1", "dm-raid", "dm-mirror")
PASS_ENV = ("PATH", "VIRTUAL_ENV", "PYTHONPATH", "CI", "HOME", "LANG")
TIMEOUT_RC, CRASH_RC = 124, 125

INIT = """#!/bin/sh
# PID 1 of the lab guest.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DM_DISABLE_UDEV=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
ip link set lo up 2>/dev/null || echo "lab: no loopback network"
for kv in $(cat /proc/cmdline); do
  case "$kv" in vmtest.out=*) OUT=${kv#vmtest.out=};; vmtest.rw=*) RW=${kv#vmtest.rw=};; esac
done
mount -t hostfs -o %(modules)s none /lib/modules
mkdir -p /run/out && mount -t hostfs -o "$OUT" none /run/out
mkdir -p /run/tmp /dev/shm && mount -t tmpfs tmpfs /dev/shm
export TMPDIR=/run/tmp
for p in $(echo "$RW" | tr , ' '); do [ -d "$p" ] && mount -t hostfs -o "$p" none "$p"; done
for m in %(mods)s; do modprobe "$m" || echo "lab: modprobe $m failed"; done
sh /run/out/.vmtest-cmd.sh
echo $? > /run/out/guest-rc
sync
poweroff -f 2>/dev/null || echo o > /proc/sysrq-trigger
"""


def have_dm() -> bool:
    """True inside a kernel that already has device-mapper (the lab guest, a Vagrant VM)."""
    return Path("/sys/module/dm_mod").exists()


def ensure_installed(runner: Runner) -> None:
    if Path(UML).exists() and shutil.which("modprobe"):
        return
    if os.geteuid() != 0:
        raise UsageError("the kernel lab needs Debian's user-mode-linux package: "
                         "apt-get install user-mode-linux kmod (as root)")
    env_ok = {"DEBIAN_FRONTEND": "noninteractive"}
    os.environ.update(env_ok)
    runner.run(["apt-get", "update", "-qq"], timeout=600)
    runner.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                "user-mode-linux", "kmod", "dmsetup", "util-linux", "e2fsprogs"], timeout=1200)


def _guest_files(out: Path, command: Sequence[str]) -> Path:
    """The guest's init and the command it runs, with this environment's settings."""
    (out / "guest-rc").unlink(missing_ok=True)
    env = "".join(f"export {k}={shlex.quote(os.environ[k])}\n" for k in sorted(os.environ)
                  if k in PASS_ENV or k.startswith(("XEN2KVM_", "PYTEST_ADDOPTS")))
    (out / ".vmtest-cmd.sh").write_text(
        f"{env}export PYTHONDONTWRITEBYTECODE=1 XEN2KVM_IN_LAB=1 PY_COLORS=0\n"
        f"cd {shlex.quote(os.getcwd())} || exit 126\nexec {shlex.join(command)}\n")
    init = out / ".vmtest-init.sh"
    init.write_text(INIT % {"modules": MODULES, "mods": " ".join(GUEST_MODULES)})
    init.chmod(0o755)
    return init


def _kernel_argv(out: Path, init: Path, rw: Sequence[str], mem: str) -> list[str]:
    return [UML, f"mem={mem}", "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "ro",
            f"init={init}", "con0=fd:0,fd:1", "con=null", "quiet", f"vmtest.out={out}",
            f"vmtest.rw={','.join(str(Path(p).resolve()) for p in rw) or '-'}"]


def _relay(proc: subprocess.Popen, timeout: float, stream) -> bool:
    """Copy the guest's console to `stream` until it ends; False when `timeout` ran out."""
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if not sel.select(timeout=min(left, 1.0)):
            if proc.poll() is not None:
                return True
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            return True
        stream.write(chunk.decode(errors="replace"))
        stream.flush()


def run(command: Sequence[str], outdir: Optional[Path] = None, rw: Sequence[str] = (),
        timeout: float = 900.0, mem: str = "1024M", runner: Optional[Runner] = None,
        stream=None) -> int:
    """Run `command` in a lab guest; its exit code, TIMEOUT_RC or CRASH_RC."""
    ensure_installed(runner or Runner())
    Path("/lib/modules").mkdir(parents=True, exist_ok=True)  # hostfs needs a mount point
    out = Path(outdir or tempfile.mkdtemp(prefix="xen2kvm-lab-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    init = _guest_files(out, command)
    uml_env = dict(os.environ, TMPDIR=os.environ.get("XEN2KVM_LAB_TMPDIR", "/dev/shm"))
    # the guest's console streams for as long as it runs: not a Runner call, which waits
    proc = subprocess.Popen(_kernel_argv(out, init, rw, mem), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=uml_env,
                            start_new_session=True)
    if not _relay(proc, timeout, stream or sys.stdout):
        os.killpg(proc.pid, 9)
        proc.wait()
        return TIMEOUT_RC
    proc.wait()
    rc_file = out / "guest-rc"
    if not rc_file.exists():
        return CRASH_RC
    return int(rc_file.read_text().strip() or CRASH_RC)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="xen2kvm-lab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--mem", default="1024M")
    p.add_argument("--rw", action="append", default=[], help="host path writable in the guest")
    p.add_argument("--out", help="folder for the guest's files (default: a new temp folder)")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the command to run in the guest")
    try:
        return run(command, Path(args.out) if args.out else None, args.rw, args.timeout, args.mem)
    except UsageError as exc:
        print(f"xen2kvm-lab: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
