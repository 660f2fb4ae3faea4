"""Text a submission writes reaches people and files as text: no terminal control codes,
no rich markup, no Markdown or HTML, and XML that parses.

A hostile submission prints escape codes and markup at import, raises with them, and puts
them in its frames (a file name of its choosing, a source line holding a raw ESC); it is
graded through the CLI in every format. The renderers are also tested on their own with a
hand-built `Grade`, as each must be safe whatever string reaches it.
"""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from markdown_it import MarkdownIt
from rich.console import Console
from support import make_course

from grader.cli import cli
from grader.cli.grading import LiveProgress
from grader.report import FORMATS
from grader.report.gradescope import to_gradescope
from grader.report.json_report import to_json
from grader.report.junit import to_junit
from grader.report.markdown import to_markdown
from grader.report.table import renderables
from grader.result import CheckResult, Grade, SubmissionInfo

# ESC, BEL, DEL and the C1 controls (0x9b is CSI, 0x9d OSC): none may reach a reader.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
CLIPBOARD = "\x1b]52;c;ZXZpbA==\x07"
MARKUP = "[/bold] [link=file:///etc/passwd]x[/link]"
HOSTILE = f"{CLIPBOARD}{MARKUP}\x1b]0;title\x07\x1b[2J\x9b31m\x7f"
MARKDOWN = (
    "[click](javascript:alert(1)) ![t](https://evil.example/t.png) <img src=x onerror=alert(1)>"
)

PUBLIC = '''
    import pytest

    @pytest.mark.points(5)
    def test_double(student):
        """double doubles"""
        assert student.double(3) == 6
    '''
# Escapes in the Python source become control characters when it runs; the line calling
# boom ends in a comment holding a raw ESC, which the frame's code line carries.
SUBMISSION = (
    "import os\n"
    'print("\\x1b[2J[/bold]\\x1b]0;pwned\\x07\\x9b31m")\n'
    "HERE = os.path.dirname(os.path.abspath(__file__))\n"
    'NAME = os.path.join(HERE, "\\x1b]0;frame\\x07[/bold].py")\n'
    'exec(compile("def boom(text):\\n    raise ValueError(text)\\n", NAME, "exec"))\n'
    "\n"
    "def double(x):\n"
    '    boom(chr(27) + "]52;c;ZXZpbA==" + chr(7) + "[/bold] [link=file:///etc/passwd]x[/link]"'
    ' + chr(0x9b) + "2J")  # \x1b[2J\n'
)


def markdown_html(text: str) -> str:
    """Markdown as GitHub renders a step summary (CommonMark with tables)."""
    return MarkdownIt("commonmark").enable("table").render(text)


def decoded(document: str) -> str:
    """Every key and string of a JSON document, as `jq -r` would print them."""

    def strings(value: object) -> list[str]:
        if isinstance(value, dict):
            return [s for k, v in value.items() for s in [k, *strings(v)]]
        if isinstance(value, list):
            return [s for item in value for s in strings(item)]
        return [value] if isinstance(value, str) else []

    return "\n".join(strings(json.loads(document)))


def assert_clean(text: str) -> None:
    found = CONTROL.findall(text)
    assert not found, f"control characters reached the reader: {found!r}"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("hostile")
    course = make_course(root, PUBLIC, student=SUBMISSION)
    return course, root / "submission"


def grade_hostile(hostile: tuple[Path, Path], *args: str, env: dict | None = None):
    course, submission = hostile
    arguments = ["toy", "--course", str(course), "--device", "cpu", "--submission", str(submission)]
    return CliRunner().invoke(cli, [*arguments, "-v", *args], env=env)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_hostile_submission_graded_verbose_shows_its_text_without_control_codes(hostile, fmt):
    result = grade_hostile(hostile, "--format", fmt)
    assert result.exit_code == 0, result.output
    assert_clean(result.stdout)
    assert_clean(result.stderr)
    if fmt in ("json", "gradescope"):  # and what `jq -r` prints of it
        assert_clean(decoded(result.stdout))
    if fmt == "junit":
        ET.fromstring(result.stdout)
    shown = result.stdout.replace("\\\\", "\\")  # JSON doubles backslashes
    if fmt == "markdown":
        shown = markdown_html(result.stdout)
    # What it wrote is shown, as visible escapes, not hidden.
    assert "\\x1b]52;c;ZXZpbA==\\x07" in shown
    if fmt == "table":
        assert "[/bold]" in result.stdout
        assert "[link=file:///etc/passwd]x[/link]" in result.stdout
        assert "your code printed" in result.stdout
        assert "\\x1b]0;frame\\x07[/bold].py" in result.stdout
        assert "# \\x1b[2J" in result.stdout


