"""Views of a `Grade`: the rich table for people, machine formats for CI and LMSs.

Each format is a function `Grade -> str` in its own module; `FORMATS` names them for the
CLI. The table is also available as renderables for printing to a live console.
"""

from __future__ import annotations

from collections.abc import Callable

from grader.report.gradescope import to_gradescope
from grader.report.json_report import to_json
from grader.report.junit import to_junit
from grader.report.markdown import to_markdown
from grader.report.table import to_text
from grader.result import Grade

FORMATS: dict[str, Callable[[Grade], str]] = {
    "table": to_text,
    "json": to_json,
    "gradescope": to_gradescope,
    "junit": to_junit,
    "markdown": to_markdown,
}
