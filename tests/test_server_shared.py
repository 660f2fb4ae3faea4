"""Several servers on one PostgreSQL database: dispatchers claim from one queue with
SELECT ... FOR UPDATE SKIP LOCKED, so every submission is graded exactly once; a live
server's claims are never requeued, a dead one's are."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_support import build_course, postgres_schema

pytest.importorskip("sqlalchemy")

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from grader.course import load_course
from grader.server import storage
from grader.server.claims import Claims
from grader.server.db import Result, Submission, User, database_url, make_engine, migrate
from grader.server.dispatch import Dispatcher

CORRECT = b"def double(x):\n    return x + x\n"


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    with postgres_schema() as url:
        engine = make_engine(database_url(url, tmp_path))
        migrate(engine)
        engine.dispose()
        yield database_url(url, tmp_path)


def _queue(engine: Engine, count: int, folders: list[str] | None = None) -> list[int]:
    """`count` queued submissions of "toy" by one student; their ids."""
    with Session(engine) as session:
        user = User(login="ann", name="Ann", email="", section="", role="student")
        session.add(user)
        session.flush()
        rows = [
            Submission(
                user_id=user.id,
                assignment="toy",
                sha256="0" * 64,
                folder=folders[i] if folders else f"f{i}",
                status="queued",
                message="",
                attempts=0,
            )
            for i in range(count)
        ]
        session.add_all(rows)
        session.commit()
        return [row.id for row in rows]


def test_concurrent_claims_never_take_one_submission_twice(database):
    engines = [make_engine(database), make_engine(database)]
    ids = _queue(engines[0], 120)
    claims = [Claims(engine) for engine in engines]
    taken: list[tuple[int, int]] = []  # (owner, id)
    lock = threading.Lock()

    def claimer(mine: Claims) -> None:
        while got := mine.claim("toy", 2):
            with lock:
                taken.extend((mine.owner, submission_id) for submission_id, _ in got)

    threads = [threading.Thread(target=claimer, args=(c,)) for c in claims * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(i for _, i in taken) == ids  # each exactly once
    with Session(engines[0]) as session:
        rows = session.scalars(select(Submission)).all()
        assert {(row.claimed_by, row.id) for row in rows} == set(taken)
        assert {row.attempts for row in rows} == {1}
    for engine in engines:
        engine.dispose()


def test_a_live_servers_claims_stay_and_a_dead_ones_are_requeued(database):
    engines = [make_engine(database), make_engine(database)]
    ids = _queue(engines[0], 3)
    live, starting = Claims(engines[0]), Claims(engines[1])
    live.hold()
    assert len(live.claim("toy", 2)) == 2
    assert starting.requeue_orphans() == 0  # its owner holds its lock: still grading
    live.release()  # as a killed server's connection does
    assert starting.requeue_orphans() == 2
    with Session(engines[1]) as session:
        states = session.execute(select(Submission.id, Submission.status)).all()
    assert sorted(states) == [(i, "queued") for i in ids]
    for engine in engines:
        engine.dispose()


def test_two_dispatchers_on_one_queue_grade_every_submission_exactly_once(database, tmp_path):
    course = load_course(build_course(tmp_path))
    data = tmp_path / "data"  # the servers share the data folder as they share the database
    spec = course.assignment("toy")
    folders = [
        storage.store({"toy.py": CORRECT + f"# {i}\n".encode()}, spec, data / "submissions").folder
        for i in range(6)
    ]
    engines = [make_engine(database), make_engine(database)]
    ids = _queue(engines[0], 6, folders)
    dispatchers = [Dispatcher(engine, course, data, 1, "cpu") for engine in engines]
    for dispatcher in dispatchers:
        dispatcher.start()
    try:
        with Session(engines[0]) as session:
            while session.scalar(
                select(func.count()).where(Submission.status.in_(("queued", "running")))
            ):
                session.rollback()
                time.sleep(0.2)
    finally:
        for dispatcher in dispatchers:
            dispatcher.stop()
    with Session(engines[0]) as session:
        rows = session.scalars(select(Submission).order_by(Submission.id)).all()
        results = session.scalars(select(Result)).all()
    assert [(row.id, row.status, row.attempts) for row in rows] == [(i, "graded", 1) for i in ids]
    assert sorted(result.submission_id for result in results) == ids
    assert {result.score for result in results} == {10.0}
    # Both took work from the one queue.
    assert {row.claimed_by for row in rows} == {d.claims.owner for d in dispatchers}
    for engine in engines:
        engine.dispose()
