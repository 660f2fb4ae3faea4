"""Find the IPython syntax in a code cell and replace it by `pass`, keeping every line number.

A notebook cell may hold what only IPython runs: line magics (`%matplotlib inline`), shell
commands (`!pip install ...`, `files = !ls`) and cell magics (`%%time`, `%%bash`). None of it
runs when grading. Each such statement becomes `pass` at its own indentation (its
continuation lines become blank), so the cell stays valid Python and a line number in it
still means the same line. A cell magic whose body is Python (`%%time`, `%%timeit`,
`%%capture`) loses only its first line; any other (`%%bash`, `%%writefile`) is not Python,
and the whole cell is left out.

Statements are found with the tokenizer, so a `%` that continues an expression, or one inside
a string, is left alone; a cell the tokenizer cannot read falls back to looking at the first
character of each line. Nothing here runs the cell.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass

PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture"})
MAGIC_STARTS = ("%", "!")
# A line that could start IPython syntax; a cell without one is not tokenized at all.
MAYBE_MAGIC = re.compile(r"^[ \t]*(?:[%!]|\w+[ \t]*=[ \t]*[%!])", re.MULTILINE)


@dataclass(frozen=True)
class Dropped:
    """A statement left out: its line in the cell (from 1) and its text (the student's)."""

    line: int
    text: str


@dataclass(frozen=True)
class PlainCell:
    """A cell as plain Python: its lines (None when the whole cell was left out) and what
    was dropped from it."""

    lines: list[str] | None
    dropped: list[Dropped]


def _significant(tokens: list[tokenize.TokenInfo]) -> list[tokenize.TokenInfo]:
    return [t for t in tokens if not (t.type == tokenize.ERRORTOKEN and not t.string.strip())]


def _is_magic(tokens: list[tokenize.TokenInfo]) -> bool:
    """Whether a logical line starts like a magic, or assigns one (`x = !ls`, `t = %time f()`)."""
    tokens = _significant(tokens)
    if tokens and tokens[0].string in MAGIC_STARTS:
        return True
    return (
        len(tokens) >= 3
        and tokens[0].type == tokenize.NAME
        and tokens[1].string == "="
        and tokens[2].string in MAGIC_STARTS
    )


def _magic_statements(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line indexes (from 0) of each statement that is IPython syntax."""
    text = "".join(line + "\n" for line in lines)
    if not MAYBE_MAGIC.search(text):
        return []
    found = []
    current: list[tokenize.TokenInfo] = []
    skipped = (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.NEWLINE:
                if current and _is_magic(current):
                    found.append((current[0].start[0] - 1, token.start[0] - 1))
                current = []
            elif token.type not in skipped and token.type != tokenize.ENDMARKER:
                current.append(token)
    except (tokenize.TokenError, SyntaxError):
        return [
            (index, index)
            for index, line in enumerate(lines)
            if line.lstrip().startswith(MAGIC_STARTS) and not line.lstrip().startswith("!=")
        ]
    return found


def plain_python(lines: list[str]) -> PlainCell:
    """The cell's `lines` with IPython syntax replaced (see the module docstring)."""
    lines = list(lines)
    dropped = []
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        magic = lines[first].strip()
        name = magic[2:].split(maxsplit=1)[0] if magic[2:].strip() else ""
        if name not in PYTHON_CELL_MAGICS:
            return PlainCell(None, [Dropped(first + 1, magic)])
        dropped.append(Dropped(first + 1, magic))
        lines[first] = "pass"
    for start, end in _magic_statements(lines):
        line = lines[start]
        text = line.strip() + (" ..." if end > start else "")
        dropped.append(Dropped(start + 1, text))
        lines[start] = line[: len(line) - len(line.lstrip())] + "pass"
        for index in range(start + 1, end + 1):
            lines[index] = ""
    return PlainCell(lines, sorted(dropped, key=lambda d: d.line))
