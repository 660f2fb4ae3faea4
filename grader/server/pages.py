"""Server-rendered web pages: sign in with a token, upload, see one's submissions and
reports, see a leaderboard and choose one's display name on it; staff see the gradebook,
per-check pass rates and a score histogram.

Templates are Jinja2 with autoescaping on, so a submission's text (messages, names) is
shown as text, never markup. The session cookie holds the token (HttpOnly, SameSite=Strict,
Secure behind HTTPS); every form carries a CSRF token derived from the session, checked on
each POST, and the sign-in form, which has no session yet, refuses a request the browser
says another site sent (`Sec-Fetch-Site`).
"""

import hashlib
import hmac
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.errors import BadInput
from grader.server import accounts
from grader.server.db import Submission, User
from grader.server.exports import export
from grader.server.service import ApiError, Service

COOKIE = "dlg_session"
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
HISTOGRAM_BINS = 10


def csrf_token(token: str) -> str:
    """The form token for a session: tied to it, useless without the cookie."""
    return hashlib.sha256(b"csrf:" + token.encode("utf-8", "surrogatepass")).hexdigest()


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=status)


def histogram(scores: list[float], max_score: float) -> list[dict[str, Any]]:
    """Counts of scores in HISTOGRAM_BINS equal bins from 0 to max_score."""
    bins = [0] * HISTOGRAM_BINS
    for score in scores:
        fraction = score / max_score if max_score else 0.0
        bins[min(HISTOGRAM_BINS - 1, max(0, int(fraction * HISTOGRAM_BINS)))] += 1
    width = max_score / HISTOGRAM_BINS
    return [
        {"label": f"{i * width:g}–{(i + 1) * width:g}", "count": count}
        for i, count in enumerate(bins)
    ]


