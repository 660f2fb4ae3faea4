"""`grade ASSIGNMENT`: grade one submission and print or write its reports."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from grader.atomicfile import write_atomic
from grader.cli.common import (
    EXIT_UNDER_THRESHOLD,
    assignment_argument,
    course_option,
    data_dir_option,
    grading_options,
    handle_errors,
)
from grader.course import load_course
from grader.data import data_dir
from grader.errors import BadInput
from grader.refcache import ReferenceCache, activate
from grader.report import FORMATS
from grader.report.markdown import append_step_summary
from grader.report.table import renderables
from grader.result import CheckResult, Grade
from grader.runner import grade
from grader.safetext import one_line
from grader.sandbox.proxy import use_fork_server


class LiveProgress:
    """One status line on stderr: checks done, the running check, its time against its limit.
    The check's name is shown on one line, its control codes escaped."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.done = 0
        self.points = 0.0
        self.current = ""
        self.limit = 0.0
        self.budget: float | None = None
        self.started = time.monotonic()

    def on_start(self, name: str, limit: float, budget: float | None, hidden: bool = False) -> None:
        self.current, self.limit, self.budget = one_line(name, 200), limit, budget
        self.started = time.monotonic()

    def on_result(self, check: CheckResult) -> None:
        self.done += 1
        self.points += check.score
        self.current = ""

    def __rich__(self) -> Text:
        text = Text(f"Grading: {self.done} checks done, {self.points:g} points so far", "dim")
        if self.current:
            elapsed = time.monotonic() - self.started
            text.append(f" · {self.current} {elapsed:.0f}s", "bold")
            if elapsed >= 2 and self.budget is not None:
                text.append(f" of a {self.budget:g}s budget (stopped at {self.limit:g}s)", "dim")
            elif elapsed >= 2:
                text.append(f" of {self.limit:g}s allowed per call", "dim")
        return text

    @contextlib.contextmanager
    def shown(self) -> Iterator[LiveProgress]:
        if not self.console.is_terminal:
            yield self
            return
        with Live(self, console=self.console, transient=True, refresh_per_second=4):
            yield self


