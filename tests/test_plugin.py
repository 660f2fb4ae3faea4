"""The pytest plugin on a tiny course written in each test: markers, fixtures, outcomes."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import STUDENT, make_course

from grader.course import load_course
from grader.errors import BadInput, GraderError
from grader.runner import grade


def grade_toy(tmp_path: Path, public: str, hidden: str = "", student: str = STUDENT, **kw):
    course = load_course(make_course(tmp_path, public, hidden, student))
    return grade("toy", tmp_path / "submission", course=course, device="cpu", **kw)


def test_points_hidden_status_and_ids(tmp_path):
    result = grade_toy(
        tmp_path,
        """
        import pytest
        from grader.compare import assert_close

        @pytest.mark.points(4)
        def test_doubles(student, reference):
            '''Doubling works.'''
            assert_close(student.double(3), reference.double(3))
        """,
        """
        import pytest

        @pytest.mark.points(6)
        @pytest.mark.hint("Think about negative numbers.")
        def test_negative(student):
            assert student.double(-1) == 3, "double(-1) is wrong"
        """,
    )
    public, hidden = result.tests
    assert (public.id, public.name, public.status, public.score) == (
        "public/test_toy.py::test_doubles", "Doubling works", "passed", 4.0
    )  # fmt: skip
    assert not public.hidden
    assert hidden.hidden
    assert hidden.status == "failed"
    assert hidden.message == "double(-1) is wrong Hint: Think about negative numbers."
    assert (result.score, result.max_score) == (4.0, 10.0)


def test_rng_is_seeded_per_check_and_by_the_grade_seed(tmp_path):
    public = """
        import pytest

        @pytest.mark.points(10)
        def test_record(rng, metrics):
            metrics["draw"] = float(rng.random())
        """
    course = load_course(make_course(tmp_path, public))
    draws = [
        grade("toy", tmp_path / "submission", course=course, device="cpu", seed=seed).tests[0]
        for seed in (1, 1, 2)
    ]
    values = [d.metrics["draw"] for d in draws]
    assert values[0] == values[1] != values[2]


def test_named_rng_depends_on_the_name_and_seed_not_on_the_check(tmp_path):
    public = """
        import pytest

        @pytest.mark.points(5)
        def test_first(named_rng, metrics):
            metrics["draw"] = float(named_rng("shared").random())

        @pytest.mark.points(5)
        def test_second(named_rng, rng, metrics):
            metrics["draw"] = float(named_rng("shared").random())
            metrics["other"] = float(named_rng("other").random())
            metrics["rng"] = float(rng.random())
        """
    course = load_course(make_course(tmp_path, public))

    def draws(seed: int, keyword: str | None = None) -> list[dict]:
        result = grade("toy", tmp_path / "submission", course=course, device="cpu",
                       seed=seed, keyword=keyword)  # fmt: skip
        return [t.metrics for t in result.tests]

    first, second = draws(1)
    assert first["draw"] == second["draw"] != second["other"]
    assert second["rng"] not in (second["draw"], second["other"])
    assert draws(1, keyword="second")[0] == second
    assert draws(2)[1]["draw"] != second["draw"]


def test_on_start_hears_each_check_s_limit_a_training_check_s_budget_and_if_hidden(tmp_path):
    public = """
        import pytest

        class TrainingLimit:
            def budget(self, device):
                return 60.0

            def __call__(self, device):
                return self.budget(device) + 10

        @pytest.mark.points(5)
        @pytest.mark.timeout(TrainingLimit())
        def test_trains(student):
            pass

        @pytest.mark.points(5)
        @pytest.mark.timeout(3)
        def test_quick(student):
            pass
        """
    hidden = """
        import pytest

        @pytest.mark.points(5)
        def test_secret(student):
            pass
        """
    heard = []
    course = load_course(make_course(tmp_path, public, hidden))
    grade("toy", tmp_path / "submission", course=course, device="cpu",
          on_start=lambda *args: heard.append(args))  # fmt: skip
    assert heard == [
        ("trains", 70.0, 60.0, False),
        ("quick", 3.0, None, False),
        ("secret", 2.0, None, True),
    ]


def test_partial_credit_scales_points_and_sets_the_message(tmp_path):
    result = grade_toy(
        tmp_path,
        """
        import pytest

        @pytest.mark.points(10)
        def test_accuracy(credit):
            credit.award(0.25, "accuracy 91%: a quarter of the points")
        """,
    )
    check = result.tests[0]
    assert (check.score, check.status) == (2.5, "failed")
    assert check.message == "accuracy 91%: a quarter of the points"


def test_a_check_that_chokes_on_the_result_is_an_error_not_a_crash(tmp_path):
    result = grade_toy(
        tmp_path,
        """
        import pytest

        @pytest.mark.points(10)
        def test_shape(student):
            student.double(2).shape
        """,
    )
    check = result.tests[0]
    assert check.status == "error"
    assert "could not evaluate your result" in check.message


def test_missing_points_marker_is_a_course_error(tmp_path):
    with pytest.raises(GraderError, match="points"):
        grade_toy(tmp_path, "def test_unmarked(student):\n    pass\n")


def test_a_check_file_that_does_not_import_is_a_course_error(tmp_path):
    with pytest.raises(GraderError, match="broken"):
        grade_toy(tmp_path, "import no_such_module_anywhere\n")


def test_a_reference_that_does_not_import_is_a_course_error(tmp_path):
    course = make_course(
        tmp_path,
        """
        import pytest

        @pytest.mark.points(10)
        def test_uses_reference(reference):
            pass
        """,
    )
    (course / "reference" / "toy.py").write_text("raise RuntimeError('broken reference')\n")
    with pytest.raises(GraderError, match="broken reference"):
        grade("toy", tmp_path / "submission", course=load_course(course), device="cpu")


def test_keyword_that_selects_nothing_is_bad_input(tmp_path):
    public = "import pytest\n\n@pytest.mark.points(10)\ndef test_a():\n    pass\n"
    with pytest.raises(BadInput, match="no checks"):
        grade_toy(tmp_path, public, keyword="zzz")


def test_total_time_limit_marks_remaining_checks_as_timeout(tmp_path):
    from grader.sandbox.limits import Limits

    result = grade_toy(
        tmp_path,
        """
        import time
        import pytest

        @pytest.mark.points(5)
        def test_slow():
            time.sleep(3.2)

        @pytest.mark.points(5)
        def test_after(student):
            assert student.double(1) == 2
        """,
        # 3 s: a loaded machine's set-up (collection, the worker's start) must not use it up
        # before the first check starts.
        limits=Limits(total_timeout_s=3.0),
    )
    assert [t.status for t in result.tests] == ["passed", "timeout"]
    assert "time limit" in result.tests[1].message


TWO_FUNCTIONS = """
import time

