"""Read a student's notebook as data: bounded, validated with nbformat, outputs never looked at.

A notebook is JSON that anyone can write by hand, so it is read like any hostile file: its
size is capped before parsing, and so is the number of JSON objects and arrays it may hold
(an object costs a parser far more memory than its two bytes); the number of cells (each
costs the validator time) and the size of the code (each character costs the tokenizer
time) are capped before the work they would cost. Only nbformat version 4 is
read (what Jupyter, JupyterLab, VS Code and Colab write); a version 3 notebook or broken JSON
is refused with one line. Outputs, execution counts and attachments are dropped before
nbformat validates the rest, so nothing a notebook claims its code printed is ever used.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

from grader.errors import BadInput
from grader.notebook import require_nbformat
from grader.safecopy import shown
from grader.safetext import one_line

MAX_NOTEBOOK_BYTES = 20 << 20
MAX_CONTAINERS = 500_000  # JSON objects and arrays: a generous notebook holds a few thousand
MAX_CELLS = 10_000
MAX_CODE_CHARS = 4 << 20
CLEAR_OUTPUTS = "clear its outputs (Edit > Clear All Outputs) and save it again"


@dataclass(frozen=True)
class Cell:
    """One cell: its number counting every cell from 1, its kind, its text and its tags."""

    number: int
    kind: str
    source: str
    tags: tuple[str, ...] = ()


def parse(data: bytes, label: str) -> dict[str, Any]:
    """The notebook's JSON document, within the caps; `BadInput` for anything else."""
    name = shown(label)
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise BadInput(f"{name} is larger than {MAX_NOTEBOOK_BYTES >> 20} MB; {CLEAR_OUTPUTS}.")
    if data.count(b"{") + data.count(b"[") > MAX_CONTAINERS:
        raise BadInput(f"{name} holds more JSON objects than a notebook could; {CLEAR_OUTPUTS}.")
    try:
        document = json.loads(data)
    except RecursionError:
        raise BadInput(f"{name} is not a notebook: its JSON is nested too deeply.") from None
    except ValueError as error:
        reason = one_line(error, 200)
        raise BadInput(f"{name} is not a notebook: its JSON is invalid ({reason}).") from None
    if not isinstance(document, dict) or "nbformat" not in document:
        raise BadInput(f"{name} is not a notebook: it has no nbformat version.")
    version = document["nbformat"]
    if type(version) is not int or version != 4:
        raise BadInput(
            f"{name} is a version {one_line(repr(version), 20)} notebook and the grader reads "
            "version 4: open it in Jupyter and save it (or run `jupyter nbconvert --to "
            "notebook --nbformat 4`)."
        )
    return document


def _drop_outputs(document: dict[str, Any]) -> None:
    """Forget what the notebook says its cells printed or showed: never read, never shown."""
    cells = document.get("cells")
    for cell in cells if isinstance(cells, list) else ():
        if isinstance(cell, dict):
            cell.pop("attachments", None)
            if cell.get("cell_type") == "code":
                cell["outputs"] = []
                cell["execution_count"] = None


def _check_language(document: dict[str, Any], name: str) -> None:
    metadata = document.get("metadata", {})
    for key, field in (("language_info", "name"), ("kernelspec", "language")):
        language = metadata.get(key, {}).get(field)
        if isinstance(language, str) and not language.lower().startswith("python"):
            raise BadInput(f"{name} is a notebook in {one_line(language, 40)}, not Python.")


def read_cells(data: bytes, label: str) -> list[Cell]:
    """The cells of the notebook `data` (called `label` in messages), validated as nbformat 4."""
    name = shown(label)
    document = parse(data, label)
    cells = document.get("cells")
    if isinstance(cells, list) and len(cells) > MAX_CELLS:
        raise BadInput(f"{name} has {len(cells)} cells; a notebook may have {MAX_CELLS}.")
    _drop_outputs(document)
    nbformat = require_nbformat()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "cell is missing an id": harmless here
            nbformat.validate(nbformat.from_dict(document), version=4)
    except nbformat.ValidationError as error:
        reason = one_line(getattr(error, "message", error), 300)
        raise BadInput(f"{name} is not a valid version 4 notebook: {reason}.") from None
    except RecursionError:
        raise BadInput(f"{name} is not a notebook: its JSON is nested too deeply.") from None
    _check_language(document, name)
    read = []
    for number, cell in enumerate(document["cells"], start=1):
        source = cell["source"]
        read.append(
            Cell(
                number=number,
                kind=cell["cell_type"],
                source=source if isinstance(source, str) else "".join(source),
                tags=tuple(cell["metadata"].get("tags", ())),
            )
        )
    if sum(len(cell.source) for cell in read if cell.kind == "code") > MAX_CODE_CHARS:
        raise BadInput(f"{name} holds more than {MAX_CODE_CHARS >> 20} MB of code.")
    return read
