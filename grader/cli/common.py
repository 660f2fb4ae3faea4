"""What every `grade` subcommand shares: exit codes, error handling, the --course option."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

from grader.errors import BadInput, GraderError
from grader.safetext import printable

EXIT_UNDER_THRESHOLD = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


class UserError(click.ClickException):
    """Input the user can fix: one line on stderr, exit 2. The line may name what a
    submission holds (its files, its folder), so its control codes are shown escaped."""

    exit_code = EXIT_BAD_INPUT

    def format_message(self) -> str:
        return printable(self.message)


class InternalError(click.ClickException):
    """A bug in the grader or the course: exit 3 and say how to report it."""

    exit_code = EXIT_INTERNAL

    def format_message(self) -> str:
        return (
            f"internal grader error: {printable(self.message)}\n"
            "Please report this to the course staff."
        )


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


def complete_assignment(
    ctx: click.Context, param: click.Parameter | None, incomplete: str
) -> list[CompletionItem]:
    """The assignment names of the course (`--course`, if given before) that start with
    `incomplete`, for shell completion; none when no course is found or it is broken."""
    from grader.course import load_course

    try:
        assignments = load_course(ctx.params.get("course_dir")).assignments
    except (BadInput, GraderError, OSError):
        return []
    return [
        CompletionItem(name, help=assignment.title)
        for name, assignment in assignments.items()
        if name.startswith(incomplete)
    ]


def assignment_argument(command: Callable[..., Any]) -> Callable[..., Any]:
    """The ASSIGNMENT argument, completed from the course's assignment names."""
    return click.argument("assignment", shell_complete=complete_assignment)(command)


def course_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--course",
        "course_dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Course folder (with assignments/). Default: found automatically.",
    )(command)


def _use_data_dir(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        from grader.data import ENV_VARIABLE

        os.environ[ENV_VARIABLE] = str(value.resolve())


def data_dir_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--data-dir: where MNIST is looked for (passed to grading processes by the environment)."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        expose_value=False,
        callback=_use_data_dir,
        help="Data folder where MNIST is looked for (default: $DL_GRADER_DATA, "
        "else ~/.cache/dl-grader).",
    )(command)


def grading_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--public-only, --device and --seed: how a grade runs, the same for one or a class."""
    from grader.runner import DEFAULT_SEED, DEVICES

    for option in reversed(
        (
            click.option("--public-only", is_flag=True, help="Run only the public checks."),
            click.option(
                "--device",
                type=click.Choice(DEVICES),
                default="auto",
                show_default=True,
                help="Where reference solutions compute.",
            ),
            click.option(
                "--seed", type=int, default=DEFAULT_SEED, show_default=True, help="Input seed."
            ),
        )
    ):
        command = option(command)
    return command
