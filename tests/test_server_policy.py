"""Per-assignment policy: late days and penalties, visibility of hidden checks, bad keys;
and the people side: roster import, tokens, extensions (no server needed)."""

from __future__ import annotations

import datetime
import stat

import pytest
from click.testing import CliRunner
from service_support import ROSTER, admin, tokens
from support import make_course

from grader.cli import cli
from grader.course import Course
from grader.errors import GraderError

pytest.importorskip("sqlalchemy")

from grader.server.policy import Policy, load_policy, policy_from_mapping, visible_report

DUE = datetime.datetime(2025, 3, 1, 23, 59, tzinfo=datetime.UTC)
REPORT = {
    "score": 7.0,
    "max_score": 10.0,
    "percent": 70.0,
    "tests": [
        {
            "name": "a",
            "hidden": False,
            "status": "passed",
            "score": 5.0,
            "max_score": 5.0,
            "message": "",
            "details": "",
            "metrics": {},
        },
        {
            "name": "b",
            "hidden": True,
            "status": "failed",
            "score": 2.0,
            "max_score": 5.0,
            "message": "input 21 gave 41",
            "details": "trace",
            "metrics": {"max_abs": 1.0},
        },
    ],
}


def test_late_days_count_started_days_past_the_deadline_and_its_extension():
    policy = Policy(due=DUE, late_penalty_per_day=0.1, max_late_days=3)
    assert policy.late_days(DUE) == 0
    assert policy.late_days(DUE + datetime.timedelta(minutes=1)) == 1
    assert policy.late_days(DUE + datetime.timedelta(days=1, minutes=1)) == 2
    assert policy.late_days(DUE + datetime.timedelta(days=1, minutes=1), extension_days=2) == 0
    assert [policy.score_factor(d) for d in range(5)] == pytest.approx([1, 0.9, 0.8, 0.7, 0])
    assert Policy().late_days(DUE + datetime.timedelta(days=400)) == 0


@pytest.mark.parametrize(
    ("level", "names", "score", "max_score", "message"),
    [
        ("full", ["a", "b"], 7.0, 10.0, "input 21 gave 41"),
        ("score", ["a", "b"], 7.0, 10.0, ""),
        ("pass_fail", ["a", "b"], 5.0, 5.0, ""),
        ("nothing", ["a"], 5.0, 5.0, None),
    ],
)
def test_hidden_checks_are_shown_only_as_the_level_allows(level, names, score, max_score, message):
    shown = visible_report(REPORT, level)
    assert [t["name"] for t in shown["tests"]] == names
    assert (shown["score"], shown["max_score"]) == (score, max_score)
    hidden = [t for t in shown["tests"] if t["hidden"]]
    if message is not None:
        assert hidden[0]["message"] == message
        assert hidden[0]["status"] == "failed"
    if level != "full":
        assert all(t["details"] == "" and t["metrics"] == {} for t in hidden)
    assert REPORT["tests"][1]["message"] == "input 21 gave 41"  # the stored report is untouched


def test_visibility_switches_at_the_students_own_deadline():
    policy = Policy(due=DUE, hidden_before_due="nothing", hidden_after_due="full")
    after = DUE + datetime.timedelta(hours=1)
    assert policy.visibility(DUE) == "nothing"
    assert policy.visibility(after) == "full"
    assert policy.visibility(after, extension_days=1) == "nothing"


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"due": "next friday"}, "Invalid isoformat"),
        ({"hidden_before_due": "everything"}, "hidden_before_due must be one of"),
        ({"counts": "first"}, "counts must be one of"),
        ({"late_penalty": 0.1}, "unknown policy key 'late_penalty'"),
        ({"max_upload_mb": 500}, "max_upload_mb must be in"),
        ({"leaderboard": "yes"}, "leaderboard must be true or false"),
    ],
)
def test_a_bad_policy_names_its_key(table, words):
    with pytest.raises(ValueError, match=words):
        policy_from_mapping(table)