def pass_rates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per check: how many of the counted submissions passed it."""
    seen: dict[str, list[int]] = {}
    for row in rows:
        for check in row["checks"]:
            counts = seen.setdefault(str(check.get("name", "")), [0, 0])
            counts[0] += check.get("status") == "passed"
            counts[1] += 1
    return [
        {"name": name, "passed": passed, "total": total, "percent": round(100 * passed / total)}
        for name, (passed, total) in seen.items()
    ]


def install_pages(app: FastAPI, service: Service) -> None:
    def signed_in(request: Request, db: Session) -> tuple[User, str] | None:
        token = request.cookies.get(COOKIE, "")
        user = accounts.find_by_token(db, token) if token else None
        return (user, token) if user is not None else None

    def check_csrf(token: str, sent: str) -> None:
        if not hmac.compare_digest(csrf_token(token), sent):
            raise ApiError(403, "this form has expired; reload the page and try again.")

    def to_login() -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return RedirectResponse("/home", status_code=303)

    @app.get("/login", include_in_schema=False)
    def login_form() -> Response:
        return _page("login.html", user=None)

    @app.post("/login", include_in_schema=False)
    def login(request: Request, token: Annotated[str, Form()] = "") -> Response:
        # No session yet, so no CSRF token: refuse a sign-in another site's page sends (it
        # would sign a student in as someone else, whose account then gets their uploads).
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise ApiError(403, "sign in from this site's own sign-in page.")
        with Session(service.engine) as db:
            user = accounts.find_by_token(db, token.strip())
        if user is None:
            return _page(
                "login.html", status=401, user=None, error="This token is not valid; ask the staff."
            )
        response = RedirectResponse("/home", status_code=303)
        response.set_cookie(
            COOKIE,
            token.strip(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        check_csrf(request.cookies.get(COOKIE, ""), csrf)
        response = to_login()
        response.delete_cookie(COOKIE)
        return response

    @app.get("/home", include_in_schema=False)
    def home(request: Request) -> Response:
        with Session(service.engine) as db:
            found = signed_in(request, db)
            if found is None:
                return to_login()
            user, token = found
            assignments = [
                service.assignment_info(db, user, name) for name in service.course.assignments
            ]
            rows = db.scalars(
                select(Submission)
                .where(Submission.user_id == user.id)
                .order_by(Submission.id.desc())
            ).all()
            submissions = [service.describe(db, row, user) for row in rows]
            return _page(
                "home.html",
                user=user,
                csrf=csrf_token(token),
                assignments=assignments,
                submissions=submissions,
            )

    @app.post("/submit/{name}", include_in_schema=False)
    def submit(
        request: Request,
        name: str,
        files: Annotated[list[UploadFile], File()],
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        with Session(service.engine) as db:
            found = signed_in(request, db)
            if found is None:
                return to_login()
            user, token = found
            check_csrf(token, csrf)
            uploads = [(f.filename or "", f.file) for f in files if f.filename]
            try:
                submission = service.submit(db, user, name, uploads)
            except (BadInput, ApiError) as error:
                message = error.detail if isinstance(error, ApiError) else str(error)
                return _page("error.html", status=400, user=user, message=message)
            return RedirectResponse(f"/submissions/{submission.id}", status_code=303)

    @app.get("/submissions/{submission_id}", include_in_schema=False)
    def submission_page(request: Request, submission_id: int) -> Response:
        with Session(service.engine) as db:
            found = signed_in(request, db)
            if found is None:
                return to_login()
            user, token = found
            answer = service.describe(db, service.own_submission(db, user, submission_id), user)
            return _page("submission.html", user=user, csrf=csrf_token(token), s=answer)

    @app.get("/leaderboard/{name}", include_in_schema=False)
    def leaderboard_page(request: Request, name: str) -> Response:
        with Session(service.engine) as db:
            found = signed_in(request, db)
            if found is None:
                return to_login()
            user, token = found
            board = service.leaderboard(db, name, user)
            return _page(
                "leaderboard.html",
                user=user,
                csrf=csrf_token(token),
                board=board,
            )

    @app.post("/leaderboard/{name}/display-name", include_in_schema=False)
    def set_display_name(
        request: Request,
        name: str,
        display_name: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        with Session(service.engine) as db:
            found = signed_in(request, db)
            if found is None:
                return to_login()
            user, token = found
            check_csrf(token, csrf)
            board = service.leaderboard(db, name, user)  # a board that exists
            try:
                accounts.set_display_name(db, user.login, display_name)
            except BadInput as error:
                return _page(
                    "leaderboard.html",
                    status=400,
                    user=user,
                    csrf=csrf_token(token),
                    board=board,
                    error=str(error),
                )
        return RedirectResponse(f"/leaderboard/{board['assignment']}", status_code=303)

    @app.get("/staff/{name}", include_in_schema=False)
    def staff_page(request: Request, name: str) -> Response:
        with Session(service.engine) as db:
            found = signed_in(request, db)
            if found is None:
                return to_login()
            user, token = found
            if user.role != "staff":
                raise ApiError(403, "this page is for course staff only.")
            spec = service.assignment(name)
            rows = service.gradebook(db, name)
            graded = [row for row in rows if row["submission"] is not None]
            bins = histogram([row["score"] for row in graded], spec.points)
            return _page(
                "staff.html",
                user=user,
                csrf=csrf_token(token),
                assignment=spec,
                rows=rows,
                checks=pass_rates(graded),
                bins=bins,
                tallest=max([b["count"] for b in bins] + [1]),
            )

    @app.get("/staff/{name}/download/{fmt}", include_in_schema=False)
    def staff_download(request: Request, name: str, fmt: str) -> Response:
        """The gradebook as a file `grade batch` writes (`grader.server.exports`)."""
        with Session(service.engine) as db:
            found = signed_in(request, db)
            if found is None:
                return to_login()
            if found[0].role != "staff":
                raise ApiError(403, "this page is for course staff only.")
            rows = service.gradebook(db, name)
        try:
            file = export(service.assignment(name), rows, fmt)
        except BadInput as error:
            raise ApiError(404, str(error)) from None
        disposition = f'attachment; filename="{file.name}"'
        return Response(
            file.data, media_type=file.media_type, headers={"content-disposition": disposition}
        )

    @app.post("/staff/{name}/regrade", include_in_schema=False)
    def staff_regrade(request: Request, name: str, csrf: Annotated[str, Form()] = "") -> Response:
        with Session(service.engine) as db:
            found = signed_in(request, db)
            if found is None:
                return to_login()
            user, token = found
            check_csrf(token, csrf)
            if user.role != "staff":
                raise ApiError(403, "this page is for course staff only.")
            service.regrade(db, name)
        return RedirectResponse(f"/staff/{name}", status_code=303)
