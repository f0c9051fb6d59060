"""Memory of the fake: a 2 TiB volume with 1 MiB written, a 10 GiB case-2 migration, and
the disk space a disk overwritten again and again keeps.

Run: .venv/bin/python bench/fake_memory.py   (prints figures; not a test)
"""

from __future__ import annotations

import contextlib
import os
import resource
import sqlite3
import tempfile
import time
import tracemalloc
from pathlib import Path

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


def overwritten(times: int = 4, size: int = 32 * MIB) -> None:
    """Data nothing refers to any more leaves the state file's blobs at the call's end."""
    quiet = tempfile.TemporaryFile("w+")
    with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(quiet):
        base, img = ["--backend", "fake", "--state", f"{d}/c"], Path(d) / "img"
        assert cli.main(base + ["sim", "create-vm", "v", "--hypervisor", "kvm",
                                "--disk", "a:1G"]) == 0
        for _ in range(times):
            img.write_bytes(os.urandom(size))
            assert cli.main(base + ["sim", "import", "v", "a", str(img)]) == 0
        conn = sqlite3.connect(f"{d}/c/cluster.db")
        kept = conn.execute("SELECT coalesce(sum(length(data)), 0) FROM blobs").fetchone()[0]
        conn.close()
        file = os.stat(f"{d}/c/cluster.db").st_size
    print(f"{times} imports of {size // MIB} MiB of random data into one disk: "
          f"{kept / MIB:.0f} MiB of data kept, state file {file / MIB:.0f} MiB")


if __name__ == "__main__":
    two_tib()
    ten_gib_migration()
    overwritten()
