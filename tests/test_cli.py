"""The `grade` command as users run it: output, files written and exit codes."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import FIXTURES, ROOT, make_course

from grader.cli import cli

CORRECT = FIXTURES / "assignment1" / "correct"


def run_grade(*args: str):
    return CliRunner().invoke(cli, ["assignment1", "--course", str(ROOT), "--device", "cpu", *args])


def test_list_shows_assignments_with_points():
    result = CliRunner().invoke(cli, ["list", "--course", str(ROOT)])
    assert result.exit_code == 0
    assert "assignment1" in result.output
    assert "Perceptron logic gates" in result.output


def test_init_creates_the_folder_and_refuses_to_overwrite(tmp_path):
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        first = runner.invoke(cli, ["init", "assignment1", "--course", str(ROOT)])
        assert first.exit_code == 0, first.output
        assert Path("assignment1/perceptron.py").is_file()
        assert Path("assignment1/README.md").is_file()
        Path("assignment1/perceptron.py").write_text("# my work\n")
        second = runner.invoke(cli, ["init", "assignment1", "--course", str(ROOT)])
        assert second.exit_code == 2
        assert "already exists" in second.output
        assert Path("assignment1/perceptron.py").read_text() == "# my work\n"


def test_grading_the_default_folder_prints_the_table(tmp_path):
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        shutil.copytree(CORRECT, "assignment1")
        result = runner.invoke(cli, ["assignment1", "--course", str(ROOT), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "Total" in result.output
    assert "100/100" in result.output


def test_json_report_has_the_stable_keys(tmp_path):
    out = tmp_path / "result.json"
    result = run_grade("--submission", str(CORRECT), "--format", "json", "-o", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report) >= {
        "assignment", "score", "max_score", "percent", "seed", "grader_version",
        "duration_s", "submission", "tests",
    }  # fmt: skip
    assert report["score"] == 100
    assert set(report["submission"]) == {"path", "sha256"}
    first = report["tests"][0]
    assert set(first) >= {"id", "name", "score", "max_score", "status", "hidden", "message",
                          "duration_s"}  # fmt: skip
    assert first["id"] == "public/test_gates.py::test_and_truth_table"


def test_json_to_stdout_is_only_json():
    result = run_grade("--submission", str(CORRECT), "--format", "json", "-k", "xor")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["tests"][0]["name"].startswith("XOR")


def test_fail_under_exits_1_after_reporting():
    stub = ROOT / "student_template" / "assignment1"
    result = run_grade("--submission", str(stub), "--public-only", "--fail-under", "50")
    assert result.exit_code == 1
    assert "Total" in result.stdout
    assert "under --fail-under 50%" in result.stderr


def test_public_only_runs_no_hidden_checks_and_says_so():
    result = run_grade("--submission", str(CORRECT), "--public-only", "--format", "json")
    report = json.loads(result.stdout)
    assert report["public_only"] is True
    assert not any(t["hidden"] for t in report["tests"])
    assert report["max_score"] == 40


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["assignment9"], "unknown assignment 'assignment9'"),
        (["assignment1", "--submission", "does/not/exist"], "submission not found"),
        (["assignment1", "-k", "and"], "invalid -k expression"),
        (["assignment1", "-k", "no_such_check"], "no checks of assignment1 match"),
        (["assignment1", "--report", "pdf:x.pdf"], "is not FORMAT:PATH"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(args, message):
    command = [*args, "--course", str(ROOT), "--device", "cpu"]
    if "--submission" not in args:
        command += ["--submission", str(CORRECT)]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        (["assignment1", "--no-such-option"], "Usage: grade ASSIGNMENT [OPTIONS]\n"),
        (["run", "assignment1", "--no-such-option"], "Usage: grade run ASSIGNMENT [OPTIONS]\n"),
    ],
)
def test_usage_lines_show_the_order_grade_accepts(command, usage):
    result = CliRunner().invoke(cli, command, prog_name="grade")
    assert result.exit_code == 2
    assert result.stderr.startswith(usage), result.stderr
    assert "grade  " not in result.stderr


def test_corrupt_zip_is_bad_input(tmp_path):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 definitely not a zip")
    result = run_grade("--submission", str(broken))
    assert result.exit_code == 2
    assert (
        "is neither a folder nor a .zip" in result.stderr or "not a readable zip" in result.stderr
    )


def test_a_broken_course_is_an_internal_error_exit_3(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(ROOT / "assignments" / "assignment1", course / "assignments" / "assignment1")
    (course / "assignments" / "assignment1" / "assignment.toml").write_text("title = \n")
    result = CliRunner().invoke(cli, ["list", "--course", str(course)])
    assert result.exit_code == 3
    assert "internal grader error" in result.stderr


def test_zip_of_a_folder_holding_the_assignment_folder_is_accepted(tmp_path):
    archive = tmp_path / "work.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(CORRECT / "perceptron.py", "mywork/assignment1/perceptron.py")
    result = run_grade(
        "--submission", str(archive), "--format", "json", "-k", "test_and_truth_table"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["score"] == 7


def test_python_dash_m_grader_is_the_same_command(tmp_path):
    out = tmp_path / "r.json"
    completed = subprocess.run(
        [sys.executable, "-m", "grader", "assignment1", "--course", str(ROOT),
         "--submission", str(CORRECT), "--format", "json", "-o", str(out), "--device", "cpu"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert json.loads(out.read_text())["percent"] == 100
    assert "Total" in completed.stdout


FLAKY = """
import pytest
from pathlib import Path

