"""Turn a notebook's code cells, in order, into the module the checks import.

Markdown and raw cells are skipped (they still count in the cell numbers messages use), as
are code cells the student marks as not for grading: tagged `skip-grading`, or starting with
a `# skip-grading` comment (Colab has no tags). IPython syntax is replaced by `pass`
(`grader.notebook.magics`), each with a note for the report. The result is the module's text
and a `SourceMap` from its lines back to cells. Runs on the trusted side; never runs a cell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from grader.errors import BadInput
from grader.notebook.magics import plain_python
from grader.notebook.reading import Cell
from grader.safecopy import shown
from grader.safetext import one_line
from grader.sourcemap import SourceMap, Span

SKIP_TAG = "skip-grading"
SKIP_MARKER = re.compile(r"#\s*skip-grading\b", re.IGNORECASE)
MAX_NOTES = 20
MAGIC_NOTE = "IPython magics and shell commands do not run when grading"


@dataclass(frozen=True)
class NotebookModule:
    """The module made from a notebook, where its lines came from, and what was left out."""

    text: str
    sources: SourceMap
    notes: tuple[str, ...]


def cell_lines(source: str) -> list[str]:
    """A cell's lines as Python numbers them: split at \\n, \\r\\n and \\r only."""
    text = source.replace("\r\n", "\n").replace("\r", "\n")
    if not text:
        return []
    return text.removesuffix("\n").split("\n")


def skipped(cell: Cell, lines: list[str]) -> bool:
    """Whether the student marked the cell as not for grading."""
    first = next((line for line in lines if line.strip()), "")
    return SKIP_TAG in cell.tags or SKIP_MARKER.match(first.strip()) is not None


def _bounded(notes: list[str]) -> tuple[str, ...]:
    if len(notes) <= MAX_NOTES:
        return tuple(notes)
    return (*notes[:MAX_NOTES], f"... and {len(notes) - MAX_NOTES} more left out.")


def to_module(cells: list[Cell], label: str, module_file: str) -> NotebookModule:
    """The module `module_file` made of `cells` of the notebook messages call `label`."""
    name = shown(label)
    lines: list[str] = []
    spans = []
    notes = []
    left_out = []
    for cell in cells:
        if cell.kind != "code":
            continue
        if "\x00" in cell.source:
            raise BadInput(
                f"{name}: cell {cell.number} holds a NUL character, which Python code cannot."
            )
        source = cell_lines(cell.source)
        if skipped(cell, source):
            left_out.append(str(cell.number))
            continue
        plain = plain_python(source)
        for dropped in plain.dropped:
            text = one_line(dropped.text, 80)
            if plain.lines is None:
                notes.append(f"cell {cell.number}: left out, a `{text}` cell is not Python.")
            else:
                notes.append(
                    f"cell {cell.number}, line {dropped.line}: `{text}` left out ({MAGIC_NOTE})."
                )
        if plain.lines:
            spans.append(Span(len(lines) + 1, cell.number, len(plain.lines)))
            lines += plain.lines
    if left_out:
        cells_named = "cell" if len(left_out) == 1 else "cells"
        listed = ", ".join(left_out[:MAX_NOTES])
        more = f" and {len(left_out) - MAX_NOTES} more" if len(left_out) > MAX_NOTES else ""
        notes.insert(0, f"{cells_named} {listed}{more} left out: marked {SKIP_TAG}.")
    text = "".join(line + "\n" for line in lines)
    sources = SourceMap(name, module_file, tuple(spans), tuple(lines))
    return NotebookModule(text, sources, _bounded(notes))
