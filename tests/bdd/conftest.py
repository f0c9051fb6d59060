"""Step definitions. They drive the tool through its command lines and assert on observable
state (volume bytes, tags, sizes, dm tables and status) read back through the rig."""

from __future__ import annotations

import hashlib
import re
import stat
import sys

import pytest
from pytest_bdd import given, parsers, then, when

from xen2kvm import mbr
from xen2kvm.dmstatus import parse_status
from xen2kvm.throttle import UNTHROTTLED_KIB
from xen2kvm.units import SECTOR, parse_size


@pytest.fixture
def before(rig):
    """The world's fingerprint before the latest command (for "nothing changed")."""
    return {"fp": rig.fingerprint()}


def _n_of(rig, volume: str) -> int:
    parts = mbr.parse(rig.read_volume(volume, 0, SECTOR))
    assert parts, f"{volume} has no partition table"
    return parts[0].start_sectors


def _offset(rig, disk: str, where: str) -> int:
    """'partition offset 4K' is relative to partition 1; 'offset 4K' is raw."""
    kind, _, value = where.rpartition(" ")
    base = _n_of(rig, disk) * SECTOR if kind.strip() == "partition offset" else 0
    return base + parse_size(value)


# Given ---------------------------------------------------------------------------------------
@given(parsers.parse('a {hv} VM "{vm}" with disk "{disk}" of {size}'))
def create_vm(rig, hv, vm, disk, size):
    rig.create_vm(vm, hv.lower(), disk, parse_size(size))


@given(parsers.parse('volumes "{names}" of {size} each'))
@given(parsers.parse('a volume "{names}" of {size}'))
def create_volumes(rig, names, size):
    for name in names.split(","):
        rig.create_volume(name, parse_size(size))


@given(parsers.parse("the resync speed is limited to {kib:d} KiB/s"))
def limit_speed(rig, kib):
    rig.ok(f"xen2kvm tune --max {kib} -y")


@given(parsers.parse('disk "{xen}" is prepared for "{kvm}" and VM "{vm}" runs'))
def prepared_and_running(rig, xen, kvm, vm):
    rig.ok(f"xen2kvmDisk -y -x {xen} -k {kvm}")
    rig.power(vm, "on")


@given(parsers.parse('disk "{xen}" is migrated to "{kvm}" of VM "{vm}"'))
def migrated(rig, xen, kvm, vm):
    prepared_and_running(rig, xen, kvm, vm)
    rig.ok(f"xen2kvm sync {vm} --wait -y")
    rig.power(vm, "off")


@given(parsers.parse('VM "{vm}" is moved to a KVM hypervisor'))
def move_to_kvm(rig, vm):
    rig.move_to_kvm(vm)


@given(parsers.parse('VM "{vm}" is powered on'))
@when(parsers.parse('VM "{vm}" is powered on'))
def power_on(rig, vm):
    rig.power(vm, "on")


@when(parsers.parse('VM "{vm}" is powered off'))
def power_off(rig, vm):
    rig.power(vm, "off")


