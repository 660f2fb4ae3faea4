"""A Markdown step summary: the score table as GitHub (and GitLab) render it, plus the total.

`to_markdown` renders a `Grade`; `append_step_summary` appends it to the file named by
`GITHUB_STEP_SUMMARY` when GitHub Actions sets it, so a student's workflow run shows the
table on its summary page. Text from checks is escaped so it cannot break the table or
inject HTML, links, images or formatting: it shows as the characters it holds. This module
does not decide when to write; the CLI does.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from grader.result import CheckResult, Grade
from grader.safetext import one_line

STEP_SUMMARY_VARIABLE = "GITHUB_STEP_SUMMARY"
STATUS_ICON = {
    "passed": "✅ passed",
    "failed": "❌ failed",
    "error": "💥 error",
    "timeout": "⏱️ timeout",
    "skipped": "⏭️ skipped",
}
MAX_CELL = 500
# Punctuation that starts Markdown inline syntax (links, images, emphasis, code, strikethrough,
# math), the backslash that escapes it, and the pipe that ends a table cell. `&`, `<` and `>`
# become HTML entities instead.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]()!~|$])")


def _cell(text: str) -> str:
    """Text safe inside a table cell: one line, no control characters, shown literally (HTML
    entities for `&<>`, a backslash before Markdown's punctuation and the pipe)."""
    text = " ".join(one_line(text, MAX_CELL).split())
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", html.escape(text, quote=False))


def _why(check: CheckResult) -> str:
    parts = [check.message] if check.message else []
    parts += [
        f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in check.metrics.items()
    ]
    return _cell("; ".join(parts))


def to_markdown(grade: Grade) -> str:
    """The step summary: heading with the total, a table of checks, and the grade's context."""
    grade = grade.shown()
    lines = [
        f"### {_cell(grade.assignment)}: {_cell(grade.title)} — "
        f"{grade.score:g}/{grade.max_score:g} ({grade.percent:g}%)",
        "",
        "| Check | Points | Status | Why |",
        "| --- | ---: | --- | --- |",
    ]
    for check in grade.tests:
        name = _cell(check.name) + (" *(hidden)*" if check.hidden else "")
        status = STATUS_ICON.get(check.status, _cell(check.status))
        points = f"{check.score:g}/{check.max_score:g}"
        lines.append(f"| {name} | {points} | {status} | {_why(check)} |")
    lines.append(
        f"| **Total** | **{grade.score:g}/{grade.max_score:g}** | **{grade.percent:g}%** | |"
    )
    lines.append("")
    footer = (
        f"seed {grade.seed} · reference on {_cell(grade.device)} · {grade.duration_s:.1f} s · "
        f"grader {grade.grader_version} · submission sha256 {grade.submission.sha256[:12]}"
    )
    if grade.public_only:
        footer += " · public checks only: hidden checks run when you submit"
    lines += [f"<sub>{footer}</sub>", ""]
    if grade.notes:
        lines += [*(f"* {_cell(note)}" for note in grade.notes), ""]
    return "\n".join(lines)


def append_step_summary(grade: Grade) -> str | None:
    """Append the summary to $GITHUB_STEP_SUMMARY when it is set; return an error, if any."""
    target = os.environ.get(STEP_SUMMARY_VARIABLE)
    if not target:
        return None
    try:
        with Path(target).open("a", encoding="utf-8") as summary:
            summary.write(to_markdown(grade) + "\n")
    except OSError as error:
        return f"cannot append to {STEP_SUMMARY_VARIABLE} ({target}): {error.strerror or error}"
    return None
