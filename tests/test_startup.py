"""What `grade` imports before it knows it needs it: neither torch nor the batch engine for a
NumPy assignment whose references are cached, nothing heavy for `--help` and `list`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest
from support import FIXTURES, ROOT

from grader.cli import COMMANDS, cli

PROBE = """
import json, sys
from grader.cli import main
sys.argv = ["grade", *sys.argv[1:]]
try:
    main()
except SystemExit as done:
    code = done.code
heavy = ("torch", "grader.batch", "grader.pool", "pytest", "numpy", "grader.report.junit",
         "grader.notebook.convert")
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}))
"""


def run_grade(*args: str, data: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "DL_GRADER_DATA": data},
    )  # fmt: skip
    return json.loads(done.stdout.splitlines()[-1])


def test_grading_a_numpy_assignment_with_cached_references_never_imports_torch(tmp_path):
    submission = str(FIXTURES / "assignment3" / "correct")
    args = ("assignment3", "--submission", submission, "--format", "json", "-o", os.devnull)
    first = run_grade(*args, "--device", "cpu", data=str(tmp_path))
    assert first["code"] in (0, None) and "torch" in first["loaded"]  # computed the references
    again = run_grade(*args, "--device", "cpu", data=str(tmp_path))
    assert again["code"] in (0, None)
    assert "torch" not in again["loaded"]
    assert "grader.batch" not in again["loaded"] and "grader.pool" not in again["loaded"]
    # Nor what only another format or a notebook needs.
    assert "grader.report.junit" not in again["loaded"]
    assert "grader.notebook.convert" not in again["loaded"]


@pytest.mark.parametrize("args", [("--help",), ("list",)])
def test_help_and_list_import_nothing_heavy(tmp_path, args):
    assert run_grade(*args, data=str(tmp_path))["loaded"] == []


def test_the_command_list_is_the_commands_own_help():
    """`grade --help` shows each command's line without importing it; the lines must be
    the commands' own."""
    ctx = click.Context(cli)
    for name, (_, _, summary) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
        if summary:
            assert command.get_short_help_str(limit=len(summary) + 1) == summary


def test_torchs_version_is_read_without_importing_it():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, json; from grader.refcache import _torch_version; "
         "print(json.dumps([_torch_version(), 'torch' in sys.modules]))"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    import torch

    assert json.loads(done.stdout) == [torch.__version__, False]


def test_only_plain_top_level_functions_are_answered_without_the_module(tmp_path):
    from grader.refcache import top_level_functions

    source = tmp_path / "reference.py"
    source.write_text(
        "import functools\n"
        "from torch import softmax as relu\n"
        "def plain(x):\n    return x\n"
        "@functools.cache\ndef decorated(x):\n    return x\n"
        "def rebound(x):\n    return x\n"
        "rebound = staticmethod(rebound)\n"
        "def relu(x):\n    return x\n"
        "class Affine:\n    def forward(self, x):\n        return x\n"
    )
    assert top_level_functions(source) == {"plain"}
