"""The `grade` command: parse options, call the library, print. No grading logic lives here.

`grade ASSIGNMENT` grades; `grade list` and `grade init` help a student start. Exit codes:
0 graded, 1 graded but under --fail-under, 2 bad input, 3 internal error, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from grader import __version__
from grader.course import load_course
from grader.errors import BadInput, GraderError
from grader.report import FORMATS
from grader.report.table import renderables
from grader.result import CheckResult, Grade
from grader.runner import DEFAULT_SEED, DEVICES, grade

EXIT_UNDER_THRESHOLD = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


class UserError(click.ClickException):
    """Input the user can fix: one line on stderr, exit 2."""

    exit_code = EXIT_BAD_INPUT


class InternalError(click.ClickException):
    """A bug in the grader or the course: exit 3 and say how to report it."""

    exit_code = EXIT_INTERNAL

    def format_message(self) -> str:
        return f"internal grader error: {self.message}\nPlease report this to the course staff."


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library exceptions into the CLI's exit codes, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BadInput as error:
            raise UserError(str(error)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except GraderError as error:
            raise InternalError(str(error)) from None
        except Exception as error:
            raise InternalError(f"{type(error).__name__}: {error}") from None

    return wrapper


def course_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--course",
        "course_dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Course folder (with assignments/). Default: found automatically.",
    )(command)


class AssignmentGroup(click.Group):
    """`grade ASSIGNMENT ...` runs the hidden `run` command; other words are subcommands."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "run", self.commands["run"], args
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage("grade", "ASSIGNMENT [OPTIONS] | COMMAND [ARGS]...")


@click.group(cls=AssignmentGroup)
@click.version_option(__version__, prog_name="grade")
def cli() -> None:
    """Grade deep-learning exercises.

    \b
      grade list                         assignments with title and points
      grade init assignment1             start working on assignment1
      grade assignment1                  grade ./assignment1
      grade assignment1 --help           all grading options
    """


@cli.command("list")
@course_option
@handle_errors
def list_assignments(course_dir: Path | None) -> None:
    """List the course's assignments."""
    course = load_course(course_dir)
    table = Table("Assignment", "Title", "Points", "Files")
    for assignment in course.assignments.values():
        table.add_row(
            assignment.name,
            assignment.title,
            f"{assignment.points:g}",
            ", ".join(assignment.files),
        )
    Console().print(table)


@cli.command("init")
@click.argument("assignment")
@click.option(
    "--dir",
    "target_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to create the folder (default: ./ASSIGNMENT).",
)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@course_option
@handle_errors
def init(assignment: str, target_dir: Path | None, force: bool, course_dir: Path | None) -> None:
    """Create ./ASSIGNMENT with the starter code and the exercise's README."""
    course = load_course(course_dir)
    spec = course.assignment(assignment)
    target = target_dir or Path.cwd() / spec.name
    sources = [p for p in spec.template_dir.iterdir() if p.is_file()] + [spec.readme]
    existing = [target / p.name for p in sources if (target / p.name).exists()]
    if existing and not force:
        raise BadInput(
            f"{existing[0]} already exists; your work is kept. Use --force to overwrite it."
        )
    target.mkdir(parents=True, exist_ok=True)
    for source in sources:
        shutil.copy2(source, target / source.name)
    click.echo(f"Created {target} with {', '.join(p.name for p in sources)}.")
    click.echo(f"Edit {spec.files[0]}, then run: grade {spec.name}")


def _progress(console: Console) -> tuple[Callable[[CheckResult], None], Any]:
    status = console.status("Grading…")
    done = {"n": 0}

    def on_result(check: CheckResult) -> None:
        done["n"] += 1
        status.update(f"Grading… {done['n']} checks done ({check.name}: {check.status})")

    return on_result, status


@cli.command("run", hidden=True)
@click.argument("assignment")
@click.option(
    "--submission",
    type=click.Path(path_type=Path),
    help="Folder or .zip with the files (default: ./ASSIGNMENT or the current folder).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(FORMATS)),
    default="table",
    show_default=True,
    help="Report format.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here."
)
@click.option("--public-only", is_flag=True, help="Run only the public checks.")
@click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="auto",
    show_default=True,
    help="Where reference solutions compute.",
)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="Input seed.")
@click.option(
    "--fail-under",
    type=click.FloatRange(0, 100),
    help="Exit with code 1 if the score is under this percentage.",
)
@click.option("-k", "keyword", help="Only run checks matching this pytest -k expression.")
@click.option("-v", "--verbose", is_flag=True, help="Show full diagnostics and your prints.")
@course_option
@handle_errors
def run(
    assignment: str,
    submission: Path | None,
    fmt: str,
    output: Path | None,
    public_only: bool,
    device: str,
    seed: int,
    fail_under: float | None,
    keyword: str | None,
    verbose: bool,
    course_dir: Path | None,
) -> None:
    """Grade ASSIGNMENT and print the score table (or another format)."""
    course = load_course(course_dir)
    spec = course.assignment(assignment)
    if submission is None:
        default = Path.cwd() / spec.name
        submission = default if default.is_dir() else Path.cwd()
    err = Console(stderr=True)
    on_result, status = _progress(err)
    with status if err.is_terminal else contextlib.nullcontext():
        result = grade(
            spec.name,
            submission,
            course=course,
            seed=seed,
            device=device,
            public_only=public_only,
            keyword=keyword,
            on_result=on_result,
        )
    _emit(result, fmt, output, verbose)
    if fail_under is not None and result.percent < fail_under:
        click.echo(f"Score {result.percent:g}% is under --fail-under {fail_under:g}%.", err=True)
        sys.exit(EXIT_UNDER_THRESHOLD)


def _emit(result: Grade, fmt: str, output: Path | None, verbose: bool) -> None:
    """Print the table for people; write or print the chosen format."""
    text = FORMATS[fmt](result)
    if output is not None:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")
        except OSError as error:
            Console().print(renderables(result, verbose))
            raise BadInput(f"cannot write {output}: {error.strerror}") from error
    if fmt == "table" or output is not None:
        Console().print(renderables(result, verbose))
    else:
        click.echo(text, nl=False)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="grade")
