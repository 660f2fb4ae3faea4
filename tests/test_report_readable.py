"""Reports a person can read: one line for a submission that cannot be imported, failures
grouped by their cause, no empty columns, 80 columns, and what the submission printed next
to the check that printed it."""

from __future__ import annotations

import re
from pathlib import Path

from support import FIXTURES, ROOT, make_course

from grader.course import load_course
from grader.report.table import to_text
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


def test_a_submission_that_cannot_be_imported_is_one_line_not_a_row_per_check(tmp_path):
    result = _grade(tmp_path, "def double(x):\n    return (x +\n")
    assert result.import_error == result.tests[0].message
    text = to_text(result, width=80)
    assert text.count("could not be imported") == 1
    assert "SyntaxError: '(' was never closed (toy.py, line 2)." in " ".join(text.split())
    assert "None of the 2 checks could run" in text
    assert "Check" not in text and "double doubles" not in text
    assert len(text.splitlines()) <= 6


def test_the_stub_groups_not_implemented_by_function(course):
    stub = ROOT / "student_template" / "assignment3"
    result = grade("assignment3", stub, course=course, device="cpu")
    text = " ".join(to_text(result, width=200).split())
    for function in ("softmax", "log_softmax", "cross_entropy_error", "mean_squared_error"):
        assert text.count(f" {function}() is not implemented yet") == 1, function
    assert "9 checks (4 hidden) │ 0/31 │ error │ softmax() is not implemented yet" in text
    assert len(to_text(result, width=80).splitlines()) < 40


def test_a_fully_passing_table_has_no_why_column_and_fits_80_columns(course):
    result = grade("assignment3", FIXTURES / "assignment3" / "correct", course=course, device="cpu")
    text = to_text(result, width=80)
    assert "Why" not in text
    assert all(len(line.rstrip()) <= 80 for line in text.splitlines())
    assert "…" not in text  # no check name cut short
    row = r"softmax_cross_entropy with logits of 1e4 \(hidden\) +│ +10/10 │ passed"
    assert re.search(row, text)


PRINTING = (
    "print('hello from import')\n"
    "def double(x):\n"
    "    if x < 0:\n"
    "        print('negative', x)\n"
    "        print('still negative')\n"
    "        print('done')\n"
    "    return x + x\n"
)


def test_output_is_filed_under_the_check_that_printed_it(tmp_path):
    result = _grade(tmp_path, PRINTING)
    printed = dict(result.printed)
    assert printed[""] == "hello from import\n"
    assert printed["public/test_toy.py::test_double_negative"] == (
        "negative -2\nstill negative\ndone\n"
    )
    assert "public/test_toy.py::test_double" not in printed


def test_hidden_output_is_counted_and_v_shows_it_next_to_its_check(tmp_path):
    result = _grade(tmp_path, PRINTING)
    assert "your code printed 4 lines; -v shows them" in to_text(result, width=80)
    assert "negative -2" not in to_text(result, width=80)
    verbose = to_text(result, verbose=True, width=100)
    row = verbose.index("double of a negative number")
    assert row < verbose.index("negative -2") < verbose.index("Total")
    assert verbose.index("hello from import") > verbose.index("Total")
    assert "while it was imported" in verbose
    assert "-v shows them" not in verbose


def test_the_report_says_which_of_two_copies_was_graded(tmp_path):
    course = make_course(tmp_path, PUBLIC)
    (tmp_path / "submission" / "toy").mkdir()
    (tmp_path / "submission" / "toy" / "toy.py").write_text("def double(x):\n    return 0\n")
    result = grade("toy", tmp_path / "submission", course=load_course(course), device="cpu")
    note = "graded toy.py; toy/toy.py was ignored (a submission holds one copy of each file)."
    assert result.score == 5 and result.notes == (note,)
    assert result.to_dict()["notes"] == [note]
    assert note in " ".join(to_text(result, width=80).split())
