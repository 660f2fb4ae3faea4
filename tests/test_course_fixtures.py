"""Every assignment against its fixtures: the correct one scores full points, the stub
scores nothing, and each mutant fails exactly the checks it should, with the hint it should,
and the first check it fails names the function that has the bug.

Fixtures live in tests/fixtures/ASSIGNMENT/: `correct/` (a full submission) and
`mutants.py` (a `MUTANTS` dict of `Mutant`s applied to the correct submission).
"""

from __future__ import annotations

import functools
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from support import ALL_CHECKS, FIXTURES, ROOT, load_mutants

from grader.course import load_course
from grader.result import Grade
from grader.runner import grade

COURSE = load_course(ROOT)
ASSIGNMENTS = sorted(p.name for p in FIXTURES.iterdir() if (p / "correct").is_dir())


MUTANT_CASES = [(a, name) for a in ASSIGNMENTS for name in load_mutants(a)]
BUG_CASES = [(a, name) for a, name in MUTANT_CASES if load_mutants(a)[name].fails]
# Failures that have their own words, never a check's hint: a submission that cannot be
# imported, a forbidden library, a stub's NotImplementedError (timeouts go by their status).
OWN_WORDS = re.compile(r"could not be imported|does not allow|may not be used|not implemented")


@functools.cache
def graded_mutant(assignment: str, mutant_name: str) -> Grade:
    """The grade of the correct fixture with the mutant's patches applied."""
    mutant = load_mutants(assignment)[mutant_name]
    limits = COURSE.assignment(assignment).limits.with_overrides(**mutant.limits)
    with tempfile.TemporaryDirectory() as folder:
        submission = Path(folder) / "submission"
        shutil.copytree(FIXTURES / assignment / "correct", submission)
        for source in submission.glob("*.py"):
            text = source.read_text()
            if any(old in text for old, _ in mutant.replace):
                source.write_text(mutant.apply(text))
        return grade(assignment, submission, course=COURSE, limits=limits)


def assert_no_hint_where_a_failure_has_its_own_words(result: Grade) -> None:
    for check in result.tests:
        if check.status == "timeout" or OWN_WORDS.search(check.message):
            assert "Hint:" not in check.message, (check.id, check.message)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_correct_fixture_scores_full_points(assignment: str) -> None:
    result = grade(assignment, FIXTURES / assignment / "correct", course=COURSE)
    failed = [f"{t.id}: {t.message}" for t in result.tests if t.status != "passed"]
    assert failed == []
    assert result.score == result.max_score == COURSE.assignment(assignment).points


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_stub_scores_zero_with_not_implemented(assignment: str) -> None:
    result = grade(assignment, ROOT / "student_template" / assignment, course=COURSE)
    assert result.score == 0
    assert result.tests
    assert all("not implemented" in t.message.lower() for t in result.tests), [
        t.message for t in result.tests
    ]
    assert_no_hint_where_a_failure_has_its_own_words(result)


@pytest.mark.parametrize(("assignment", "mutant_name"), MUTANT_CASES)
def test_mutant_fails_exactly_the_expected_checks(assignment: str, mutant_name: str) -> None:
    mutant = load_mutants(assignment)[mutant_name]
    result = graded_mutant(assignment, mutant_name)
    by_function = {t.id.split("::")[-1]: t for t in result.tests}
    expected = set(by_function) if mutant.fails == ALL_CHECKS else set(mutant.fails)
    failed = {name for name, t in by_function.items() if t.status != "passed"}
    assert failed == expected, {n: by_function[n].message for n in failed ^ expected}
    assert result.max_score - result.score == pytest.approx(mutant.lost)
    for name in expected:
        message = by_function[name].message.lower()
        assert mutant.hint_for(name).lower() in message, (name, message)
        if name in mutant.statuses:
            assert by_function[name].status == mutant.statuses[name]
        for text in mutant.never:
            assert text.lower() not in message, (name, message)
    assert_no_hint_where_a_failure_has_its_own_words(result)


@pytest.mark.parametrize(("assignment", "mutant_name"), BUG_CASES)
def test_first_failure_names_the_function_with_the_bug(assignment: str, mutant_name: str) -> None:
    """A student reads the report top down: the first failed check must point at the code
    that is wrong, not at a function that only inherited its wrong values."""
    mutant = load_mutants(assignment)[mutant_name]
    assert mutant.bug_in, f"{mutant_name} must say which function has the bug (bug_in)"
    first = next(t for t in graded_mutant(assignment, mutant_name).tests if t.status != "passed")
    assert mutant.bug_in in first.message, (first.id, first.message)
