"""Memory of the fake: a 2 TiB volume with 1 MiB written, and a 10 GiB case-2 migration.

Run: .venv/bin/python bench/fake_memory.py   (prints figures; not a test)
"""

from __future__ import annotations

import resource
import tempfile
import time
import tracemalloc

from xen2kvm import cli
from xen2kvm.backends.fake import model
from xen2kvm.backends.fake.host import FakeHost
from xen2kvm.backends.fake.storage import FakeStorage
from xen2kvm.units import MIB, TIB


def two_tib() -> None:
    tracemalloc.start()
    c = model.Cluster()
    sp, host = FakeStorage(c), FakeHost(c, "h1")
    sp.create_volume("huge", 2 * TIB, {})
    sp.attach("huge", "h1")
    host.write("/dev/storpool/huge", TIB, bytes(range(256)) * (MIB // 256))
    sp.clone_volume("huge-clone", "huge", {})
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"2 TiB volume + clone, 1 MiB written: {current / MIB:.2f} MiB held, "
          f"{peak / MIB:.2f} MiB peak (goal < 50 MB)")


def ten_gib_migration() -> None:
    with tempfile.TemporaryDirectory() as d:
        base = ["--backend", "fake", "--state", d]
        t0 = time.monotonic()
        quiet = tempfile.TemporaryFile("w+")
        import contextlib

        with contextlib.redirect_stdout(quiet):
            for args in (["sim", "create-vm", "x", "--hypervisor", "xen", "--disk", "xd:10G"],
                         ["sim", "create-vm", "k", "--hypervisor", "kvm", "--disk", "kd:10G"],
                         ["prepare", "-x", "xd", "-k", "kd", "-y"],
                         ["sim", "power", "on", "k"],
                         ["sync", "k", "--wait", "--interval", "10", "-y"],
                         ["verify", "-x", "xd", "-k", "kd", "-y"]):
                assert cli.main(base + args) == 0, args
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"10 GiB case-2 migration on the fake: {time.monotonic() - t0:.2f} s, "
              f"max RSS {rss:.0f} MiB")


if __name__ == "__main__":
    two_tib()
    ten_gib_migration()
