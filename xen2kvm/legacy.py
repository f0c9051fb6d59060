"""`xen2kvmDisk`: the flags of StorPool's xen2kvmDisk.sh, as the knowledge-base article uses them.

    xen2kvmDisk [-y] -x XEN -k KVM -b                 case-1
    xen2kvmDisk [-y] -x XEN -k KVM [-c] [-p HELPER] [--boot-loader guest]
                                                      case-2 prepare (in-place when XEN == KVM)
    xen2kvmDisk [-y] -m [VM]                          sync: progress, retag when in sync
    xen2kvmDisk [-y] -m VM -r                         rebuild a failed KVM leg (sync --repair)
    xen2kvmDisk [-y] -z [-m VM]                       cleanup
    xen2kvmDisk [-y] -Z [-m VM]                       purge recovery points (xen2kvm purge)
Without -y it prints what it would run and changes nothing.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Optional, Sequence

from . import commands
from .cli import (
    N_ALIGNED,
    N_DOS,
    _Parser,
    common_options,
    guarded,
    guest_helper,
    onapp_options,
    run_with_ctx,
)
from .context import Options
from .errors import UsageError

ALL = ""
BOOT_LOADER_HELP = ("install the guest's own boot loader in sectors 0..N-1: GRUB legacy fits N=32, "
                    "GRUB 2 needs -c")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="xen2kvmDisk", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    common_options(p)
    p.add_argument("-y", action="store_true", help="execute (default: print only)")
    p.add_argument("-x", metavar="XEN", help="XEN disk identifier")
    p.add_argument("-k", metavar="KVM", help="KVM disk identifier")
    p.add_argument("-b", action="store_true", help="case-1: same layout (Windows, FreeBSD)")
    p.add_argument("-c", action="store_true", help="partition at sector 2048 instead of 32")
    p.add_argument("-p", metavar="HELPER", help="program run on the clone's block device")
    p.add_argument("-m", nargs="?", const=ALL, metavar="VM", help="sync (all local VMs)")
    p.add_argument("-z", action="store_true", help="delete clones tagged vs=VM")
    p.add_argument("-Z", action="store_true", dest="purge",
                   help="delete recovery points of migrations whose VM ran from its raw disk")
    # operator completeness: the repair path and the OnApp SQL values
    p.add_argument("-r", action="store_true",
                   help="with -m VM: rebuild a failed KVM leg from the start (sync --repair)")
    p.add_argument("--boot-loader", choices=("guest",), help=BOOT_LOADER_HELP)
    onapp_options(p)
    return p


def _action(args):
    if args.purge:
        if args.z or args.x or args.k or args.b or args.c or args.p:
            raise UsageError("-Z takes only -m VM; see xen2kvmDisk --help")
        return lambda ctx: commands.purge(ctx, args.m or None, None, every=not args.m)
    if args.r and not args.m:
        raise UsageError("-r (repair) needs -m VM; see xen2kvmDisk --help")
    if args.z:
        if args.x or args.k or args.b or args.c or args.p:
            raise UsageError("-z takes only -m VM; see xen2kvmDisk --help")
        return lambda ctx: commands.cleanup(ctx, args.m or None)
    if args.m is not None:
        if args.x or args.k or args.b or args.c or args.p:
            raise UsageError("-m takes only a VM id; see xen2kvmDisk --help")
        return lambda ctx: commands.sync(ctx, args.m or None, repair=args.r)
    if not (args.x and args.k):
        raise UsageError("give -x XEN -k KVM, -m [VM] or -z [-m VM]; see xen2kvmDisk --help")
    if args.b:
        if args.c or args.p or args.boot_loader:
            raise UsageError("-b (case-1) takes no -c or -p, nor --boot-loader")
        return lambda ctx: commands.clone(ctx, args.x, args.k)
    helper = shlex.split(args.p) if args.p else ()
    loader = (guest_helper(),) if args.boot_loader else ()
    return lambda ctx: commands.prepare(ctx, args.x, args.k, N_ALIGNED if args.c else N_DOS,
                                        helper, (args.onapp_vm_id, args.onapp_hypervisor_id),
                                        loader)


def main(argv: Optional[Sequence[str]] = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(argv)
        action = _action(args)
        opts = Options(args.backend, args.state, args.host, args.y, args.inventory,
                       args.known_hosts, args.take_over, prog="xen2kvmDisk",
                       argv=tuple(sys.argv[1:] if argv is None else argv))
        return run_with_ctx(opts, args.verbose, action)

    return guarded("xen2kvmDisk", body)


if __name__ == "__main__":
    sys.exit(main())
