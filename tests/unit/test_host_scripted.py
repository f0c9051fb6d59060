"""The remote host's shell scripts and the dm/host core, against the fail-closed scripted Runner
(tests/scripted.py, scripts in tests/data/scripted/): the exact argv and stdin a host sends,
and what it makes of the answers, including the broken ones. Fast, no root, no sshd."""

from __future__ import annotations

import pytest

from xen2kvm import helper
from xen2kvm.backends.storpool.host import Host, LocalHost
from xen2kvm.backends.storpool.remote_host import RemoteHost
from xen2kvm.errors import DeviceError, HelperFailed
from xen2kvm.naming import DevicePaths
from xen2kvm.throttle import IoCounters

from ..scripted import ScriptedRunner, ScriptMismatch, load

ROOT = "/srv/x2k-dev"  # a device root that is not /dev: every path below must follow it
KD, XD = f"{ROOT}/storpool/kd", f"{ROOT}/storpool/xen-xd"


def _host(script: str, kind=RemoteHost, **kw) -> tuple[Host, ScriptedRunner, list[float]]:
    runner = ScriptedRunner(load(script, root=ROOT), secrets=kw.pop("secrets", ()))
    slept: list[float] = []
    return kind("hv7", runner, ROOT, sleep=slept.append, **kw), runner, slept


# device-mapper goes through the Runner on this host and on a remote one alike
BOTH = pytest.mark.parametrize("kind", [LocalHost, RemoteHost])


def test_block_io_goes_through_dd_base64_and_cmp_on_the_host():
    host, runner, slept = _host("remote-block-io.json")
    assert host.device_path("kd") == KD
    assert host.read(KD, 512, 5) == b"hello"
    assert slept == [pytest.approx(0.1)]  # the node appeared on the second look
    host.write(KD, 1024, b"\x00\x01xen2kvm")
    assert host.first_difference(XD, 512, KD, 1536, 4096) == 9  # cmp counts from 1
    assert host.first_difference(XD, 0, KD, 0, 4096) is None
    with pytest.raises(DeviceError, match=f"read of hv7:{KD} at 0 failed: dd: error reading"):
        host.read(KD, 0, 512)
    runner.done()


@BOTH
def test_the_dm_state_is_read_in_one_round_trip_with_paths_under_the_device_root(kind):
    host, runner, _ = _host("dm-snapshot.json", kind)
    tables, statuses = host.dm_snapshot()
    assert tables == {
        "xen2kvm-vm1-kd": f"0 2080 raid raid1 3 0 region_size 1024 2 {ROOT}/storpool/x2km0-kd "
                          f"{ROOT}/mapper/xen2kvm-vm1-kd-lin {ROOT}/storpool/x2km1-kd {KD}",
        "xen2kvm-vm1-kd-lin": f"0 32 linear {KD} 0\n32 2048 linear {ROOT}/storpool/x2kc-xen-xd 0",
    }
    assert statuses["xen2kvm-vm1-kd"] == "0 2080 raid raid1 2 AA 2080/2080 idle 0 0 -"
    assert host.dm_snapshot() == ({}, {})  # "No devices found"
    assert host.dm_snapshot() == ({}, {})  # no driver (assemble says why)
    with pytest.raises(DeviceError, match="reading dm state on hv7 failed .exit 255.: "
                                          "Connection reset by peer"):
        host.dm_snapshot()  # an answer cut short is never taken for "no devices"
    runner.done()


@BOTH
def test_dm_changes_send_the_table_on_stdin_and_say_why_they_failed(kind):
    host, runner, _ = _host("dm-change.json", kind)
    host.dm_create("xen2kvm-vm1-kd-lin", f"0 32 linear {KD} 0")
    host.dm_reload("xen2kvm-vm1-kd", "0 2080 raid raid1 1 0 1 - -")
    host.dm_remove("xen2kvm-vm1-gone")  # not there: nothing more is sent
    host.dm_remove("xen2kvm-vm1-kd")
    with pytest.raises(DeviceError, match="dmsetup create xen2kvm-vm1-kd on hv7: "
                                          "device-mapper: reload ioctl .* failed: Invalid arg"):
        host.dm_create("xen2kvm-vm1-kd", "0 2080 raid raid1 1 0 1 - -")
    runner.done()


