"""`--format json`: a plan, dry-run or executed, as JSON lines of the steps' actions."""

from __future__ import annotations

import json

from xen2kvm import steps as s


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_dry_run_and_executed_plan_print_the_same_actions(fake_rig):
    rig = fake_rig
    rig.ok("xen2kvm sim create-vm lnx --hypervisor xen --disk xd:12M")
    rig.ok("xen2kvm sim create-vm kvm --hypervisor kvm --disk kd:16M")
    (dry,) = _lines(rig.ok("xen2kvm --format json prepare -x xd -k kd").out)
    assert dry["dry_run"] is True and dry["notes"][0].startswith("case-2 prepare: kd grows")
    grow = [st for st in dry["steps"] if st["step"] == "GrowVolume"]
    assert grow == [{"step": "GrowVolume", "actions": [{
        "kind": "api", "method": "POST", "path": "/ctrl/1.0/VolumeUpdate/kd",
        "body": {"sizeAdd": 32 * 512}}]}]
    out = _lines(rig.ok("xen2kvm --format json prepare -x xd -k kd -y").out)
    ran = [line["run"] for line in out if "run" in line]
    planned = [st for st in dry["steps"] if st["step"] not in ("Claim", "Unclaim")]
    assert [st for st in ran if st["step"] not in ("Claim", "Unclaim")] == planned
    assert out[0]["dry_run"] is False


def test_a_step_is_its_actions_as_data():
    step = s.WritePartitionTable("kd", 32, 1000)
    (write,) = step.data()["actions"]
    assert write["kind"] == "write" and write["offset"] == 444 and write["length"] == 68
    assert write["sha256"] == step.actions()[0].sha256
