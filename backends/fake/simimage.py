"""`sim import` and `sim export`: raw disk images in and out of the fake cluster, so a real
guest can be migrated on the fake and the result booted under QEMU. Both are sparse: only
the ranges that hold data are read or written."""

from __future__ import annotations

import os

from xen2kvm import naming as nm
from xen2kvm.context import Ctx
from xen2kvm.errors import PlanError

from .extents import data_ranges


def _disk_volume(vm, disk: str) -> str:
    if disk not in vm.disks:
        raise PlanError(f"VM {vm.name} has no disk {disk}")
    return vm.disks[disk]


def import_image(ctx: Ctx, cluster, vm, disk: str, path: str) -> int:
    volume = _disk_volume(vm, disk)
    if vm.running:
        raise PlanError(f"VM {vm.name} is running; `sim power off {vm.name}` before an import")
    if not os.path.isfile(path):
        raise PlanError(f"{path} is not a file")
    size = os.path.getsize(path)
    room = cluster.volumes[volume].size_bytes
    if size > room:
        raise PlanError(f"{path} ({size} bytes) does not fit into {volume} ({room} bytes); "
                        f"grow the disk first")
    host = ctx.host
    dev = nm.volume_path(volume)
    ctx.storage.attach(volume, host.name)
    cluster.volumes[volume].store.discard(0, room)  # the image replaces what was there
    with open(path, "rb") as f:
        for off, n in data_ranges(f.fileno(), size):
            host.write(dev, off, os.pread(f.fileno(), n, off))
    ctx.storage.detach(volume, host.name)
    ctx.say(f"imported {path} ({size} bytes) into {volume}")
    return 0


def export_image(ctx: Ctx, cluster, vm, disk: str, path: str) -> int:
    """What the VM would read now: the assembled raid1 view while it runs, else the volume."""
    volume = _disk_volume(vm, disk)
    host = ctx.backends.host_named(vm.host) if vm.running else ctx.host
    raid = nm.dm_raid(vm.name, disk)
    attached_here = host.name in cluster.attachments.get(volume, {})
    if vm.running and raid in host.state.dm:
        dev = nm.mapper_path(raid)
    else:
        dev = nm.volume_path(volume)
        if not attached_here:
            ctx.storage.attach(volume, host.name)
    size = host.size(dev)
    with open(path, "wb") as f:
        f.truncate(size)
        for off, n in host.allocated(dev):
            os.pwrite(f.fileno(), host.read(dev, off, n), off)
    if dev == nm.volume_path(volume) and not attached_here:
        ctx.storage.detach(volume, host.name)
    ctx.say(f"exported {vm.name} {disk} via {dev} ({size} bytes) to {path}")
    return 0
