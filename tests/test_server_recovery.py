"""Nothing lost: a server killed with SIGKILL mid-grade requeues the grade at start and
finishes it, each submission gets one result, and SIGTERM lets the grade in progress end;
on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import pytest
from service_support import (
    ROSTER,
    admin,
    build_course,
    postgres_schema,
    results,
    start_server,
    tokens,
)

pytest.importorskip("fastapi")

CORRECT = b"def double(x):\n    return x + x\n"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_mid_grade_loses_nothing_and_grades_nothing_twice(tmp_path, backend):
    with postgres_schema() if backend == "postgresql" else contextlib.nullcontext() as db:
        _kill_and_restart(tmp_path, db)


def _kill_and_restart(tmp_path: Path, db: str | None) -> None:
    course = build_course(tmp_path)
    (tmp_path / "roster.csv").write_text(ROSTER)
    data = tmp_path / "data"
    admin(data, db, "roster", "import", str(tmp_path / "roster.csv"))
    ann = tokens(data)["ann"]

    first = start_server(course, data, db)
    with first.client(ann) as client:
        ids = [
            client.post(
                "/assignments/slow/submissions", files=[("files", ("toy.py", CORRECT))]
            ).json()["id"]
            for _ in range(2)
        ]
    first.wait_for(ann, ids[0], ("running",))
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert results(data, db)[ids[0]][0] == "running"

    # Restarted, it requeues the interrupted grade (on PostgreSQL: once the dead server's
    # lock is gone) and claims it again; SIGTERM then lets that grade finish.
    second = start_server(course, data, db)
    while results(data, db)[ids[0]][:2] != ("running", 2):
        assert second.process.poll() is None, "the server exited"
        time.sleep(0.1)
    assert second.stop(signal.SIGTERM) in (0, -signal.SIGTERM)  # the slow check takes 2 s
    state = results(data, db)
    assert state[ids[0]] == ("graded", 2, 1)
    assert state[ids[1]][0] == "queued"

    third = start_server(course, data, db)
    graded = third.wait_for(ann, ids[1], ("graded",))
    assert graded["score"] == 15.0
    assert third.wait_for(ann, ids[0], ("graded",))["score"] == 15.0
    assert third.stop() in (0, -signal.SIGTERM)
    assert results(data, db) == {ids[0]: ("graded", 2, 1), ids[1]: ("graded", 1, 1)}