def _helper(rig, tmp_path, body: str) -> None:
    path = tmp_path / "helper.py"  # one path: fixing the helper means rewriting it
    path.write_text(f"#!{sys.executable}\nimport sys\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    rig.vars["helper"] = str(path)


@given(parsers.parse('a helper that writes "{text}" at byte {offset:d} of its device'))
def helper_writes(rig, tmp_path, text, offset):
    _helper(rig, tmp_path, f"with open(sys.argv[1], 'r+b') as f:\n"
                           f"    f.seek({offset})\n    f.write({text.encode()!r})")


@given(parsers.parse('a helper that fails with "{message}"'))
def helper_fails(rig, tmp_path, message):
    _helper(rig, tmp_path, f"sys.exit({message!r})")


@given(parsers.parse("the host's dm raid target reports version {version}"))
def raid_version(rig, version):
    rig.set_raid_version(version)


@given("another xen2kvm run holds the host lock", target_fixture="lock")
def hold_lock(rig, request):
    cm = rig.holding_lock()
    cm.__enter__()
    request.addfinalizer(lambda: cm.__exit__(None, None, None))
    return cm


# When ----------------------------------------------------------------------------------------
@when(parsers.parse('I run "{command}"'))
def run_command(rig, before, command):
    before["fp"] = rig.fingerprint()
    rig.run(command)


@when(parsers.parse('the guest of VM "{vm}" writes {length} bytes at {where} of disk "{disk}" '
                    "with seed {seed:d}"))
def guest_write(rig, vm, length, where, disk, seed):
    rig.guest_write(vm, disk, _offset(rig, disk, where), parse_size(length), seed)


@when("the resync advances")
def resync_advances(rig):
    rig.advance(2)


@when(parsers.parse('the resync of disk "{disk}" finishes'))
def resync_finishes(rig, disk):
    rig.wait_resync(lambda: _status(rig, disk))


@when(parsers.parse('volume "{volume}" is grown by {size} behind the tool\'s back'))
def grow_behind(rig, volume, size):
    rig.grow_behind_back(volume, parse_size(size))


@when(parsers.parse('the metadata of leg 1 of disk "{disk}" is wiped'))
def wipe_meta(rig, disk):
    rig.wipe(f"x2km1-{disk}", 4096)


@when(parsers.parse('the KVM volume "{volume}" runs out of space'))
def out_of_space(rig, volume):
    rig.set_failing(volume, True)


@when(parsers.parse('the KVM volume "{volume}" has room again'))
def room_again(rig, volume):
    rig.set_failing(volume, False)


# Then ----------------------------------------------------------------------------------------
@then("the command succeeds")
def succeeds(rig):
    assert rig.last.rc == 0, rig.last


@then(parsers.parse('the command fails with "{message}"'))
def fails_with(rig, message):
    assert rig.last.rc != 0, rig.last
    assert message in rig.last.err, rig.last


@then(parsers.parse('the command is refused with "{message}"'))
def refused(rig, before, message):
    fails_with(rig, message)
    lines = [line for line in rig.last.err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got {lines}"
    assert rig.fingerprint() == before["fp"], "a refused command changed the world"


@then("nothing changed")
def nothing_changed(rig, before):
    assert rig.fingerprint() == before["fp"]


@then(parsers.parse('the output contains "{text}"'))
def output_contains(rig, text):
    assert text in rig.last.out, rig.last


def _progress(rig, disk: str) -> float:
    m = re.search(rf"{re.escape(disk)}: syncing ([\d.]+)%", rig.last.out)
    assert m, rig.last
    return float(m.group(1))


@then(parsers.parse('the output shows progress of disk "{disk}"'))
def shows_progress(rig, disk):
    pct = _progress(rig, disk)
    assert 0 < pct < 100
    rig.vars["progress"] = str(pct)


@then(parsers.parse('the output shows more progress of disk "{disk}"'))
def shows_more_progress(rig, disk):
    assert _progress(rig, disk) > float(rig.vars["progress"])


@then(parsers.parse('volume "{name}" exists'))
def exists(rig, name):
    assert name in rig.volumes()


@then(parsers.parse('volume "{name}" does not exist'))
def not_exists(rig, name):
    assert name not in rig.volumes()


@then(parsers.parse('volume "{name}" has tag "{key}" = "{value}"'))
def has_tag(rig, name, key, value):
    assert rig.volumes()[name].tags.get(key) == value, rig.volumes()[name]


@then(parsers.parse('volume "{name}" has no tag "{key}"'))
def has_no_tag(rig, name, key):
    assert key not in rig.volumes()[name].tags, rig.volumes()[name]


@then(parsers.parse('volume "{name}" is {size} plus {n:d} sectors'))
def size_is(rig, name, size, n):
    assert rig.volumes()[name].size_bytes == parse_size(size) + n * SECTOR


@then(parsers.parse('volume "{name}" has one Linux partition starting at sector {start:d} '
                    "holding {count:d} sectors"))
def partition(rig, name, start, count):
    parts = mbr.parse(rig.read_volume(name, 0, SECTOR))
    assert parts == [mbr.Partition(start, count, 0x83)], parts


@then(parsers.parse('volume "{a}" holds the same bytes as volume "{b}"'))
def same_bytes(rig, a, b):
    va, vb = rig.volumes()[a], rig.volumes()[b]
    size = max(va.size_bytes, vb.size_bytes)
    assert rig.read_volume(a, 0, size) == rig.read_volume(b, 0, size)


def _expected(rig, xen: str, kvm: str, start: int) -> bytes:
    data = bytearray(rig.xen_data[xen])
    for _vm, disk, offset, blob in rig.writes:
        if disk == kvm and offset >= start:
            data[offset - start: offset - start + len(blob)] = blob
    return bytes(data)


@then(parsers.parse('volume "{kvm}" holds the XEN data of "{xen}" plus every guest write '
                    "from {where}"))
def holds_xen_plus_writes(rig, kvm, xen, where):
    kind, _, value = where.partition(" ")
    start = int(value) * SECTOR if kind == "sector" else parse_size(value)
    want = _expected(rig, xen, kvm, start)
    got = rig.read_volume(kvm, start, len(want))
    if got != want:
        first = next(i for i in range(len(want)) if got[i] != want[i])
        raise AssertionError(f"{kvm} differs from the expected data at byte {first}")


@then(parsers.parse('VM "{vm}" sees the XEN data of "{xen}" on disk "{disk}" from sector {n:d}'))
def vm_sees(rig, vm, xen, disk, n):
    want = rig.xen_data[xen]
    assert rig.guest_read(vm, disk, n * SECTOR, len(want)) == want


@then(parsers.parse('VM "{vm}" uses volume "{volume}" directly'))
def uses_directly(rig, vm, volume):
    assert rig.vm_device(vm, volume) == f"/dev/storpool/{volume}"


@then(parsers.parse('volume "{name}" has "{text}" at byte {offset:d}'))
def has_text(rig, name, text, offset):
    assert rig.read_volume(name, offset, len(text)) == text.encode()


@then(parsers.parse('volume "{name}" does not have "{text}" at byte {offset:d}'))
def has_not_text(rig, name, text, offset):
    assert rig.read_volume(name, offset, len(text)) != text.encode()


def _raid_name(rig, disk: str) -> str:
    names = [n for n in rig.dm_tables() if n.endswith(f"-{disk}") and n.startswith("xen2kvm-")]
    assert len(names) == 1, rig.dm_tables()
    return names[0]


def _status(rig, disk: str):
    return parse_status(rig.dm_status(_raid_name(rig, disk)))


@then(parsers.parse('disk "{disk}" is in phase "{phase}"'))
def in_phase(rig, disk, phase):
    r = rig.ok("xen2kvm status --json")
    import json

    rows = [row for row in json.loads(r.out) if row["disk"] == disk]
    assert rows and rows[0]["phase"] == phase, rows


@then(parsers.parse('the raid1 table of disk "{disk}" contains "{text}"'))
def table_contains(rig, disk, text):
    assert f" {text} " in f" {rig.dm_tables()[_raid_name(rig, disk)]} "


@then(parsers.parse('the raid1 table of disk "{disk}" does not contain "{text}"'))
def table_lacks(rig, disk, text):
    assert f" {text} " not in f" {rig.dm_tables()[_raid_name(rig, disk)]} "


@then(parsers.parse('the raid1 of disk "{disk}" has 2 legs and resumed above 0'))
def resumed(rig, disk):
    st = _status(rig, disk)
    assert st.devices == 2 and st.done > 0, st


@then(parsers.parse('the raid1 of disk "{disk}" has 1 leg'))
def one_leg(rig, disk):
    assert _status(rig, disk).devices == 1


@then(parsers.parse("the host's \"{key}\" is {value:d}"))
def sysctl_is(rig, key, value):
    assert rig.sysctl(key) == value


@then(parsers.parse('the resync of disk "{disk}" copies at most {kib:d} KiB per second'))
def rate_at_most(rig, disk, kib):
    rig.assert_rate_at_most(lambda: _status(rig, disk), kib)


# data safety: edges ----------------------------------------------------------------------------
# features/data_safety_edges.feature (issue 10, findings 7-12). The rig-specific parts (the API,
# the host's settings, the lock folder) are rig methods; @storpoolonly steps exist on the
# StorPool rigs only.
# (recording the content and "volume X holds its recorded content": the guards block below)
@given(parsers.parse('the StorPool API answers "{shape}" to the next "{call}"'))
def api_misreplies(rig, shape, call):
    rig.misreply(call, shape)


@given("the host's lock folder is a symlink planted by someone else", target_fixture="planted")
def lock_symlink(rig):
    folder = rig.lock_folder()
    target = folder.with_name(folder.name + "-elsewhere")
    if folder.exists():  # the fake's folder holds its state: move it, the link still reads
        folder.rename(target)
    else:
        target.mkdir(parents=True)
    folder.symlink_to(target)
    return {"target": target, "files": sorted(p.name for p in target.iterdir())}


@given("the host's lock folder is writable by others")
def lock_world_writable(rig):
    rig.lock_folder().mkdir(parents=True, exist_ok=True)
    rig.lock_folder().chmod(0o777)


@given("SP_AUTH_TOKEN is set in the environment")
def token_in_env(rig, monkeypatch):
    monkeypatch.setenv("SP_AUTH_TOKEN", rig.token)


@given("a helper that writes the names of its secret-looking variables at byte 4096 of its "
       "device")
def helper_lists_secrets(rig, tmp_path):
    _helper(rig, tmp_path, "import os\nnames = [k for k in os.environ if any(w in k.upper() "
                           "for w in ('TOKEN', 'PASSWORD', 'SECRET'))]\n"
                           "with open(sys.argv[1], 'r+b') as f:\n    f.seek(4096)\n"
                           "    f.write(('SECRETS:' + ','.join(names) + '|').encode())")


@given("XEN2KVM_LOCK_DIR names a file")
def lock_dir_is_file(rig, tmp_path, monkeypatch):
    path = tmp_path / "not-a-folder"
    path.write_text("x")
    monkeypatch.setenv("XEN2KVM_LOCK_DIR", str(path))


@given(parsers.parse('this host\'s "{setting}" is broken'))
def broken_setting(rig, setting):
    rig.break_setting(setting)


@when(parsers.parse('the API is sent "{path}" with body "{body}"'), target_fixture="reply")
def api_request(rig, path, body):
    return rig.api(path, body.encode())


@then(parsers.parse('the command stops with exit {code:d} and one line naming "{text}"'))
def stops_with(rig, code, text):
    lines = rig.last.err.splitlines()
    assert rig.last.rc == code and len(lines) == 1, rig.last
    assert text in lines[0] and "rerun" in lines[0], lines


@then("every recorded volume holds its recorded content")
def all_hold_recorded(rig):
    assert {name: _digest(rig, name) for name in rig.recorded} == rig.recorded


@then("the folder the symlink points to is unchanged")
def planted_target_unchanged(planted):
    assert sorted(p.name for p in planted["target"].iterdir()) == planted["files"]


@then(parsers.parse('the API answers HTTP {status:d} with error "{name}"'))
def api_answered(reply, status, name):
    assert reply[0] == status and reply[1]["error"]["name"] == name, reply


# data safety: recovery points ------------------------------------------------------------------
# Every pre-existing volume is remembered as (size, tags, sha256 of all its bytes) before the
# tool runs; abort must give back exactly that, on the fake and in the kernel lab.
PHASES = ("prepared", "assembled", "syncing", "synced", "migrated", "released", "cleaned")
PAIRS = {"kdisk": ("ldisk", "kvmlnx"), "kwdisk": ("wdisk", "kvmwin"), "ldisk": ("ldisk", "lnx1")}


@pytest.fixture
def remembered():
    return {}


@given(parsers.parse('the volumes "{names}" are remembered'))
def remember(rig, remembered, names):
    for name in names.split(","):
        remembered[name] = rig.volume_state(name)


@then(parsers.parse('volumes "{names}" are as remembered'))
def as_remembered(rig, remembered, names):
    for name in names.split(","):
        size, tags, digest = rig.volume_state(name)
        want = remembered[name]
        assert (size, tags) == want[:2], (name, size, tags, want)
        assert digest == want[2], f"{name}: its bytes differ from before xen2kvm"


@then(parsers.parse('volume "{name}" is not as remembered'))
def not_as_remembered(rig, remembered, name):
    assert rig.volume_state(name)[2] != remembered[name][2]


@then(parsers.parse('snapshot "{snap}" holds the remembered data of "{name}"'))
def snapshot_holds(rig, remembered, snap, name):
    size, _, digest = remembered[name]
    assert rig.snapshot_digest(snap) == (size, digest)


@then(parsers.parse('snapshot "{snap}" does not exist'))
def snapshot_gone(rig, snap):
    assert snap not in rig.snapshots()


@then(parsers.parse('the undo points of "{disk}" hold every guest write to it'))
def undo_has_writes(rig, disk):
    """Abort is undoable: what the guest wrote is in the undo point of the volume, or, before
    the resync copied it, in the undo point of the clone (its partition 1)."""
    snaps = rig.snapshots()
    kvm, clone = f"x2kundo1-{disk}", f"x2kundo1-xen-{PAIRS[disk][0]}"
    assert kvm in snaps, snaps
    for _vm, d, offset, blob in rig.writes:
        if d == disk and rig.read_snapshot(kvm, offset, len(blob)) != blob:
            assert clone in snaps and offset >= 32 * SECTOR, (d, offset, snaps)
            assert rig.read_snapshot(clone, offset - 32 * SECTOR, len(blob)) == blob


@then(parsers.parse('no volume of xen2kvm is left for "{disk}"'))
def nothing_of_ours(rig, disk):
    left = [n for n, v in rig.volumes().items()
            if v.tags.get("kvm") == disk or n == f"x2kold-{disk}"]
    assert not left, left


@when(parsers.parse("the {k:d}th change to the cluster fails"))
def change_fails(rig, k):
    rig.fail_change(k)


def _run_a_while(rig, vm: str, disk: str, seed: int, start: int) -> None:
    rig.guest_write(vm, disk, start + 65536 * seed, 65536, seed)


def _case2_to(rig, xen: str, kvm: str, vm: str, phase: str) -> None:
    i = PHASES.index(phase)
    rig.ok(f"xen2kvmDisk -y -x {xen} -k {kvm}")
    if i >= 1:
        rig.power(vm, "on")
        _run_a_while(rig, vm, kvm, 11, 32 * SECTOR)
    if i >= 2:
        rig.ok(f"xen2kvm sync {vm} -y")
        rig.advance(2)
        _run_a_while(rig, vm, kvm, 12, 32 * SECTOR)
    if i >= 3:
        rig.wait_resync(lambda: _status(rig, kvm))
    if i >= 4:
        rig.ok(f"xen2kvm sync {vm} --wait -y")
    if i >= 5:
        rig.power(vm, "off")
    if i >= 6:
        rig.ok(f"xen2kvmDisk -y -z -m {vm}")
    in_phase(rig, kvm, phase)


@when(parsers.parse('the migration of "{disk}" is taken to phase "{phase}" and the VM is off'))
def take_to_phase(rig, disk, phase):
    xen, vm = PAIRS[disk]
    if phase == "case-1":
        rig.ok(f"xen2kvmDisk -y -x {xen} -k {disk} -b")
        rig.power(vm, "on")
        _run_a_while(rig, vm, disk, 13, 0)
    elif phase == "in-place":
        rig.move_to_kvm(vm)
        rig.ok(f"xen2kvmDisk -y -x {disk} -k {disk}")
        rig.power(vm, "on")
        _run_a_while(rig, vm, disk, 14, 32 * SECTOR)
        rig.ok(f"xen2kvm sync {vm} --wait -y")
    else:
        _case2_to(rig, xen, disk, vm, phase)
    if rig.is_running(vm):
        rig.power(vm, "off")


# operator completeness ------------------------------------------------------------------------
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def _size_of(text: str) -> float:
    number, unit = text.split()
    return float(number) * _UNITS[unit]


@given(parsers.parse("the cluster has {size} of raw space free"))
@when(parsers.parse("the cluster's free space shrinks to {size}"))
def space_free(rig, size):
    rig.set_free(parse_size(size))


@given(parsers.parse("the space margin is {pct:d}%"))
def space_margin(monkeypatch, pct):
    monkeypatch.setenv("XEN2KVM_SPACE_MARGIN", str(pct))


@then("the refusal names a need larger than the free space")
def need_and_free(rig):
    m = re.search(r"needs ([\d.]+ \w+) in placement group .* reports ([\d.]+ \w+) free",
                  rig.last.err)
    assert m, rig.last
    assert _size_of(m.group(1)) > _size_of(m.group(2)), rig.last


@then("the command succeeds without a warning")
def no_warning(rig):
    assert rig.last.rc == 0 and "warning" not in rig.last.err, rig.last


@then(parsers.parse('the command succeeds with the warning "{text}"'))
def with_warning(rig, text):
    assert rig.last.rc == 0, rig.last
    assert any("warning:" in line and text in line for line in rig.last.err.splitlines()), \
        rig.last


@then(parsers.parse('disk "{disk}" needs {copies:d} copies of {n:d} sectors plus {size}, '
                    "of {free} free"))
def status_space(rig, disk, copies, n, size, free):
    import json

    row = next(r for r in json.loads(rig.last.out) if r["disk"] == disk)
    need = copies * (n * SECTOR + parse_size(size))
    assert row["need_bytes"] == need and row["group_need_bytes"] == need, row
    # the metadata devices' superblocks may take a few blocks after the figure was set
    assert 0 <= parse_size(free) - row["free_bytes"] < 1 << 20, row


# adaptive throttle ----------------------------------------------------------------------------
# The guest's load and the latency it saw are the fake's model (backends/fake/latency.py): the
# truth the throttle is judged by, read from the model, not from what the tool printed.
@given(parsers.parse('a {hv} VM "{vm}" with a large disk "{disk}" of {size}'))
def create_large_vm(rig, hv, vm, disk, size):
    """Without the rig's copy of the whole XEN disk: the throttle needs size, not contents."""
    rig.ok(f"xen2kvm sim create-vm {vm} --hypervisor {hv.lower()} --disk {disk}:{size}")


@given(parsers.parse("the operator set the resync limits to {low:d} and {high:d} KiB/s"))
def operator_limits(rig, low, high):
    rig.ok(f"xen2kvm tune --min {low} --max {high} -y")


@given(parsers.parse('the guest of VM "{vm}" writes {iops:d} blocks of 4 KiB per second to disk '
                     '"{disk}"'))
def guest_load(rig, vm, iops, disk):
    rig.ok(f"xen2kvm sim load {vm} {disk} {iops}")
    rig.vars.update(load_vm=vm, load_disk=disk, load_t0=str(rig.backends().cluster.clock))


@given(parsers.parse("from {after:d} s on it writes {iops:d} blocks per second"))
def guest_load_later(rig, after, iops):
    rig.ok(f"xen2kvm sim load {rig.vars['load_vm']} {rig.vars['load_disk']} {iops} "
           f"--after {after}")


def _history(rig) -> list[tuple[float, float, float | None]]:
    """(seconds since the load began, resync KiB/s, latency ms) of each modelled interval."""
    from xen2kvm import naming

    b = rig.backends()
    dev = b.host.state.dm[naming.dm_raid(rig.vars["load_vm"], rig.vars["load_disk"])]
    t0 = float(rig.vars["load_t0"])
    return [(t - t0, kib, lat) for t, kib, lat in dev.io.history]


@given(parsers.parse("an adaptive sync was killed while it held the resync at {kib:d} KiB/s"))
def killed_adaptive(rig, kib):
    import json

    from xen2kvm import steering

    b = rig.backends()
    host = b.host
    host.note_set(steering.NOTE, json.dumps(steering.read_limits(host)))
    for key in (steering.SPEED_MIN, steering.SPEED_MAX):
        host.sysctl_set(key, kib)
    b.close()


@then(parsers.parse("the guest's write latency stayed within {factor:f} times its idle latency, "
                    "but in the interval its load rose and the {probe:d} intervals the throttle "
                    "probed full speed"))
def latency_within(rig, factor, probe):
    hist = _history(rig)
    idle = min(lat for _, _, lat in hist if lat is not None)
    rose = {t for (t, _, lat), (_, _, prev) in zip(hist[1:], hist) if (lat or 0) > (prev or 0)
            and t > 0 and any(abs(t - s) < 1e-9 for s in _load_changes(rig))}
    probed = {t for t, kib, lat in hist if kib == UNTHROTTLED_KIB and lat is not None}
    assert len(probed) == probe, sorted(probed)
    rose |= probed
    assert hist and all(lat is None or lat <= factor * idle for t, _, lat in hist
                        if t not in rose), [h for h in hist if h[2] and h[2] > factor * idle]


def _load_changes(rig) -> list[float]:
    from xen2kvm import naming

    b = rig.backends()
    dev = b.host.state.dm[naming.dm_raid(rig.vars["load_vm"], rig.vars["load_disk"])]
    return [s - float(rig.vars["load_t0"]) for s, _ in dev.io.schedule]


@then(parsers.parse("the resync ran under {pct:d} % of its rate before the burst from {lo:d} s "
                    "to {hi:d} s"))
def slower_in_burst(rig, pct, lo, hi):
    hist = _history(rig)
    start = min(s for s in _load_changes(rig) if s > 0)
    before = [kib for t, kib, _ in hist if start - 1 <= t < start]
    during = [kib for t, kib, _ in hist if lo <= t < hi]
    assert before and during and before[0] > 0
    assert max(during) < pct / 100 * before[0], (before, during)
    assert min(during) > 0  # slowed, not stopped


@then(parsers.parse("the resync ran at {kib:d} KiB/s from {lo:d} s on"))
def full_speed_when_idle(rig, kib, lo):
    hist = [h for h in _history(rig) if h[0] >= lo]
    assert hist and hist[0][1] == kib
    assert all(rate in (kib, 0) or rate <= kib for _, rate, _ in hist)


@then(parsers.parse("the guest's write latency stayed between {lo:f} and {hi:f} ms once the "
                    "copy was steered"))
def latency_band(rig, lo, hi):
    # from the 6th steered interval; not the last (the copy ends inside it)
    steered = [lat for _, kib, lat in _history(rig) if kib > 5000][5:-1]
    assert steered and all(lo <= lat <= hi for lat in steered), steered


@then(parsers.parse('the output does not contain "{text}"'))
def output_lacks(rig, text):
    assert text not in rig.last.out, rig.last


# data safety: guards ---------------------------------------------------------------------------
def _digest(rig, name: str) -> tuple[int, str]:
    size = rig.volumes()[name].size_bytes
    return size, hashlib.sha256(rig.read_volume(name, 0, size)).hexdigest()


@given(parsers.parse('I run "{command}"'))
def given_run(rig, before, command):
    run_command(rig, before, command)


@given("the content of every volume is recorded")
@when("the content of every volume is recorded")
def record_content(rig):
    rig.recorded = {name: _digest(rig, name) for name in rig.volumes()}


@then("every volume holds its recorded content")
def every_volume_as_recorded(rig):
    for name, want in rig.recorded.items():
        assert name in rig.volumes(), f"{name} is gone"
        assert _digest(rig, name) == want, f"{name} changed"


@then(parsers.parse('volume "{name}" holds its recorded content'))
def volume_as_recorded(rig, name):
    assert _digest(rig, name) == rig.recorded[name], f"{name} changed"


@then(parsers.parse('volume "{name}" holds the recorded content of "{other}"'))
def volume_holds_other(rig, name, other):
    assert _digest(rig, name) == rig.recorded[other]


@then(parsers.parse('the error says "{text}"'))
def error_says(rig, text):
    assert text in rig.last.err, rig.last


@then(parsers.parse('the command fails with exit code {code:d} and "{message}"'))
def fails_with_code(rig, code, message):
    assert rig.last.rc == code and message in rig.last.err, rig.last
    assert len(rig.last.err.strip().splitlines()) == 1, rig.last


@given(parsers.parse('disk "{disk}" holds a bare ext4 filesystem'))
def bare_ext4(rig, disk):
    rig.make_ext4(disk)


@given(parsers.parse('"{command}" crashed before its step {step}'))
def crashed_before(rig, command, step):
    r = rig.crash_before(step, command)
    assert r.rc == 4 and "simulated failure" in r.err, r


@when(parsers.parse('"{first}" runs while another "{later}" waits between its plan and its '
                    "lock"))
def race_before_lock(rig, first, later):
    rig.race("lock", first, later)


@when(parsers.parse('"{first}" on host "{host}" runs while another "{later}" holds its claims'))
def race_after_claim(rig, first, host, later):
    rig.race("claim", first, later, host)


@then("both commands succeed")
def both_succeed(rig):
    assert rig.raced[0].rc == 0 and rig.raced[1].rc == 0, rig.raced


@then(parsers.parse('the later one says "{text}"'))
def later_says(rig, text):
    assert text in rig.raced[1].out, rig.raced


@then("the later one succeeds")
def later_succeeds(rig):
    assert rig.raced[1].rc == 0, rig.raced


@then(parsers.parse('the interleaved command is refused with "{message}" and "{more}"'))
def interleaved_refused(rig, message, more):
    r = rig.raced[0]
    assert r.rc == 3 and message in r.err and more in r.err, r
    assert len(r.err.strip().splitlines()) == 1, r


@then("no volume carries a claim")
def no_claims(rig):
    from xen2kvm import naming

    held = {n: naming.claims(v.tags) for n, v in rig.volumes().items() if naming.claims(v.tags)}
    assert not held, held


@given(parsers.parse('a run on host "{host}" that died left its claim on volume "{volume}"'))
def dead_claim(rig, host, volume):
    from xen2kvm import naming

    rig.set_tags(volume, {naming.claim_key(host, 999999, "dead00"): "1"})


@given(parsers.parse('the XEN guest of VM "{vm}" writes {length} bytes at offset {where} of disk '
                     '"{disk}" with seed {seed:d}'))
def xen_guest_write(rig, vm, length, where, disk, seed):
    rig.xen_guest_write(vm, disk, parse_size(where), parse_size(length), seed)


@given(parsers.parse("the fake cluster's state {damage}"))
def damage_state(rig, damage):
    rig.damage_state(damage)
    rig.damaged = rig.state_listing()


@then(parsers.parse("the fake cluster's state is still {damage}"))
def still_damaged(rig, damage):
    assert rig.state_listing() == rig.damaged
