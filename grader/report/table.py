"""The score table a student reads: one row per check, a total, and why each check failed.

Every piece of text is a `rich.text.Text` built from `Grade.shown()`: a submission's words
are never read as rich markup (`[/bold]` would stop the grade) and carry no control codes.
"""

from __future__ import annotations

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


def _points(value: float) -> str:
    return f"{value:g}"


def _row(check: CheckResult, verbose: bool) -> tuple[Text, Text, Text, Text]:
    label, style = STATUS_STYLE.get(check.status, (check.status, ""))
    name = Text(check.name)
    if check.hidden:
        name.append(" (hidden)", style="dim")
    message = Text(check.message)
    if check.metrics:
        shown = ", ".join(
            f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in check.metrics.items()
        )
        message.append(("\n" if check.message else "") + shown, style="cyan")
    if verbose and check.details:
        message.append("\n" + check.details, style="dim")
    points = Text(f"{_points(check.score)}/{_points(check.max_score)}")
    return name, points, Text(label, style=style), message


def _table(grade: Grade, verbose: bool) -> Table:
    """The per-check table with a total row, from a grade already `shown()`."""
    title = Text(f"{grade.assignment}: {grade.title}", style="table.title")
    table = Table(title=title, title_justify="left", expand=True)
    table.add_column("Check", ratio=3)
    table.add_column("Points", justify="right", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Why", ratio=5)
    for check in grade.tests:
        table.add_row(*_row(check, verbose))
    table.add_section()
    style = "bold green" if grade.score == grade.max_score else "bold"
    table.add_row(
        Text("Total", style="bold"),
        Text(f"{_points(grade.score)}/{_points(grade.max_score)}", style=style),
        Text(f"{grade.percent:g}%", style=style),
        Text(""),
    )
    return table


def renderables(grade: Grade, verbose: bool = False) -> Group:
    """Everything the terminal shows for one grade."""
    grade = grade.shown()
    parts: list = [_table(grade, verbose)]
    footer = (
        f"seed {grade.seed} · reference on {grade.device} · {grade.duration_s:.1f} s · "
        f"submission sha256 {grade.submission.sha256[:12]}"
    )
    if grade.public_only:
        footer += " · public checks only: hidden checks run when you submit"
    parts.append(Text(footer, style="dim"))
    if grade.notes:
        parts.append(Text("\n".join(["Notes:", *(f"  {note}" for note in grade.notes)])))
    if verbose and grade.student_output.strip():
        parts.append(Panel(Text(grade.student_output.rstrip()), title="your code printed"))
    return Group(*parts)


def to_text(grade: Grade, verbose: bool = False, width: int = 100) -> str:
    """The table as plain text (for files and logs)."""
    console = Console(record=True, width=width, file=None, force_terminal=False)
    with console.capture():
        console.print(renderables(grade, verbose))
    return console.export_text()