def test_hostile_submission_reports_are_clean_and_parse(hostile, tmp_path):
    summary = tmp_path / "step-summary.md"
    reports = {fmt: tmp_path / f"report.{fmt}" for fmt in sorted(FORMATS)}
    arguments = [arg for fmt, path in reports.items() for arg in ("--report", f"{fmt}:{path}")]
    result = grade_hostile(hostile, *arguments, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 0, result.output
    for path in [*reports.values(), summary]:
        text = path.read_bytes().decode("utf-8")
        assert_clean(text)
    for fmt in ("json", "gradescope"):
        assert_clean(decoded(reports[fmt].read_text()))
    report = json.loads(reports["json"].read_text())
    assert "\\x1b]52;c;ZXZpbA==\\x07[/bold]" in report["tests"][0]["message"]
    suite = ET.fromstring(reports["junit"].read_text()).find("testsuite")
    error = suite.find("testcase").find("error")
    assert "\\x1b]52;c;ZXZpbA==\\x07[/bold]" in error.get("message")


def test_fail_under_still_exits_one_for_a_hostile_submission(hostile):
    result = grade_hostile(hostile, "--fail-under", "50")
    assert result.exit_code == 1
    assert_clean(result.output)


def test_an_error_message_naming_a_hostile_path_is_shown_without_control_codes(tmp_path):
    course = make_course(tmp_path, PUBLIC)
    missing = tmp_path / f"eve{HOSTILE}"
    arguments = ["toy", "--course", str(course), "--device", "cpu", "--submission", str(missing)]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 2
    assert "submission not found" in result.stderr
    assert_clean(result.output)
    assert "\\x1b]52;c;ZXZpbA==\\x07" in result.stderr


# -- each renderer on its own --------------------------------------------------------------


def hostile_grade() -> Grade:
    """A grade whose every text field holds escapes, markup, Markdown and HTML."""
    text = f"{HOSTILE} {MARKDOWN} a|b\nsecond line\ufffe"
    failed = CheckResult(
        id=f"public/test_x.py::test_{HOSTILE}",
        name=f"name {HOSTILE}",
        score=0,
        max_score=3,
        status="failed",
        hidden=False,
        message=text,
        details=f"Traceback (your code):\n  {HOSTILE}.py, line 1, in f\n    {text}",
        metrics={f"metric{HOSTILE}": f"value {HOSTILE}", "error": 1.5},
    )
    return Grade(
        assignment="toy",
        title=f"Toy {MARKUP}",
        seed=1,
        device="cpu",
        grader_version="0.1.0",
        duration_s=1.0,
        submission=SubmissionInfo(path=f"subs/{HOSTILE}", sha256="ab" * 32),
        tests=(failed,),
        student_output=f"printed {HOSTILE}\n{MARKUP}\n",
    )


def test_the_table_shows_markup_and_escapes_as_text():
    console = Console(record=True, width=100, file=io.StringIO())
    console.print(renderables(hostile_grade(), verbose=True))
    shown = console.export_text()
    assert_clean(shown)
    assert "[/bold]" in shown and "[link=file:///etc/passwd]x[/link]" in shown
    assert "\\x1b]52;c;ZXZpbA==\\x07" in shown
    assert "printed" in shown and "your code printed" in shown


def test_the_table_on_a_terminal_has_only_the_styles_the_grader_chose():
    output = io.StringIO()
    console = Console(file=output, width=100, force_terminal=True, color_system="standard")
    console.print(renderables(hostile_grade(), verbose=True))
    sequences = re.findall(r"\x1b(.)", output.getvalue())
    assert set(sequences) == {"["}  # colours (CSI ... m) only: no OSC, no clipboard
    assert "\x07" not in output.getvalue() and "\x9b" not in output.getvalue()
    assert all(s.endswith("m") for s in re.findall(r"\x1b\[[0-9;]*.", output.getvalue()))


def test_the_live_status_line_shows_a_hostile_name_as_text():
    output = io.StringIO()
    progress = LiveProgress(Console(file=output, width=200))
    progress.on_start(f"name {HOSTILE}\nnext line", 5.0, None)
    progress.console.print(progress)
    shown = output.getvalue()
    assert_clean(shown)
    assert "\\x1b]52;c;ZXZpbA==\\x07[/bold]" in shown
    assert shown.count("\n") == 1


@pytest.mark.parametrize("render", [to_json, to_gradescope], ids=["json", "gradescope"])
def test_json_reports_hold_printable_strings(render):
    text = render(hostile_grade())
    assert_clean(text)
    strings = decoded(text)
    assert_clean(strings)
    assert "\\x1b]52;c;ZXZpbA==\\x07" in strings


def test_json_report_bounds_every_string():
    huge = CheckResult(
        id="public/t.py::test_x",
        name="x",
        score=0,
        max_score=1,
        status="error",
        hidden=False,
        message="m" * 5_000_000,
        details="d" * 5_000_000,
    )
    grade = Grade(**{**hostile_grade().__dict__, "tests": (huge,)})
    assert len(to_json(grade)) < 1_000_000
    assert len(to_gradescope(grade)) < 1_000_000


def test_junit_xml_parses_and_holds_no_control_characters():
    text = to_junit(hostile_grade())
    assert_clean(text)
    root = ET.fromstring(text)
    case = root.find("testsuite").find("testcase")
    failure = case.find("failure")
    assert "\\x1b]52;c;ZXZpbA==\\x07" in failure.get("message")
    assert "\\x9b31m" in failure.text
    properties = {p.get("name"): p.get("value") for p in case.find("properties")}
    assert any("\\x1b" in name for name in properties)


def test_markdown_summary_renders_no_link_image_or_html_from_student_text():
    text = to_markdown(hostile_grade())
    assert_clean(text)
    html = markdown_html(text)
    assert "<a " not in html and "<img" not in html
    assert "javascript:" in html  # shown as text
    assert html.count("<tr>") == 3  # header, the check, the total
    assert all(row.count("<td") == 4 for row in html.split("<tr>")[2:])
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "[click](javascript:alert(1))" in html


def test_markdown_escapes_survive_a_student_backslash_before_a_pipe():
    grade = hostile_grade()
    check = CheckResult(**{**grade.tests[0].__dict__, "message": "a\\|b\\", "metrics": {}})
    html = markdown_html(to_markdown(Grade(**{**grade.__dict__, "tests": (check,)})))
    assert "a\\|b\\" in html
    assert all(row.count("<td") == 4 for row in html.split("<tr>")[2:])


def test_batch_shows_hostile_student_names_as_text(tmp_path):
    course = make_course(tmp_path, PUBLIC)
    subs = tmp_path / "subs"
    subs.mkdir()
    (tmp_path / "submission").rename(subs / f"eve{CLIPBOARD}[bold]")  # no "/" in a name
    (subs / f"mal{CLIPBOARD}[red].zip").write_bytes(b"not a zip")
    (subs / f"notes{CLIPBOARD}[blink].txt").write_text("")
    out = tmp_path / "out"
    arguments = ["batch", "toy", str(subs), "-o", str(out), "-j", "1", "--device", "cpu"]
    result = CliRunner().invoke(cli, [*arguments, "--course", str(course)])
    assert result.exit_code == 0, result.output
    assert_clean(result.output)
    for words in ("eve\\x1b]52;c;ZXZpbA==\\x07[bold]", "mal\\x1b]52", "notes\\x1b]52"):
        assert words in result.output
    summary = (out / "summary.json").read_text()
    assert_clean(decoded(summary))
    problems = json.loads(summary)["problems"]
    assert problems[0]["student"] == "mal\\x1b]52;c;ZXZpbA==\\x07[red]"
