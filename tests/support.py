"""Test helpers: grade fixture submissions once per session and describe buggy variants.

A buggy submission is written as a `Mutant` of the correct fixture: a text replacement
that must apply exactly once, the set of checks it must fail, and a word the hint must
contain. Keeping bugs as patches keeps each one to the line that is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@dataclass(frozen=True)
class Mutant:
    """A buggy copy of an assignment's correct fixture."""

    replace: tuple[tuple[str, str], ...]
    fails: frozenset[str]
    lost: float
    hint: str = ""
    hints: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)

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
