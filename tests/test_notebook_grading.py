"""Notebooks graded end to end, as students and TAs run them: every assignment's correct code
as a notebook scores full points, the starter notebook scores nothing, messages point at
cells, and a batch of notebooks grades exactly like the same code in .py files."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from notebooks import cell_of, code_cell, markdown_cell, notebook_from_py, write_notebook
from rich.console import Console
from support import FIXTURES, ROOT

from grader.batch import grade_batch
from grader.cli import cli
from grader.course import load_course
from grader.errors import BadInput
from grader.notebook.starter import starter_notebook
from grader.release import build_release
from grader.report import FORMATS
from grader.report.table import renderables
from grader.runner import grade
from grader.submission import prepare

COURSE = load_course(ROOT)
ASSIGNMENTS = sorted(p.name for p in FIXTURES.iterdir() if (p / "correct").is_dir())
# Every assignment once, alternating the two editors' formats, and assignment3 in both.
FLAVOURED = [
    (name, "colab" if index % 2 else "jupyterlab") for index, name in enumerate(ASSIGNMENTS)
] + [("assignment3", "colab")]
SOFTMAX = (FIXTURES / "assignment3" / "correct" / "softmax.py").read_text()
PERCEPTRON = (FIXTURES / "assignment1" / "correct" / "perceptron.py").read_text()


def _correct(assignment: str) -> str:
    module = COURSE.assignment(assignment).files[0]
    return (FIXTURES / assignment / "correct" / module).read_text()


def _hand_written(*cells: tuple[str, str]) -> dict:
    """A JupyterLab notebook of ("markdown" | "code", text) cells."""
    made = [
        markdown_cell(text, "jupyterlab", i)
        if kind == "markdown"
        else code_cell(text, "jupyterlab", i)
        for i, (kind, text) in enumerate(cells)
    ]
    return notebook_from_py("", extras=False) | {"cells": made}


def _messages(result) -> set[str]:
    return {t.message for t in result.tests}


@pytest.mark.parametrize(("assignment", "flavour"), FLAVOURED)
def test_each_correct_fixture_as_a_notebook_scores_full_points(assignment, flavour, tmp_path):
    notebook = notebook_from_py(_correct(assignment), flavour)
    path = write_notebook(tmp_path / "my work.ipynb", notebook, flavour)
    result = grade(assignment, path, course=COURSE)
    failed = [f"{t.id}: {t.message}" for t in result.tests if t.status != "passed"]
    assert failed == []
    assert result.score == result.max_score == COURSE.assignment(assignment).points
    magics = cell_of(notebook, "%matplotlib")
    assert f"cell {magics[0]}, line 1: `%matplotlib inline` left out" in " ".join(result.notes)
    assert any("`%%bash` cell is not Python" in note for note in result.notes)
    assert "SCORE" not in json.dumps(result.to_dict())  # a stored output, never read


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_starter_notebook_scores_zero_with_not_implemented(assignment, tmp_path):
    spec = COURSE.assignment(assignment)
    (tmp_path / assignment).mkdir()
    (tmp_path / assignment / f"{spec.module}.ipynb").write_text(starter_notebook(spec))
    result = grade(assignment, tmp_path, course=COURSE)
    assert result.score == 0
    assert result.tests
    assert all("not implemented" in t.message.lower() for t in result.tests), _messages(result)


def _graded_with(tmp_path: Path, notebook: dict, assignment: str = "assignment3", **options):
    path = write_notebook(tmp_path / "hw3.ipynb", notebook)
    return grade(assignment, path, course=COURSE, **options)


def test_a_syntax_error_in_cell_5_is_reported_as_cell_5(tmp_path):
    notebook = _hand_written(
        ("markdown", "# Assignment 3"),
        ("code", "import numpy as np\n"),
        ("markdown", "Softmax first."),
        ("code", SOFTMAX),
        ("code", "def helper(x):\n    return x +\n"),
    )
    result = _graded_with(tmp_path, notebook)
    assert result.score == 0
    (message,) = _messages(result)
    assert message.startswith("running the code cells of hw3.ipynb raised SyntaxError")
    assert message.endswith("(hw3.ipynb, cell 5, line 2).")
    assert "hw3.ipynb, cell 5, line 2\n    return x +" in result.tests[0].details


def test_an_error_while_the_cells_run_points_at_its_cell_and_line(tmp_path):
    notebook = _hand_written(
        ("code", SOFTMAX),
        ("markdown", "Now some top-level work."),
        ("code", "scores = np.zeros(3)\nprobabilities = softmax(scors)\n"),
    )
    result = _graded_with(tmp_path, notebook)
    (message,) = _messages(result)
    assert "NameError: name 'scors' is not defined (hw3.ipynb, cell 3, line 2)." in message
    assert "hw3.ipynb, cell 3, line 2, in <module>\n    probabilities = softmax(scors)" in (
        result.tests[0].details
    )


def test_an_error_in_a_call_points_at_the_cells_line_with_the_graders_own_copy(tmp_path):
    notebook = notebook_from_py(
        SOFTMAX.replace("def log_softmax(x):\n", "def log_softmax(x):\n    oops()\n")
    )
    result = _graded_with(tmp_path, notebook)
    cell, line = cell_of(notebook, "oops()")
    failed = [t for t in result.tests if t.status != "passed"]
    assert failed and all("log_softmax" in t.name for t in failed)
    assert all(f"(hw3.ipynb, cell {cell}, line {line})." in t.message for t in failed)
    assert f"hw3.ipynb, cell {cell}, line {line}, in log_softmax\n    oops()" in failed[0].details


def test_a_forbidden_import_in_a_cell_is_named_by_cell_and_line(tmp_path):
    notebook = _hand_written(
        ("markdown", "# Assignment 3"),
        ("code", SOFTMAX),
        ("markdown", "Checking against torch."),
        ("code", "import numpy as np\nimport torch.nn.functional as F\n"),
    )
    result = _graded_with(tmp_path, notebook)
    assert result.score == 0
    assert _messages(result) == {
        "hw3.ipynb, cell 4, line 2 imports torch.nn.functional, which this assignment does not "
        "allow: write it with NumPy yourself."
    }


def test_top_level_work_runs_under_the_import_limit(tmp_path):
    notebook = _hand_written(("code", SOFTMAX), ("code", "for epoch in iter(int, 1):\n    pass\n"))
    limits = COURSE.assignment("assignment3").limits.with_overrides(import_timeout_s=1)
    result = _graded_with(tmp_path, notebook, limits=limits)
    assert result.score == 0
    (message,) = _messages(result)
    assert message.startswith("running the code cells of hw3.ipynb took longer than 1 s")


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


NOTEBOOK_TEXT = json.dumps(notebook_from_py(SOFTMAX, "colab"))


@pytest.mark.parametrize(
    ("layout", "label"),
    [
        ({"softmax.ipynb": NOTEBOOK_TEXT, "README.md": "mine"}, "softmax.ipynb"),
        ({"assignment3.ipynb": NOTEBOOK_TEXT}, "assignment3.ipynb"),
        ({"assignment3/softmax.ipynb": NOTEBOOK_TEXT, "notes.ipynb": "{}"}, "softmax.ipynb"),
        ({"work/my solution.ipynb": NOTEBOOK_TEXT, "work/data.csv": "1,2"}, "my solution.ipynb"),
        ({"softmax.py": SOFTMAX, "scratch.ipynb": "{broken"}, None),
    ],
)
@pytest.mark.parametrize("zipped", [False, True])
def test_a_folder_or_zip_holding_a_notebook_is_found(tmp_path, layout, label, zipped):
    folder = tmp_path / "submission"
    for name, text in layout.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    source = _zip(tmp_path / "s.zip", layout) if zipped else folder
    work = tmp_path / "work"
    work.mkdir()
    prepared = prepare(source, COURSE.assignment("assignment3"), work)
    assert (prepared.sources.label if prepared.sources else None) == label
    module = (prepared.folder / "softmax.py").read_text()
    assert "def softmax_cross_entropy(logits, t):" in module


def test_a_zipped_notebook_grades_like_the_notebook(tmp_path):
    archive = _zip(tmp_path / "hw3.zip", {"hw3.ipynb": NOTEBOOK_TEXT})
    assert grade("assignment3", archive, course=COURSE).percent == 100


def test_a_folder_with_both_the_module_and_its_notebook_is_refused(tmp_path):
    (tmp_path / "softmax.py").write_text(SOFTMAX)
    (tmp_path / "assignment3.ipynb").write_text(NOTEBOOK_TEXT)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(BadInput, match=r"holds both softmax\.py and assignment3\.ipynb"):
        prepare(tmp_path, COURSE.assignment("assignment3"), work)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": []}),
         "hw3.ipynb is a version 3 notebook and the grader reads version 4"),
        ('{"cells": [{"cell_type": "code", "source": "x = 1"', "hw3.ipynb is not a notebook: "
         "its JSON is invalid"),
    ],
)  # fmt: skip
def test_a_v3_or_broken_notebook_exits_2_with_one_line(tmp_path, content, words):
    (tmp_path / "hw3.ipynb").write_text(content)
    result = CliRunner().invoke(
        cli, ["assignment3", "--course", str(ROOT), "--submission", str(tmp_path / "hw3.ipynb")]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {words}")
    assert result.stderr.count("\n") == 1


def test_notes_reach_every_report_escaped(tmp_path):
    notebook = _hand_written(("code", "%config \x1b]52;c;aGk=\x07 evil\n" + SOFTMAX))
    result = _graded_with(tmp_path, notebook)
    assert result.percent == 100
    console = Console(record=True, width=100, file=io.StringIO())
    console.print(renderables(result))
    texts = {"table": console.export_text()}
    texts |= {fmt: FORMATS[fmt](result) for fmt in ("json", "gradescope", "junit", "markdown")}
    for fmt, text in texts.items():
        assert "\x1b" not in text and "\x07" not in text, fmt
        if fmt != "junit":
            assert "IPython magics and shell commands" in text, fmt
    assert json.loads(texts["json"])["notes"] == [
        "cell 1, line 1: `%config \\x1b]52;c;aGk=\\x07 evil` left out (IPython magics and "
        "shell commands do not run when grading)."
    ]


def _mutate(old: str, new: str) -> str:
    assert PERCEPTRON.count(old) == 1
    return PERCEPTRON.replace(old, new)


def test_a_batch_of_notebooks_gives_the_gradebook_of_the_same_code_in_py_files(tmp_path):
    sources = {
        "ann": PERCEPTRON,
        "ben": PERCEPTRON,
        "cat": _mutate("0.5]), -0.7)", "0.5]), -0.2)"),
        "dov": (ROOT / "student_template" / "assignment1" / "perceptron.py").read_text(),
        "eli": _mutate("def XOR(x1, x2):", "def XOR(x1, x2)"),
        "fay": _mutate("def NOR(x1, x2):\n", "def NOR(x1, x2):\n    import os\n    os._exit(3)\n"),
    }
    as_py = tmp_path / "py"
    for student, source in sources.items():
        (as_py / student).mkdir(parents=True)
        (as_py / student / "perceptron.py").write_text(source)

    def notebook(student: str, flavour: str = "jupyterlab") -> str:
        return json.dumps(notebook_from_py(sources[student], flavour))

    mixed = tmp_path / "mixed"
    (mixed / "ann").mkdir(parents=True)
    (mixed / "ann" / "perceptron.py").write_text(sources["ann"])
    (mixed / "ben.ipynb").write_text(notebook("ben", "colab"))
    _zip(mixed / "cat.zip", {"cat/perceptron.ipynb": notebook("cat")})
    (mixed / "dov").mkdir()
    (mixed / "dov" / "assignment1.ipynb").write_text(notebook("dov", "colab"))
    _zip(mixed / "eli.zip", {"homework 1.ipynb": notebook("eli")})
    (mixed / "fay.ipynb").write_text(notebook("fay"))
    (mixed / "gus.ipynb").write_text('{"nbformat": 3, "nbformat_minor": 0, "worksheets": []}')
    (mixed / "hal.ipynb").write_text('{"nbformat": 4, "cells": [')

    options = {"course": COURSE, "jobs": 2, "device": "cpu"}
    want = grade_batch("assignment1", as_py, tmp_path / "out-py", **options)
    got = grade_batch("assignment1", mixed, tmp_path / "out-mixed", **options)

    rows = {row.student: row for row in got.rows}
    assert rows.pop("gus").status == "rejected"
    assert rows.pop("hal").status == "rejected"
    assert {s: (r.status, r.score) for s, r in rows.items()} == {
        r.student: (r.status, r.score) for r in want.rows
    }
    gradebook = list(csv.reader(io.StringIO(got.gradebook.read_text())))
    kept = [row for row in gradebook if row[0] not in ("gus", "hal")]
    expected = list(csv.reader(io.StringIO(want.gradebook.read_text())))
    reason = expected[0].index("reason")  # names the notebook's cell, or the .py's line
    assert [row[:reason] + row[reason + 1 :] for row in kept] == [
        row[:reason] + row[reason + 1 :] for row in expected
    ]
    assert [bool(row[reason]) for row in kept] == [bool(row[reason]) for row in expected]
    assert want.rows[1].score == 100 and want.rows[2].score < 100
    results = tmp_path / "out-mixed" / "results"
    reasons = {
        name: json.loads((results / f"{name}.json").read_text())["batch"]["message"]
        for name in ("gus", "hal", "eli")
    }
    assert reasons["gus"].startswith("gus.ipynb is a version 3 notebook")
    assert reasons["hal"].startswith("hal.ipynb is not a notebook: its JSON is invalid")
    eli = json.loads((results / "eli.json").read_text())
    line = cell_of(notebook_from_py(sources["eli"]), "def XOR(x1, x2)")
    assert f"(homework 1.ipynb, cell {line[0]}, line {line[1]})" in eli["tests"][0]["message"]


def test_init_notebook_writes_the_starter_that_grade_then_finds(tmp_path):
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        course = ["--course", str(ROOT)]
        first = runner.invoke(cli, ["init", "assignment3", "--notebook", *course])
        assert first.exit_code == 0, first.output
        assert sorted(p.name for p in Path("assignment3").iterdir()) == ["softmax.ipynb"]
        graded = runner.invoke(cli, ["assignment3", *course, "--format", "json"])
        assert graded.exit_code == 0, graded.output
        report = json.loads(graded.stdout)
        assert report["score"] == 0
        cells = json.loads(Path("assignment3/softmax.ipynb").read_text())["cells"]
        assert report["notes"] == [f"cell {len(cells)} left out: marked skip-grading."]
        again = runner.invoke(cli, ["init", "assignment3", "--notebook", *course])
        assert again.exit_code == 2
        assert "already exists; your work is kept" in again.stderr
        runner.invoke(cli, ["init", "assignment1", *course])
        beside = runner.invoke(cli, ["init", "assignment1", "--notebook", *course])
        assert beside.exit_code == 2
        assert "a notebook beside it would leave two submissions" in beside.stderr
        assert not Path("assignment1/perceptron.ipynb").exists()


def test_release_notebook_ships_the_starter_notebook_and_verifies_it(tmp_path):
    solution = FIXTURES / "assignment1" / "correct"
    bundle = build_release(
        "assignment1", tmp_path / "bundle", course=COURSE, solution=solution, notebook=True
    )
    assert "assignment1/perceptron.ipynb" in bundle.files
    assert "assignment1/perceptron.py" not in bundle.files
    assert bundle.verified[-1] == (
        "assignment1/perceptron.ipynb: 0/40 in the bundle, as the stub in the full course"
    )
    assert "(perceptron.ipynb)" in (tmp_path / "bundle" / "README.md").read_text()
    inside = grade(
        "assignment1", tmp_path / "bundle" / "assignment1", course=load_course(tmp_path / "bundle")
    )
    assert inside.public_only and inside.score == 0
