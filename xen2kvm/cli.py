"""`xen2kvm`: the operator's command line (argparse at the edge, then plain calls)."""

from __future__ import annotations

import argparse
import functools
import io
import logging
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Optional, Sequence

from xen2kvm import backends as registry

from . import __version__, commands, dmtables, interrupts
from .context import Ctx, Options
from .errors import UsageError, Xen2KvmError
from .units import parse_size

N_DOS, N_ALIGNED = 32, 2048


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as every other refusal
        raise UsageError(f"{message} (see {self.prog} --help)")


def common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default=os.environ.get("XEN2KVM_BACKEND", "storpool"),
                   help="storpool (default) or fake; env XEN2KVM_BACKEND")
    p.add_argument("--state", default=os.environ.get("XEN2KVM_STATE"),
                   help="the fake cluster's folder; env XEN2KVM_STATE")
    p.add_argument("--host", default=os.environ.get("XEN2KVM_HOST"),
                   help="the KVM host this runs on (fake: its name; default kvm1)")
    p.add_argument("--inventory", default=os.environ.get("XEN2KVM_INVENTORY"),
                   help="hosts file (INI); a --host listed there runs its steps over SSH")
    p.add_argument("--known-hosts", help="known_hosts file for SSH (default: the system's)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every command to stderr")
    p.add_argument("--take-over", action="store_true", help=TAKE_OVER_HELP)
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="json: the plan and each step as run as JSON lines (actions as data)")


TAKE_OVER_HELP = "remove other runs' claims on the volumes (only when that run died)"


def onapp_options(p: argparse.ArgumentParser) -> None:
    """Operator completeness: values for the OnApp SQL an in-place prepare prints."""
    p.add_argument("--onapp-vm-id", type=int, metavar="ID", help="in-place: the VM's OnApp id")
    p.add_argument("--onapp-hypervisor-id", type=int, metavar="ID",
                   help="in-place: the OnApp id of the KVM hypervisor it moves to")


def _yes(p: argparse.ArgumentParser) -> None:
    p.add_argument("-y", "--yes", action="store_true", help="execute (default: dry-run)")
    p.add_argument("--take-over", action="store_true", default=argparse.SUPPRESS,
                   help=TAKE_OVER_HELP)


