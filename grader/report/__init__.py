"""Views of a `Grade`: the rich table for people, machine formats for CI and LMSs.

Each format is a function `Grade -> str` in its own module, imported when first used;
`FORMATS` names them for the CLI. The table is also available as renderables for printing
to a live console.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping

from grader.result import Grade

_WRITERS = {  # format: (module, function)
    "table": ("grader.report.table", "to_text"),
    "json": ("grader.report.json_report", "to_json"),
    "gradescope": ("grader.report.gradescope", "to_gradescope"),
    "junit": ("grader.report.junit", "to_junit"),
    "markdown": ("grader.report.markdown", "to_markdown"),
}


class _Formats(Mapping[str, Callable[[Grade], str]]):
    """Each format's function, imported when first asked for: a grade written as JSON
    need not import the XML writer."""

    def __getitem__(self, name: str) -> Callable[[Grade], str]:
        module, function = _WRITERS[name]
        return getattr(importlib.import_module(module), function)

    def __iter__(self) -> Iterator[str]:
        return iter(_WRITERS)

    def __len__(self) -> int:
        return len(_WRITERS)


FORMATS: Mapping[str, Callable[[Grade], str]] = _Formats()
