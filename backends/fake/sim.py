"""`xen2kvm --backend fake --state DIR sim …`: what OnApp, LVMSP and the guests do, on the fake
cluster, so an operator can rehearse the procedure with the real commands."""

from __future__ import annotations

import dataclasses
import json
import math
import sys

from xen2kvm import commands
from xen2kvm import naming as nm
from xen2kvm.context import Ctx
from xen2kvm.errors import PlanError, UsageError
from xen2kvm.units import MIB, parse_size

from .extents import Recipe
from .model import SimVM

BLOCK = 64 * 1024


def add_parser(sub) -> None:
    p = sub.add_parser("sim", help="rehearsal commands for the fake cluster")
    s = p.add_subparsers(dest="sim", required=True, parser_class=type(p))
    c = s.add_parser("create-vm")
    c.add_argument("vm")
    c.add_argument("--hypervisor", choices=("xen", "kvm"), required=True)
    c.add_argument("--disk", required=True, help="DISK:SIZE[,DISK:SIZE...]")
    c.add_argument("--seed", type=int, default=1)
    c = s.add_parser("power")
    c.add_argument("power_state", choices=("on", "off"), metavar="on|off")
    c.add_argument("vm")
    for name, args in (("write", ("vm", "disk", "offset", "length")),
                       ("read", ("vm", "disk", "offset", "length"))):
        c = s.add_parser(name)
        for a in args:
            c.add_argument(a)
        if name == "write":
            c.add_argument("--seed", type=int, required=True)
    for name, verb in (("import", "write a raw image (sparse) into a VM's disk"),
                       ("export", "save what the VM reads now as a sparse raw image")):
        c = s.add_parser(name, help=verb)
        for a in ("vm", "disk", "file"):
            c.add_argument(a)
    _add_state_parsers(s)


def _add_state_parsers(s) -> None:
    c = s.add_parser("show")
    c.add_argument("--json", action="store_true")
    c = s.add_parser("tick", help="let virtual time pass")
    c.add_argument("seconds", type=float)
    c = s.add_parser("fail-volume", help="writes to the volume fail from now on (a full disk)")
    c.add_argument("volume")
    c = s.add_parser("heal-volume")
    c.add_argument("volume")
    c = s.add_parser("fault", help="fail the K-th mutating call from now on")
    c.add_argument("k", type=int)
    c = s.add_parser("load", help="the guest writes IOPS 4 KiB blocks per second to a disk's "
                                  "dm device (latency model: backends/fake/latency.py)")
    c.add_argument("vm")
    c.add_argument("disk")
    c.add_argument("iops", type=float)
    c.add_argument("--after", type=float, default=0.0, metavar="SECONDS",
                   help="from this many virtual seconds from now on")
    c = s.add_parser("host", help="a host goes down (answers no call, as an unreachable "
                                  "SSH host) or comes back up")
    c.add_argument("host_state", choices=("down", "up"), metavar="down|up")
    c.add_argument("name")
    c = s.add_parser("kernel", help="set the raid target version a host reports")
    c.add_argument("raid_version")
    # operator completeness: the placement group's raw capacity (VolumeTemplatesStatus)
    c = s.add_parser("capacity", help="show or set the cluster's raw capacity")
    c.add_argument("size", nargs="?", help="total raw bytes (K, M, G, T suffixes)")
    c.add_argument("--free", help="set the capacity so that this much is free now")


def seeded(seed: int, length: int) -> bytes:
    """The sim's content for a seed: what a Recipe of it reads as."""
    return bytes(Recipe(seed, length))


