"""Resume with real kills (issue 13): a mutating fake command runs as a real process, is killed
with SIGKILL at a seeded random moment within the time an uninterrupted run takes, and the same
command run again converges to the state of an uninterrupted run (tests/test_resume.py injects
faults in-process; this is the crash the kernel delivers)."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_resume import FLOWS, _base, observable  # noqa: E402

pytestmark = pytest.mark.resume

PROGRAMS = {"xen2kvm": "xen2kvm.cli", "xen2kvmDisk": "xen2kvm.legacy"}
SEEDS = (11, 23, 37, 41)
# the lifecycle's mutating commands: prepare, power on, sync (start and completion), release,
# cleanup (each a FLOWS entry of tests/test_resume.py, whose setup leaves the cluster ready)
SCENARIOS = {
    "prepare": FLOWS["prepare"],
    "power-on": (lambda rig: (rig.ok("xen2kvmDisk -y -x ldisk -k kdisk"),
                              rig.ok("xen2kvmDisk -y -x ldisk2 -k kdisk2")),
                 "xen2kvm sim power on kvmlnx"),
    "sync-start": FLOWS["sync-start"],
    "sync-completion": FLOWS["sync-completion"],
    "release": FLOWS["release"],
    "cleanup": FLOWS["cleanup"],
}


def _argv(rig, command: str) -> list[str]:
    """The command line as a separate Python process, with the rig's backend options."""
    prog, *rest = command.format(**rig.vars).split()
    code = f"import sys; from {PROGRAMS[prog]} import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, *rig.backend_args(), *rest]


def _resumable(command: str) -> str:
    """The rerun: a killed run leaves its claim, which the operator takes over (the option is
    the program's own before a sim command)."""
    if command.startswith("xen2kvm sim "):
        return command.replace("xen2kvm sim ", "xen2kvm --take-over sim ", 1)
    return command + " --take-over"


def _finish(rig, command: str) -> None:
    done = subprocess.run(_argv(rig, _resumable(command)), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr)


def _startup() -> float:
    """How long a process takes before it can touch the cluster: kills drawn before that point
    would all land in the interpreter's start."""
    started = time.monotonic()
    code = "import " + ", ".join(PROGRAMS.values())
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    return time.monotonic() - started


def _kill_at(rig, command: str, delay: float) -> int:
    proc = subprocess.Popen(_argv(rig, command), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        return proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=60)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_killed_command_rerun_converges(tmp_path, scenario, fake_rig):
    FakeRig = type(fake_rig)
    setup, command = SCENARIOS[scenario]
    ready = FakeRig(tmp_path / "ready")
    _base(ready, tmp_path)
    setup(ready)
    before = observable(ready)

    ref = FakeRig(tmp_path / "ref")
    ref.vars = ready.vars
    shutil.copytree(ready.state, ref.state)
    started = time.monotonic()
    _finish(ref, command)
    duration = time.monotonic() - started
    want = observable(ref)
    assert want != before, f"{scenario}: the command changed nothing to resume"

    earliest = min(_startup(), duration / 2)
    killed = mid = 0
    for seed in SEEDS:
        rig = FakeRig(tmp_path / f"kill{seed}")
        rig.vars = ready.vars
        shutil.copytree(ready.state, rig.state)
        delay = random.Random(f"{scenario}/{seed}").uniform(earliest, duration)
        rc = _kill_at(rig, command, delay)
        if rc == -9:
            killed += 1
            mid += observable(rig) not in (before, want)
        _finish(rig, command)
        assert observable(rig) == want, (
            f"{scenario}: killed after {delay:.3f}s (seed {seed}, rc {rc}); the rerun did not "
            "reach the state of an uninterrupted run")
    # the kills must have landed before the command ended, or the test proved nothing
    assert killed >= 2, f"{scenario}: only {killed} of {len(SEEDS)} kills landed mid-command"
    print(f"\nkill-resume {scenario}: run {duration:.2f}s, {killed} killed, {mid} mid-change")
