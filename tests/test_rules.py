"""assignments/RULES.md maps every rule an assignment's README states to the checks that
enforce it. These tests keep the map true as READMEs and checks change: every quoted rule is in
its README, every check it names exists, and every README sentence that states a rule (it says
must, never or do not) has a row, so a new rule cannot go unchecked unnoticed.
"""

from __future__ import annotations

import functools
import re

import pytest
from support import ROOT

from grader.course import load_course
from grader.runner import grade

COURSE = load_course(ROOT)
ASSIGNMENTS = sorted(COURSE.assignments)
RULES = ROOT / "assignments" / "RULES.md"
RULE_WORDS = re.compile(r"\b(must|never|do not)\b", re.IGNORECASE)
ROW = re.compile(r'^\| "(?P<rule>.+)" \| (?P<checks>.+) \|$')
NOT_A_RULE = "not a rule: "


def normalised(text: str) -> str:
    """Markdown prose as one line: bold markers dropped, whitespace collapsed."""
    return " ".join(text.replace("**", "").split())


@functools.cache
def rule_tables() -> dict[str, list[tuple[str, str]]]:
    """assignment -> its rows, (quoted rule, checks cell)."""
    tables: dict[str, list[tuple[str, str]]] = {}
    rows: list[tuple[str, str]] = []
    for line in RULES.read_text().splitlines():
        if line.startswith("## "):
            rows = tables.setdefault(line.removeprefix("## ").strip(), [])
        elif match := ROW.match(line):
            rows.append((match["rule"].replace("\\|", "|"), match["checks"]))
    return tables


def rule_sentences(assignment: str) -> list[str]:
    """The sentences of the assignment's README that say must, never or do not."""
    text = normalised((ROOT / "assignments" / assignment / "README.md").read_text())
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if RULE_WORDS.search(s)]


@functools.cache
def check_ids(assignment: str) -> frozenset[str]:
    """The ids of the assignment's checks, from grading its stub (every check runs)."""
    result = grade(assignment, ROOT / "student_template" / assignment, course=COURSE)
    return frozenset(t.id for t in result.tests)


def named_checks(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_every_assignment_has_a_rules_table() -> None:
    assert sorted(rule_tables()) == ASSIGNMENTS


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_quoted_rule_is_in_its_readme(assignment: str) -> None:
    readme = normalised((ROOT / "assignments" / assignment / "README.md").read_text())
    missing = [rule for rule, _ in rule_tables()[assignment] if normalised(rule) not in readme]
    assert missing == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_readme_rule_has_a_row(assignment: str) -> None:
    quotes = [normalised(rule) for rule, _ in rule_tables()[assignment]]
    unmapped = [s for s in rule_sentences(assignment) if not any(q in s for q in quotes)]
    assert unmapped == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_row_names_checks_or_says_why_it_is_not_a_rule(assignment: str) -> None:
    for rule, cell in rule_tables()[assignment]:
        if not cell.startswith(NOT_A_RULE):
            assert named_checks(cell), rule


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_check_named_for_a_rule_exists(assignment: str) -> None:
    ids = check_ids(assignment)
    unknown = []
    for _, cell in rule_tables()[assignment]:
        if cell.startswith(NOT_A_RULE):
            continue
        for check in named_checks(cell):
            if check.endswith("[*]"):
                family = check.removesuffix("*]")
                found = any(i.startswith(family) for i in ids)
            else:
                found = check in ids
            if not found:
                unknown.append(check)
    assert unknown == []
