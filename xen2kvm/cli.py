"""`xen2kvm`: the operator's command line (argparse at the edge, then plain calls)."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from typing import Callable, Optional, Sequence

from . import __version__, commands, dmtables
from .context import Ctx, Options
from .errors import UsageError, Xen2KvmError

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


TAKE_OVER_HELP = "remove other runs' claims on the volumes (only when that run died)"


def _yes(p: argparse.ArgumentParser) -> None:
    p.add_argument("-y", "--yes", action="store_true", help="execute (default: dry-run)")
    p.add_argument("--take-over", action="store_true", default=argparse.SUPPRESS,
                   help=TAKE_OVER_HELP)


def _rates(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-rate", type=int, metavar="KIB", help="per-array min_recovery_rate")
    p.add_argument("--max-rate", type=int, metavar="KIB", help="per-array max_recovery_rate")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="xen2kvm", description="Move OnApp VM disks from XEN to KVM on StorPool.")
    p.add_argument("--version", action="version", version=f"xen2kvm {__version__}")
    common_options(p)
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

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
    _yes(c)
    c = sub.add_parser("assemble", help="power-on hook: linear + raid1 for the VM's disks")
    c.add_argument("vm")
    c.add_argument("--disk", action="append", nargs="+", required=True)
    _rates(c)
    _yes(c)
    c = sub.add_parser("release", help="reboot hook: tear the VM's dm devices down")
    c.add_argument("vm")
    _yes(c)
    c = sub.add_parser("sync", help="add the KVM leg, show progress, retag when in sync")
    c.add_argument("vm", nargs="?")
    _rates(c)
    c.add_argument("--repair", action="store_true", help="rebuild a failed KVM leg")
    c.add_argument("--wait", action="store_true", help="poll until in sync (with -y)")
    c.add_argument("--interval", type=float, default=1.0)
    _yes(c)
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
    c = sub.add_parser("status", help="each disk's phase")
    c.add_argument("vm", nargs="?")
    c.add_argument("--json", action="store_true")
    c = sub.add_parser("verify", help="byte-compare the XEN data with the KVM volume")
    c.add_argument("-x", "--xen", required=True)
    c.add_argument("-k", "--kvm", required=True)
    _yes(c)
    c = sub.add_parser("tune", help="show or set dev.raid.speed_limit_{min,max} (KiB/s)")
    c.add_argument("--min", type=int, dest="min_kib")
    c.add_argument("--max", type=int, dest="max_kib")
    c.add_argument("--reset", action="store_true", help="back to the kernel defaults")
    _yes(c)
    c = sub.add_parser("fleet", help="sync, status or release across many KVM hosts over SSH")
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
    _rates(c)
    _yes(c)
    c = sub.add_parser("demo", help="rehearse both cases on an embedded fake cluster")
    c.add_argument("--keep", metavar="DIR", help="leave the cluster state in DIR")
    from . import sim

    sim.add_parser(sub)
    return p


def _rates_of(args) -> dmtables.Rates:
    return dmtables.Rates(getattr(args, "min_rate", None), getattr(args, "max_rate", None))


def dispatch(ctx: Ctx, args) -> int:
    cmd = args.cmd
    if cmd == "clone":
        return commands.clone(ctx, args.xen, args.kvm, args.vm)
    if cmd == "prepare":
        helper = shlex.split(args.helper) if args.helper else ()
        return commands.prepare(ctx, args.xen, args.kvm, N_ALIGNED if args.no_dos else N_DOS,
                                helper)
    if cmd == "assemble":
        disks = [d for group in args.disk for d in group]
        return commands.assemble(ctx, args.vm, disks, _rates_of(args))
    if cmd == "release":
        return commands.release(ctx, args.vm)
    if cmd == "sync":
        return commands.sync(ctx, args.vm, _rates_of(args), args.repair, args.wait,
                             args.interval)
    if cmd == "cleanup":
        return commands.cleanup(ctx, args.vm)
    if cmd in ("abort", "purge"):
        if (args.vm is None) == (args.disk is None):
            raise UsageError(f"{cmd} takes a VM or --disk DISK (one of them; see xen2kvm "
                             f"{cmd} --help)")
        return getattr(commands, cmd)(ctx, args.vm, args.disk)
    if cmd == "status":
        return commands.status(ctx, args.vm, args.json)
    if cmd == "verify":
        return commands.verify(ctx, args.xen, args.kvm)
    if cmd == "tune":
        return commands.tune(ctx, args.min_kib, args.max_kib, args.reset)
    from . import sim

    return sim.dispatch(ctx, args)


def _fleet(opts: Options, args) -> int:
    from . import fleet

    specs = fleet.parse_hosts(args.hosts, args.inventory, args.ssh_user, args.ssh_key)
    if args.action == "release" and not args.vms:
        raise UsageError("fleet release needs the VMs to release")
    ssh = {"known_hosts": args.known_hosts, "accept_new_keys": args.accept_new_host_keys}
    return fleet.run(opts, args.action, specs, args.vms, _rates_of(args), args.parallel,
                     args.json, ssh)


def guarded(prog: str, body: Callable[[], int]) -> int:
    """Run a command body: a Xen2KvmError becomes one line on stderr and its exit code."""
    try:
        return body()
    except Xen2KvmError as exc:
        if os.environ.get("XEN2KVM_DEBUG"):
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ValueError as exc:  # bad sizes and numbers from the command line
        if os.environ.get("XEN2KVM_DEBUG"):
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2


def run_with_ctx(opts: Options, verbose: bool, action: Callable[[Ctx], int]) -> int:
    if verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    ctx = Ctx.open(opts)
    try:
        return action(ctx)
    finally:
        ctx.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(argv)
        if args.cmd == "demo":
            from . import demo

            return demo.run(args.keep)
        if args.cmd == "fleet":  # each host gets its own backends; none is opened here
            opts = Options(args.backend, args.state, args.host, args.yes)
            return _fleet(opts, args)
        opts = Options(args.backend, args.state, args.host, getattr(args, "yes", False),
                       args.inventory, args.known_hosts, args.take_over)
        return run_with_ctx(opts, args.verbose, lambda ctx: dispatch(ctx, args))

    return guarded("xen2kvm", body)


if __name__ == "__main__":
    sys.exit(main())