def test_course_policy_file_overrides_the_assignments_and_a_bad_one_is_a_grader_error(tmp_path):
    root = make_course(tmp_path, "def test_x(student):\n    pass\n")
    toml = root / "assignments" / "toy" / "assignment.toml"
    toml.write_text(
        toml.read_text().replace("[limits]", "[policy]\nlate_penalty_per_day = 0.2\n[limits]")
    )
    (root / "policy.toml").write_text('[toy]\ndue = 2025-03-01T23:59:00Z\ncounts = "best"\n')
    policy = load_policy(Course(root).assignment("toy"))
    assert (policy.due, policy.late_penalty_per_day, policy.counts) == (DUE, 0.2, "best")
    (root / "policy.toml").write_text("[toy]\nsubmissions_per_hour = 'many'\n")
    with pytest.raises(GraderError, match="the policy of toy is invalid"):
        load_policy(Course(root).assignment("toy"))


def test_roster_import_writes_owner_only_tokens_once_and_keeps_them_on_reimport(tmp_path):
    (tmp_path / "roster.csv").write_text(ROSTER)
    data = tmp_path / "data"
    said = admin(data, None, "roster", "import", str(tmp_path / "roster.csv"))
    assert "2 account(s) created" in said
    issued = tokens(data)
    assert set(issued) == {"ann", "bob"} and all(t.startswith("dlg_") for t in issued.values())
    assert stat.S_IMODE((data / "tokens-1.csv").stat().st_mode) == 0o600
    assert not any(t.encode() in (data / "grader.db").read_bytes() for t in issued.values())
    again = admin(data, None, "roster", "import", str(tmp_path / "roster.csv"))
    assert "No new accounts; 2 updated" in again and not (data / "tokens-2.csv").exists()


@pytest.mark.parametrize(
    ("roster", "words"),
    [
        ("name,email\nAnn,a@x\n", "needs a header row with the columns id"),
        ("id,name\nann,Ann\nann,Ann again\n", "line 3: id 'ann' appears twice"),
        ("id,name\n,Nobody\n", "line 2: the id is empty"),
    ],
)
def test_a_bad_roster_is_one_line_naming_the_problem(tmp_path, roster, words):
    (tmp_path / "roster.csv").write_text(roster)
    result = CliRunner().invoke(
        cli,
        [
            "admin",
            "--data",
            str(tmp_path / "data"),
            "roster",
            "import",
            str(tmp_path / "roster.csv"),
        ],
    )
    assert result.exit_code == 2 and words in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_token_reset_and_extend_of_an_unknown_id_are_refused(tmp_path):
    runner = CliRunner()
    base = ["admin", "--data", str(tmp_path / "data")]
    for args in (["token", "reset", "nobody"], ["extend", "nobody", "toy", "--days", "1"]):
        extra = [
            "--course",
            str(make_course(tmp_path / args[0], "def test_x(student):\n    pass\n")),
        ]
        result = runner.invoke(cli, [*base, *args, *(extra if args[0] == "extend" else [])])
        assert result.exit_code == 2 and "no account with id 'nobody'" in result.output


