"""What `sync --wait` shows while it waits: on a terminal a live view (rich) with one row per
disk — phase, a bar and percent, rate, ETA and the free space left in its placement group —
and off a terminal plain lines, one per disk and round, that logs and pipes keep."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from typing import Optional

from . import capacity, plans
from .phases import Phase
from .world import World


@dataclass
class Row:
    vm: str
    disk: str
    phase: str
    done: Optional[int]  # sectors
    total: Optional[int]
    rate: Optional[float]  # bytes per second
    eta: Optional[float]  # seconds
    free: Optional[int]  # raw bytes left in the disk's placement group after the migrations
    host: str = ""

    @property
    def percent(self) -> Optional[float]:
        return 100.0 * self.done / self.total if self.total else None


def clock(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def rate_text(rate: Optional[float]) -> str:
    return "-" if rate is None else capacity.size_text(int(rate)) + "/s"


class Sampler:
    """Rates and ETAs from successive samples of each disk's progress, on the caller's clock
    (the time `sync --wait` waited: virtual on the fake, real on a host)."""

    def __init__(self) -> None:
        self.prev: dict[tuple[str, ...], tuple[float, int]] = {}

    def row(self, key: tuple[str, ...], phase: str, done: Optional[int],
            total: Optional[int], free: Optional[int], now: float) -> Row:
        rate = eta = None
        last = self.prev.get(key)
        if phase == Phase.SYNCING and done is not None and last and now > last[0]:
            rate = max(done - last[1], 0) * 512 / (now - last[0])
            eta = (total - done) * 512 / rate if rate else None
        if done is not None:
            self.prev[key] = (now, done)
        *host, vm, disk = key
        return Row(vm, disk, phase, done, total, rate, eta, free, "".join(host))

    def rows(self, w: World, vm: Optional[str], survey: capacity.Survey, now: float) -> list[Row]:
        out = []
        for vm_name, disks in sorted(plans.vm_disks(w, vm).items()):
            for d in disks:
                st = d.status
                grp = survey.groups.get(survey.disks.get(d.kvm, (0, ""))[1])
                out.append(self.row((vm_name, d.disk), d.phase, st.done if st else None,
                                    st.total if st else None, grp.after() if grp else None,
                                    now))
        return out


def plain(row: Row) -> str:
    pct = "-" if row.percent is None else f"{row.percent:.1f}%"
    free = "-" if row.free is None else capacity.size_text(row.free)
    host = f"{row.host}: " if row.host else ""
    return (f"{host}{row.vm} {row.disk}: {row.phase} {pct} rate {rate_text(row.rate)} "
            f"ETA {clock(row.eta)} free after {free}")


def table(rows: list[Row]):
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    t = Table(title="xen2kvm sync --wait (Ctrl-C leaves the resync running)", expand=False)
    hosts = any(r.host for r in rows)
    for head in ("HOST",) * hosts + ("VM", "DISK", "PHASE", "PROGRESS", "", "RATE", "ETA",
                                     "FREE AFTER"):
        t.add_column(head, justify="right" if head in ("", "RATE", "ETA") else "left")
    for r in rows:
        bar = ProgressBar(total=r.total or 1, completed=r.done or 0, width=24)
        pct = "-" if r.percent is None else f"{r.percent:5.1f}%"
        free = "-" if r.free is None else capacity.size_text(r.free)
        t.add_row(*(r.host,) * hosts, r.vm, r.disk, r.phase, bar, pct, rate_text(r.rate),
                  clock(r.eta), free)
    return t


class _Notes(io.TextIOBase):
    """The run's own lines, printed above the live view (the progress notes are the view)."""

    def __init__(self, console) -> None:
        self.console, self.buf = console, ""

    def write(self, text: str) -> int:
        self.buf += text
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            if ": syncing " not in line:
                self.console.print(line, markup=False, highlight=False)
        return len(text)


class Screen:
    """A live view when `out` is the terminal, else plain lines; `draw` after every round."""

    def __init__(self, out, waiting: bool):
        self.out, self.waiting, self.live = out, waiting, None
        if waiting and out is sys.stdout and out.isatty():  # rich only then: it costs an import
            from rich.console import Console
            from rich.live import Live

            console = Console(file=sys.stdout)
            if console.is_terminal:  # rich's own judgement too (TERM=dumb, …)
                self.live = Live(table([]), console=console, refresh_per_second=4)
        self.notes = _Notes(self.live.console) if self.live is not None else out

    def __enter__(self):
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.stop()

    def draw(self, rows: list[Row]) -> None:
        if self.live is not None:
            self.live.update(table(rows))
        elif self.waiting:
            for row in rows:
                print(plain(row), file=self.out)


class View(Screen):
    """`sync --wait` on one host: the run's own lines go above the view."""

    def __init__(self, ctx, vm: Optional[str], waiting: bool):
        super().__init__(ctx.out, waiting)
        self.ctx, self.vm, self.sampler = ctx, vm, Sampler()

    def __enter__(self) -> View:
        super().__enter__()
        self.saved, self.ctx.out = self.ctx.out, self.notes
        return self

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self.ctx.out = self.saved

    def show(self, w: World, now: float) -> None:
        if self.waiting:
            survey = capacity.Survey.read(w, self.ctx.storage)
            self.draw(self.sampler.rows(w, self.vm, survey, now))


def interrupted(ctx, vm: Optional[str]) -> int:
    """Ctrl-C while waiting: the kernel goes on copying; say how to watch it again."""
    again = (f"xen2kvmDisk -y -m {vm or ''}".rstrip() if ctx.opts.prog == "xen2kvmDisk"
             else f"xen2kvm sync {vm + ' ' if vm else ''}--wait -y")
    print(f"{ctx.opts.prog}: interrupted: the resync goes on in the kernel; watch it again "
          f"with `{again}` or `xen2kvm status`", file=sys.stderr)
    return 130
