"""`grade serve` and `grade admin`: run the grading service and manage its people.

Both need the `server` extra (`pip install dl-grader[server]`). The data folder holds the
SQLite database (unless --db names PostgreSQL), the submitted files and the logs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from grader.cli.common import course_option, handle_errors
from grader.errors import BadInput


def default_data() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "dl-grader" / "server"


def _require_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import sqlalchemy  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise BadInput(
            "the grading service needs the server extra: pip install 'dl-grader[server]'."
        ) from None


def storage_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--db",
        help="Database URL, e.g. postgresql://user@host/db (default: SQLite in the data folder).",
    )(command)
    return click.option(
        "--data",
        type=click.Path(file_okay=False, path_type=Path),
        default=default_data,
        show_default="$XDG_DATA_HOME/dl-grader/server",
        help="Folder for the database, submitted files and logs.",
    )(command)


@click.command()
@course_option
@storage_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port (0: any free).")
@click.option(
    "--jobs", "-j", type=int, default=1, show_default=True, help="Grades at once on this machine."
)
@click.option(
    "--cluster",
    metavar="ADDRESS",
    help="Grade on a Ray cluster instead: auto (the cluster this machine is part of) or "
    "ray://HOST:PORT; it decides how many run at once. Needs pip install 'dl-grader[ray]'.",
)
@click.option(
    "--device",
    type=click.Choice(("auto", "cpu", "cuda")),
    default="auto",
    show_default=True,
    help="Where reference solutions compute.",
)
@click.option(
    "--allow-weak-sandbox",
    is_flag=True,
    help="Serve even when the sandbox here lacks a protection a service needs (grade doctor "
    "lists them; not checked with --cluster, where the nodes grade); the log says which are off.",
)
@handle_errors
def serve(
    course_dir: Path | None,
    data: Path,
    db: str | None,
    host: str,
    port: int,
    jobs: int,
    cluster: str | None,
    device: str,
    allow_weak_sandbox: bool,
) -> None:
    """Run the grading service (students submit with grade submit). With --cluster each
    submission is graded as a Ray task on the cluster's nodes, in the same sandbox."""
    _require_extra()
    from grader.course import load_course
    from grader.runner import resolve_device
    from grader.server.serve import serve as run_server

    # On a cluster, "auto" is decided per assignment by what the cluster has.
    device = device if cluster else resolve_device(device)
    run_server(
        load_course(course_dir),
        data,
        db,
        host,
        port,
        jobs,
        device,
        cluster,
        allow_weak_sandbox=allow_weak_sandbox,
    )


@click.group()
@storage_options
@click.pass_context
def admin(ctx: click.Context, data: Path, db: str | None) -> None:
    """Manage the service's people: roster, staff, tokens, extensions."""
    ctx.obj = (data, db)


def _session(ctx: click.Context) -> Any:
    _require_extra()
    from sqlalchemy.orm import Session

    from grader.server.db import database_url, make_engine, migrate

    data, db = ctx.obj
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = make_engine(database_url(db, data.resolve()))
    migrate(engine)
    return Session(engine)


@admin.group()
def roster() -> None:
    """The class list."""


@roster.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--tokens",
    "tokens_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the new students' tokens (default: DATA/tokens-N.csv).",
)
@click.pass_context
@handle_errors
def import_roster(ctx: click.Context, csv_file: Path, tokens_file: Path | None) -> None:
    """Create accounts from CSV_FILE (columns id, name, email, section)."""
    from grader.server import accounts

    rows = accounts.read_roster(csv_file)
    with _session(ctx) as session:
        issued, updated = accounts.import_roster(session, rows)
    if tokens_file is None:
        data = ctx.obj[0]
        number = 1
        while (data / f"tokens-{number}.csv").exists():
            number += 1
        tokens_file = data / f"tokens-{number}.csv"
    if not issued:
        click.echo(f"No new accounts; {updated} updated.")
        return
    accounts.write_tokens(tokens_file, issued)
    click.echo(
        f"{len(issued)} account(s) created, {updated} updated; "
        f"their tokens are in {tokens_file} (hand each student their own)."
    )


@admin.group()
def token() -> None:
    """API tokens."""


@token.command("reset")
@click.argument("login")
@click.pass_context
@handle_errors
def reset(ctx: click.Context, login: str) -> None:
    """Revoke LOGIN's token and print a new one."""
    from grader.server import accounts

    with _session(ctx) as session:
        issued = accounts.reset_token(session, login)
    click.echo(issued.token)


@admin.group()
def staff() -> None:
    """Staff accounts."""


@staff.command("add")
@click.argument("login")
@click.option("--name", default="", help="Full name.")
@click.option("--email", default="", help="Email address.")
@click.pass_context
@handle_errors
def add_staff(ctx: click.Context, login: str, name: str, email: str) -> None:
    """Create (or promote) a staff account and print its token."""
    from grader.server import accounts

    with _session(ctx) as session:
        issued = accounts.add_staff(session, login, name, email)
    click.echo(issued.token)


@admin.command()
@click.argument("login")
@click.argument("assignment")
@click.option("--days", type=float, required=True, help="Extra days past the due date.")
@click.option("--course", "course_dir", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
@handle_errors
def extend(
    ctx: click.Context, login: str, assignment: str, days: float, course_dir: Path | None
) -> None:
    """Give LOGIN more days for ASSIGNMENT."""
    from grader.course import load_course
    from grader.server import accounts

    name = load_course(course_dir).assignment(assignment).name
    with _session(ctx) as session:
        accounts.extend(session, login, name, days)
    click.echo(f"{login} has {days:g} extra day(s) for {name}.")
