"""The service's HTTP API: JSON under /api/v1 (OpenAPI at /api/v1/openapi.json), and the
web pages (`grader.server.pages`).

Every API request names its account with `Authorization: Bearer TOKEN`. A student reads only
their own submissions (another's id answers 404, as a missing one does); staff routes refuse
student tokens. Every error answers `{"error": "..."}` with a message a person can act on,
never a stack trace. Student text in answers comes from reports that are already escaped.
"""

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, File, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from grader import __version__
from grader.errors import BadInput
from grader.safetext import one_line
from grader.server import accounts
from grader.server.db import Submission, User, migrate
from grader.server.exports import export
from grader.server.service import ApiError, Service, Settings
from grader.submission import MAX_EXTRACTED_BYTES

log = logging.getLogger("grader.server")
API = "/api/v1"
# What a refused upload may still send, dropped unread, before its 413 goes out: a client that
# writes its whole body before it reads (most do) would otherwise meet a connection reset when
# the socket closes with its bytes unread, and lose the answer.
DRAIN_BYTES = 256 << 20
DRAIN_S = 10.0
# A request body past this is refused before it is read (the policy's cap is checked too).
MAX_BODY_BYTES = MAX_EXTRACTED_BYTES + (1 << 20)
MAX_WAIT_S = 30.0
WAITING = ("queued", "running")


