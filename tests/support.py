"""Test helpers: where fixtures live, buggy variants as patches, and a tiny course to grade.

A buggy submission is written as a `Mutant` of the correct fixture: a text replacement
that must apply exactly once, the set of checks it must fail, a word the hint must contain,
and the function that has the bug, which the first failure must name. Keeping bugs as
patches keeps each one to the line that is wrong.
"""

from __future__ import annotations

import importlib.util
import os
import random
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ALL_CHECKS = frozenset({"*"})  # as a Mutant's `fails`: every check of the assignment


@dataclass(frozen=True)
class Mutant:
    """A buggy copy of an assignment's correct fixture.

    `bug_in`: the function with the bug ("sigmoid", "Affine.backward"), which the message of
    the first check it fails must name. `never`: texts no failing check's message may hold
    (the hint of a function that is not wrong). `limits`: limits changed for this grade
    (a short call timeout for a mutant that never returns).
    """

    replace: tuple[tuple[str, str], ...]
    fails: frozenset[str]
    lost: float
    bug_in: str = ""
    hint: str = ""
    hints: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    never: tuple[str, ...] = ()
    limits: dict[str, float] = field(default_factory=dict)

    def hint_for(self, check: str) -> str:
        """The text the failure message of `check` must contain."""
        return self.hints.get(check, self.hint)

    def apply(self, source: str) -> str:
        for old, new in self.replace:
            count = source.count(old)
            if count != 1:
                raise AssertionError(f"mutant snippet found {count} times: {old!r}")
            source = source.replace(old, new)
        return source


def load_mutants(assignment: str) -> dict[str, Mutant]:
    """The `MUTANTS` of tests/fixtures/ASSIGNMENT/mutants.py (none if the file is absent)."""
    path = FIXTURES / assignment / "mutants.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location(f"mutants_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MUTANTS


TOML = 'title = "Toy"\npoints = 10\nfiles = ["toy.py"]\n[limits]\ncall_timeout_s = 2\n'
REFERENCE = "def double(x):\n    return 2 * x\n"
STUDENT = "def double(x):\n    return x + x\n"


def make_course(root: Path, public: str, hidden: str = "", student: str = STUDENT) -> Path:
    """A one-assignment course "toy" under root/course, and root/submission for it."""
    folder = root / "course" / "assignments" / "toy"
    (folder / "checks" / "public").mkdir(parents=True)
    (folder / "assignment.toml").write_text(TOML)
    (folder / "checks" / "public" / "test_toy.py").write_text(textwrap.dedent(public))
    if hidden:
        (folder / "checks" / "hidden").mkdir()
        (folder / "checks" / "hidden" / "test_secret.py").write_text(textwrap.dedent(hidden))
    (root / "course" / "reference").mkdir()
    (root / "course" / "reference" / "toy.py").write_text(REFERENCE)
    submission = root / "submission"
    submission.mkdir()
    (submission / "toy.py").write_text(student)
    return root / "course"


def unique_marker() -> str:
    """An argument no other process on the machine has (for `sleep MARKER` children)."""
    return f"{random.randrange(10**6, 10**7)}.{os.getpid()}"


def survivors(marker: str) -> list[int]:
    """Live processes on the machine (seen from the grader) running `sleep MARKER`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
            state = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker.encode() in args and state not in ("Z", "X"):
            found.append(int(cmdline.parent.name))
    return found