@BOTH
def test_io_counters_come_from_this_tools_statistics_regions(kind):
    host, runner, _ = _host("dm-io.json", kind)
    assert host.dm_io(["xen2kvm-vm1-kd", "xen2kvm-vm2-kd"]) == {
        "xen2kvm-vm1-kd": IoCounters(writes=812, write_ms=40.5),
        "xen2kvm-vm2-kd": IoCounters(writes=0, write_ms=0.0)}
    with pytest.raises(DeviceError, match="I/O counters of xen2kvm-vm1-kd, gone on hv7: "
                                          "device-mapper: message ioctl on gone  failed"):
        host.dm_io(["xen2kvm-vm1-kd", "gone"])
    host.dm_io_stop(["xen2kvm-vm1-kd"])
    runner.done()


def test_sysctls_and_notes_are_commands_on_the_host():
    host, runner, _ = _host("remote-files.json", note_dir="/run/lock/xen2kvm")
    assert host.sysctl_get("dev.raid.speed_limit_max") == 200000
    host.sysctl_set("dev.raid.speed_limit_max", 5000)
    with pytest.raises(DeviceError, match="sysctl dev.raid.speed_limit_min=1 on hv7: "
                                          "sysctl: permission denied on key"):
        host.sysctl_set("dev.raid.speed_limit_min", 1)
    assert host.note_get("limits") is None
    host.note_set("limits", "1000 200000\n")
    assert host.note_get("limits") == "1000 200000\n"
    host.note_set("limits", None)
    with pytest.raises(DeviceError, match="writing /run/lock/xen2kvm/limits on hv7: "
                                          "cat: write error: No space left on device"):
        host.note_set("limits", "x")
    runner.done()


def test_the_helper_runs_on_the_host_with_its_output_prefixed_and_the_token_hidden():
    host, runner, _ = _host("remote-helper.json", secrets=["tok-SECRET"])
    lines: list[str] = []
    host.helper_sink = lines.append
    host.run_helper(["/usr/local/bin/fix-guest", "--dry-run"], "xen-xd")
    assert lines == ["[fix-guest] --- a/etc/fstab", "[fix-guest] +++ b/etc/fstab"]
    with pytest.raises(HelperFailed, match=r"helper /usr/local/bin/fix-guest exited 2: "
                                           r"cannot mount \*\*\*; fix it and rerun"):
        host.run_helper(["/usr/local/bin/fix-guest"], "xen-xd")
    assert "[fix-guest] cannot mount ***" in lines and "tok-SECRET" not in "".join(lines)
    runner.done()


# the scripted Runner itself must be able to fail -----------------------------------------------
def test_a_command_out_of_order_or_unscripted_fails_even_when_the_code_swallows_it():
    runner = ScriptedRunner(load("remote-files.json", root=ROOT))
    host = RemoteHost("hv7", runner, ROOT)
    with pytest.raises(ScriptMismatch, match="the script expects"):
        host.sysctl_set("dev.raid.speed_limit_max", 5000)  # the script starts with a get
    with pytest.raises(ScriptMismatch):
        runner.done()
    runner = ScriptedRunner([])
    try:
        helper.run(runner, ["true"], "/dev/null")
    except Exception:  # noqa: BLE001 -- code under test that swallows everything
        pass
    with pytest.raises(ScriptMismatch, match="not in the script"):
        runner.done()


def test_stdin_is_part_of_the_script():
    runner = ScriptedRunner(load("remote-block-io.json", root=ROOT)[3:5])
    with pytest.raises(ScriptMismatch, match="stdin"):
        RemoteHost("hv7", runner, ROOT).write(KD, 1024, b"other bytes")


def test_device_paths_have_one_source():
    paths = DevicePaths(ROOT)
    assert (paths.volume("kd"), paths.mapper("x")) == (KD, f"{ROOT}/mapper/x")
    assert DevicePaths("/").volume("kd") == "/storpool/kd"