def _progress(answer: dict[str, Any]) -> str:
    """A token for what a waiting client is told about as soon as it changes: the status,
    the running check and the checks done."""
    state = [answer["status"], answer.get("check"), answer.get("checks_done")]
    return hashlib.sha256(json.dumps(state).encode()).hexdigest()[:16]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413: from its Content-Length before it
    is read, or, sent in chunks, as soon as the count passes the limit. The rest is never
    spooled to disk: it is dropped as it arrives, for a bounded time and size, so that the
    client is still listening when the answer comes."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def _refuse(self, send: Any, receive: Any = None) -> None:
        """Answer 413, once what the client still sends on `receive` (if given) is dropped."""
        if receive is not None:
            await _drain(receive)
        body = json.dumps(
            {"error": f"the upload is larger than the server's limit of {self.limit >> 20} MB."}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(send, receive)
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
                    await self._refuse(send, receive if message.get("more_body") else None)
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


async def _drain(receive: Any) -> None:
    """Read and drop what is left of a request body, up to DRAIN_BYTES and DRAIN_S."""
    loop = asyncio.get_running_loop()
    deadline, dropped = loop.time() + DRAIN_S, 0
    while dropped < DRAIN_BYTES:
        try:
            message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
        except TimeoutError:
            return
        if message["type"] != "http.request":
            return
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def create_app(settings: Settings) -> FastAPI:
    """The ASGI app for `settings`; the schema is migrated and grading starts at startup."""
    from grader.server.pages import install_pages

    service = Service(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        (settings.data / "submissions").mkdir(parents=True, exist_ok=True)
        (settings.data / "uploads").mkdir(parents=True, exist_ok=True)
        migrate(service.engine)
        service.loop = asyncio.get_running_loop()
        service.dispatcher.start()
        yield
        log.info("draining: waiting for the grades in progress")
        await asyncio.to_thread(service.dispatcher.stop)
        service.engine.dispose()

    app = FastAPI(
        title="dl-grader",
        version=__version__,
        lifespan=lifespan,
        openapi_url=f"{API}/openapi.json",
        docs_url=f"{API}/docs",
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    _install_error_handlers(app)
    _install_routes(app, service)
    install_pages(app, service)
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


def _install_routes(app: FastAPI, service: Service) -> None:
    def current_user(request: Request) -> User:
        """The account the request's token names (looked up in a session of its own, so no
        connection is held while the request waits for a worker thread)."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "sign in: send your token as 'Authorization: Bearer TOKEN'.")
        with Session(service.engine) as db:
            user = accounts.find_by_token(db, token.strip())
            if user is None:
                raise ApiError(
                    401, "this token is not valid (it may have been reset); ask the staff."
                )
            db.expunge(user)
        return user

    Me = Annotated[User, Depends(current_user)]

    def staff_user(user: Me) -> User:
        if user.role != "staff":
            raise ApiError(403, "this page is for course staff only.")
        return user

    Staff = Annotated[User, Depends(staff_user)]

    @app.get(f"{API}/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    def about(user: User) -> dict[str, str | None]:
        return {
            "id": user.login,
            "name": user.name,
            "role": user.role,
            "section": user.section,
            "display_name": user.display_name,
        }

    @app.get(f"{API}/me")
    def me(user: Me) -> dict[str, str | None]:
        return about(user)

    @app.put(f"{API}/me/display-name")
    def display_name(
        user: Me, display_name: Annotated[str | None, Body(embed=True)] = None
    ) -> dict[str, str | None]:
        """What leaderboards show of you (opt-in); null or "" makes you anonymous again."""
        with db() as session:
            user.display_name = accounts.set_display_name(session, user.login, display_name)
        return about(user)

    def db() -> Session:
        """A session for one request, opened in its handler's body and closed before the
        handler returns (a dependency's teardown would wait for a free worker thread while
        holding its connection)."""
        return Session(service.engine)

    @app.get(f"{API}/assignments")
    def assignments(user: Me) -> list[dict[str, Any]]:
        with db() as session:
            return [
                service.assignment_info(session, user, name) for name in service.course.assignments
            ]

    @app.get(f"{API}/assignments/{{name}}")
    def assignment(name: str, user: Me) -> dict[str, Any]:
        with db() as session:
            return service.assignment_info(session, user, name)

    @app.post(f"{API}/assignments/{{name}}/submissions", status_code=202)
    def submit(name: str, user: Me, files: Annotated[list[UploadFile], File()]) -> dict[str, Any]:
        uploads = [(f.filename or "", f.file) for f in files]
        with db() as session:
            return service.describe(session, service.submit(session, user, name, uploads), user)

    @app.get(f"{API}/assignments/{{name}}/leaderboard")
    def leaderboard(name: str, user: Me) -> dict[str, Any]:
        with db() as session:
            return service.leaderboard(session, name, user)

    @app.get(f"{API}/submissions")
    def history(user: Me, assignment: str | None = None) -> list[dict[str, Any]]:
        query = select(Submission).where(Submission.user_id == user.id)
        if assignment:
            service.assignment(assignment)
            query = query.where(Submission.assignment == assignment)
        with db() as session:
            rows = session.scalars(query.order_by(Submission.id)).all()
            return [service.describe(session, row, user) for row in rows]

    @app.get(f"{API}/submissions/{{submission_id}}")
    async def submission(
        submission_id: int, user: Me, wait: float = 0.0, seen: str | None = None
    ) -> dict[str, Any]:
        """The submission; with `wait` (seconds, at most MAX_WAIT_S), answered when its status
        or its running check changes, or when the time is up (long polling: a class waiting
        costs no queries; on PostgreSQL, where another server may grade it, one every
        RECHECK_S). `seen`: the `progress` of the caller's last answer; the wait then ends at
        once if anything changed since."""

        def read() -> dict[str, Any]:
            with db() as session:
                found = service.own_submission(session, user, submission_id)
                answer = service.describe(session, found, user)
            return answer | {"progress": _progress(answer)}

        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(wait, 0.0), MAX_WAIT_S)
        # Read before waiting: a waiter is kept only for a submission this account may see
        # that can still change (one for every id anyone asks about would never be freed).
        answer = await run_in_threadpool(read)
        if answer["status"] not in WAITING or wait <= 0:
            return answer
        first = seen or answer["progress"]
        event = service.waiter(submission_id)
        answer = await run_in_threadpool(read)  # a change before the waiter existed ends it
        while answer["progress"] == first and answer["status"] in WAITING:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            if service.recheck_s is not None:  # another server may be grading it
                remaining = min(remaining, service.recheck_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
            event = service.waiter(submission_id)
            answer = await run_in_threadpool(read)
        return answer

    @app.get(f"{API}/staff/submissions")
    def all_submissions(
        staff: Staff, assignment: str | None = None, student: str | None = None
    ) -> list[dict[str, Any]]:
        query = select(Submission)
        if assignment:
            query = query.where(Submission.assignment == assignment)
        with db() as session:
            if student:
                query = query.where(Submission.user_id == accounts.find_user(session, student).id)
            rows = session.scalars(query.order_by(Submission.id)).all()
            return [service.describe(session, row, staff) for row in rows]

    @app.post(f"{API}/staff/assignments/{{name}}/regrade", status_code=202)
    def regrade(name: str, staff: Staff) -> dict[str, int]:
        with db() as session:
            return {"queued": service.regrade(session, name)}

    @app.get(f"{API}/staff/gradebook/{{name}}")
    def gradebook(
        name: str,
        staff: Staff,
        format: str = "json",
        column: str | None = None,
        bom: bool = False,
    ) -> Any:
        """The gradebook (late penalties applied) as JSON, or as a file `grade batch` writes:
        csv (gradebook.csv), canvas or moodle (grade imports; `column`: Canvas's assignment
        column), gradescope (a zip of results.json per student); `bom` for Excel."""
        with db() as session:
            rows = service.gradebook(session, name)
        if format == "json":
            return [{k: v for k, v in row.items() if k not in ("checks", "report")} for row in rows]
        file = export(service.assignment(name), rows, format, column, bom)
        disposition = f'attachment; filename="{file.name}"'
        return Response(
            file.data, media_type=file.media_type, headers={"content-disposition": disposition}
        )
