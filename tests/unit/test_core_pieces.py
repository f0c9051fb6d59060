"""Units, naming, MBR bytes, dm tables and dm-raid status parsing."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xen2kvm import dmstatus, dmtables, mbr, naming, units
from xen2kvm.errors import NotFound, PlanError

DATA = Path(__file__).parent.parent / "data"


def test_backends_is_not_a_top_level_package(tmp_path):
    assert importlib.util.find_spec("backends") is None, "run pytest, not python -m pytest"
    assert importlib.util.find_spec("xen2kvm.backends.fake") is not None
    probe = subprocess.run([sys.executable, "-c", "import backends"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'backends'" in probe.stderr


@pytest.mark.parametrize("text,expected", [
    ("10G", 10 * units.GIB), ("512", 512), ("32S", 16384), ("1M", units.MIB), ("2T", 2 * units.TIB),
    ("16KiB", 16384),
])
def test_parse_size(text, expected):
    assert units.parse_size(text) == expected


def test_sizes_refuse_nonsense():
    with pytest.raises(ValueError):
        units.parse_size("ten gigs")
    with pytest.raises(ValueError):
        units.bytes_to_sectors(100)
    assert units.human(16384) == "16K" and units.human(1048576) == "1M"
    assert units.human(700) == "700"
    assert units.sectors_to_bytes(2048) == units.MIB


def test_resolve_by_exact_name_or_colon_suffix():
    vols = [("cluster1:abc", {}), ("abcd", {}), ("xen-cluster1:abc", {"xen2kvm": "clone"})]
    assert naming.resolve("abc", vols) == "cluster1:abc"
    assert naming.resolve("abcd", vols) == "abcd"
    with pytest.raises(NotFound):
        naming.resolve("zzz", vols)
    with pytest.raises(PlanError, match="ambiguous"):
        naming.resolve("abc", vols + [("other:abc", {})])
    with pytest.raises(PlanError, match="not a valid StorPool name"):
        naming.resolve("a b", vols)
    with pytest.raises(PlanError):
        naming.check_volume_name("list")


def test_dm_names_round_trip():
    assert naming.parse_dm_name(naming.dm_raid("vm1", "disk-a")) == ("vm1", "disk-a", False)
    assert naming.parse_dm_name(naming.dm_linear("vm1", "d")) == ("vm1", "d", True)
    assert naming.parse_dm_name("other") is None
    assert naming.parse_dm_name("xen2kvm-novm") is None
    with pytest.raises(PlanError):
        naming.check_vm("has-dash")


def test_tag_budget_and_charset():
    naming.check_tags("v", {"xen": "xen-v"})
    with pytest.raises(PlanError, match="200"):
        naming.check_tags("v" * 150, {"kvm": "k" * 60})
    with pytest.raises(PlanError, match="refuses"):
        naming.check_tags("v", {"bad tag": "x"})


def test_mbr_entry_matches_what_sfdisk_writes():
    sector = mbr.build(32, 20971520, "kdisk")
    assert sector[446:462].hex() == "00002100" "83" "feffff" "20000000" "00004001"
    assert sector[510:] == b"\x55\xaa"
    assert mbr.parse(sector) == [mbr.Partition(32, 20971520, 0x83)]
    assert mbr.build(2048, 100, "x")[446:450] == bytes([0, 32, 33, 0])
    assert mbr.parse(bytes(512)) is None


def test_mbr_refuses_past_2_tib():
    with pytest.raises(PlanError, match="2 TiB"):
        mbr.build(2048, 2**32 - 2048 + 1)
    with pytest.raises(PlanError):
        mbr.build(0, 10)


@pytest.mark.skipif(not shutil.which("sfdisk"), reason="sfdisk (apt package fdisk) is missing")
@pytest.mark.parametrize("n", [32, 2048])
def test_sfdisk_reads_our_label_like_its_own(tmp_path, n):
    size = 10 * units.GIB // 512
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate((size + n) * 512)
        f.write(mbr.build(n, size, "disk"))
    out = json.loads(subprocess.run(["sfdisk", "--json", str(img)], capture_output=True,
                                    text=True, check=True).stdout)
    parts = out["partitiontable"]["partitions"]
    assert [(p["start"], p["size"], p["type"]) for p in parts] == [(n, size, "83")]
    check = subprocess.run(["sfdisk", "-V", str(img)], capture_output=True, text=True)
    assert check.returncode == 0 and "No errors detected" in check.stdout, check


def test_tables():
    lin = dmtables.linear("/dev/storpool/k", 32, "/dev/storpool/xen-x", 1000)
    assert dmtables.parse_linear(lin) == [(0, 32, "/dev/storpool/k", 0),
                                          (32, 1000, "/dev/storpool/xen-x", 0)]
    one = dmtables.raid1_one_leg(1032, "/m0", "/dev/mapper/l")
    assert one == "0 1032 raid raid1 1 0 1 /m0 /dev/mapper/l"
    two = dmtables.raid1_two_legs(1032, "/m0", "/l", "/m1", "/k", rebuild=True,
                                  leg1_has_superblock=False, rates=dmtables.Rates(10, 4096))
    assert two == ("0 1032 raid raid1 7 0 rebuild 1 min_recovery_rate 10 max_recovery_rate 4096 "
                   "2 /m0 /l /m1 /k")
    parsed = dmtables.parse_raid(two)
    assert parsed.rebuild == [1] and parsed.rate("max_recovery_rate") == 4096
    assert parsed.legs == (("/m0", "/l"), ("/m1", "/k")) and parsed.rate("x") is None
    with pytest.raises(ValueError):
        dmtables.parse_raid("0 10 linear /dev/x 0")
    with pytest.raises(ValueError):
        dmtables.parse_raid("0 10 raid raid1 1 0 2 /m0 /l")
    with pytest.raises(ValueError):
        dmtables.parse_linear("0 10 raid")


def test_two_legs_need_rebuild_or_metadata():
    with pytest.raises(PlanError, match="neither"):
        dmtables.raid1_two_legs(10, "/m0", "/l", "/m1", "/k", rebuild=False,
                                leg1_has_superblock=False)
    resume = dmtables.raid1_two_legs(10, "/m0", "/l", "/m1", "/k", rebuild=False,
                                     leg1_has_superblock=True)
    assert "rebuild" not in resume


def _status(name):
    return dmstatus.parse_status((DATA / "dmsetup-status" / name).read_text())


def test_status_lines_of_several_versions():
    rec = _status("v1.15.1-recover.txt")
    assert (rec.devices, rec.health, rec.done, rec.total, rec.action) == (2, "Aa", 8448, 133120,
                                                                           "recover")
    assert not rec.in_sync and rec.percent == 6.3
    assert _status("v1.15.1-insync.txt").in_sync
    failed = _status("v1.15.1-failed.txt")
    assert failed.failed_legs == [1] and not failed.in_sync  # done == total and idle: only D tells
    assert _status("v1.15.1-one-leg.txt").devices == 1
    assert not _status("v1.15.1-frozen.txt").in_sync
    assert _status("v1.9.0-recover.txt").percent == 50.0
    assert not _status("v1.5.0-finished-lowercase.txt").in_sync
    old = _status("v1.3.0-recover.txt")
    assert old.action is None and not old.in_sync
    assert _status("v1.3.0-insync.txt").in_sync
    with pytest.raises(ValueError):
        _status("garbage.txt")
    with pytest.raises(ValueError):
        dmstatus.parse_status("0 10 raid raid1 2 AX 1/10 idle")


def test_raid_target_versions():
    targets = dmstatus.parse_targets("linear           v1.4.0\nraid             v1.15.1\n")
    assert dmstatus.check_raid_target(targets) == (1, 15, 1)
    with pytest.raises(PlanError, match="v1.12.1 cannot prove"):
        dmstatus.check_raid_target({"raid": (1, 12, 1)})
    with pytest.raises(PlanError, match="no dm `raid` target"):
        dmstatus.check_raid_target({})
    with pytest.raises(ValueError):
        dmstatus.parse_version("one")
