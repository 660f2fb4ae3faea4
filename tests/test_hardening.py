"""The worker's filesystem rules: its runtime readable, the grader's own data not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from grader.sandbox.hardening import FS_READ_DIR, READ_ONLY, landlock_abi, read_rules


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """A site-packages folder holding the grader next to another package."""
    packages = tmp_path / "site-packages"
    for name in ("numpy/core.py", "six.py", "grader/data/sample.npz", "grader/sandbox/w.py"):
        path = packages / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    return packages


def test_a_root_holding_the_grader_is_opened_around_it(installed: Path):
    rules = dict(read_rules([str(installed.parent)], hidden=(str(installed / "grader"),)))
    assert rules[str(installed.parent)] == FS_READ_DIR
    assert rules[str(installed)] == FS_READ_DIR
    assert rules[str(installed / "numpy")] == READ_ONLY
    assert rules[str(installed / "six.py")] == READ_ONLY
    assert not [path for path in rules if path.startswith(str(installed / "grader"))]


def test_roots_away_from_the_grader_stay_whole(installed: Path, tmp_path: Path):
    elsewhere = tmp_path / "checkout" / "grader"
    elsewhere.mkdir(parents=True)
    assert read_rules([str(installed)], hidden=(str(elsewhere),)) == [(str(installed), READ_ONLY)]


PROBE = """
import json, sys
from grader.sandbox.hardening import READ_ONLY, apply_landlock, landlock_abi, read_rules
packages, sandbox = sys.argv[1], sys.argv[2]
rules = read_rules([packages], hidden=(packages + "/grader",)) + [(sandbox, READ_ONLY)]
state = apply_landlock(landlock_abi(), rules, block_tcp=False)
seen = {}
for name in ("six.py", "numpy/core.py", "grader/sandbox/w.py", "grader/data/sample.npz"):
    try:
        seen[name] = open(packages + "/" + name).read() == name
    except PermissionError:
        seen[name] = "denied"
print(json.dumps([state, seen]))
"""


def test_under_landlock_the_graders_data_cannot_be_read(installed: Path):
    root = Path(__file__).parents[1]
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(installed), str(installed / "grader" / "sandbox")],
        capture_output=True, text=True, cwd=root, check=True,
    )  # fmt: skip
    state, seen = json.loads(probe.stdout)
    if landlock_abi() == 0:
        assert state.startswith("unavailable")
        assert all(value is True for value in seen.values())
        return
    assert state.startswith("active")
    assert seen == {
        "six.py": True,
        "numpy/core.py": True,
        "grader/sandbox/w.py": True,
        "grader/data/sample.npz": "denied",
    }
