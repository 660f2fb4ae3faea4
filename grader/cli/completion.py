"""`grade completion SHELL`: print the script that makes a shell complete `grade` commands,
options and assignment names (click's shell completion)."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
      bash: eval "$(grade completion bash)"     in ~/.bashrc
      zsh:  eval "$(grade completion zsh)"      in ~/.zshrc
      fish: grade completion fish | source      in ~/.config/fish/config.fish
    """
    from grader.cli import cli

    script = get_completion_class(shell)(cli, {}, "grade", "_GRADE_COMPLETE")
    click.echo(script.source())