@pytest.mark.points(10)
def test_alternates():
    marker = Path(__file__).parent / "ran-once"
    first = not marker.exists()
    marker.touch()
    if not first:
        marker.unlink()
    assert first, "second run fails"
"""


def test_repeat_reports_checks_whose_outcome_changed(tmp_path):
    course = make_course(tmp_path, FLAKY)
    args = ["toy", "--course", str(course), "--submission", str(tmp_path / "submission")]
    result = CliRunner().invoke(cli, [*args, "--device", "cpu", "--repeat", "2"])
    assert result.exit_code == 1
    assert "Flaky checks over 2 runs" in result.stderr
    assert "public/test_toy.py::test_alternates" in result.stderr


def test_repeat_of_a_deterministic_grade_is_identical():
    result = run_grade("--submission", str(CORRECT), "--repeat", "2", "-k", "xor")
    assert result.exit_code == 0
    assert "All 2 runs gave identical outcomes" in result.stderr


def test_reports_are_written_whole_and_readable(tmp_path):
    out = tmp_path / "nested" / "r.json"
    result = run_grade("--submission", str(CORRECT), "-k", "xor", "--report", f"json:{out}")
    assert result.exit_code == 0
    assert json.loads(out.read_text())["assignment"] == "assignment1"
    assert [p.name for p in out.parent.iterdir()] == ["r.json"]
    assert out.stat().st_mode & 0o044


def test_the_progress_line_shows_a_training_check_against_its_budget():
    from rich.console import Console

    from grader.cli.grading import LiveProgress

    progress = LiveProgress(Console())
    progress.on_start("Held-out accuracy", 70.0, 60.0)
    progress.started -= 12
    assert "Held-out accuracy 12s of a 60s budget (stopped at 70s)" in str(progress.__rich__())
    progress.on_start("softmax", 5.0, None)
    progress.started -= 3
    assert "softmax 3s of 5s allowed per call" in str(progress.__rich__())


SLOW_CHECK = '''
    import time
    import pytest

    @pytest.mark.points(1)
    def test_takes_a_while(student):
        """Takes a while"""
        time.sleep(1.5)
    '''


def test_the_progress_line_reaches_a_terminal_while_checks_run(tmp_path):
    """pytest's output is redirected while checks run; the live line must not go with it."""
    course = make_course(tmp_path, SLOW_CHECK)
    command = [sys.executable, "-m", "grader", "toy", "--course", str(course), "--device",
               "cpu", "--submission", str(tmp_path / "submission")]  # fmt: skip
    controller, terminal = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=terminal, env=env, cwd=tmp_path
    )
    os.close(terminal)
    seen = b""
    with contextlib.suppress(OSError):  # reading fails once the grade ends and closes it
        while chunk := os.read(controller, 4096):
            seen += chunk
    os.close(controller)
    assert process.wait(timeout=120) == 0
    assert b"Takes a while 1s" in seen
