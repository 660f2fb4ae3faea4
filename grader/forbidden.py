"""Which libraries a submission may not use, enforced twice and outside the student's reach.

The NumPy assignments are about writing softmax or convolution yourself, so importing torch,
jax or scipy is off limits there. A static scan of the submission's source runs in the
trusted process (it catches `import torch`, `from scipy import special`, and
`__import__("torch")`/`importlib.import_module("torch")` with literal names); an import
audit hook installed in the worker before the submission is imported catches everything
else at run time (audit hooks cannot be removed).
"""

from __future__ import annotations

import ast
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from grader.sourcemap import SourceMap

DYNAMIC_IMPORTERS = {"__import__", "import_module"}


@dataclass(frozen=True)
class Violation:
    """One forbidden import found in the submission's source."""

    file: str
    line: int
    module: str

    def describe(self, sources: SourceMap | None = None) -> str:
        """Where the import is: a notebook's cell and line when the file was made from one."""
        if sources is not None and self.file == sources.module_file:
            return f"{sources.place(self.line)} imports {self.module}"
        return f"{self.file} line {self.line} imports {self.module}"


def _root(name: str) -> str:
    return name.split(".", 1)[0]


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            first = node.args[0]
            literal = isinstance(first, ast.Constant) and isinstance(first.value, str)
            if name in DYNAMIC_IMPORTERS and literal:
                found.append((node.lineno, first.value))
    return found


def could_import(source: str, forbidden: tuple[str, ...]) -> bool:
    """Whether `source` could name a forbidden library in an import: only then is it parsed
    (most submissions never write the name; parsing one costs a few ms of every grade). An
    import statement spells the name out, as Python reads identifiers (NFKC: `ｔｏｒｃｈ` is
    `torch`); a string given to `__import__` or `import_module` may hide it behind escapes,
    so a source that calls either by name is always parsed."""
    text = unicodedata.normalize("NFKC", source)
    if any(name in text for name in DYNAMIC_IMPORTERS):
        return True
    return any(name in text for name in forbidden)


def scan(folder: Path, forbidden: tuple[str, ...]) -> list[Violation]:
    """Forbidden imports in the .py files under `folder` (files that do not parse are skipped:
    the import of the submission reports their syntax error)."""
    if not forbidden:
        return []
    violations = []
    for path in sorted(folder.rglob("*.py")):
        source = path.read_text(encoding="utf-8", errors="replace")
        if not could_import(source, forbidden):
            continue
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        for line, module in _imported_names(tree):
            if _root(module) in forbidden:
                violations.append(Violation(path.relative_to(folder).as_posix(), line, module))
    return violations


def install_import_guard(forbidden: tuple[str, ...]) -> None:
    """In the worker: make importing a forbidden library raise ImportError from now on."""
    import sys

    blocked = frozenset(forbidden)

    def guard(event: str, args: tuple) -> None:
        if event == "import" and args and _root(str(args[0])) in blocked:
            raise ImportError(f"{_root(str(args[0]))} may not be used in this assignment")

    if blocked:
        sys.addaudithook(guard)
