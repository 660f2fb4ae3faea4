"""The service's HTTP API: JSON under /api/v1 (OpenAPI at /api/v1/openapi.json).

Every request names its account with `Authorization: Bearer TOKEN`. A student reads only
their own submissions (another's id answers 404, as a missing one does); staff routes refuse
student tokens. Every error answers `{"error": "..."}` with a message a person can act on,
never a stack trace. Student text in answers comes from reports that are already escaped.
"""

import asyncio
import contextlib
import datetime
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from grader import __version__
from grader.course import Course
from grader.errors import BadInput, GraderError
from grader.safetext import csv_cell, one_line
from grader.server import accounts, storage
from grader.server.db import Extension, Result, Submission, User, make_engine, migrate, now
from grader.server.dispatch import Dispatcher
from grader.server.policy import Policy, load_policy, visible_report
from grader.submission import MAX_EXTRACTED_BYTES

log = logging.getLogger("grader.server")
API = "/api/v1"
# A request body past this is refused before it is read (the policy's cap is checked too).
MAX_BODY_BYTES = MAX_EXTRACTED_BYTES + (1 << 20)


@dataclass(frozen=True)
class Settings:
    """How `grade serve` was started."""

    course: Course
    data: Path
    db_url: str
    jobs: int = 1
    device: str = "cpu"


class ApiError(HTTPException):
    """An error answered as JSON with a person-readable message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413: from its Content-Length before it
    is read, or, sent in chunks, as soon as the count passes the limit (the rest is never
    spooled to disk)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(
            {"error": f"the upload is larger than the server's limit of {self.limit >> 20} MB."}
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(send)
            return
        seen, refused = 0, False

        async def limited_receive() -> Any:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Any) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:
                raise


class State:
    """What the routes share: the engine, the course, the dispatcher."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine: Engine = make_engine(settings.db_url)
        self.dispatcher = Dispatcher(
            self.engine, settings.course, settings.data, settings.jobs, settings.device
        )


def create_app(settings: Settings) -> FastAPI:
    """The ASGI app for `settings`; the schema is migrated and grading starts at startup."""
    state = State(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        (settings.data / "submissions").mkdir(parents=True, exist_ok=True)
        (settings.data / "uploads").mkdir(parents=True, exist_ok=True)
        migrate(state.engine)
        state.dispatcher.start()
        yield
        log.info("draining: waiting for the grades in progress")
        await asyncio.to_thread(state.dispatcher.stop)
        state.engine.dispose()

    app = FastAPI(
        title="dl-grader",
        version=__version__,
        lifespan=lifespan,
        openapi_url=f"{API}/openapi.json",
        docs_url=f"{API}/docs",
        redoc_url=None,
    )
    app.state.grader = state
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    _install_error_handlers(app)
    _install_routes(app, state)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        message = error.detail if isinstance(error.detail, str) else "bad request"
        if error.status_code == 404 and message == "Not Found":
            message = f"no such page: {one_line(request.url.path, 200)}"
        if error.status_code == 405:
            message = f"{request.method} is not allowed on {one_line(request.url.path, 200)}"
        return _error(error.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', '')}"
            for e in error.errors()[:3]
        ]
        return _error(422, one_line("invalid request: " + "; ".join(problems), 500))

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, error: BadInput) -> JSONResponse:
        return _error(400, one_line(str(error), 1000))

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> JSONResponse:
        reference = secrets.token_hex(4)
        log.error("internal error %s on %s", reference, request.url.path, exc_info=error)
        return _error(500, f"internal server error (reference {reference}); tell the staff.")


