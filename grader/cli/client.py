"""`grade login`, `grade submit` and `grade history`: the student's side of the service."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from grader.cli.common import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_UNDER_THRESHOLD, handle_errors
from grader.errors import BadInput
from grader.safetext import one_line

# Long polling: the server answers as soon as the status or the running check changes; a
# queued submission asks again every few seconds for its place in the queue.
QUEUED_WAIT_S = 5
RUNNING_WAIT_S = 25
WAITING = ("queued", "running")
READ_CAP = 50 << 20


@click.command()
@click.option("--server", required=True, help="The grading server's address (https://...).")
@click.option("--token", help="Your token (asked for when not given).")
@handle_errors
def login(server: str, token: str | None) -> None:
    """Sign in to a grading server; the token is saved for grade submit."""
    from grader.client.api import Client
    from grader.client.config import save_config

    if not server.startswith(("http://", "https://")):
        raise BadInput(f"--server must start with https:// or http://, not {server!r}.")
    if token is None:
        token = click.prompt("Token", hide_input=True)
    token = token.strip()
    me = Client(server, token).get("/me")
    path = save_config({"server": server.rstrip("/"), "token": token})
    click.echo(
        f"Signed in to {server} as {one_line(me['id'])} ({one_line(me['name'])}); saved in {path}."
    )


def _read_files(folder: Path, files: list[str]) -> dict[str, bytes]:
    found = {}
    for name in files:
        path = folder / name
        if path.is_file():
            with path.open("rb") as file:
                found[name] = file.read(READ_CAP + 1)
    if not found:
        raise BadInput(f"no {', '.join(files)} in {folder}; use --dir to say where they are.")
    return found


def status_line(answer: dict[str, Any]) -> str:
    """Where a submission is: its place in the queue, or the check being run (the server's
    text, shown escaped)."""
    if answer["status"] == "queued":
        ahead = answer.get("position", 0)
        return f"Submission {answer['id']}: queued" + (f", {ahead} ahead" if ahead else "")
    line = f"Submission {answer['id']}: grading"
    if answer.get("check"):
        line += f": {one_line(answer['check'], 200)}"
    done = answer.get("checks_done", 0)
    return line + (f" ({done} check(s) done)" if done else "")


def wait_for_grade(
    client: Any,
    answer: dict[str, Any],
    console: Console,
    on_line: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Follow a submission until it is no longer queued or running: a live status line on a
    terminal (one line per change elsewhere, e.g. in CI logs); `on_line` hears each line."""
    shown = ""
    with console.status(Text(status_line(answer))) as status:
        while answer["status"] in WAITING:
            line = status_line(answer)
            if line != shown:
                status.update(Text(line))
                if not console.is_terminal:
                    console.print(Text(line))
                if on_line is not None:
                    on_line(line)
                shown = line
            wait = QUEUED_WAIT_S if answer["status"] == "queued" else RUNNING_WAIT_S
            seen = answer.get("progress")
            answer = client.get(f"/submissions/{answer['id']}", wait=wait, seen=seen)
    return answer


@click.command()
@click.argument("assignment")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder with your files (default: ./ASSIGNMENT or the current folder).",
)
@click.option("--no-wait", is_flag=True, help="Submit and return without waiting for the grade.")
@click.option(
    "--fail-under",
    type=click.FloatRange(0, 100),
    help="Exit with code 1 if the score is under this percentage.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show full diagnostics.")
@handle_errors
def submit(
    assignment: str, folder: Path | None, no_wait: bool, fail_under: float | None, verbose: bool
) -> None:
    """Upload ASSIGNMENT's files to the grading server and print the grade."""
    from grader.client.api import Client
    from grader.client.report import grade_from_report
    from grader.report.table import renderables

    client = Client.from_config()
    spec = client.get(f"/assignments/{assignment}")
    if folder is None:
        default = Path.cwd() / spec["name"]
        folder = default if default.is_dir() else Path.cwd()
    answer = client.submit(spec["name"], _read_files(folder, spec["files"]))
    err = Console(stderr=True)
    err.print(Text(f"Submitted {spec['name']} as submission {answer['id']}."))
    if no_wait:
        return
    answer = wait_for_grade(client, answer, err)
    report = answer.get("report")
    if answer["status"] != "graded" or not report:
        message = one_line(answer.get("message") or answer["status"])
        click.echo(f"Submission {answer['id']} was not graded: {message}", err=True)
        sys.exit(EXIT_BAD_INPUT if answer["status"] == "rejected" else EXIT_INTERNAL)
    Console().print(renderables(grade_from_report(report), verbose))
    if report.get("hidden_checks") and report.get("hidden_shown") != "full":
        err.print(Text(f"Hidden checks shown as: {report['hidden_shown']} (until the due date)."))
    if answer.get("late_days"):
        err.print(
            Text(
                f"Late by {answer['late_days']} day(s): the score counts "
                f"×{answer['score_factor']:g}, {answer['score']:g}/{answer['max_score']:g}."
            )
        )
    percent = 100.0 * answer["score"] / answer["max_score"] if answer.get("max_score") else 0.0
    if fail_under is not None and percent < fail_under:
        click.echo(f"Score {percent:g}% is under --fail-under {fail_under:g}%.", err=True)
        sys.exit(EXIT_UNDER_THRESHOLD)


@click.command()
@click.argument("assignment", required=False)
@handle_errors
def history(assignment: str | None) -> None:
    """Your submissions (of ASSIGNMENT, or all) with their status and score."""
    from grader.client.api import Client

    rows = Client.from_config().get("/submissions", assignment=assignment)
    table = Table("id", "assignment", "submitted (UTC)", "status", "score", "late")
    for row in rows:
        score = f"{row['score']:g}/{row['max_score']:g}" if "score" in row else ""
        late = f"{row['late_days']} day(s)" if row.get("late_days") else ""
        table.add_row(
            str(row["id"]),
            Text(one_line(row["assignment"])),
            Text(one_line(row["created_at"]).replace("T", " ")[:19]),
            Text(one_line(row["status"])),
            score,
            late,
        )
    if not rows:
        click.echo("No submissions yet.")
        return
    Console().print(table)
