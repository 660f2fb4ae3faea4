"""Reports a person can read: one line for a submission that cannot be imported, failures
grouped by their cause, no empty columns, 80 columns, and what the submission printed next
to the check that printed it."""

from __future__ import annotations

from pathlib import Path

from support import make_course

from grader.course import load_course
from grader.runner import grade

PUBLIC = '''
    import pytest

    @pytest.mark.points(2)
    def test_double(student):
        """double doubles"""
        assert student.double(3) == 6

    @pytest.mark.points(3)
    def test_double_negative(student):
        """double of a negative number"""
        assert student.double(-2) == -4
    '''


def _grade(tmp_path: Path, source: str, public: str = PUBLIC):
    course = make_course(tmp_path, public, student=source)
    return grade("toy", tmp_path / "submission", course=load_course(course), device="cpu")


def test_a_syntax_error_names_its_line_and_nothing_after_it(tmp_path):
    result = _grade(tmp_path, "def double(x):\n    return (x +\n")
    check = result.tests[0]
    assert check.message == (
        "toy.py could not be imported: SyntaxError: '(' was never closed (toy.py, line 2)."
    )
    assert "toy.py, line 2\n" in check.details
    assert ", in \n" not in check.details and not check.details.rstrip().endswith(" in")


def test_an_exception_in_a_call_still_names_its_function(tmp_path):
    result = _grade(tmp_path, "def double(x):\n    raise ValueError('no')\n")
    assert "double() raised ValueError: no (toy.py, line 2)." in result.tests[0].message
    assert "toy.py, line 2, in double\n" in result.tests[0].details
