"""Test helpers: notebooks written the way JupyterLab and Colab write them.

`notebook_from_py` splits a module into code cells (its preamble, then one cell per top-level
function or class) and, with `extras`, adds what real notebooks hold besides code: markdown
cells, magics and shell commands, a `%%time` cell, stored outputs (stream text with
terminal escapes, an error traceback, a PNG), and cells marked `skip-grading` whose code
would fail if it ran. `cell_of` finds which cell number a piece of code ended up in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5"
    "ErkJggg=="
)


def split_module(source: str) -> list[str]:
    """The module's preamble, then each top-level def/class (with its decorators)."""
    cells: list[list[str]] = [[]]
    lines = source.splitlines(keepends=True)
    for index, line in enumerate(lines):
        previous = lines[index - 1] if index else ""
        starts = line.startswith(("def ", "class ", "@")) and not previous.startswith("@")
        if starts and cells[-1]:
            cells.append([])
        cells[-1].append(line)
    return ["".join(cell).strip("\n") + "\n" for cell in cells if "".join(cell).strip()]


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def code_cell(source: str, flavour: str, index: int, **extra: Any) -> dict[str, Any]:
    tags = extra.pop("tags", None)
    metadata: dict[str, Any] = {"tags": tags} if tags else {}
    cell: dict[str, Any] = {
        "cell_type": "code",
        "execution_count": extra.pop("execution_count", index + 1),
        "metadata": metadata,
        "outputs": extra.pop("outputs", []),
        "source": _lines(source),
    }
    if flavour == "colab":
        metadata["id"] = f"c0lab{index:04d}"
        metadata["outputId"] = f"0a1b2c3d-{index:04d}"
    else:
        cell["id"] = f"jl-{index:04d}"
    return cell


def markdown_cell(text: str, flavour: str, index: int) -> dict[str, Any]:
    cell: dict[str, Any] = {"cell_type": "markdown", "metadata": {}, "source": _lines(text)}
    if flavour == "colab":
        cell["metadata"]["id"] = f"md{index:04d}"
    else:
        cell["id"] = f"md-{index:04d}"
    return cell


OUTPUTS = [
    {"name": "stdout", "output_type": "stream", "text": ["\x1b[31mall good\x1b[0m\n"]},
    {
        "output_type": "error",
        "ename": "ValueError",
        "evalue": "stored, never trusted",
        "traceback": ["\x1b[0;31mValueError\x1b[0m: stored, never trusted"],
    },
    {
        "output_type": "display_data",
        "data": {"image/png": PNG, "text/plain": ["<Figure size 640x480 with 1 Axes>"]},
        "metadata": {},
    },
    {
        "output_type": "execute_result",
        "execution_count": 3,
        "data": {"text/plain": ["'SCORE: 100/100'"]},
        "metadata": {},
    },
]


def notebook_from_py(source: str, flavour: str = "jupyterlab", extras: bool = True) -> dict:
    """A notebook holding the module's code (see the module docstring)."""
    code = split_module(source)
    specs: list[tuple[str, str, dict[str, Any]]] = []
    if extras:
        specs += [
            ("markdown", "# My solution\n\nThe cells below are graded.", {}),
            ("code", "%matplotlib inline\n!pip install numpy\nimport numpy as np\n", {}),
        ]
    for index, text in enumerate(code):
        specs.append(("code", text, {}))
        if extras and index == 0:
            specs += [
                ("markdown", "## Trying it out\n\n*Not* graded.", {}),
                ("code", "# skip-grading\nraise SystemExit('not for grading')\n", {}),
                ("code", "import os\nos._exit(3)\n", {"tags": ["skip-grading"]}),
                ("code", "%%time\nscratch = [1, 2, 3]\n", {"outputs": OUTPUTS}),
                ("code", "%%bash\necho this is not python\nexit 1\n", {}),
            ]
    cells = []
    for index, (kind, text, extra) in enumerate(specs):
        if kind == "markdown":
            cells.append(markdown_cell(text, flavour, index))
        else:
            cells.append(code_cell(text, flavour, index, **extra))
    if flavour == "colab":
        metadata = {
            "colab": {"provenance": [], "gpuType": "T4"},
            "kernelspec": {"name": "python3", "display_name": "Python 3"},
            "language_info": {"name": "python"},
            "accelerator": "GPU",
        }
        return {"nbformat": 4, "nbformat_minor": 0, "metadata": metadata, "cells": cells}
    metadata = {
        "kernelspec": {
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "name": "python3",
        },
        "language_info": {
            "codemirror_mode": {"name": "ipython", "version": 3},
            "file_extension": ".py",
            "mimetype": "text/x-python",
            "name": "python",
            "nbconvert_exporter": "python",
            "pygments_lexer": "ipython3",
            "version": "3.11.7",
        },
    }
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def write_notebook(path: Path, notebook: dict, flavour: str = "jupyterlab") -> Path:
    """Write `notebook` as its editor would (Colab: indent 2; JupyterLab: indent 1)."""
    indent = 2 if flavour == "colab" else 1
    path.write_text(json.dumps(notebook, indent=indent, ensure_ascii=False) + "\n")
    return path


def cell_of(notebook: dict, snippet: str) -> tuple[int, int]:
    """(cell number from 1, line in the cell from 1) of the first line holding `snippet`."""
    for number, cell in enumerate(notebook["cells"], start=1):
        for line_number, line in enumerate("".join(cell["source"]).split("\n"), start=1):
            if snippet in line:
                return number, line_number
    raise AssertionError(f"{snippet!r} is in no cell")
