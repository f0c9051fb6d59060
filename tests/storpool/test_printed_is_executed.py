"""Printed = executed, for every step type: each step runs on the real StorPool backend against
the API emulator with a recording Runner, and what the emulator received (path, JSON body), the
argv the Runner ran (with its stdin) and the bytes written, copied, compared or read must equal
the actions the step prints. A Step subclass without a case here fails the coverage test."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from xen2kvm import actions as a
from xen2kvm import claims, mbr, steering
from xen2kvm import steps as s
from xen2kvm.backends.storpool import StorPoolBackends
from xen2kvm.dmstatus import SUPERBLOCK_MAGIC
from xen2kvm.process import CommandResult, Runner
from xen2kvm.testing.emulator.rules import READS

from .conftest import HOST, OUR_ID

M = 1 << 20
IN_SYNC = "0 2048 raid raid1 2 AA 2048/2048 idle 0 0 -"
# steering.py (branch throttle2) renders its own text; its steps get actions at integration


class RecordingRunner(Runner):
    """Runs nothing: records argv and stdin, answers dmsetup status with an in-sync array."""

    def __init__(self):
        super().__init__()
        self.ran: list[tuple[tuple[str, ...], str | None]] = []
        # the host runs dmsetup under its own environment (no udev, its device root): that
        # prefix is the host's, not the step's, and must be exactly this where dmsetup runs
        self.env_prefix: tuple[str, ...] = ()

    def run(self, argv, input=None, check=True, timeout=None, **kw):
        argv = tuple(argv)
        if "dmsetup" in argv:
            assert argv[:len(self.env_prefix)] == self.env_prefix, argv
        if self.env_prefix and argv[:len(self.env_prefix)] == self.env_prefix:
            argv = argv[len(self.env_prefix):]
        self.ran.append((argv, input))
        out = IN_SYNC + "\n" if list(argv[:2]) == ["dmsetup", "status"] else ""
        return CommandResult(list(argv), 0, out, "", 0.0)


class Observed:
    """The real backends with every request, command and device access recorded."""

    def __init__(self, emu, tmp: Path):
        self.emu, self.dev = emu, str(tmp / "dev")
        self.runner = RecordingRunner()
        self.b = StorPoolBackends(HOST, self.runner)
        self.runner.env_prefix = self.b.host.dm_env
        self.b.host.files.proc_sys = tmp / "sys"
        self.api: list[tuple[str, object]] = []
        self.writes: list[tuple[str, int, bytes]] = []
        self.reads: list[tuple[str, int, int]] = []
        self.compares: list[tuple] = []
        self._wrap_api()
        self._wrap_host()
        self.ctx = SimpleNamespace(storage=self.b.storage, host=self.b.host,
                                   warn=lambda m: None, say=lambda m: None)

    def _wrap_api(self) -> None:
        handle = self.emu.handle

        def recording(query, args, body):
            if query not in READS:
                self.api.append(("/ctrl/1.0/" + "/".join([query, *args]), body))
            return handle(query, args, body)
        self.emu.handle = recording

    def _wrap_host(self) -> None:
        host = self.b.host
        read, write, first = host.read, host.write, host.first_difference

        def rec_read(path, offset, length):
            self.reads.append((self.printed(path), offset, length))
            return read(path, offset, length)

        def rec_write(path, offset, data):
            self.writes.append((self.printed(path), offset, bytes(data)))
            return write(path, offset, data)

        def rec_first(pa, oa, pb, ob, length):
            self.compares.append((self.printed(pa), oa, self.printed(pb), ob, length))
            return first(pa, oa, pb, ob, length)
        host.read, host.write, host.first_difference = rec_read, rec_write, rec_first

    def printed(self, path: str) -> str:
        """A device path as the steps print it (XEN2KVM_DEV_ROOT moves /dev here)."""
        return "/dev" + path[len(self.dev):] if path.startswith(self.dev) else path

    def volume(self, name: str, size: int = 4 * M, data: bytes = b"", attach=False) -> None:
        if name not in self.emu.volumes:  # the coverage test sets both lists up
            self.emu.handle("VolumeCreate", [], {"name": name, "size": size})
        if data:
            with open(self.emu.path(name), "r+b") as f:
                f.write(data)
        if attach:
            self.b.storage.attach(name, HOST)

    def run(self, step: s.Step) -> None:
        """Apply with a clean record (what the setup did is not the step's)."""
        self.api.clear(), self.runner.ran.clear(), self.writes.clear()
        self.reads.clear(), self.compares.clear()
        step.apply(self.ctx)
        self.check(step)

    def check(self, step: s.Step) -> None:
        acts = step.actions()
        api = [(x.path, x.body) for x in acts if isinstance(x, a.ApiCall)]
        assert [(p, _json(b)) for p, b in self.api] == [(p, _json(b)) for p, b in api]
        ran = [(tuple(map(self.printed, argv)), stdin) for argv, stdin in self.runner.ran]
        assert ran == [(x.argv, x.stdin) for x in acts if isinstance(x, a.Run)]
        assert [(p, o, hashlib.sha256(d).hexdigest()) for p, o, d in self.writes
                if not p.startswith("/proc")] == _writes(acts)
        assert self.compares == [(x.a, x.offset_a, x.b, x.offset_b, x.length)
                                 for x in acts if isinstance(x, a.Compare)]
        for x in acts:
            if isinstance(x, a.Remove):
                assert not Path(x.path).exists()
            if isinstance(x, a.Read):
                assert (x.path, x.offset, x.length) in self.reads
            if isinstance(x, a.Write) and x.path.startswith("/proc/sys/"):
                assert (self.b.host.files.proc_sys / x.path[len("/proc/sys/"):]).read_bytes() == \
                    x.payload


def _json(body):
    return json.dumps(body, sort_keys=True)


def _writes(acts) -> list[tuple[str, int, str]]:
    out = []
    for x in acts:
        if isinstance(x, a.Write) and not x.path.startswith("/proc"):
            out.append((x.path, x.offset, x.sha256))
        elif isinstance(x, a.Copy):
            with open(x.source, "rb") as f:
                f.seek(x.source_offset)
                out.append((x.path, x.offset, hashlib.sha256(f.read(x.length)).hexdigest()))
    return out


@pytest.fixture
def obs(emulator, tmp_path):
    return Observed(emulator, tmp_path)


def _rp_tags():
    return {"xen2kvm": "rp", "m": "kd", "g": "1"}


def _storage_cases(o: Observed):
    o.volume("kd", attach=False)
    o.volume("xd")
    yield s.CloneVolume("xen-xd", "xd", {"xen2kvm": "clone", "kvm": "kd"})
    yield s.CreateVolume("x2km0-kd", 4 * M, {"xen2kvm": "meta", "kvm": "kd"})
    yield s.GrowVolume("kd", 16384)
    yield s.SetTags("kd", {"xen": "xen-xd", "gone": None})
    yield s.Attach("kd", HOST, OUR_ID)
    yield s.Detach("kd", HOST, OUR_ID)
    yield s.TakeRecoveryPoint("kd", "x2krp1-kd", _rp_tags())
    yield s.SetSnapshotTags("x2krp1-kd", {"vm": "web1"})
    yield s.RevertVolume("kd", "x2krp1-kd")
    yield s.CreateFromSnapshot("kd2", "x2krp1-kd", {"owner": "onapp"})
    yield s.RenameVolume("kd2", "kd3")
    yield s.DeleteVolume("kd3")
    yield s.DeleteSnapshot("x2krp1-kd")
    yield claims.Claim(("kd",), "x2kclaim.kvm1.1.abc", (("kd", "x2kclaim.kvm9.2.def"),))


def test_storage_steps_send_what_they_print(obs):
    for step in _storage_cases(obs):
        obs.run(step)


def test_unclaim_sends_its_line_for_each_claimed_volume(obs):
    obs.volume("kd")
    obs.volume("ld")
    key = "x2kclaim.kvm1.1.abc"
    obs.run(claims.Claim(("kd", "ld"), key))
    step = claims.Unclaim(key)
    obs.api.clear()
    step.apply(obs.ctx)
    (one,) = step.actions()
    assert obs.api == [(one.path.replace(f"<each volume tagged {key}>", v), one.body)
                       for v in ("kd", "ld")]


def _host_cases(o: Observed, tmp: Path):
    sector0 = bytes(range(256)) * 2
    o.volume("kd", data=sector0 + b"\1" * 16384, attach=True)
    o.volume("xen-kd", data=sector0 + b"\1" * 16384, attach=True)
    o.volume("x2km1-kd", data=SUPERBLOCK_MAGIC, attach=True)
    o.volume("xd", attach=True)
    area = tmp / "boot-area.img"
    area.write_bytes(bytes(range(251)) * 70)
    yield s.CheckClone("xen-kd", "kd", 32)
    yield s.WritePartitionTable("kd", 32, 1000)
    yield s.WriteBootArea("kd", str(area), 32)
    yield s.RunHelper(("/usr/bin/helper", "-v"), "kd")
    yield s.BuildBootArea(("xen2kvm-guest",), "xd", 32, str(area), False, HOST, OUR_ID)
    yield s.DmCreate("xen2kvm-web1-kd-lin", "0 2048 linear /dev/storpool/kd 0")
    yield s.DmReload("xen2kvm-web1-kd", "0 2048 raid raid1 3 0 region_size 1024 2 - a - b")
    yield s.DmRemove("xen2kvm-web1-kd")
    yield s.CheckInSync("xen2kvm-web1-kd")
    yield s.AssembleRaid("xen2kvm-web1-kd", "0 2048 raid raid1 one", None, "x2km1-kd")
    yield s.SysctlSet("dev.raid.speed_limit_min", 5000)
    yield s.CheckNotXenDisk("kd", "xd", HOST, False, OUR_ID)
    yield steering.StopStats(("xen2kvm-web1-kd", "xen2kvm-web2-kd"))
    o.b.host.note_set(steering.NOTE, '{"dev.raid.speed_limit_min": 1000}')
    assert Path(o.b.host.note_path(steering.NOTE)).exists()
    yield steering.ForgetLimits(HOST, o.b.host.note_path(steering.NOTE))


def test_host_steps_run_and_write_what_they_print(obs, tmp_path):
    (tmp_path / "sys" / "dev" / "raid").mkdir(parents=True)
    for step in _host_cases(obs, tmp_path):
        obs.run(step)


@pytest.mark.parametrize("superblock", [True, False])
def test_assemble_prints_the_read_that_picks_the_table_it_loads(obs, superblock):
    obs.volume("x2km1-kd", data=SUPERBLOCK_MAGIC if superblock else bytes(4), attach=True)
    step = s.AssembleRaid("xen2kvm-web1-kd", "0 2048 one leg", "0 2048 two legs", "x2km1-kd")
    read, resume, one = step.actions()
    obs.runner.ran.clear()
    step.apply(obs.ctx)
    assert (read.path, read.offset, read.length) in obs.reads
    loaded = resume if superblock else one
    assert obs.runner.ran == [(loaded.argv, loaded.stdin)]


def test_steps_that_attach_for_a_look_print_both_halves(obs):
    obs.volume("kd", data=bytes(4096))
    obs.volume("xd")
    obs.run(s.CheckNotXenDisk("kd", "xd", HOST, True, OUR_ID))
    obs.run(s.BuildBootArea(("xen2kvm-guest",), "xd", 32, "/run/area.img", True, HOST, OUR_ID))


def test_the_partition_table_write_leaves_the_rest_of_sector_0():
    step = s.WritePartitionTable("kd", 2048, 10_000)
    (write,) = step.actions()
    old = bytes(range(256)) * 2
    assert old[:write.offset] + write.payload == mbr.patch(old, 2048, 10_000)


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_step_type_is_covered(emulator, tmp_path):
    o = Observed(emulator, tmp_path)
    covered = {type(x) for x in _storage_cases(o)}
    covered |= {type(x) for x in _host_cases(o, tmp_path)} | {claims.Unclaim}
    assert set(_subclasses(s.Step)) - covered == set()
