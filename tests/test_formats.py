"""Machine formats of one grade: Gradescope's results.json, JUnit XML, the Markdown summary.

Most tests render a hand-built `Grade` with every status, a hidden check and hostile text
(pipes, HTML, control characters); two grade for real through the CLI, running one check.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from click.testing import CliRunner
from support import FIXTURES, ROOT

from grader.cli import cli
from grader.course import load_course
from grader.errors import GraderError
from grader.report import FORMATS
from grader.report.gradescope import to_gradescope
from grader.report.junit import to_junit
from grader.report.markdown import to_markdown
from grader.result import CheckResult, Grade, SubmissionInfo

HOSTILE = "got <script>alert(1)</script> | a\x00b\x1b[31m\nsecond line"


def check(name: str, status: str, score: float, max_score: float, **extra) -> CheckResult:
    return CheckResult(
        id=f"{'hidden' if extra.get('hidden') else 'public'}/test_x.py::test_{name}",
        name=name.replace("_", " "),
        score=score,
        max_score=max_score,
        status=status,
        hidden=extra.pop("hidden", False),
        **extra,
    )


@pytest.fixture
def sample() -> Grade:
    return Grade(
        assignment="assignment9",
        title="Everything that can happen",
        seed=1234,
        device="cpu",
        grader_version="0.1.0",
        duration_s=12.6,
        submission=SubmissionInfo(path="sub", sha256="ab" * 32),
        tests=(
            check("passes", "passed", 4, 4, metrics={"accuracy": 0.975}),
            check("fails", "failed", 0, 3, message=HOSTILE, details="max abs error 1.5"),
            check("raises", "error", 0, 2, message="softmax raised ValueError", details="trace"),
            check("loops", "timeout", 0, 2, message="did not finish within 1 s", hidden=True),
            check("skips", "skipped", 0, 1, message="needs a GPU", hidden=True),
            check("partial", "failed", 1.5, 3, message="accuracy 0.9", hidden=True),
        ),
        student_output="SECRET hidden input printed by the student",
        hidden_visibility="after_due_date",
    )


def test_every_format_is_registered_for_format_and_report():
    assert {"table", "json", "gradescope", "junit", "markdown"} <= set(FORMATS)


def test_gradescope_results_have_the_documented_fields(sample):
    results = json.loads(to_gradescope(sample))
    assert results["score"] == sample.score == 5.5
    assert results["execution_time"] == 13
    assert results["visibility"] == "visible"
    assert results["stdout_visibility"] == "hidden"
    assert "public checks: 4/9 points" in results["output"]
    assert "shown after the due date" in results["output"]
    assert "SECRET" not in json.dumps(results)
    assert len(results["tests"]) == len(sample.tests)
    for test, source in zip(results["tests"], sample.tests, strict=True):
        assert set(test) == {"name", "score", "max_score", "status", "output", "visibility"}
        assert (test["score"], test["max_score"]) == (source.score, source.max_score)
        assert test["status"] == ("passed" if source.status == "passed" else "failed")
        assert test["visibility"] == ("after_due_date" if source.hidden else "visible")
    assert "accuracy 0.975" in results["tests"][0]["output"]
    assert "max abs error 1.5" in results["tests"][1]["output"]
    assert results["tests"][3]["name"].endswith("(hidden)")


@pytest.mark.parametrize("visibility", ["hidden", "after_due_date", "after_published"])
def test_gradescope_output_never_states_the_total_while_hidden_checks_are_not_shown(
    sample, visibility
):
    # Gradescope hides the total score from students while any test is hidden; the summary
    # must not state it either, or public and total together reveal the hidden checks' score.
    results = json.loads(to_gradescope(replace(sample, hidden_visibility=visibility)))
    assert "5.5" not in results["output"] and "/15" not in results["output"]
    assert "public checks: 4/9 points" in results["output"]
    assert "3 hidden checks (6 points) count towards your score" in results["output"]
    hidden = [t for t in results["tests"] if t["name"].endswith("(hidden)")]
    assert {t["visibility"] for t in hidden} == {visibility}


def test_gradescope_output_states_the_total_when_every_check_is_visible(sample):
    results = json.loads(to_gradescope(replace(sample, hidden_visibility="visible")))
    assert "5.5/15 points" in results["output"]


def test_hidden_visibility_comes_from_assignment_toml(tmp_path):
    course_root = tmp_path / "course"
    for part in ("assignments/assignment1", "student_template/assignment1"):
        shutil.copytree(ROOT / part, course_root / part)
    (course_root / "reference").mkdir()
    shutil.copy2(ROOT / "reference" / "assignment1.py", course_root / "reference")
    toml = course_root / "assignments" / "assignment1" / "assignment.toml"
    original = toml.read_text()
    assert load_course(course_root).assignment("assignment1").hidden_visibility == (
        "after_published"
    )
    toml.write_text(original + '\n[gradescope]\nhidden_visibility = "hidden"\n')
    assert load_course(course_root).assignment("assignment1").hidden_visibility == "hidden"
    toml.write_text(original + '\n[gradescope]\nhidden_visibility = "tomorrow"\n')
    with pytest.raises(GraderError, match="hidden_visibility"):
        load_course(course_root).assignment("assignment1")


def test_junit_xml_parses_with_one_testcase_per_check_and_points(sample):
    root = ET.fromstring(to_junit(sample))
    suite = root.find("testsuite")
    assert suite.get("name") == "assignment9"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("6", "2", "2")
    assert suite.get("skipped") == "1"
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert (properties["score"], properties["max_score"]) == ("5.5", "15")
    cases = suite.findall("testcase")
    assert [c.get("classname") for c in cases][:2] == ["assignment9.public.test_x"] * 2
    outcome = {c.get("name"): [e.tag for e in c if e.tag != "properties"] for c in cases}
    assert outcome == {
        "passes": [],
        "fails": ["failure"],
        "raises": ["error"],
        "loops": ["error"],
        "skips": ["skipped"],
        "partial": ["failure"],
    }
    points = {p.get("name"): p.get("value") for p in cases[5].find("properties")}
    assert (points["score"], points["max_score"], points["hidden"]) == ("1.5", "3", "true")
    failure = cases[1].find("failure")
    assert "\x00" not in failure.get("message") and "<script>" in failure.get("message")
    assert cases[3].find("error").get("type") == "timeout"


def test_markdown_summary_is_one_table_that_hostile_text_cannot_break(sample):
    text = to_markdown(sample)
    assert text.startswith("### assignment9: Everything that can happen — 5.5/15 (36.67%)")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + len(sample.tests) + 1
    assert all(row.replace("\\|", "").count("|") == 5 for row in rows)
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "\x00" not in text and "\x1b" not in text
    assert "*(hidden)*" in text
    assert rows[-1].startswith("| **Total** | **5.5/15** | **36.67%**")


def test_grading_writes_every_report_once_and_appends_the_step_summary(tmp_path):
    summary = tmp_path / "step-summary.md"
    summary.write_text("# earlier step\n")
    reports = {fmt: tmp_path / f"report.{fmt}" for fmt in ("gradescope", "junit", "markdown")}
    arguments = ["assignment1", "--course", str(ROOT), "--device", "cpu", "-k", "test_and"]
    arguments += ["--submission", str(FIXTURES / "assignment1" / "correct"), "--format", "json"]
    for fmt, path in reports.items():
        arguments += ["--report", f"{fmt}:{path}"]
    result = CliRunner().invoke(cli, arguments, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["score"] == 7
    assert json.loads(reports["gradescope"].read_text())["score"] == 7
    assert ET.fromstring(reports["junit"].read_text()).find("testsuite").get("tests") == "1"
    assert "| AND truth table | 7/7 | ✅ passed |" in reports["markdown"].read_text()
    text = summary.read_text()
    assert text.startswith("# earlier step\n### assignment1")
    assert "**7/7**" in text


def test_unwritable_step_summary_is_one_clear_line(tmp_path):
    arguments = ["assignment1", "--course", str(ROOT), "--device", "cpu", "-k", "test_and"]
    arguments += ["--submission", str(FIXTURES / "assignment1" / "correct")]
    missing = tmp_path / "no" / "such" / "summary.md"
    result = CliRunner().invoke(cli, arguments, env={"GITHUB_STEP_SUMMARY": str(missing)})
    assert result.exit_code == 2
    assert "cannot append to GITHUB_STEP_SUMMARY" in result.output
