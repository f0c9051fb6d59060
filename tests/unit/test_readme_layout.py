"""README's Layout section names every product module in its folder's entry, and only modules
that exist (issue 12: the Layout matches the tree)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("xen2kvm/", "xen2kvm/guest/", "xen2kvm/testing/", "xen2kvm/testing/emulator/",
           "backends/fake/", "backends/storpool/")


def _entries(readme: str) -> dict[str, set[str]]:
    layout = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    entries: dict[str, set[str]] = {}
    for item in re.split(r"\n- ", layout)[1:]:
        folder = re.match(r"`([^`]+/)`", item)
        if folder and folder.group(1) in FOLDERS:
            entries[folder.group(1)] = set(re.findall(r"`([a-z_0-9]+\.py)`", item))
    return entries


def _disagreements(readme: str) -> dict[str, tuple[list[str], list[str]]]:
    entries = _entries(readme)
    assert set(entries) == set(FOLDERS)
    found = {}
    for folder, named in entries.items():
        present = {p.name for p in (ROOT / folder).glob("*.py") if p.name != "__init__.py"}
        if named != present:
            found[folder] = (sorted(present - named), sorted(named - present))
    return found


def test_the_layout_names_every_module_and_no_other():
    assert _disagreements((ROOT / "README.md").read_text()) == {}, "(missing, not there)"


def test_a_module_left_out_of_the_layout_is_caught():
    readme = (ROOT / "README.md").read_text().replace("`units.py`, ", "", 1)
    assert _disagreements(readme) == {"xen2kvm/": (["units.py"], [])}
