"""The static scan for forbidden imports: every way an import statement or a literal dynamic
import can name a library is found, and a source that cannot name one is not parsed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from grader import forbidden
from grader.forbidden import scan

FORBIDDEN = ("torch", "scipy")


def scanned(tmp_path: Path, source: str) -> list[str]:
    (tmp_path / "solution.py").write_text(source, encoding="utf-8")
    return [violation.module for violation in scan(tmp_path, FORBIDDEN)]


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import torch\n", ["torch"]),
        ("import numpy as np, torch.nn as nn\n", ["torch.nn"]),
        ("from scipy import special\n", ["scipy"]),
        ("import \\\n    torch\n", ["torch"]),
        ("import ｔｏｒｃｈ\n", ["torch"]),  # Python reads identifiers in NFKC
        ('__import__("\\x74orch")\n', ["torch"]),  # the name hidden behind an escape
        ('import importlib\nimportlib.import_module("sci" "py")\n', ["scipy"]),
        ("# torch would do this in one line\nimport numpy\n", []),
        ("import numpy as np\n\ndef f(x):\n    return np.tanh(x)\n", []),
    ],
    ids=[
        "import",
        "dotted",
        "from",
        "continued",
        "fullwidth",
        "escaped",
        "implicit-concatenation",
        "comment",
        "none",
    ],
)
def test_every_spelling_of_an_import_is_found(tmp_path, source, found):
    assert scanned(tmp_path, source) == found


def test_a_source_that_cannot_name_a_forbidden_library_is_not_parsed(tmp_path, monkeypatch):
    parsed: list[str] = []
    real_parse = ast.parse

    def parse(source: str, *args: object, **kwargs: object) -> ast.AST:
        parsed.append(source)
        return real_parse(source, *args, **kwargs)

    monkeypatch.setattr(forbidden.ast, "parse", parse)
    assert scanned(tmp_path, "import numpy as np\n") == []
    assert parsed == []
    assert scanned(tmp_path, "import numpy  # not torch\n") == []
    assert len(parsed) == 1
