"""The starter notebook of an assignment: the exercise and its stubs, ready for Jupyter or Colab.

`grade init ASSIGNMENT --notebook` and `grade release --notebook` write it as
`ASSIGNMENT/MODULE.ipynb`: a first markdown cell on how a notebook is graded, the README as
markdown cells (one per `## ` section), the stub module as code cells (its preamble, then
one cell per function or class), and a last cell, marked `skip-grading`, that runs the
public checks on the saved notebook. Cell ids are fixed, so the same course writes the same
notebook. Built from course content (trusted); uses nbformat, so it validates as it writes.
"""

from __future__ import annotations

import ast
import itertools
import re

from grader.course import Assignment
from grader.notebook import require_nbformat
from grader.notebook.convert import SKIP_TAG

HOW_TO = """\
**Working in this notebook.** Write your code in the code cells below; the grader runs them,
top to bottom, as one module (markdown cells and outputs are ignored). Cells whose first line
is `# skip-grading` (or that carry the tag `skip-grading`) are left out: use them to try your
code, train, or plot. IPython magics (`%matplotlib`, `!pip`) are left out too.

Grade with `grade {name}` in this folder, or run the last cell; both read the *saved*
notebook, so save first. In Colab, download the notebook (File > Download > .ipynb) and
grade that file: `grade {name} --submission {module}.ipynb`."""

GRADE_CELL = """\
# skip-grading
# Runs the public checks on the saved notebook: save it first (Ctrl+S).
!grade {name}"""


def _module_cells(source: str) -> list[str]:
    """The stub's preamble, then each top-level function or class with its decorators and
    the comment lines just above it."""
    lines = source.splitlines()
    starts = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            while first > 0 and lines[first - 1].lstrip().startswith("#"):
                first -= 1
            starts.append(first)
    bounds = [0, *starts, len(lines)]
    chunks = ["\n".join(lines[a:b]).strip("\n") for a, b in itertools.pairwise(bounds)]
    return [chunk for chunk in chunks if chunk.strip()]


def _readme_cells(readme: str) -> list[str]:
    """The README split before each `## ` heading."""
    parts = re.split(r"(?m)^(?=## )", readme)
    return [part.strip("\n") for part in parts if part.strip()]


def starter_notebook(assignment: Assignment) -> str:
    """The starter notebook of `assignment` as .ipynb text (nbformat 4, validated)."""
    nbformat = require_nbformat()
    new = nbformat.v4
    module = assignment.files[0]
    how_to = HOW_TO.format(name=assignment.name, module=assignment.module)
    cells = [new.new_markdown_cell(how_to)]
    if assignment.readme.is_file():
        readme = assignment.readme.read_text(encoding="utf-8")
        cells += [new.new_markdown_cell(text) for text in _readme_cells(readme)]
    stub = assignment.template_dir / module
    if stub.is_file():
        cells += [new.new_code_cell(text) for text in _module_cells(stub.read_text("utf-8"))]
    grade_cell = new.new_code_cell(GRADE_CELL.format(name=assignment.name))
    grade_cell.metadata["tags"] = [SKIP_TAG]
    cells.append(grade_cell)
    for number, cell in enumerate(cells, start=1):
        cell.id = f"{assignment.name}-{number}"
    notebook = new.new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
    )
    return nbformat.writes(notebook)