def xen_recipes(seed: int, size: int):
    """Recognisable data: a labelled first MiB and 64 KiB blocks spread over the disk, as
    recipes the fake stores without producing them."""
    first = min(size, MIB)
    label = (b"XEN2KVM-SIM" + bytes(5))[:first]
    yield 0, label
    if first > len(label):
        yield len(label), Recipe(seed, first)[0: first - len(label)]
    for i in range(1, 16):
        off = (size * i // 16) // BLOCK * BLOCK
        if off >= first and off + BLOCK <= size:
            yield off, Recipe(seed * 1000 + i, BLOCK)
    if size >= 2 * MIB:
        yield size - BLOCK, Recipe(seed * 1000 + 99, BLOCK)


def xen_content(seed: int, size: int):
    """The same data as bytes (the kernel lab writes it for real)."""
    for off, data in xen_recipes(seed, size):
        yield off, bytes(data)


def _fake(ctx: Ctx):
    if not hasattr(ctx.backends, "cluster"):
        raise UsageError("sim commands need --backend fake --state DIR")
    return ctx.backends.cluster


def _vm(cluster, name: str):
    if name not in cluster.vms:
        raise PlanError(f"no simulated VM {name}; create it with `sim create-vm`")
    return cluster.vms[name]


def device_of(ctx: Ctx, vm, disk: str) -> str:
    if not vm.running:
        raise PlanError(f"VM {vm.name} is powered off; `sim power on {vm.name}` first")
    if disk not in vm.disks:
        raise PlanError(f"VM {vm.name} has no disk {disk}")
    host = ctx.backends.host_named(vm.host)
    raid = nm.dm_raid(vm.name, disk)
    if raid in host.state.dm:
        return nm.mapper_path(raid)
    return nm.volume_path(vm.disks[disk])


def create_vm(ctx: Ctx, vm: str, hypervisor: str, disks: str, seed: int) -> int:
    cluster = _fake(ctx)
    nm.check_vm(vm)
    if vm in cluster.vms:
        raise PlanError(f"VM {vm} exists already")
    spec = []
    for item in disks.split(","):
        disk, _, size = item.rpartition(":")
        nm.check_volume_name(disk, "disk identifier")
        spec.append((disk, parse_size(size)))
    for disk, size in spec:
        ctx.storage.create_volume(disk, size, {})
        if hypervisor == "xen":
            host = ctx.host
            ctx.storage.attach(disk, host.name)
            for off, data in xen_recipes(seed + len(cluster.vms) * 7, size):
                host.write(nm.volume_path(disk), off, data)
            ctx.storage.detach(disk, host.name)
    cluster.vms[vm] = SimVM(vm, hypervisor, {d: d for d, _ in spec})
    ctx.say(f"created {hypervisor} VM {vm} with " + ", ".join(f"{d} ({s} bytes)" for d, s in spec))
    return 0


def power(ctx: Ctx, state: str, name: str) -> int:
    cluster = _fake(ctx)
    vm = _vm(cluster, name)
    host = ctx.host
    if state == "on":
        if vm.running:
            raise PlanError(f"VM {name} is running already")
        vm.host = host.name
        if vm.hypervisor == "kvm":
            ctx.opts.yes = True  # the hook runs for real, as LVMSP runs it at power-on
            commands.assemble(ctx, name, list(vm.disks))
        else:
            for vol in vm.disks.values():
                ctx.storage.attach(vol, host.name)
        vm.running = True
        vm.opened = [device_of(ctx, vm, d) for d in vm.disks]
        for path in vm.opened:
            host.open_device(path, +1)
    else:
        if not vm.running:
            raise PlanError(f"VM {name} is not running")
        for path in vm.opened:
            host.open_device(path, -1)
        vm.opened, vm.running = [], False
        if vm.hypervisor == "kvm":
            ctx.opts.yes = True
            commands.release(ctx, name)
        for vol in vm.disks.values():
            ctx.storage.detach(vol, host.name)
    ctx.say(f"VM {name} powered {state} on {host.name}")
    return 0


def show(ctx: Ctx, as_json: bool) -> int:
    cluster = _fake(ctx)
    data = {
        "clock": cluster.clock,
        "volumes": [dataclasses.asdict(v) | {"allocated_bytes": cluster.volumes[v.name]
                                              .store.allocated_bytes}
                    for v in ctx.storage.list_volumes()],
        "snapshots": [dataclasses.asdict(x) for x in ctx.storage.list_snapshots()],
        "hosts": {h.name: {"dm": {n: {"table": d.table, "status":
                                      ctx.backends.host_named(h.name).dm_status(n)}
                                  for n, d in h.dm.items()}, "sysctl": h.sysctl}
                  for h in cluster.hosts.values()},
        "vms": {v.name: {"hypervisor": v.hypervisor, "disks": v.disks, "host": v.host,
                         "running": v.running} for v in cluster.vms.values()},
    }
    if as_json:
        ctx.say(json.dumps(data, indent=2))
        return 0
    ctx.say(f"virtual clock: {cluster.clock:.0f}s")
    for v in data["volumes"]:
        tags = " ".join(f"{k}={val}" for k, val in sorted(v["tags"].items()))
        att = ",".join(v["attached"]) or "-"
        ctx.say(f"volume {v['name']:<28} {v['size_bytes']:>14}  attached={att:<6} {tags}")
    for x in data["snapshots"]:
        tags = " ".join(f"{k}={val}" for k, val in sorted(x["tags"].items()))
        ctx.say(f"snapshot {x['name']:<26} {x['size_bytes']:>14}  {tags}")
    for hname, h in data["hosts"].items():
        for n, d in h["dm"].items():
            ctx.say(f"{hname} dm {n}: {d['status'].splitlines()[0]}")
    for vname, vm in data["vms"].items():
        where = "running on " + vm["host"] if vm["running"] else "off"
        ctx.say(f"vm {vname} ({vm['hypervisor']}) {where}")
    return 0


def _capacity(ctx: Ctx, cluster, size, free) -> int:
    if size or free:
        cluster.capacity = parse_size(size) if size else cluster.used_bytes() + parse_size(free)
    used = cluster.used_bytes()
    ctx.say(f"capacity {cluster.capacity} bytes, used {used}, free {cluster.capacity - used}")
    return 0


def _io(ctx: Ctx, args) -> int:
    vm = _vm(_fake(ctx), args.vm)
    path = device_of(ctx, vm, args.disk)
    host = ctx.backends.host_named(vm.host)
    off, length = parse_size(args.offset), parse_size(args.length)
    if args.sim == "write":
        host.write(path, off, Recipe(args.seed, length))
        ctx.say(f"wrote {length} bytes at {off} of {args.vm} {args.disk} via {path}")
        return 0
    data = host.read(path, off, length)
    out = getattr(ctx.out, "buffer", None) or sys.stdout.buffer
    out.write(data)
    out.flush()
    return 0


def _image(ctx: Ctx, args) -> int:
    from . import simimage

    cluster = _fake(ctx)
    vm = _vm(cluster, args.vm)
    fn = simimage.import_image if args.sim == "import" else simimage.export_image
    return fn(ctx, cluster, vm, args.disk, args.file)


def _tick(ctx: Ctx, args) -> int:
    ctx.host.sleep(args.seconds)
    ctx.say(f"virtual clock: {_fake(ctx).clock:.0f}s")
    return 0


def _failing(ctx: Ctx, args) -> int:
    cluster = _fake(ctx)
    if args.volume not in cluster.volumes:
        raise PlanError(f"no volume {args.volume}")
    cluster.volumes[args.volume].failing = args.sim == "fail-volume"
    return 0


def _load(ctx: Ctx, args) -> int:
    vm = _vm(_fake(ctx), args.vm)
    path = device_of(ctx, vm, args.disk)
    numbers = (args.iops, args.after)
    if not path.startswith("/dev/mapper/") or not all(math.isfinite(x) and x >= 0
                                                      for x in numbers):
        raise PlanError("the guest load needs a running VM whose disk is assembled (its dm "
                        "device carries the I/O counters), and finite numbers >= 0")
    ctx.backends.host_named(vm.host).guest_load(path[len("/dev/mapper/"):], args.iops,
                                                args.after)
    return 0


def _fault(ctx: Ctx, args) -> int:
    cluster = _fake(ctx)
    cluster.inject_fault(args.k)
    return 0


def _kernel(ctx: Ctx, args) -> int:
    from xen2kvm.dmstatus import parse_version

    cluster = _fake(ctx)
    for h in cluster.hosts.values():
        h.raid_version = parse_version(args.raid_version)
    cluster.host(ctx.host.name).raid_version = parse_version(args.raid_version)
    return 0


def _host(ctx: Ctx, args) -> int:
    cluster = _fake(ctx)
    cluster.host(args.name).down = args.host_state == "down"
    return 0


HANDLERS = {
    "create-vm": lambda ctx, a: create_vm(ctx, a.vm, a.hypervisor, a.disk, a.seed),
    "power": lambda ctx, a: power(ctx, a.power_state, a.vm),
    "write": _io, "read": _io, "import": _image, "export": _image,
    "show": lambda ctx, a: show(ctx, a.json),
    "tick": _tick, "fail-volume": _failing, "heal-volume": _failing,
    "capacity": lambda ctx, a: _capacity(ctx, _fake(ctx), a.size, a.free),
    "load": _load, "fault": _fault, "kernel": _kernel, "host": _host,
}


def dispatch(ctx: Ctx, args) -> int:
    """One sim command is one transaction: what OnApp or a guest does happens whole (and
    `create-vm` that fails leaves nothing)."""
    _fake(ctx)
    with ctx.backends.transaction(atomic=args.sim == "create-vm"):
        return HANDLERS[args.sim](ctx, args)