def _install_routes(app: FastAPI, state: State) -> None:
    course = state.settings.course

    def session() -> Iterator[Session]:
        with Session(state.engine) as db:
            yield db

    Db = Annotated[Session, Depends(session)]

    def current_user(request: Request, db: Db) -> User:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "sign in: send your token as 'Authorization: Bearer TOKEN'.")
        user = accounts.find_by_token(db, token.strip())
        if user is None:
            raise ApiError(401, "this token is not valid (it may have been reset); ask the staff.")
        return user

    Me = Annotated[User, Depends(current_user)]

    def staff_user(user: Me) -> User:
        if user.role != "staff":
            raise ApiError(403, "this page is for course staff only.")
        return user

    Staff = Annotated[User, Depends(staff_user)]

    def assignment_or_404(name: str) -> Any:
        try:
            return course.assignment(name)
        except BadInput as error:
            raise ApiError(404, str(error)) from None

    def extension_days(db: Session, user_id: int, assignment: str) -> float:
        days = db.scalar(
            select(Extension.days).where(
                Extension.user_id == user_id, Extension.assignment == assignment
            )
        )
        return float(days or 0.0)

    def policy_of(name: str) -> Policy:
        try:
            return load_policy(course.assignment(name))
        except GraderError as error:
            raise ApiError(500, str(error)) from None

    def describe(db: Session, submission: Submission, viewer: User) -> dict[str, Any]:
        """A submission as `viewer` may see it: status, queue position, the result with
        hidden checks shown as the policy allows, and the late penalty."""
        policy = policy_of(submission.assignment)
        extension = extension_days(db, submission.user_id, submission.assignment)
        late_days = policy.late_days(submission.created_at, extension)
        factor = policy.score_factor(late_days)
        owner = db.get(User, submission.user_id)
        answer: dict[str, Any] = {
            "id": submission.id,
            "assignment": submission.assignment,
            "student": owner.login if owner else "",
            "created_at": submission.created_at.isoformat(timespec="seconds"),
            "status": submission.status,
            "message": submission.message,
            "sha256": submission.sha256,
            "late_days": late_days,
            "score_factor": factor,
        }
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
            level = "full" if viewer.role == "staff" else policy.visibility(now(), extension)
            shown = visible_report(report, level) if report else {}
            answer["report"] = shown
            answer["score"] = round(float(shown.get("score", 0.0)) * factor, 6)
            answer["max_score"] = float(shown.get("max_score", 0.0))
        return answer

    def own_submission(db: Session, user: User, submission_id: int) -> Submission:
        submission = db.get(Submission, submission_id)
        if submission is None or (user.role != "staff" and submission.user_id != user.id):
            raise ApiError(404, f"no submission {submission_id}.")
        return submission

    @app.get(f"{API}/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get(f"{API}/me")
    def me(user: Me) -> dict[str, str]:
        return {"id": user.login, "name": user.name, "role": user.role, "section": user.section}

    @app.get(f"{API}/assignments")
    def assignments(user: Me, db: Db) -> list[dict[str, Any]]:
        return [assignment_info(db, user, name) for name in course.assignments]

    def assignment_info(db: Session, user: User, name: str) -> dict[str, Any]:
        spec = assignment_or_404(name)
        policy = policy_of(name)
        deadline = policy.deadline(extension_days(db, user.id, name))
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
        }

    @app.get(f"{API}/assignments/{{name}}")
    def assignment(name: str, user: Me, db: Db) -> dict[str, Any]:
        return assignment_info(db, user, name)

    @app.post(f"{API}/assignments/{{name}}/submissions", status_code=202)
    def submit(
        name: str, user: Me, db: Db, files: Annotated[list[UploadFile], File()]
    ) -> dict[str, Any]:
        spec = assignment_or_404(name)
        policy = policy_of(name)
        if user.role != "staff" and policy.submissions_per_hour is not None:
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
            if len(recent) >= policy.submissions_per_hour:
                retry = recent[0] + datetime.timedelta(hours=1)
                raise ApiError(
                    429,
                    f"{name} allows {policy.submissions_per_hour} submissions per hour; "
                    f"try again after {retry.strftime('%H:%M')} UTC.",
                )
        uploads = [(f.filename or "", f.file) for f in files]
        content = storage.read_upload(
            uploads, spec, policy.max_upload_bytes, state.settings.data / "uploads"
        )
        stored = storage.store(content, spec, state.settings.data / "submissions")
        try:
            submission = Submission(
                user_id=user.id,
                assignment=name,
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
        state.dispatcher.notify(name)
        return describe(db, submission, user)

    @app.get(f"{API}/submissions")
    def history(user: Me, db: Db, assignment: str | None = None) -> list[dict[str, Any]]:
        query = select(Submission).where(Submission.user_id == user.id)
        if assignment:
            assignment_or_404(assignment)
            query = query.where(Submission.assignment == assignment)
        rows = db.scalars(query.order_by(Submission.id)).all()
        return [describe(db, row, user) for row in rows]

    @app.get(f"{API}/submissions/{{submission_id}}")
    def submission(submission_id: int, user: Me, db: Db) -> dict[str, Any]:
        return describe(db, own_submission(db, user, submission_id), user)

    @app.get(f"{API}/staff/submissions")
    def all_submissions(
        staff: Staff, db: Db, assignment: str | None = None, student: str | None = None
    ) -> list[dict[str, Any]]:
        query = select(Submission)
        if assignment:
            query = query.where(Submission.assignment == assignment)
        if student:
            query = query.where(Submission.user_id == accounts.find_user(db, student).id)
        rows = db.scalars(query.order_by(Submission.id)).all()
        return [describe(db, row, staff) for row in rows]

    @app.post(f"{API}/staff/assignments/{{name}}/regrade", status_code=202)
    def regrade(name: str, staff: Staff, db: Db) -> dict[str, int]:
        assignment_or_404(name)
        rows = db.scalars(
            select(Submission).where(
                Submission.assignment == name, Submission.status.not_in(("queued", "running"))
            )
        ).all()
        for row in rows:
            row.status = "queued"
        db.commit()
        state.dispatcher.notify(name)
        return {"queued": len(rows)}

    @app.get(f"{API}/staff/gradebook/{{name}}")
    def gradebook(name: str, staff: Staff, db: Db, format: str = "json") -> Any:
        rows = gradebook_rows(db, name)
        if format == "csv":
            header = ["student", "name", "section", "submission", "late_days", "raw", "score"]
            lines = [",".join(header)]
            for row in rows:
                lines.append(",".join(_csv(row[key]) for key in header))
            return PlainTextResponse("\n".join(lines) + "\n", media_type="text/csv")
        if format != "json":
            raise ApiError(400, "format must be json or csv.")
        return rows

    def gradebook_rows(db: Session, name: str) -> list[dict[str, Any]]:
        spec = assignment_or_404(name)
        policy = policy_of(name)
        students = db.scalars(select(User).where(User.role == "student").order_by(User.login))
        rows = []
        for user in students:
            extension = extension_days(db, user.id, name)
            best: tuple[float, float, int, int] | None = None
            graded = db.execute(
                select(Submission, Result)
                .join(Result, Result.submission_id == Submission.id)
                .where(Submission.user_id == user.id, Submission.assignment == name)
                .order_by(Submission.id, Result.id)
            ).all()
            latest: dict[int, tuple[Submission, Result]] = {}
            for sub, res in graded:
                latest[sub.id] = (sub, res)
            for sub, res in latest.values():
                late = policy.late_days(sub.created_at, extension)
                final = res.score * policy.score_factor(late)
                candidate = (final, res.score, late, sub.id)
                if best is None or policy.counts == "last" or final > best[0]:
                    best = candidate
            rows.append(
                {
                    "student": user.login,
                    "name": user.name,
                    "section": user.section,
                    "submission": best[3] if best else None,
                    "late_days": best[2] if best else None,
                    "raw": best[1] if best else None,
                    "score": round(best[0], 6) if best else 0.0,
                    "max_score": spec.points,
                }
            )
        return rows


def _csv(value: Any) -> str:
    text = "" if value is None else csv_cell(value)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text
