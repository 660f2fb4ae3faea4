"""Reading a student's notebook and turning its cells into a module, on the trusted side.

Nothing here runs a cell: these are the parts that read hostile JSON (bounded, validated,
outputs never used), replace IPython syntax without moving a line, and map the worker's
(file, line) frames back to cells.
"""

from __future__ import annotations

import json
import sys

import pytest
from notebooks import code_cell, markdown_cell

from grader.errors import BadInput
from grader.notebook import require_nbformat
from grader.notebook.convert import to_module
from grader.notebook.magics import plain_python
from grader.notebook.reading import (
    MAX_CELLS,
    MAX_CODE_CHARS,
    MAX_CONTAINERS,
    MAX_NOTEBOOK_BYTES,
    read_cells,
)
from grader.notebook.starter import starter_notebook
from grader.sandbox.proxy import StudentException, _frames
from grader.sourcemap import SourceMap, Span


def _notebook(*cells: dict, minor: int = 5, **metadata: object) -> bytes:
    document = {"nbformat": 4, "nbformat_minor": minor, "metadata": metadata, "cells": cells}
    return json.dumps(document).encode()


def _code(source: str, index: int = 0, **extra: object) -> dict:
    return code_cell(source, "jupyterlab", index, **extra)


def _module(data: bytes, label: str = "hw.ipynb"):
    return to_module(read_cells(data, label), label, "softmax.py")


def test_code_cells_in_order_become_the_module_and_cells_count_markdown_too():
    data = _notebook(
        markdown_cell("# Title", "jupyterlab", 0),
        _code("import numpy as np\n", 1),
        markdown_cell("Some words", "jupyterlab", 2),
        _code("def f(x):\n    return x\n", 3),
        {"cell_type": "raw", "id": "raw-1", "metadata": {}, "source": "not code"},
        _code("y = f(2)", 5),
    )
    made = _module(data)
    assert made.text == "import numpy as np\ndef f(x):\n    return x\ny = f(2)\n"
    assert made.sources.spans == (Span(1, 2, 1), Span(2, 4, 2), Span(4, 6, 1))
    assert made.sources.place(3) == "hw.ipynb, cell 4, line 2"
    assert made.sources.place(4) == "hw.ipynb, cell 6, line 1"
    assert made.notes == ()


def test_magics_and_shell_commands_become_pass_on_the_same_lines():
    cell = [
        "%matplotlib inline",
        "!pip install numpy \\",
        "    scipy",
        "files = !ls",
        "import numpy as np",
        "for i in range(2):",
        "    %time total = i",
        "x = (7",
        "     % 3)",
        's = """',
        "%not a magic inside a string",
        '"""',
    ]
    plain = plain_python(cell)
    assert plain.lines == [
        "pass",
        "pass",
        "",
        "pass",
        "import numpy as np",
        "for i in range(2):",
        "    pass",
        *cell[7:],
    ]
    assert [(d.line, d.text) for d in plain.dropped] == [
        (1, "%matplotlib inline"),
        (2, "!pip install numpy \\ ..."),
        (4, "files = !ls"),
        (7, "%time total = i"),
    ]
    compile("\n".join(plain.lines), "cell", "exec")


def test_a_cell_the_tokenizer_cannot_read_still_loses_its_magics():
    plain = plain_python(["!echo hi", 'text = """never closed'])
    assert plain.lines == ["pass", 'text = """never closed']


def test_python_cell_magics_keep_their_body_and_other_cell_magics_drop_the_cell():
    timed = plain_python(["", "%%time", "x = 1"])
    assert timed.lines == ["", "pass", "x = 1"]
    assert [(d.line, d.text) for d in timed.dropped] == [(2, "%%time")]
    bash = plain_python(["%%bash", "rm -rf /"])
    assert bash.lines is None
    assert [d.text for d in bash.dropped] == ["%%bash"]


def test_every_left_out_piece_is_a_note_with_its_cell_and_line():
    data = _notebook(
        markdown_cell("# Title", "jupyterlab", 0),
        _code("%matplotlib inline\nimport numpy as np\n", 1),
        _code("%%writefile helper.py\nx = 1\n", 2),
        _code("# skip-grading\nraise SystemExit\n", 3),
        _code("\n#SKIP-GRADING: plots\nplot()\n", 4),
        _code("train_for_an_hour()\n", 5, tags=["skip-grading", "other"]),
        _code("%%timeit\ny = 2\n", 6),
    )
    made = _module(data)
    assert made.text == "pass\nimport numpy as np\npass\ny = 2\n"
    assert made.notes == (
        "cells 4, 5, 6 left out: marked skip-grading.",
        "cell 2, line 1: `%matplotlib inline` left out (IPython magics and shell commands do "
        "not run when grading).",
        "cell 3: left out, a `%%writefile helper.py` cell is not Python.",
        "cell 7, line 1: `%%timeit` left out (IPython magics and shell commands do not run "
        "when grading).",
    )


def test_outputs_and_attachments_are_dropped_unread_even_when_malformed():
    cell = _code("x = 1\n", 0, outputs=[{"not": "an output"}], execution_count="seven")
    markdown = markdown_cell("![img](attachment:a.png)", "jupyterlab", 1)
    markdown["attachments"] = {"a.png": "not even a mime bundle"}
    made = _module(_notebook(cell, markdown))
    assert made.text == "x = 1\n"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'{"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": []}', "version 3"),
        (b'{"nbformat": 4, "cells": [', "its JSON is invalid"),
        (b"\xff\xfe\x00garbage", "its JSON is invalid"),
        (b"[1, 2, 3]", "no nbformat version"),
        (b'{"nbformat": "4"}', "version '4' notebook"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{}]}', "not a valid"),
        (_notebook(language_info={"name": "R"}), "a notebook in R, not Python"),
    ],
)
def test_anything_but_a_version_4_python_notebook_is_one_line(data, words):
    with pytest.raises(BadInput, match=words) as info:
        read_cells(data, "hw\x1b[2J.ipynb")
    message = str(info.value)
    assert "\n" not in message
    assert "\x1b" not in message
    assert message.startswith("hw\\x1b[2J.ipynb ")