def test_serve_refuses_to_start_on_a_broken_policy(tmp_path):
    root = make_course(tmp_path, "def test_x(student):\n    pass\n")
    toml = root / "assignments" / "toy" / "assignment.toml"
    toml.write_text(toml.read_text().replace("[limits]", "[policy]\ncounts = 'worst'\n[limits]"))
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            "--course",
            str(root),
            "--data",
            str(tmp_path / "d"),
            "--port",
            "0",
            "--device",
            "cpu",
        ],
    )
    assert (
        result.exit_code == 3
        and "the policy of toy is invalid: counts must be one of" in result.output
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_create_the_schema_and_a_rerun_keeps_every_row(tmp_path, backend):
    from contextlib import nullcontext

    from service_support import postgres_schema
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from grader.server.db import User, database_url, make_engine, migrate

    with postgres_schema() if backend == "postgresql" else nullcontext(None) as db:
        engine = make_engine(database_url(db, tmp_path))
        migrate(engine)
        with Session(engine) as session:
            session.add(User(login="ann", name="Ann", email="", section="", role="student"))
            session.commit()
        migrate(engine)
        with Session(engine) as session:
            assert session.scalar(select(func.count()).select_from(User)) == 1
        engine.dispose()


def test_a_graded_submissions_summary_message_is_withheld_with_its_hidden_checks(tmp_path):
    """The pool summarises a grade whose checks all failed with their one message; when every
    check is hidden, that is a hidden check's message."""
    import json

    from sqlalchemy.orm import Session

    from grader.server.db import Result, Submission, User, migrate
    from grader.server.service import Service, Settings

    root = make_course(tmp_path, "def test_x(student):\n    pass\n")
    toml = root / "assignments" / "toy" / "assignment.toml"
    toml.write_text(
        toml.read_text().replace("[limits]", "[policy]\nhidden_before_due = 'score'\n[limits]")
    )
    service = Service(Settings(Course(root), tmp_path, f"sqlite:///{tmp_path / 'db'}"))
    migrate(service.engine)
    report = {
        "tests": [
            {
                "name": "s",
                "hidden": True,
                "status": "failed",
                "score": 0.0,
                "max_score": 5.0,
                "message": "the secret input 21",
                "details": "",
                "metrics": {},
            }
        ]
    }
    with Session(service.engine) as db:
        ann = User(login="ann", name="", email="", section="", role="student")
        tina = User(login="tina", name="", email="", section="", role="staff")
        db.add_all([ann, tina])
        db.flush()
        submission = Submission(
            user_id=ann.id,
            assignment="toy",
            sha256="0" * 64,
            folder="x",
            status="graded",
            message="the secret input 21",
            attempts=1,
        )
        db.add(submission)
        db.flush()
        db.add(
            Result(
                submission_id=submission.id,
                fingerprint="f",
                status="graded",
                message=submission.message,
                score=0.0,
                max_score=5.0,
                report=json.dumps(report),
            )
        )
        db.commit()
        assert "secret input" not in json.dumps(service.describe(db, submission, ann))
        assert service.describe(db, submission, tina)["message"] == "the secret input 21"


def _graded(db, user, score: float, when: datetime.datetime) -> None:
    from grader.server.db import Result, Submission

    submission = Submission(
        user_id=user.id,
        assignment="toy",
        sha256="0" * 64,
        folder="x",
        status="graded",
        message="",
        attempts=1,
        created_at=when,
    )
    db.add(submission)
    db.flush()
    db.add(
        Result(
            submission_id=submission.id,
            fingerprint="f",
            status="graded",
            message="",
            score=score,
            max_score=10.0,
            report="{}",
        )
    )


@pytest.mark.parametrize(("counts", "expected"), [("last", 6.0), ("best", 8.0)])
def test_the_gradebook_counts_the_last_or_the_best_score_after_the_late_penalty(
    tmp_path, counts, expected
):
    from sqlalchemy.orm import Session

    from grader.server.db import User, migrate
    from grader.server.service import Service, Settings

    root = make_course(tmp_path, "def test_x(student):\n    pass\n")
    toml = root / "assignments" / "toy" / "assignment.toml"
    policy = (
        f"[policy]\ndue = '{DUE.isoformat()}'\nlate_penalty_per_day = 0.1\ncounts = '{counts}'\n"
    )
    toml.write_text(toml.read_text().replace("[limits]", policy + "[limits]"))
    service = Service(Settings(Course(root), tmp_path, f"sqlite:///{tmp_path / 'db'}"))
    migrate(service.engine)
    with Session(service.engine) as db:
        ann = User(login="ann", name="Ann", email="", section="A", role="student")
        db.add(ann)
        db.flush()
        _graded(db, ann, 8.0, DUE - datetime.timedelta(days=1))  # on time: 8
        _graded(db, ann, 9.0, DUE + datetime.timedelta(hours=30))  # 2 days late: 7.2
        _graded(db, ann, 10.0, DUE + datetime.timedelta(hours=80))  # 4 days late: 6
        db.commit()
        (row,) = service.gradebook(db, "toy")
    assert row["student"] == "ann" and row["score"] == pytest.approx(expected)
    assert row["late_days"] == (4 if counts == "last" else 0)


def _book_row(student: str, name: str, score: float | None, late_days: int = 0) -> dict:
    """A row of `Service.gradebook`: a student with a counting submission, or none."""
    if score is None:
        return {"student": student, "name": name, "email": "", "section": "+A",
                "submission": None, "late_days": None, "score": 0.0, "report": {}}  # fmt: skip
    check = {"id": "public/t.py::test_x", "name": "x", "score": 10.0, "max_score": 10.0,
             "status": "passed", "hidden": False}  # fmt: skip
    report = {"assignment": "toy", "title": "Toy", "score": 10.0, "max_score": 10.0,
              "percent": 100.0, "tests": [check]}  # fmt: skip
    return {"student": student, "name": name, "email": "", "section": "+A", "submission": 1,
            "late_days": late_days, "factor": score / 10.0, "score": score, "status": "graded",
            "message": "", "report": report}  # fmt: skip


def test_gradebook_exports_keep_every_cell_text_and_name_every_file_safely(tmp_path):
    import io
    import json
    import zipfile

    from grader.server.exports import export

    assignment = Course(make_course(tmp_path, "def test_x(student):\n    pass\n")).assignment("toy")
    rows = [
        _book_row("=cmd|' /C calc'!A0", '=HYPERLINK("http://x","y")', 9.0, late_days=1),
        _book_row("../../etc/passwd", "Absent", None),
    ]
    lines = export(assignment, rows, "csv").data.decode().splitlines()
    assert lines == [
        "student,score,max_score,percent,status,reason,public/t.py::test_x",
        "'=cmd|' /C calc'!A0,9,10,90,graded,,10",
        "../../etc/passwd,0,10,0,missing,no submission,",
    ]
    canvas = export(assignment, rows, "canvas", column="Toy (123)", bom=True)
    assert canvas.name == "toy-canvas.csv" and canvas.data.startswith("\ufeff".encode())
    assert canvas.data.decode("utf-8-sig").splitlines() == [
        "Student,ID,SIS User ID,SIS Login ID,Section,Toy (123)",
        '"\'=HYPERLINK(""http://x"",""y"")",,\'=cmd|\' /C calc\'!A0,,\'+A,9',
    ]
    with zipfile.ZipFile(io.BytesIO(export(assignment, rows, "gradescope").data)) as archive:
        (name,) = archive.namelist()  # the student without a submission has no results.json
        results = json.loads(archive.read(name))
    assert name.startswith("gradescope/cmd") and "/" not in name.removeprefix("gradescope/")
    assert results["score"] == 9.0 and "Late by 1 day(s)" in results["output"]


def test_the_submission_page_shows_the_running_check_as_text():
    from grader.server.pages import TEMPLATES

    running = {
        "id": 7,
        "assignment": "toy",
        "created_at": "2026-01-01T10:00:00",
        "student": "ann",
        "status": "running",
        "message": "",
        "check": "<b>a</b> check",
    }
    html = TEMPLATES.get_template("submission.html").render(user=None, s=running)
    assert '· running: <span id="check">&lt;b&gt;a&lt;/b&gt; check</span>' in html
    graded = TEMPLATES.get_template("submission.html").render(
        user=None, s=running | {"check": None}
    )
    assert 'id="check"' not in graded
