"""What the API and the web pages share: the engine, the course, the dispatcher, and the
rules for who sees what (a submission as its viewer may see it, the gradebook, a new
submission with its rate limit and upload cap). No HTTP here beyond `ApiError`."""

import asyncio
import datetime
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from grader.course import Assignment, Course
from grader.errors import BadInput, GraderError
from grader.executor import Executor
from grader.fingerprint import grade_fingerprint
from grader.journal import Journal
from grader.runner import DEFAULT_SEED
from grader.server import storage
from grader.server.db import Extension, Result, Submission, User, make_engine, now
from grader.server.dispatch import Dispatcher
from grader.server.leaderboard import ranked
from grader.server.policy import Policy, load_policy, visible_report

FINGERPRINT_TTL_S = 5.0
RECHECK_S = 2.0
HIDDEN_CHECK = "a hidden check"  # the running check, where the policy hides hidden ones


@dataclass(frozen=True)
class Settings:
    """How `grade serve` was started."""

    course: Course
    data: Path
    db_url: str
    jobs: int = 1
    device: str = "cpu"
    executor: Callable[[], Executor] | None = None
    """Makes where grades run (`grader.executor`); None: `jobs` grading processes here."""


class ApiError(HTTPException):
    """An error answered with a person-readable message (JSON for the API)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.course = settings.course
        self.engine: Engine = make_engine(settings.db_url)
        self.dispatcher = Dispatcher(
            self.engine,
            settings.course,
            settings.data,
            settings.jobs,
            settings.device,
            on_change=self._changed,
            executor=settings.executor,
        )
        # Several servers may share a PostgreSQL queue: a waiting request reads again this
        # often, since another server's grading wakes no waiter here.
        self.recheck_s = RECHECK_S if self.dispatcher.claims.shared else None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[int, asyncio.Event] = {}
        self._fingerprints: dict[str, tuple[float, dict[str, str]]] = {}

    def waiter(self, submission_id: int) -> asyncio.Event:
        """An event set when the submission's status next changes (call on the loop)."""
        return self._waiters.setdefault(submission_id, asyncio.Event())

    def _changed(self, submission_id: int) -> None:
        """From a grading thread: wake whoever waits on the submission."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._wake, submission_id)

    def _wake(self, submission_id: int) -> None:
        event = self._waiters.pop(submission_id, None)
        if event is not None:
            event.set()

    def assignment(self, name: str) -> Assignment:
        try:
            return self.course.assignment(name)
        except BadInput as error:
            raise ApiError(404, str(error)) from None

    def policy(self, name: str) -> Policy:
        try:
            return load_policy(self.assignment(name))
        except GraderError as error:
            raise ApiError(500, str(error)) from None

    @staticmethod
    def extension_days(db: Session, user_id: int, assignment: str) -> float:
        days = db.scalar(
            select(Extension.days).where(
                Extension.user_id == user_id, Extension.assignment == assignment
            )
        )
        return float(days or 0.0)

    def assignment_info(self, db: Session, user: User, name: str) -> dict[str, Any]:
        spec = self.assignment(name)
        policy = self.policy(name)
        deadline = policy.deadline(self.extension_days(db, user.id, name))
        return {
            "name": spec.name,
            "title": spec.title,
            "points": spec.points,
            "files": list(spec.files),
            "due": deadline.isoformat(timespec="seconds") if deadline else None,
            "late_penalty_per_day": policy.late_penalty_per_day,
            "max_late_days": policy.max_late_days,
            "submissions_per_hour": policy.submissions_per_hour,
            "max_upload_mb": policy.max_upload_bytes / (1 << 20),
            "leaderboard": policy.leaderboard,
        }

    def own_submission(self, db: Session, user: User, submission_id: int) -> Submission:
        """The submission if `user` may see it; another student's answers 404 like a
        missing one."""
        submission = db.get(Submission, submission_id)
        if submission is None or (user.role != "staff" and submission.user_id != user.id):
            raise ApiError(404, f"no submission {submission_id}.")
        return submission

    def describe(self, db: Session, submission: Submission, viewer: User) -> dict[str, Any]:
        """A submission as `viewer` may see it: status, queue position, the result with
        hidden checks shown as the policy allows, and the late penalty."""
        policy = self.policy(submission.assignment)
        extension = self.extension_days(db, submission.user_id, submission.assignment)
        late_days = policy.late_days(submission.created_at, extension)
        factor = policy.score_factor(late_days)
        owner = db.get(User, submission.user_id)
        level = "full" if viewer.role == "staff" else policy.visibility(now(), extension)
        # A graded submission's message summarises its checks (hidden ones too).
        message = submission.message if submission.status != "graded" or level == "full" else ""
        answer: dict[str, Any] = {
            "id": submission.id,
            "assignment": submission.assignment,
            "student": owner.login if owner else "",
            "created_at": submission.created_at.isoformat(timespec="seconds"),
            "status": submission.status,
            "message": message,
            "sha256": submission.sha256,
            "late_days": late_days,
            "score_factor": factor,
        }
        if submission.status == "running":
            answer["checks_done"] = self.checks_done(submission)
            if submission.running_check is not None:
                withheld = submission.running_hidden and level == "nothing"
                answer["check"] = HIDDEN_CHECK if withheld else submission.running_check
                answer["check_hidden"] = bool(submission.running_hidden)
        if submission.status in ("queued", "running"):
            answer["position"] = db.scalar(
                select(func.count())
                .select_from(Submission)
                .where(Submission.status.in_(("queued", "running")), Submission.id < submission.id)
            )
        result = db.scalar(
            select(Result)
            .where(Result.submission_id == submission.id)
            .order_by(Result.id.desc())
            .limit(1)
        )
        if result is not None and result.report:
            report = json.loads(result.report)
            shown = visible_report(report, level)
            if viewer.role != "staff":
                shown.pop("node", None)  # the cluster's layout is the staff's business
            answer["report"] = shown
            answer["score"] = round(float(shown.get("score", 0.0)) * factor, 6)
            answer["max_score"] = float(shown.get("max_score", 0.0))
        return answer

    def checks_done(self, submission: Submission) -> int:
        """How many checks the grade in progress has finished, from its journal (the same
        identity `grader.runner.grade` journals under in the pool's processes)."""
        spec = self.assignment(submission.assignment)
        identity = {
            "assignment": spec.name,
            **self._fingerprint(spec),
            "submission_sha256": submission.sha256,
            "keyword": None,
        }
        return len(Journal(self.settings.data / "journal", identity).finished())

    def _fingerprint(self, spec: Assignment) -> dict[str, str]:
        """The grade fingerprint, hashed again at most every FINGERPRINT_TTL_S (progress is
        polled often; the checks change rarely)."""
        cached = self._fingerprints.get(spec.name)
        if cached is None or time.monotonic() - cached[0] > FINGERPRINT_TTL_S:
            value = grade_fingerprint(spec, DEFAULT_SEED, self.settings.device, False, spec.limits)
            cached = self._fingerprints[spec.name] = (time.monotonic(), value)
        return cached[1]

    def submit(
        self, db: Session, user: User, name: str, uploads: list[tuple[str, BinaryIO]]
    ) -> Submission:
        """Check the rate limit and the upload, store the files (fsynced), commit the row,
        and queue the grade: when this returns, nothing of the submission can be lost."""
        spec = self.assignment(name)
        policy = self.policy(name)
        if user.role != "staff" and policy.submissions_per_hour is not None:
            self._check_rate(db, user, name, policy.submissions_per_hour)
        content = storage.read_upload(
            uploads, spec, policy.max_upload_bytes, self.settings.data / "uploads"
        )
        stored = storage.store(content, spec, self.settings.data / "submissions")
        try:
            submission = Submission(
                user_id=user.id,
                assignment=spec.name,
                sha256=stored.sha256,
                folder=stored.folder,
                status="queued",
                message="",
                attempts=0,
            )
            db.add(submission)
            db.commit()
        except BaseException:
            storage.discard(stored)
            raise
        self.dispatcher.notify(spec.name)
        return submission

    @staticmethod
    def _check_rate(db: Session, user: User, name: str, per_hour: int) -> None:
        since = now() - datetime.timedelta(hours=1)
        recent = db.scalars(
            select(Submission.created_at)
            .where(
                Submission.user_id == user.id,
                Submission.assignment == name,
                Submission.created_at > since,
            )
            .order_by(Submission.created_at)
        ).all()
        if len(recent) >= per_hour:
            retry = recent[0] + datetime.timedelta(hours=1)
            raise ApiError(
                429,
                f"{name} allows {per_hour} submissions per hour; "
                f"try again after {retry.strftime('%H:%M')} UTC.",
            )

    def regrade(self, db: Session, name: str) -> int:
        """Queue every finished submission of `name` again (after a check was fixed)."""
        self.assignment(name)
        rows = db.scalars(
            select(Submission).where(
                Submission.assignment == name, Submission.status.not_in(("queued", "running"))
            )
        ).all()
        for row in rows:
            row.status = "queued"
        db.commit()
        self.dispatcher.notify(name)
        return len(rows)

    def leaderboard(self, db: Session, name: str, viewer: User) -> dict[str, Any]:
        """The assignment's leaderboard (`grader.server.leaderboard`), if its policy has one."""
        spec = self.assignment(name)
        if not self.policy(name).leaderboard:
            raise ApiError(404, f"{spec.name} has no leaderboard.")
        names = dict(db.execute(select(User.login, User.display_name)).tuples().all())
        rows = ranked(self.gradebook(db, name), names, viewer.login)
        return {"assignment": spec.name, "title": spec.title, "rows": rows}

    def gradebook(self, db: Session, name: str) -> list[dict[str, Any]]:
        """One row per student: the counting submission (last or best, by the policy),
        its raw score, late days and the score with the late penalty applied; with its
        status, message and report (for the exports and the page's pass rates)."""
        spec = self.assignment(name)
        policy = self.policy(name)
        students = db.scalars(select(User).where(User.role == "student").order_by(User.login))
        rows = []
        for user in students:
            extension = self.extension_days(db, user.id, name)
            graded = db.execute(
                select(Submission, Result)
                .join(Result, Result.submission_id == Submission.id)
                .where(Submission.user_id == user.id, Submission.assignment == name)
                .order_by(Submission.id, Result.id)
            ).all()
            latest = {sub.id: (sub, res) for sub, res in graded}
            counted: dict[str, Any] | None = None
            for sub, res in latest.values():
                late = policy.late_days(sub.created_at, extension)
                factor = policy.score_factor(late)
                final = round(res.score * factor, 6)
                if counted is None or policy.counts == "last" or final > counted["score"]:
                    counted = {"submission": sub.id, "late_days": late, "factor": factor}
                    counted.update(raw=res.score, score=final, result=res)
            if counted is not None:
                result = counted.pop("result")
                report = json.loads(result.report or "{}")
                counted.update(
                    status=result.status,
                    message=result.message,
                    report=report,
                    checks=report.get("tests", []),
                )
            row = {
                "student": user.login,
                "name": user.name,
                "email": user.email,
                "section": user.section,
                "submission": None,
                "late_days": None,
                "raw": None,
                "score": 0.0,
                "max_score": spec.points,
                "checks": [],
            }
            rows.append(row | (counted or {}))
        return rows
