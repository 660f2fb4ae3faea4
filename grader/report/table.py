"""The score table a student reads: one row per check, a total, and why each check failed.

Readable first: failures that share one message (every check of a function that is not
implemented yet, every check of a submission that cannot be imported) are one row; when all
checks failed for one reason, that reason is one line instead of a table; a column nobody
filled is left out; what the submission printed is counted under the table and, with `-v`,
shown next to the check that printed it.

Every piece of text is a `rich.text.Text` built from `Grade.shown()`: a submission's words
are never read as rich markup (`[/bold]` would stop the grade) and carry no control codes.
"""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from grader.result import CheckResult, Grade

STATUS_STYLE = {
    "passed": ("passed", "green"),
    "failed": ("failed", "red"),
    "error": ("error", "red"),
    "timeout": ("timeout", "yellow"),
    "skipped": ("skipped", "dim"),
}
FAILED = ("failed", "error", "timeout")


def _points(value: float) -> str:
    return f"{value:g}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def groups(checks: tuple[CheckResult, ...]) -> list[list[CheckResult]]:
    """The checks in report order, with failures that share status and message gathered
    where the first of them stands (a message names its function and line, so the checks
    of one unimplemented function are one group)."""
    found: list[list[CheckResult]] = []
    by_reason: dict[tuple[str, str], list[CheckResult]] = {}
    for check in checks:
        key = (check.status, check.message)
        if check.status not in FAILED or not check.message:
            found.append([check])
        elif key in by_reason:
            by_reason[key].append(check)
        else:
            by_reason[key] = [check]
            found.append(by_reason[key])
    return found


def _metrics(check: CheckResult) -> str:
    return ", ".join(
        f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in check.metrics.items()
    )


def _why(group: list[CheckResult], verbose: bool, printed: dict[str, str]) -> Text:
    check = group[0]
    why = Text(check.message)
    if check.metrics:
        why.append(("\n" if check.message else "") + _metrics(check), style="cyan")
    if verbose and check.details:
        why.append(("\n" if why.plain else "") + check.details, style="dim")
    if verbose and check.id in printed:
        text = printed[check.id].rstrip()
        why.append(("\n" if why.plain else "") + "printed:\n", style="bold")
        why.append(text, style="dim")
    return why


def _row(group: list[CheckResult], verbose: bool, printed: dict[str, str]) -> list[Text]:
    check = group[0]
    label, style = STATUS_STYLE.get(check.status, (check.status, ""))
    if len(group) == 1:
        name = Text(check.name)
        if check.hidden:
            name.append(" (hidden)", style="dim")
    else:
        name = Text(_plural(len(group), "check"))
        hidden = sum(c.hidden for c in group)
        if hidden:
            name.append(f" ({hidden} hidden)", style="dim")
    score = sum(c.score for c in group)
    most = sum(c.max_score for c in group)
    points = Text(f"{_points(score)}/{_points(most)}")
    return [name, points, Text(label, style=style), _why(group, verbose, printed)]


def _table(grade: Grade, verbose: bool, printed: dict[str, str]) -> Table:
    """The per-check table with a total row, from a grade already `shown()`; the Why
    column only when a row has something in it."""
    shown = [[c] for c in grade.tests] if verbose else groups(grade.tests)
    rows = [_row(group, verbose, printed) for group in shown]
    with_why = any(row[3].plain for row in rows)
    title = Text(f"{grade.assignment}: {grade.title}", style="table.title")
    table = Table(title=title, title_justify="left", expand=with_why)
    table.add_column("Check", ratio=3 if with_why else None)
    table.add_column("Points", justify="right", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    if with_why:
        table.add_column("Why", ratio=5)
    for row in rows:
        table.add_row(*row[: 4 if with_why else 3])
    table.add_section()
    style = "bold green" if grade.score == grade.max_score else "bold"
    total = [
        Text("Total", style="bold"),
        Text(f"{_points(grade.score)}/{_points(grade.max_score)}", style=style),
        Text(f"{grade.percent:g}%", style=style),
    ]
    table.add_row(*total, *([Text("")] if with_why else []))
    return table


def _one_reason(grade: Grade, verbose: bool) -> Group:
    """All checks failed with one message (most often: the submission cannot be imported):
    that message, once, instead of a table of identical rows."""
    check = grade.tests[0]
    count = len(grade.tests)
    title = Text(f"{grade.assignment}: {grade.title}", style="table.title")
    title.append(f"  {_points(grade.score)}/{_points(grade.max_score)} points", style="bold")
    lines = [title, Text(check.message, style="red")]
    if check.message == grade.import_error:
        lines.append(Text(f"None of the {count} checks could run: fix this first.", "bold"))
    else:
        lines.append(Text(f"All {count} checks failed with this message.", style="bold"))
    if verbose and check.details:
        lines.append(Text(check.details, style="dim"))
    return Group(*lines)


def _printed_count(grade: Grade) -> Text | None:
    """Under a table that does not show it: how much the submission printed."""
    lines = len(grade.student_output.splitlines())
    if not lines:
        return None
    return Text(f"your code printed {_plural(lines, 'line')}; -v shows them", style="yellow")


def _import_output(grade: Grade) -> str:
    """What the submission printed outside any check, while it was imported (each distinct
    text once: a worker restarted after a timeout imports it again)."""
    ran = {c.id for c in grade.tests}
    texts = [text.rstrip() for ident, text in grade.printed if ident not in ran]
    return "\n".join(dict.fromkeys(t for t in texts if t))


def renderables(grade: Grade, verbose: bool = False) -> Group:
    """Everything the terminal shows for one grade."""
    grade = grade.shown()
    printed = {ident: text for ident, text in grade.printed if text.strip()}
    grouped = groups(grade.tests)
    one_reason = len(grade.tests) > 1 and len(grouped) == 1 and grouped[0][0].status in FAILED
    parts: list = [_one_reason(grade, verbose) if one_reason else _table(grade, verbose, printed)]
    footer = (
        f"seed {grade.seed} · reference on {grade.device} · {grade.duration_s:.1f} s · "
        f"submission sha256 {grade.submission.sha256[:12]}"
    )
    if grade.public_only:
        footer += " · public checks only: hidden checks run when you submit"
    parts.append(Text(footer, style="dim"))
    parts.extend(Text(note, style="yellow") for note in grade.notes)
    if not verbose:
        count = _printed_count(grade)
        if count is not None:
            parts.append(count)
    else:
        if one_reason or not grade.printed:  # all of it, in one place
            rest, title = grade.student_output.rstrip(), "your code printed"
        else:  # the rest is in the rows of the checks that printed it
            rest, title = _import_output(grade), "your code printed while it was imported"
        if rest:
            parts.append(Panel(Text(rest), title=title))
    return Group(*parts)


def to_text(grade: Grade, verbose: bool = False, width: int = 100) -> str:
    """The table as plain text (for files and logs)."""
    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=False)
    console.print(renderables(grade, verbose))
    return console.export_text()
