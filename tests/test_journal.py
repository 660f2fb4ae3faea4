"""A grade journals each finished check, so a killed grader loses none of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from support import FIXTURES, ROOT

from grader.journal import Journal
from grader.result import CheckResult
from grader.runner import grade

IDENTITY = {"assignment": "assignment1", "submission_sha256": "abc", "seed": 1}


def result(ident: str, score: float = 1.0) -> CheckResult:
    return CheckResult(ident, ident, score, 1.0, "passed", False, metrics={"x": 1})


def test_finished_checks_survive_and_belong_to_one_identity(tmp_path: Path):
    journal = Journal(tmp_path, IDENTITY)
    journal.start({})
    journal.record(result("a"))
    journal.record(result("b", 0.5))
    assert Journal(tmp_path, dict(IDENTITY)).finished() == {"a": result("a"), "b": result("b", 0.5)}
    assert Journal(tmp_path, {**IDENTITY, "seed": 2}).finished() == {}
    journal.close(completed=True)
    assert not journal.path.exists()


def test_a_torn_last_line_costs_only_that_check(tmp_path: Path):
    journal = Journal(tmp_path, IDENTITY)
    journal.start({})
    journal.record(result("a"))
    journal.close(completed=False)
    line = json.dumps({**result("b").__dict__})
    with journal.path.open("a") as file:
        file.write(line[: len(line) // 2])
    assert set(Journal(tmp_path, IDENTITY).finished()) == {"a"}


def test_an_unreadable_journal_means_a_clean_regrade(tmp_path: Path):
    journal = Journal(tmp_path, IDENTITY)
    journal.path.write_bytes(b"\xff\xfe not a journal")
    assert journal.finished() == {}
    journal.start({})
    journal.record(result("a"))
    assert set(Journal(tmp_path, IDENTITY).finished()) == {"a"}


def comparable(checks) -> list[tuple]:
    return [(c.id, c.status, c.score, c.message, c.metrics) for c in checks]


def test_an_interrupted_grade_resumes_where_it_stopped(course, make_submission, tmp_path: Path):
    # A wrong OR bias fails some checks, so resumed failures are compared too.
    submission = make_submission("assignment1", lambda s: s.replace("-0.2)", "-0.6)"))
    clean = grade("assignment1", submission, course=course, device="cpu")
    seen: list[CheckResult] = []

    def interrupt_after_three(check: CheckResult) -> None:
        seen.append(check)
        if len(seen) == 3:
            raise KeyboardInterrupt

    journal_dir = tmp_path / "journal"
    with pytest.raises(KeyboardInterrupt):
        grade("assignment1", submission, course=course, device="cpu",
              journal_dir=journal_dir, on_result=interrupt_after_three)  # fmt: skip
    assert len(list(journal_dir.glob("*.jsonl"))) == 1
    resumed = grade("assignment1", submission, course=course, device="cpu", journal_dir=journal_dir)
    assert resumed.resumed_checks == 3
    assert comparable(resumed.tests) == comparable(clean.tests)
    assert not list(journal_dir.iterdir())
    again = grade("assignment1", submission, course=course, device="cpu", journal_dir=journal_dir)
    assert again.resumed_checks == 0


def test_a_grade_resumed_in_full_still_reports_its_protections(
    course, make_submission, tmp_path: Path
):
    submission = make_submission("assignment1")
    clean = grade("assignment1", submission, course=course, device="cpu")
    seen: list[CheckResult] = []

    def interrupt_after_the_last(check: CheckResult) -> None:
        seen.append(check)
        if len(seen) == len(clean.tests):
            raise KeyboardInterrupt

    journal_dir = tmp_path / "journal"
    with pytest.raises(KeyboardInterrupt):
        grade("assignment1", submission, course=course, device="cpu",
              journal_dir=journal_dir, on_result=interrupt_after_the_last)  # fmt: skip
    resumed = grade("assignment1", submission, course=course, device="cpu", journal_dir=journal_dir)
    assert resumed.resumed_checks == len(clean.tests)
    assert resumed.worker["protections"] == clean.worker["protections"] != {}
    assert resumed.worker["limits"] == clean.worker["limits"] != []


def test_a_changed_submission_is_not_resumed(course, make_submission, tmp_path: Path):
    submission = make_submission("assignment1")
    journal_dir = tmp_path / "journal"
    first = grade("assignment1", submission, course=course, device="cpu")
    stale = Journal(journal_dir, {"assignment": "assignment1"})
    # A journal under another identity (another submission, seed or version) is never used.
    stale.start({c.id: replace(c, score=0.0, status="failed") for c in first.tests})
    stale.close(completed=False)
    regraded = grade(
        "assignment1", submission, course=course, device="cpu", journal_dir=journal_dir
    )
    assert regraded.resumed_checks == 0
    assert regraded.score == first.score


KILLER = """
import os, signal, sys
from pathlib import Path
from grader.runner import grade
done = []
def kill_after_two(check):
    done.append(check)
    if len(done) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
grade("assignment1", Path(sys.argv[1]), device="cpu", journal_dir=Path(sys.argv[2]),
      on_result=kill_after_two)
"""


def test_kill_9_mid_grade_then_the_cli_reports_the_finished_checks(tmp_path: Path):
    submission = FIXTURES / "assignment1" / "correct"
    data = tmp_path / "data"
    env = {**os.environ, "DL_GRADER_DATA": str(data)}
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(submission), str(data / "journal")],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    [journal] = (data / "journal").glob("*.jsonl")
    assert len(journal.read_text().splitlines()) == 1 + 2
    command = [sys.executable, "-m", "grader", "assignment1", "--submission", str(submission),
               "--device", "cpu", "--format", "json"]  # fmt: skip
    resumed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resumed 2 check(s)" in resumed.stderr
    assert json.loads(resumed.stdout)["percent"] == 100.0
    assert not journal.exists()
    clean = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert "Resumed" not in clean.stderr
    assert json.loads(clean.stdout)["tests"] == [
        {**t, "duration_s": c["duration_s"]}
        for t, c in zip(
            json.loads(resumed.stdout)["tests"], json.loads(clean.stdout)["tests"], strict=True
        )
    ]


def test_journals_nobody_resumed_are_removed_after_two_weeks(tmp_path: Path):
    old, recent = Journal(tmp_path, {"n": 1}), Journal(tmp_path, {"n": 2})
    for journal in (old, recent):
        journal.start({})
        journal.close(completed=False)
    month_ago = time.time() - 30 * 24 * 3600
    os.utime(old.path, (month_ago, month_ago))
    Journal(tmp_path, IDENTITY).start({})
    assert not old.path.exists()
    assert recent.path.exists()
