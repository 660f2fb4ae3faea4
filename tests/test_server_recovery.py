"""Nothing lost: a server killed with SIGKILL mid-grade requeues the grade at start and
finishes it, each submission gets one result, and SIGTERM lets the grade in progress end."""

from __future__ import annotations

import signal
import sqlite3

import pytest
from service_support import ROSTER, admin, build_course, start_server, tokens

pytest.importorskip("fastapi")

CORRECT = b"def double(x):\n    return x + x\n"


def _results(data) -> dict[int, tuple[str, int, int]]:
    """Per submission: its status, its attempts and how many result rows it has."""
    with sqlite3.connect(data / "grader.db") as db:
        rows = db.execute(
            "SELECT s.id, s.status, s.attempts, COUNT(r.id) FROM submissions s "
            "LEFT JOIN results r ON r.submission_id = s.id GROUP BY s.id"
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_sigkill_mid_grade_loses_nothing_and_grades_nothing_twice(tmp_path):
    course = build_course(tmp_path)
    (tmp_path / "roster.csv").write_text(ROSTER)
    data = tmp_path / "data"
    admin(data, None, "roster", "import", str(tmp_path / "roster.csv"))
    ann = tokens(data)["ann"]

    first = start_server(course, data)
    with first.client(ann) as client:
        ids = [
            client.post(
                "/assignments/slow/submissions", files=[("files", ("toy.py", CORRECT))]
            ).json()["id"]
            for _ in range(2)
        ]
    first.wait_for(ann, ids[0], ("running",))
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert _results(data)[ids[0]][0] == "running"

    # Restarted, it requeues the interrupted grade; SIGTERM then lets that grade finish.
    second = start_server(course, data)
    second.wait_for(ann, ids[0], ("running",))  # the slow check keeps it running 2 s
    assert second.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    state = _results(data)
    assert state[ids[0]] == ("graded", 2, 1)
    assert state[ids[1]][0] == "queued"

    third = start_server(course, data)
    graded = third.wait_for(ann, ids[1], ("graded",))
    assert graded["score"] == 15.0
    assert third.wait_for(ann, ids[0], ("graded",))["score"] == 15.0
    assert third.stop() in (0, -signal.SIGTERM)
    assert _results(data) == {ids[0]: ("graded", 2, 1), ids[1]: ("graded", 1, 1)}