def _rates(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-rate", type=int, metavar="KIB", help="per-array min_recovery_rate")
    p.add_argument("--max-rate", type=int, metavar="KIB", help="per-array max_recovery_rate")


def _adaptive(p: argparse.ArgumentParser) -> None:
    p.add_argument("--adaptive", action="store_true",
                   help="steer the resync rate from the guests' write latency (with --wait -y)")
    p.add_argument("--latency-target", type=float, metavar="MS",
                   help="p99 I/O latency to keep (default: 1.5 x the guest's own, "
                        "measured before the copy starts)")


ENV_DEFAULTS = ("XEN2KVM_BACKEND", "XEN2KVM_STATE", "XEN2KVM_HOST", "XEN2KVM_INVENTORY")


def build_parser() -> argparse.ArgumentParser:
    """The parser for the environment's defaults: built once per process and environment, as
    a rehearsal drives thousands of commands through main() in one process."""
    return _parser_for(tuple(os.environ.get(k) for k in ENV_DEFAULTS))


@functools.lru_cache(maxsize=4)
def _parser_for(env: tuple) -> argparse.ArgumentParser:
    p = _Parser(prog="xen2kvm", description="Move OnApp VM disks from XEN to KVM on StorPool.")
    p.add_argument("--version", action="version", version=f"xen2kvm {__version__}")
    common_options(p)
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    for add in (_migration_parsers, _sync_parser, _undo_parsers, _info_parsers, _tune_parser,
                _fleet_parser, _contributed_parsers):
        add(sub)
    return p


def _migration_parsers(sub) -> None:
    c = sub.add_parser("clone", help="case-1: replace the KVM volume by a clone of the XEN one")
    c.add_argument("-x", "--xen", required=True)
    c.add_argument("-k", "--kvm", required=True)
    c.add_argument("--vm", help="KVM VM id, to scope cleanup of the replaced volume")
    _yes(c)
    c = sub.add_parser("prepare", help="case-2 step 1: grow, partition, clone, tag (VM off)")
    c.add_argument("-x", "--xen", required=True)
    c.add_argument("-k", "--kvm", required=True)
    c.add_argument("--no-dos", action="store_true", help="partition at 2048 instead of 32")
    c.add_argument("--helper", help="program run on the clone's block device")
    onapp_options(c)
    c.add_argument("--boot-loader", choices=("guest",),
                   help="install the guest's own GRUB 2 in sectors 0..N-1 (needs --no-dos)")
    _yes(c)
    c = sub.add_parser("assemble", help="power-on hook: linear + raid1 for the VM's disks")
    c.add_argument("vm")
    c.add_argument("--disk", action="append", nargs="+", required=True)
    _rates(c)
    _yes(c)
    c = sub.add_parser("release", help="reboot hook: tear the VM's dm devices down")
    c.add_argument("vm")
    _yes(c)


def _sync_parser(sub) -> None:
    c = sub.add_parser("sync", help="add the KVM leg, show progress, retag when in sync")
    c.add_argument("vm", nargs="?")
    _rates(c)
    c.add_argument("--repair", action="store_true", help="rebuild a failed KVM leg")
    c.add_argument("--wait", action="store_true", help="poll until in sync (with -y)")
    c.add_argument("--interval", type=float, default=1.0)
    _adaptive(c)
    _yes(c)


def _undo_parsers(sub) -> None:
    c = sub.add_parser("cleanup", help="delete the clones and metadata of migrated disks")
    c.add_argument("vm", nargs="?")
    _yes(c)
    for name, text in (("abort", "put every volume of a migration back as it was before "
                                 "xen2kvm (VM off); undoable until purge"),
                       ("purge", "delete the recovery points of migrations whose KVM VM has "
                                 "run from its raw volume since")):
        c = sub.add_parser(name, help=text)
        c.add_argument("vm", nargs="?")
        c.add_argument("--disk", help="one disk instead of every disk of the VM")
        _yes(c)


def _info_parsers(sub) -> None:
    c = sub.add_parser("status", help="each disk's phase")
    c.add_argument("vm", nargs="?")
    c.add_argument("--json", action="store_true")
    c = sub.add_parser("history", help="what xen2kvm changed, from its audit log")
    c.add_argument("subject", nargs="?", metavar="VM|DISK")
    c.add_argument("--json", action="store_true", help="the raw JSON lines")
    c = sub.add_parser("verify", help="byte-compare the XEN data with the KVM volume")
    c.add_argument("-x", "--xen", required=True)
    c.add_argument("-k", "--kvm", required=True)
    _yes(c)


def _tune_parser(sub) -> None:
    c = sub.add_parser("tune", help="show or set dev.raid.speed_limit_{min,max} (KiB/s)")
    c.add_argument("--min", type=int, dest="min_kib")
    c.add_argument("--max", type=int, dest="max_kib")
    c.add_argument("--reset", action="store_true", help="back to the kernel defaults")
    c.add_argument("--sweep", action="store_true",
                   help="time a scratch resync at a few static settings and print the best")
    c.add_argument("--size", default="256M", help="--sweep: the scratch raid1's size")
    c.add_argument("--scratch", default="/var/tmp", metavar="DIR",
                   help="--sweep: folder for the scratch loop devices' files")
    _yes(c)


def _fleet_parser(sub) -> None:
    c = sub.add_parser("fleet", help="sync, status or release across many KVM hosts (over "
                                     "SSH; on the fake, its hosts)")
    c.add_argument("action", choices=("sync", "status", "release"))
    c.add_argument("vms", nargs="*", metavar="VM", help="release: the VMs to release")
    c.add_argument("--hosts", help="h1,h2,... (name@port for a non-standard port)")
    c.add_argument("--inventory", default=argparse.SUPPRESS,
                   help="INI file: [host] address= port= user= key= sp_ourid=")
    c.add_argument("--known-hosts", default=argparse.SUPPRESS, help="known_hosts file")
    c.add_argument("--ssh-user", default="root")
    c.add_argument("--ssh-key", help="private key file")
    c.add_argument("--accept-new-host-keys", action="store_true",
                   help="trust hosts whose key is not yet known (never a changed key)")
    c.add_argument("--parallel", type=int, default=8)
    c.add_argument("--json", action="store_true")
    c.add_argument("--wait", action="store_true",
                   help="sync: repeat on every host until no disk is copying (with -y)")
    c.add_argument("--interval", type=float, default=5.0, help="seconds between rounds")
    _rates(c)
    _adaptive(c)
    _yes(c)


def _contributed_parsers(sub) -> None:
    """The fake's own commands, through the registry (backends/__init__.py COMMANDS)."""
    c = sub.add_parser("demo", help="rehearse both cases on an embedded fake cluster")
    c.add_argument("--keep", metavar="DIR", help="leave the cluster state in DIR")
    registry.command_module("sim").add_parser(sub)


def _rates_of(args) -> dmtables.Rates:
    return dmtables.Rates(getattr(args, "min_rate", None), getattr(args, "max_rate", None))


def _controller(args, needs_wait: bool = True):
    """The adaptive throttle's controller the options ask for, or None."""
    from .throttle import Controller

    if not getattr(args, "adaptive", False):
        if getattr(args, "latency_target", None) is not None:
            raise UsageError("--latency-target goes with --adaptive")
        return None
    if needs_wait and not args.wait:
        raise UsageError("--adaptive steers while it waits: add --wait")
    if args.latency_target is not None and args.latency_target <= 0:
        raise UsageError("--latency-target must be a positive number of milliseconds")
    return Controller(target_ms=args.latency_target)


def guest_helper() -> str:
    """xen2kvm-guest of this installation (beside the interpreter), else from PATH."""
    beside = Path(sys.executable).with_name("xen2kvm-guest")
    return str(beside) if beside.exists() else "xen2kvm-guest"


def _prepare(ctx: Ctx, args) -> int:
    helper = shlex.split(args.helper) if args.helper else ()
    loader = (guest_helper(),) if args.boot_loader else ()
    return commands.prepare(ctx, args.xen, args.kvm, N_ALIGNED if args.no_dos else N_DOS,
                            helper, (args.onapp_vm_id, args.onapp_hypervisor_id), loader)


def _undo(ctx: Ctx, args) -> int:
    if (args.vm is None) == (args.disk is None):
        raise UsageError(f"{args.cmd} takes a VM or --disk DISK (one of them; see xen2kvm "
                         f"{args.cmd} --help)")
    undo = commands.abort if args.cmd == "abort" else commands.purge
    return undo(ctx, args.vm, args.disk)


def _history(ctx: Ctx, args) -> int:
    from . import audit

    return audit.history(ctx, args.subject, args.json)


def _tune(ctx: Ctx, args) -> int:
    if not args.sweep:
        return commands.tune(ctx, args.min_kib, args.max_kib, args.reset)
    from . import sweep

    if args.min_kib is not None or args.max_kib is not None or args.reset:
        raise UsageError("tune --sweep sets nothing: drop --min/--max/--reset")
    return sweep.sweep(ctx, args.scratch, parse_size(args.size))


HANDLERS: dict[str, Callable[[Ctx, argparse.Namespace], int]] = {
    "clone": lambda ctx, a: commands.clone(ctx, a.xen, a.kvm, a.vm),
    "prepare": _prepare,
    "assemble": lambda ctx, a: commands.assemble(
        ctx, a.vm, [d for group in a.disk for d in group], _rates_of(a)),
    "release": lambda ctx, a: commands.release(ctx, a.vm),
    "sync": lambda ctx, a: commands.sync(ctx, a.vm, _rates_of(a), a.repair, a.wait,
                                         a.interval, adaptive=_controller(a)),
    "cleanup": lambda ctx, a: commands.cleanup(ctx, a.vm),
    "abort": _undo,
    "purge": _undo,
    "status": lambda ctx, a: commands.status(ctx, a.vm, a.json),
    "history": _history,
    "verify": lambda ctx, a: commands.verify(ctx, a.xen, a.kvm),
    "tune": _tune,
    "sim": lambda ctx, a: registry.command_module("sim").dispatch(ctx, a),
}


def dispatch(ctx: Ctx, args) -> int:
    return HANDLERS[args.cmd](ctx, args)


def _fleet(args) -> int:
    from . import fleet

    specs = fleet.parse_hosts(args.hosts, args.inventory, args.ssh_user, args.ssh_key)
    if args.action == "release" and not args.vms:
        raise UsageError("fleet release needs the VMs to release")
    if args.adaptive and args.action != "sync":
        raise UsageError("--adaptive goes with fleet sync")
    # each host gets its own backends (fleet.py); none is opened here
    opts = Options(args.backend, args.state, args.host, args.yes,
                   known_hosts=args.known_hosts, accept_new_keys=args.accept_new_host_keys)
    job = fleet.Job(args.action, args.vms, _rates_of(args),
                    _controller(args, needs_wait=False))
    return fleet.run(opts, job, specs, args.parallel, args.json, wait=args.wait,
                     interval=args.interval)


def _quiet_stdout() -> None:
    """The reader went away (`| head`): drop the rest of the output, and Python's own
    complaint when it flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def _one_line(prog: str, text: str, code: int) -> int:
    if os.environ.get("XEN2KVM_DEBUG"):
        raise  # noqa: PLE0704 -- only called from an except clause
    print(f"{prog}: error: {text}", file=sys.stderr)
    return code


def guarded(prog: str, body: Callable[[], int]) -> int:
    """Run a command body: a Xen2KvmError becomes one line on stderr and its exit code;
    Ctrl-C stops between calls (exit 130, see interrupts.py); a closed stdout is quiet and
    exits 141 as a shell tool killed by SIGPIPE would; a local file error is one line, 4."""
    previous = signal.getsignal(signal.SIGINT)
    interrupts.install()
    try:
        return body()
    except Xen2KvmError as exc:
        return _one_line(prog, str(exc), exc.exit_code)
    except ValueError as exc:  # bad sizes and numbers from the command line
        return _one_line(prog, str(exc), 2)
    except KeyboardInterrupt:
        return _one_line(prog, "interrupted between steps; rerun the same command to finish",
                         130)
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _one_line(prog, f"{where}{exc.strerror or exc}", 4)
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)


def run_with_ctx(opts: Options, verbose: bool, action: Callable[[Ctx], int]) -> int:
    if verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    ctx = Ctx.open(opts)
    rc, error = 1, None
    try:
        rc = action(ctx)
        return rc
    except BaseException as exc:
        error, rc = exc, getattr(exc, "exit_code", 1)
        raise
    finally:
        ctx.finish(rc, error)  # operator completeness: the audit record
        ctx.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(argv)
        if args.cmd == "demo":
            return registry.command_module("demo").run(args.keep)
        if args.cmd == "fleet":
            return _fleet(args)
        opts = Options(args.backend, args.state, args.host, getattr(args, "yes", False),
                       args.inventory, args.known_hosts, args.take_over, args.format, "xen2kvm",
                       argv=tuple(sys.argv[1:] if argv is None else argv))
        return run_with_ctx(opts, args.verbose, lambda ctx: dispatch(ctx, args))

    return guarded("xen2kvm", body)


if __name__ == "__main__":
    sys.exit(main())
