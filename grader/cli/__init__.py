"""The `grade` command: parse options, call the library, print. No grading logic lives here.

`grade ASSIGNMENT` grades; the subcommands live in one module each and register here.
Exit codes: 0 graded, 1 graded but under --fail-under, 2 bad input, 3 internal error,
130 interrupted.
"""

from __future__ import annotations

import click

from grader import __version__


class AssignmentGroup(click.Group):
    """`grade ASSIGNMENT ...` runs the hidden `run` command; other words are subcommands."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return None, self.commands["run"], args
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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="grade")


def _register() -> None:
    from grader.cli.batch import batch
    from grader.cli.client import history, login, submit
    from grader.cli.data import data
    from grader.cli.doctor import doctor
    from grader.cli.grading import run
    from grader.cli.release import release
    from grader.cli.service import admin, serve
    from grader.cli.starting import init, list_assignments

    commands = (run, list_assignments, init, doctor, batch, release, data)
    for command in (*commands, serve, admin, login, submit, history):
        cli.add_command(command)


_register()
