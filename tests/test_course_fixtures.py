"""Every assignment against its fixtures: the correct one scores full points, the stub
scores nothing, and each mutant fails exactly the checks it should, with the hint it should.

Fixtures live in tests/fixtures/ASSIGNMENT/: `correct/` (a full submission) and
`mutants.py` (a `MUTANTS` dict of `Mutant`s applied to the correct submission).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import FIXTURES, ROOT, load_mutants

from grader.course import load_course
from grader.runner import grade

COURSE = load_course(ROOT)
ASSIGNMENTS = sorted(p.name for p in FIXTURES.iterdir() if (p / "correct").is_dir())


MUTANT_CASES = [(a, name) for a in ASSIGNMENTS for name in load_mutants(a)]


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


@pytest.mark.parametrize(("assignment", "mutant_name"), MUTANT_CASES)
def test_mutant_fails_exactly_the_expected_checks(
    assignment: str, mutant_name: str, tmp_path: Path
) -> None:
    mutant = load_mutants(assignment)[mutant_name]
    correct = FIXTURES / assignment / "correct"
    submission = tmp_path / "submission"
    shutil.copytree(correct, submission)
    for source in submission.glob("*.py"):
        text = source.read_text()
        if any(old in text for old, _ in mutant.replace):
            source.write_text(mutant.apply(text))
    result = grade(assignment, submission, course=COURSE)
    by_function = {t.id.split("::")[-1]: t for t in result.tests}
    failed = {name for name, t in by_function.items() if t.status != "passed"}
    assert failed == set(mutant.fails), {n: by_function[n].message for n in failed}
    assert result.max_score - result.score == pytest.approx(mutant.lost)
    for name in mutant.fails:
        message = by_function[name].message.lower()
        assert mutant.hint_for(name).lower() in message, (name, message)
        if name in mutant.statuses:
            assert by_function[name].status == mutant.statuses[name]