def double(x):
    return {double}

def triple(x):
    return {triple}
"""


def grade_two(tmp_path: Path, public: str, double: str = "2 * x", triple: str = "3 * x", **kw):
    student = TWO_FUNCTIONS.format(double=double, triple=triple)
    return grade_toy(tmp_path, public, student=student, **kw).tests


HINTED_PER_FUNCTION = """
import pytest
from grader.compare import assert_close

@pytest.mark.points(10)
@pytest.mark.hint("triple(x) is 3 * x.", function="triple")
@pytest.mark.hint("double(x) is 2 * x.", function="double")
def test_both(student):
    doubled = student.double(2)
    assert_close(doubled, 4, name="double(2)")
    assert_close(student.triple(2), 6, name="triple(2)")
"""


def test_a_hint_is_shown_for_a_wrong_value_of_its_own_function(tmp_path):
    (check,) = grade_two(tmp_path, HINTED_PER_FUNCTION, triple="3 * x + 1")
    assert check.message.startswith("triple(2): got 7, expected 6")
    assert check.message.endswith("Hint: triple(x) is 3 * x.")


def test_a_wrong_value_gets_only_the_hint_of_the_function_that_produced_it(tmp_path):
    (check,) = grade_two(tmp_path, HINTED_PER_FUNCTION, double="2 * x + 1")
    assert check.message.startswith("double(2): got 5, expected 4")
    assert check.message.endswith("Hint: double(x) is 2 * x.")
    assert "triple" not in check.message


def test_no_hint_for_a_wrong_value_from_a_function_the_hint_is_not_about(tmp_path):
    public = """
        import pytest
        from grader.compare import assert_close

        @pytest.mark.points(10)
        @pytest.mark.hint("triple(x) is 3 * x.", function="triple")
        def test_triple_after_double(student):
            assert_close(student.double(2), 4, name="double(2)")
            assert_close(student.triple(2), 6, name="triple(2)")
        """
    (check,) = grade_two(tmp_path, public, double="2 * x + 1")
    assert check.status == "failed"
    assert check.message == "double(2): got 5, expected 4 (abs error 1.00e+00, rel error 2.50e-01)."


def test_no_hint_for_an_error_raised_in_another_function(tmp_path):
    public = """
        import pytest
        from grader.compare import assert_close

        @pytest.mark.points(10)
        @pytest.mark.hint("triple(x) is 3 * x.", function="triple")
        def test_triple_after_double(student):
            student.double(2)
            assert_close(student.triple(2), 6, name="triple(2)")
        """
    (check,) = grade_two(tmp_path, public, double="x[0]")
    assert check.status == "error"
    assert check.message.startswith("double() raised TypeError")
    assert "Hint" not in check.message


def test_a_hint_is_shown_for_an_error_raised_in_its_own_function(tmp_path):
    public = """
        import pytest

        @pytest.mark.points(10)
        @pytest.mark.hint("triple(x) is 3 * x.", function="triple")
        def test_triple(student):
            student.triple(2)
        """
    (check,) = grade_two(tmp_path, public, triple="x[0]")
    assert check.status == "error"
    assert check.message.startswith("triple() raised TypeError")
    assert check.message.endswith("Hint: triple(x) is 3 * x.")


def test_a_hint_about_a_class_covers_its_methods(tmp_path):
    public = """
        import pytest
        from grader.compare import assert_close

        @pytest.mark.points(10)
        @pytest.mark.hint("Counter.next adds one.", function="Counter")
        def test_counter(student):
            counter = student.Counter()
            assert_close(counter.next(), 1, name="Counter.next()")
        """
    student = (
        "class Counter:\n    def __init__(self):\n        self.n = 0\n\n"
        "    def next(self):\n        self.n += 2\n        return self.n\n"
    )
    (check,) = grade_toy(tmp_path, public, student=student).tests
    assert check.message.endswith("Hint: Counter.next adds one.")


def test_no_hint_on_a_timeout(tmp_path):
    from grader.sandbox.limits import Limits

    public = """
        import pytest

        @pytest.mark.points(10)
        @pytest.mark.hint("double(x) is 2 * x.")
        def test_double(student):
            assert student.double(2) == 4
        """
    (check,) = grade_two(
        tmp_path, public, double="time.sleep(60)", limits=Limits(call_timeout_s=0.5)
    )
    assert check.status == "timeout"
    assert check.message.startswith("double() did not finish within 0.5 s")
    assert "Hint" not in check.message


def test_no_hint_when_the_submission_cannot_be_imported(tmp_path):
    public = """
        import pytest

        @pytest.mark.points(10)
        @pytest.mark.hint("double(x) is 2 * x.")
        def test_double(student):
            assert student.double(2) == 4
        """
    (check,) = grade_toy(tmp_path, public, student="def double(x:\n").tests
    assert "could not be imported" in check.message
    assert "Hint" not in check.message


def test_no_hint_when_student_code_imports_a_forbidden_library_at_run_time(tmp_path):
    public = """
        import pytest

        @pytest.mark.points(10)
        @pytest.mark.hint("double(x) is 2 * x.")
        def test_double(student):
            assert student.double(2) == 4
        """
    course = make_course(tmp_path, public, student=TWO_FUNCTIONS.format(
        double="__import__('color' + 'sys') and 2 * x", triple="3 * x"))  # fmt: skip
    toml = course / "assignments" / "toy" / "assignment.toml"
    forbidden = 'forbidden_imports = ["colorsys"]\n[limits]'
    toml.write_text(toml.read_text().replace("[limits]", forbidden))
    (check,) = grade("toy", tmp_path / "submission", course=load_course(course), device="cpu").tests
    assert check.status == "error"
    assert "colorsys may not be used" in check.message
    assert "Hint" not in check.message


def test_no_hint_when_the_submission_lacks_the_function(tmp_path):
    public = """
        import pytest

        @pytest.mark.points(10)
        @pytest.mark.hint("quadruple(x) is 4 * x.")
        def test_quadruple(student):
            assert student.quadruple(2) == 8
        """
    (check,) = grade_two(tmp_path, public)
    assert "does not define `quadruple`" in check.message
    assert "Hint" not in check.message


def test_the_worker_is_stopped_once_the_checks_and_their_fixtures_are_done_with_it(tmp_path):
    """So that it ends while pytest finishes; a fixture's teardown still reaches it."""
    import time

    from grader.plugin import GradePlugin
    from grader.runner import run_checks
    from grader.sandbox.proxy import Sandbox

    course = load_course(
        make_course(
            tmp_path,
            """
            import pytest

            @pytest.fixture
            def checked_after(student):
                yield
                assert student.double(4) == 8

            @pytest.mark.points(1)
            def test_first(student, checked_after):
                assert student.double(1) == 2

            @pytest.mark.points(1)
            def test_last(student, checked_after):
                assert student.double(2) == 4
            """,
        )
    )
    assignment = course.assignment("toy")
    sandbox = Sandbox(tmp_path / "submission", assignment.module, assignment.limits)
    try:
        plugin = GradePlugin(
            assignment, sandbox, seed=1, device="cpu", deadline=time.monotonic() + 120
        )
        run_checks(assignment, plugin, public_only=False, keyword=None)
        assert [(r.status, r.message) for r in plugin.results] == [("passed", "")] * 2
        assert sandbox.starts == 1
        stat = Path(f"/proc/{sandbox.pid}/stat")
        deadline = time.monotonic() + 30
        while stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] not in "ZX":
            assert time.monotonic() < deadline, "the worker is still running"
            time.sleep(0.01)
    finally:
        sandbox.close()


def test_a_grades_references_leave_the_spinning_worker_its_cpu_and_torch_its_threads_after(
    tmp_path, monkeypatch
):
    import torch

    from grader.sandbox import placement

    monkeypatch.setattr(placement, "_runnable", lambda loadavg: 1)  # the worker spins
    monkeypatch.setattr(placement.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(placement.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        course = load_course(
            make_course(
                tmp_path,
                """
                import pytest
                import torch

                @pytest.mark.points(1)
                def test_threads(student, metrics):
                    metrics["threads"] = torch.get_num_threads()
                    assert student.double(1) == 2
                """,
            )
        )
        (check,) = grade("toy", tmp_path / "submission", course=course, device="cpu").tests
        assert check.status == "passed", check.message
        assert check.metrics["threads"] == 3
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)