def parse_report(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list:
    reports = []
    for value in values:
        fmt, sep, path = value.partition(":")
        if not sep or fmt not in FORMATS or not path:
            raise click.BadParameter(
                f"{value!r} is not FORMAT:PATH with FORMAT one of {', '.join(sorted(FORMATS))}."
            )
        reports.append((fmt, Path(path)))
    return reports


class _UnnamedContext(click.Context):
    """`grade ASSIGNMENT` reaches the hidden `run` command without naming it: no empty word
    in its usage line ("grade  ASSIGNMENT") or in the "Try 'grade --help'" hint."""

    @property
    def command_path(self) -> str:
        return super().command_path.rstrip()


class GradingCommand(click.Command):
    """The `run` command, whose usage line shows the order `grade` accepts."""

    context_class = _UnnamedContext

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        """ASSIGNMENT before [OPTIONS]: options written first would go to `grade` itself."""
        arguments = [
            piece for param in self.get_params(ctx) for piece in param.get_usage_pieces(ctx)
        ]
        return [*arguments, self.options_metavar]


@click.command("run", hidden=True, cls=GradingCommand)
@assignment_argument
@click.option(
    "--submission",
    type=click.Path(path_type=Path),
    help="Folder, .zip or .ipynb notebook with the files (default: ./ASSIGNMENT or the "
    "current folder).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(FORMATS)),
    default="table",
    show_default=True,
    help="Report format for stdout, or for --output.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here."
)
@click.option(
    "--report",
    "reports",
    multiple=True,
    callback=parse_report,
    metavar="FORMAT:PATH",
    help="Also write FORMAT to PATH (repeatable: one grading, many reports).",
)
@grading_options
@click.option(
    "--fail-under",
    type=click.FloatRange(0, 100),
    help="Exit with code 1 if the score is under this percentage.",
)
@click.option("-k", "keyword", help="Only run checks matching this pytest -k expression.")
@click.option(
    "--repeat",
    type=click.IntRange(1, 100),
    default=1,
    help="Grade N times and report checks whose outcome changed (exit 1 if any).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show full diagnostics and your prints.")
@course_option
@data_dir_option
@handle_errors
def run(
    assignment: str,
    submission: Path | None,
    fmt: str,
    output: Path | None,
    reports: list[tuple[str, Path]],
    public_only: bool,
    device: str,
    seed: int,
    fail_under: float | None,
    keyword: str | None,
    repeat: int,
    verbose: bool,
    course_dir: Path | None,
) -> None:
    """Grade ASSIGNMENT and print the score table (or another format)."""
    course = load_course(course_dir)
    spec = course.assignment(assignment)
    if submission is None:
        default = Path.cwd() / spec.name
        submission = default if default.is_dir() else Path.cwd()
    grades = []
    activate(ReferenceCache(data_dir() / "reference-cache"))
    journal_dir = data_dir() / "journal" if repeat == 1 else None  # repeats must rerun
    if repeat > 1:
        use_fork_server()  # the first grade starts its worker anew; the others are forked
    for _ in range(repeat):
        # The real stderr, bound now: while checks run, pytest's output is redirected.
        progress = LiveProgress(Console(file=sys.stderr))
        with progress.shown():
            grades.append(
                grade(
                    spec.name,
                    submission,
                    course=course,
                    seed=seed,
                    device=device,
                    public_only=public_only,
                    keyword=keyword,
                    on_result=progress.on_result,
                    on_start=progress.on_start,
                    journal_dir=journal_dir,
                )
            )
    activate(None)
    result = grades[0]
    if result.resumed_checks:
        click.echo(
            f"Resumed {result.resumed_checks} check(s) that an interrupted run had finished.",
            err=True,
        )
    if output is not None:
        reports = [(fmt, output), *reports]
    emit(result, reports, fmt if output is None else "table", verbose)
    if repeat > 1 and report_flaky(grades):
        sys.exit(EXIT_UNDER_THRESHOLD)
    if fail_under is not None and result.percent < fail_under:
        click.echo(f"Score {result.percent:g}% is under --fail-under {fail_under:g}%.", err=True)
        sys.exit(EXIT_UNDER_THRESHOLD)


def report_flaky(grades: list[Grade]) -> bool:
    """Print the checks whose status or score differed between runs; True if any did."""
    outcomes: dict[str, set[tuple[str, float]]] = {}
    for result in grades:
        for check in result.tests:
            outcomes.setdefault(check.id, set()).add((check.status, check.score))
    flaky = {ident: seen for ident, seen in outcomes.items() if len(seen) > 1}
    err = Console(stderr=True)
    if not flaky:
        err.print(f"All {len(grades)} runs gave identical outcomes.")
        return False
    table = Table("check", "outcomes seen", title=f"Flaky checks over {len(grades)} runs")
    for ident, seen in flaky.items():
        shown = ", ".join(f"{one_line(status)} ({score:g})" for status, score in sorted(seen))
        table.add_row(Text(one_line(ident)), Text(shown))
    err.print(table)
    return True


def emit(result: Grade, reports: list[tuple[str, Path]], stdout_format: str, verbose: bool) -> None:
    """Write every requested report, then print the stdout view (the table for people)."""
    failures = []
    for fmt, path in reports:
        try:
            write_atomic(path, FORMATS[fmt](result).encode("utf-8"))
        except OSError as error:
            failures.append(f"cannot write {path}: {error.strerror or error}")
    step_summary_failure = append_step_summary(result)
    if step_summary_failure:
        failures.append(step_summary_failure)
    if stdout_format == "table":
        Console().print(renderables(result, verbose))
    else:
        click.echo(FORMATS[stdout_format](result), nl=False)
    if failures:
        raise BadInput("; ".join(failures))
