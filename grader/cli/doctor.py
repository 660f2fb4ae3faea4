"""`grade doctor`: print what the machine offers and which sandbox protections are active."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from grader.cli.common import handle_errors
from grader.doctor import probe


@click.command("doctor")
@handle_errors
def doctor() -> None:
    """Check the installation and show which protections the sandbox can use here."""
    diagnosis = probe()
    console = Console()
    facts = Table("", "", title="Installation", show_header=False, title_justify="left")
    for name, value in diagnosis.facts.items():
        facts.add_row(name, value)
    console.print(facts)
    table = Table("protection", "state", title="Sandbox", title_justify="left")
    for name, state in diagnosis.protections.items():
        style = "green" if state.startswith("active") or name == "resource limits" else "yellow"
        table.add_row(name, f"[{style}]{state}[/]")
    console.print(table)
