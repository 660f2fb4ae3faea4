"""Where each line of a module the grader wrote came from, so messages point at the original.

A notebook becomes a module on the trusted side (`grader.notebook`); the worker imports that
module and reports failures as (file, line) frames. Those frames are hostile data: a
`SourceMap` takes nothing from them but a line number of the generated module, and answers
with a place the student can find ("hw3.ipynb, cell 7, line 3") and that line's code from
the grader's own copy, never the worker's account of it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from grader.safetext import one_line


@dataclass(frozen=True)
class Span:
    """One cell's lines in the generated module: they start at `first_line` (from 1)."""

    first_line: int
    cell: int
    lines: int


@dataclass(frozen=True)
class SourceMap:
    """The generated module `module_file`, made from the notebook messages call `label`."""

    label: str
    module_file: str
    spans: tuple[Span, ...]
    code: tuple[str, ...]

    def cell_of(self, line: int) -> tuple[int, int] | None:
        """(cell, line in that cell) of a line of the module, or None if no cell holds it."""
        starts = [span.first_line for span in self.spans]
        index = bisect.bisect_right(starts, line) - 1
        if index < 0:
            return None
        span = self.spans[index]
        offset = line - span.first_line
        return (span.cell, offset + 1) if offset < span.lines else None

    def place(self, line: int) -> str:
        """Where a line of the module is, in the student's terms: 'hw3.ipynb, cell 7, line 3'."""
        found = self.cell_of(line)
        if found is None:
            return self.label
        cell, cell_line = found
        return f"{self.label}, cell {cell}, line {cell_line}"

    def code_at(self, line: int) -> str:
        """The module's own line `line` (one line, escaped), or '' when there is none."""
        if 1 <= line <= len(self.code):
            return one_line(self.code[line - 1].strip(), 200)
        return ""

    def locate(self, path: str, line: int, code: str) -> tuple[str, int, str]:
        """(file, line, code) of a worker's frame as a student reads it: in the generated
        module, ('hw3.ipynb, cell 7', 3, the grader's own copy of the line) (the notebook and
        line 0 where no cell holds it); elsewhere, the frame as it came."""
        if path != self.module_file:
            return path, line, code
        found = self.cell_of(line)
        if found is None:
            return self.label, 0, ""
        cell, cell_line = found
        return f"{self.label}, cell {cell}", cell_line, self.code_at(line)
