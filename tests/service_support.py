"""Helpers for the grading service's tests: a small course with policies, a real server
started on a free loopback port, and a fresh PostgreSQL schema per test run."""

from __future__ import annotations

import datetime
import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from click.testing import CliRunner
from support import ROOT, make_course

from grader.cli import cli

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PUBLIC = """
import pytest

@pytest.mark.points(5)
def test_double(student):
    assert student.double(3) == 6, "double(3) should be 6"
"""
HIDDEN = """
import pytest

@pytest.mark.points(5)
def test_secret(student):
    assert student.double(21) == 42, "the secret input 21 gave the wrong answer"
"""
SLOW = """
import time

import pytest

@pytest.mark.points(5)
def test_fast(student):
    assert student.double(2) == 4

@pytest.mark.points(5)
def test_slow(student):
    time.sleep(2)
    assert student.double(1) == 2
"""
SLOW_HIDDEN = """
import time

import pytest

@pytest.mark.points(5)
def test_slow_secret(student):
    time.sleep(2)
    assert student.double(21) == 42
"""
ROSTER = "id,name,email,section\nann,Ann <b>A</b>,ann@example.edu,A\nbob,Bob,bob@example.edu,B\n"


def add_assignment(
    course: Path, name: str, policy: str, public: str = PUBLIC, hidden: str = HIDDEN
) -> None:
    """Another assignment like "toy" (files toy.py) with its own checks and [policy]."""
    folder = course / "assignments" / name
    (folder / "checks" / "public").mkdir(parents=True)
    (folder / "checks" / "hidden").mkdir()
    toml = (course / "assignments" / "toy" / "assignment.toml").read_text()
    (folder / "assignment.toml").write_text(toml.replace("[limits]", policy + "\n[limits]"))
    (folder / "checks" / "public" / f"test_{name}.py").write_text(textwrap.dedent(public))
    (folder / "checks" / "hidden" / f"test_{name}_secret.py").write_text(textwrap.dedent(hidden))
    shutil.copy(course / "reference" / "toy.py", course / "reference" / f"{name}.py")


def build_course(root: Path) -> Path:
    """toy (no policy but a rate limit), late (due two days ago), closed (hidden: nothing),
    slow (a public check takes 2 s), sealed (hidden: nothing; its hidden check takes 2 s)."""
    course = make_course(root, PUBLIC, HIDDEN)
    due = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1, hours=12)).isoformat(
        timespec="seconds"
    )
    add_assignment(
        course,
        "late",
        f'[policy]\ndue = "{due}"\nlate_penalty_per_day = 0.1\nmax_late_days = 3\n'
        'hidden_after_due = "full"\n',
    )
    add_assignment(course, "closed", '[policy]\nhidden_before_due = "nothing"\n')
    add_assignment(course, "slow", "", public=SLOW, hidden=HIDDEN)
    add_assignment(
        course, "sealed", '[policy]\nhidden_before_due = "nothing"\n', hidden=SLOW_HIDDEN
    )
    toy = course / "assignments" / "toy" / "assignment.toml"
    toy.write_text(
        toy.read_text().replace("[limits]", "[policy]\nsubmissions_per_hour = 4\n[limits]")
    )
    return course


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A database URL whose tables live in a new schema, dropped afterwards."""
    import psycopg

    schema = f"dlg_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_URL, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


def admin(data: Path, db: str | None, *args: str) -> str:
    """Run `grade admin ...` in this process; its output (fails the test on a non-zero exit)."""
    options = ["--data", str(data)] + (["--db", db] if db else [])
    result = CliRunner().invoke(cli, ["admin", *options, *args])
    assert result.exit_code == 0, result.output
    return result.output


def tokens(data: Path) -> dict[str, str]:
    """The tokens the roster import wrote, by student id."""
    lines = (data / "tokens-1.csv").read_text().splitlines()[1:]
    return {line.split(",")[0]: line.split(",")[-1] for line in lines}


@dataclass
class Server:
    """A `grade serve` subprocess on a free loopback port."""

    process: subprocess.Popen
    url: str
    data: Path
    db: str | None

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def wait_for(self, token: str, submission: int, statuses: tuple[str, ...]) -> dict:
        """Poll a submission until its status is one of `statuses` (or the server exits)."""
        with self.client(token) as client:
            while True:
                answer = client.get(f"/submissions/{submission}").json()
                if answer["status"] in statuses:
                    return answer
                assert self.process.poll() is None, "the server exited"
                time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(120)


@functools.cache
def weak_machine() -> bool:
    """Whether this machine lacks a protection `grade serve` needs (then the tests' servers
    start with --allow-weak-sandbox; the refusal itself is tested on every machine)."""
    from grader.doctor import sandbox_protections
    from grader.server.protections import missing_protections

    return bool(missing_protections(sandbox_protections()))


def start_server(
    course: Path,
    data: Path,
    db: str | None = None,
    jobs: int = 1,
    cluster: str | None = None,
    device: str = "cpu",
    options: tuple[str, ...] = (),
) -> Server:
    command = [
        sys.executable,
        "-m",
        "grader",
        "serve",
        "--course",
        str(course),
        "--data",
        str(data),
    ]
    command += ["--port", "0", "--jobs", str(jobs), "--device", device]
    if db:
        command += ["--db", db]
    if cluster:
        command += ["--cluster", cluster]
    command += list(options)
    if not cluster and weak_machine() and "--allow-weak-sandbox" not in options:
        command.append("--allow-weak-sandbox")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=(data.parent / f"{data.name}.log").open("ab"),
        text=True,
        env=env,
    )
    line = process.stdout.readline()
    assert line.startswith("Serving on "), (data.parent / f"{data.name}.log").read_text()
    server = Server(process, line.split()[-1], data, db)
    while True:
        try:
            if httpx.get(server.url + "/api/v1/health", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            assert process.poll() is None, (data.parent / f"{data.name}.log").read_text()
            time.sleep(0.1)


def results(data: Path, db: str | None = None) -> dict[int, tuple[str, int, int]]:
    """Per submission: its status, its attempts and how many result rows it has (read from
    the database, SQLite in `data` unless `db` names one)."""
    from sqlalchemy import text

    from grader.server.db import database_url, make_engine

    engine = make_engine(database_url(db, data))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT s.id, s.status, s.attempts, COUNT(r.id) FROM submissions s "
                    "LEFT JOIN results r ON r.submission_id = s.id GROUP BY s.id"
                )
            ).all()
    finally:
        engine.dispose()
    return {row[0]: tuple(row[1:]) for row in rows}
