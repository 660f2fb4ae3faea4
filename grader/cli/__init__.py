"""The `grade` command: parse options, call the library, print. No grading logic lives here.

`grade ASSIGNMENT` grades; the subcommands live in one module each and are listed here.
A subcommand's module is imported only when that subcommand runs, so `grade --help` and
`grade list` do not pay for the batch engine, pytest or NumPy.
Exit codes: 0 graded, 1 graded but under --fail-under, 2 bad input, 3 internal error,
130 interrupted.
"""

from __future__ import annotations

import importlib

import click
from click.shell_completion import CompletionItem

from grader import __version__

# name -> (module, attribute, the one line `grade --help` shows)
COMMANDS = {
    "run": ("grader.cli.grading", "run", ""),
    "batch": ("grader.cli.batch", "batch", "Grade a folder of submissions into a gradebook."),
    "admin": (
        "grader.cli.service",
        "admin",
        "Manage the service's people: roster, staff, tokens, extensions.",
    ),
    "completion": (
        "grader.cli.completion",
        "completion",
        "Print the completion script for SHELL.",
    ),
    "data": (
        "grader.cli.data",
        "data",
        "Data sets for the training assignments (MNIST for assignment8).",
    ),
    "doctor": (
        "grader.cli.doctor",
        "doctor",
        "Check the installation and show which protections the sandbox can use here.",
    ),
    "history": (
        "grader.cli.client",
        "history",
        "Your submissions (of ASSIGNMENT, or all) with their status and score.",
    ),
    "init": (
        "grader.cli.starting",
        "init",
        "Create ./ASSIGNMENT with the starter code and the exercise's README.",
    ),
    "login": (
        "grader.cli.client",
        "login",
        "Sign in to a grading server; the token is saved for grade submit.",
    ),
    "list": ("grader.cli.starting", "list_assignments", "List the course's assignments."),
    "serve": (
        "grader.cli.service",
        "serve",
        "Run the grading service (students submit with grade submit).",
    ),
    "submit": (
        "grader.cli.client",
        "submit",
        "Upload ASSIGNMENT's files to the grading server and print the grade.",
    ),
    "release": (
        "grader.cli.release",
        "release",
        "Write a student bundle: stub, README, public checks.",
    ),
}


class AssignmentGroup(click.Group):
    """`grade ASSIGNMENT ...` runs the hidden `run` command; other words are subcommands,
    each imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, (_, _, summary) in COMMANDS.items() if summary)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in COMMANDS and not args[0].startswith("-"):
            return None, self.get_command(ctx, "run"), args
        return super().resolve_command(ctx, args)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Complete the first word: a subcommand, or an assignment to grade."""
        from grader.cli.common import complete_assignment

        found = super().shell_complete(ctx, incomplete)
        if incomplete.startswith("-"):
            return found
        return complete_assignment(ctx, None, incomplete) + found

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
      grade completion bash              shell completion (see its --help)
    """


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="grade")
