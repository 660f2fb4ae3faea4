"""Shell completion: assignment names complete wherever a command takes one, and
`grade completion SHELL` prints the script that enables it."""

from __future__ import annotations

import pytest
from click.shell_completion import ShellComplete
from click.testing import CliRunner
from support import ROOT

from grader.cli import cli

ASSIGNMENTS = [f"assignment{n}" for n in range(1, 9)]


def _complete(args: list[str], incomplete: str) -> list[str]:
    completion = ShellComplete(cli, {}, "grade", "_GRADE_COMPLETE")
    return [item.value for item in completion.get_completions(args, incomplete)]


@pytest.fixture(autouse=True)
def in_the_course(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("DL_GRADER_COURSE", raising=False)


def test_grade_completes_assignment_names_and_commands():
    found = _complete([], "")
    assert set(ASSIGNMENTS) <= set(found)
    assert {"init", "batch", "release", "list"} <= set(found)
    assert "run" not in found  # the hidden command behind `grade ASSIGNMENT`
    assert _complete([], "assignment") == ASSIGNMENTS


@pytest.mark.parametrize("command", ["init", "batch", "release"])
def test_commands_that_take_an_assignment_complete_its_name(command):
    assert _complete([command], "assign") == ASSIGNMENTS
    assert _complete([command], "assignment3") == ["assignment3"]


def test_options_of_a_grade_still_complete():
    assert "--format" in _complete(["assignment3"], "--fo")


def test_completion_follows_the_course_option(tmp_path):
    (tmp_path / "assignments" / "toy").mkdir(parents=True)
    (tmp_path / "assignments" / "toy" / "assignment.toml").write_text(
        'title = "Toy"\npoints = 1\nfiles = ["toy.py"]\n'
    )
    assert _complete(["init", "--course", str(tmp_path)], "") == ["toy"]


def test_a_folder_that_is_no_course_completes_nothing_and_raises_nothing(tmp_path):
    assert _complete(["init", "--course", str(tmp_path)], "") == []
    (tmp_path / "assignments" / "broken").mkdir(parents=True)
    (tmp_path / "assignments" / "broken" / "assignment.toml").write_text("title = [")
    assert _complete(["init", "--course", str(tmp_path)], "") == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_grade_completion_prints_the_script_for_a_shell(shell):
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0, result.output
    assert "_GRADE_COMPLETE" in result.output
    assert f"{shell}_complete" in result.output
