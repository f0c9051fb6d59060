"""Downtime on the fake: prepare + power-on (the VM is off only for these) for a 1 GiB and a
1 TiB XEN disk holding the same data (the guest image of the boot proof when it is built,
else the sim's own content). Reported as a ratio: the procedure's downtime should not grow
with the disk's size, since nothing is copied before power-on.

Run: .venv/bin/python bench/fake_downtime.py [--rounds 5]   (prints figures; not a test)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xen2kvm import cli  # noqa: E402


def image() -> Optional[Path]:
    """The boot proof's image folder, when it has been built (tests/boot/images.py)."""
    try:
        from tests.boot import images
    except ImportError:
        return None
    path = images.cache_root() / images.recipe_hash()
    return path if (path / "done").exists() else None


def downtime(size: str, img: Optional[Path]) -> float:
    with tempfile.TemporaryDirectory() as d:
        base = ["--backend", "fake", "--state", d]

        def run(*args: str) -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                assert cli.main([*base, *args]) == 0, args

        run("sim", "create-vm", "x", "--hypervisor", "xen", "--disk", f"xd:{size}")
        run("sim", "create-vm", "k", "--hypervisor", "kvm", "--disk", f"kd:{size}")
        if img is not None:  # the XEN guest and a GRUB legacy shell disk
            run("sim", "import", "x", "xd", str(img / "xen.img"))
            run("sim", "import", "k", "kd", str(img / "shell-legacy.img"))
        start = time.perf_counter()
        run("prepare", "-x", "xd", "-k", "kd", "-y")
        run("sim", "power", "on", "k")
        return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    rounds = p.parse_args().rounds
    img = image()
    print(f"data: {img or 'sim content (build the boot images for a real guest)'}")
    med = {}
    for size in ("1G", "1T"):
        times = [downtime(size, img) for _ in range(rounds)]
        med[size] = statistics.median(times)
        print(f"{size} XEN disk: prepare + power-on {med[size]:.3f} s "
              f"(median of {rounds}: {', '.join(f'{t:.3f}' for t in times)})")
    print(f"ratio 1 TiB / 1 GiB: {med['1T'] / med['1G']:.2f}")


if __name__ == "__main__":
    main()