def test_notebooks_over_the_caps_are_refused_before_they_are_parsed():
    cell = _code("x = 1\n", 0)
    cell["metadata"]["padding"] = "x" * MAX_NOTEBOOK_BYTES
    with pytest.raises(BadInput, match="larger than 20 MB; clear its outputs"):
        read_cells(_notebook(cell), "big.ipynb")
    objects = b'{"nbformat": 4, "pad": [' + b"{}," * MAX_CONTAINERS + b"{}]}"
    with pytest.raises(BadInput, match="more JSON objects than a notebook could"):
        read_cells(objects, "objects.ipynb")
    many = [markdown_cell("", "jupyterlab", 0)] * (MAX_CELLS + 1)
    with pytest.raises(BadInput, match=f"has {MAX_CELLS + 1} cells; a notebook may have"):
        read_cells(_notebook(*many), "many.ipynb")
    code = _code("x = 1  # " + "x" * MAX_CODE_CHARS + "\n", 0)
    with pytest.raises(BadInput, match="holds more than 4 MB of code"):
        read_cells(_notebook(code), "code.ipynb")


def test_the_notes_stay_bounded_however_much_is_left_out():
    cells = [_code("# skip-grading\n", i) for i in range(25)]
    cells += [_code("%ls\n" * 30, 25)]
    notes = _module(_notebook(*cells)).notes
    assert notes[0] == (
        f"cells {', '.join(str(n) for n in range(1, 21))} and 5 more left out: marked skip-grading."
    )
    assert len(notes) == 21
    assert notes[-1] == "... and 11 more left out."


def test_module_lines_are_numbered_as_python_numbers_them():
    source = "a = 1\r\nb = 2\rc = 3\n\x0cd = '\u2028'\nboom\n"  # \x0c, \u2028: not line breaks
    made = _module(_notebook(_code("x = 0\n", 0), _code(source, 1)))
    with pytest.raises(NameError) as info:
        exec(compile(made.text, "softmax.py", "exec"), {})
    line = info.traceback[-1].lineno + 1
    assert made.sources.place(line) == "hw.ipynb, cell 2, line 5"
    assert made.sources.code_at(line) == "boom"


def test_a_nul_in_a_cell_is_refused_and_lone_surrogates_survive_as_escapes(tmp_path, course):
    with pytest.raises(BadInput, match="cell 2 holds a NUL character"):
        _module(_notebook(_code("x = 1\n", 0), _code("y = '\x00'\n", 1)))
    from grader.submission import prepare

    notebook = tmp_path / "odd.ipynb"
    notebook.write_bytes(_notebook(_code('s = "\\ud800"\n', 0)).replace(b"\\\\ud800", b"\\ud800"))
    work = tmp_path / "work"
    work.mkdir()
    prepared = prepare(notebook, course.assignment("assignment3"), work)
    assert (prepared.folder / "softmax.py").read_bytes() == b's = "\\ud800"\n'


def test_worker_frames_are_mapped_by_number_and_their_code_is_never_trusted():
    sources = SourceMap("hw.ipynb", "softmax.py", (Span(1, 3, 2), Span(3, 5, 1)), ("a", "b", "c"))
    frames = [
        ["softmax.py", 3, "f", "\x1b]52;c;bGll\x07 forged code"],
        ["softmax.py", 10**8, "g", "forged"],
        ["softmax.py", "2", "h", "line is not an int"],
        ["helper.py", 7, "k", "helper_code()"],
        ["softmax.py", 2, "<module>"],
    ]
    assert _frames(frames, sources) == [
        ("hw.ipynb, cell 5", 1, "f", "c"),
        ("hw.ipynb", 0, "g", ""),
        ("hw.ipynb", 0, "h", ""),
        ("helper.py", 7, "k", "helper_code()"),
    ]
    reply = {"type": "ValueError", "message": "bad", "frames": frames[:1]}
    error = StudentException("softmax()", reply, sources)
    assert error.message == "softmax() raised ValueError: bad (hw.ipynb, cell 5, line 1)."
    assert "forged" not in error.details


def test_the_starter_notebook_holds_the_readme_the_stubs_and_a_grading_cell(course):
    nbformat = require_nbformat()
    assignment = course.assignment("assignment3")
    text = starter_notebook(assignment)
    assert text == starter_notebook(assignment)
    notebook = nbformat.reads(text, as_version=4)
    nbformat.validate(notebook)
    kinds = [cell.cell_type for cell in notebook.cells]
    headings = assignment.readme.read_text().count("\n## ")
    assert kinds == ["markdown"] * (2 + headings) + ["code"] * 7
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    assert code[0].startswith('"""Assignment 3') and "import numpy as np" in code[0]
    assert [c.split("(")[0] for c in code[1:6]] == [
        "def softmax",
        "def log_softmax",
        "def cross_entropy_error",
        "def mean_squared_error",
        "def softmax_cross_entropy",
    ]
    assert code[6].endswith("!grade assignment3")
    assert notebook.cells[-1].metadata.tags == ["skip-grading"]


def test_without_nbformat_a_notebook_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "nbformat", None)
    with pytest.raises(BadInput, match=r"pip install 'dl-grader\[notebooks\]'"):
        read_cells(_notebook(_code("x = 1\n")), "hw.ipynb")
