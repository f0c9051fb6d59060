"""xen2kvm-guest DEVICE [--dry-run] [--rebuild-initrd]
xen2kvm-guest DEVICE --boot-area FILE [--sectors N]

The `-p` helper for Linux guests. DEVICE is a block device or image file holding the XEN
guest's root filesystem (no partition table). Prints the unified diff of every change; keeps
`<file>.pre-xen2kvm` backups; a second run changes nothing. With --boot-area it changes
nothing in the guest and writes the guest's own GRUB 2 boot code for sectors 0..N-1 of the KVM
disk into FILE (see bootarea.py); `xen2kvm prepare --boot-loader guest` runs it."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from xen2kvm.errors import CommandFailed, Xen2KvmError
from xen2kvm.process import Runner

from . import bootarea, convert


def _rebuild(plan: convert.Plan, root, runner: Runner) -> None:
    for argv in plan.commands:
        res = runner.run(["chroot", str(root), *argv], check=False, timeout=1800)
        if res.rc != 0:
            raise CommandFailed(["chroot", *argv], res.rc, res.stderr)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xen2kvm-guest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("device")
    p.add_argument("--dry-run", action="store_true", help="show the diffs, change nothing")
    p.add_argument("--rebuild-initrd", action="store_true",
                   help="rebuild the initrd in a chroot with the guest's own tool")
    p.add_argument("--boot-area", metavar="FILE", help="only build the guest's boot code")
    p.add_argument("--sectors", type=int, default=2048, help="N of the KVM disk's layout")
    return p


def _show(plan: convert.Plan) -> None:
    """The diff of every change, the copies and the chroot commands: the dry-run output."""
    g = plan.guest
    print(f"# {g.name} {g.major} ({g.init}, grub {g.grub}); root = {plan.root_spec}")
    for ch in plan.changes:
        sys.stdout.write(ch.diff())
    for copy in plan.copies:
        print(copy.describe())
    for cmd in plan.commands:
        print("# chroot: " + " ".join(cmd))


def _convert(args: argparse.Namespace, runner: Runner) -> convert.Plan:
    if not args.dry_run:
        convert.check_writable(args.device)
    # plan on a read-only mount: an unknown guest or a no-op run writes nothing at all
    with convert.mounted(args.device, runner, writable=False) as (root, uuid, label):
        plan = convert.make_plan(root, uuid, label, args.rebuild_initrd)
    _show(plan)
    changes = plan.changes or plan.copies
    if not changes and not (plan.commands and not args.dry_run):
        print("# nothing to change")
    elif not args.dry_run:
        with convert.mounted(args.device, runner, writable=True) as (root, uuid, label):
            plan = convert.make_plan(root, uuid, label, args.rebuild_initrd)
            convert.write(plan, root)
            if args.rebuild_initrd:
                _rebuild(plan, root, runner)
            os.sync()
    return plan


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    runner = Runner()
    try:
        if args.boot_area:
            with convert.mounted(args.device, runner, writable=False) as (root, _, _):
                print(bootarea.build(root, args.sectors, args.boot_area, runner))
            return 0
        for w in _convert(args, runner).warnings:
            print(f"xen2kvm-guest: warning: {w}", file=sys.stderr)
    except Xen2KvmError as exc:
        print(f"xen2kvm-guest: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
