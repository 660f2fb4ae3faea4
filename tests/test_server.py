"""The grading service end to end: a real `grade serve` on loopback, on SQLite and on
PostgreSQL, driven over HTTP and through the student CLI."""

from __future__ import annotations

import io
import json
import re
import signal
import socket
import stat
import zipfile
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from service_support import (
    ROSTER,
    Server,
    admin,
    build_course,
    postgres_schema,
    start_server,
    tokens,
)

from grader.cli import cli

pytest.importorskip("fastapi")

CORRECT = b"def double(x):\n    return x + x\n"
WRONG_SECRET = b"def double(x):\n    return 42 if x == 21 else x + x + (x == 21)\n"
BUGGY = b"def double(x):\n    return 6 if x == 3 else 0\n"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    """A running server with the roster imported and one staff account."""
    root = tmp_path_factory.mktemp(f"service-{request.param}")
    course = build_course(root)
    (root / "roster.csv").write_text(ROSTER)
    with postgres_schema() if request.param == "postgresql" else _no_db() as db:
        data = root / "data"
        admin(data, db, "roster", "import", str(root / "roster.csv"))
        staff_token = admin(data, db, "staff", "add", "tina", "--name", "Tina").strip()
        server = start_server(course, data, db)
        try:
            yield {"server": server, "tokens": tokens(data), "staff": staff_token, "root": root}
        finally:
            assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises it after draining


class _no_db:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def _submit(server: Server, token: str, assignment: str, files: dict[str, bytes]) -> dict:
    with server.client(token) as client:
        response = client.post(
            f"/assignments/{assignment}/submissions",
            files=[("files", (name, data)) for name, data in files.items()],
        )
    assert response.status_code == 202, response.text
    return response.json()


def test_submit_over_http_is_graded_once_with_hidden_checks_shown_as_policy_allows(service):
    server, ann = service["server"], service["tokens"]["ann"]
    answer = _submit(server, ann, "toy", {"toy.py": BUGGY})
    assert answer["status"] in ("queued", "running")
    graded = server.wait_for(ann, answer["id"], ("graded", "rejected", "error"))
    assert graded["status"] == "graded"
    checks = {t["name"]: t for t in graded["report"]["tests"]}
    assert checks["double"]["status"] == "passed"
    # Before the due date (here: none) hidden checks show their score but not their message.
    assert checks["secret"]["status"] == "failed"
    assert checks["secret"]["message"] == ""
    assert graded["score"] == 5.0 and graded["max_score"] == 10.0
    with server.client(service["staff"]) as staff:
        full = staff.get(f"/submissions/{answer['id']}").json()
    assert "secret input 21" in {t["name"]: t for t in full["report"]["tests"]}["secret"]["message"]


def test_a_running_grade_reports_its_check_and_finished_checks_and_answers_a_wait_when_done(
    service,
):
    server, ann = service["server"], service["tokens"]["ann"]
    answer = _submit(server, ann, "slow", {"toy.py": CORRECT})
    with server.client(ann) as client:
        while True:  # the fast check is done while the slow one sleeps
            state = client.get(f"/submissions/{answer['id']}").json()
            if state["status"] == "running" and state.get("check") == "slow":
                break
            assert state["status"] in ("queued", "running"), state
        assert state["checks_done"] == 1 and state["check_hidden"] is False
        # Long polling: the answer comes when the check or the status changes, not at once;
        # `seen` makes it come at once when that happened before the request.
        seen = {"wait": 30, "seen": state["progress"]}
        following = client.get(f"/submissions/{answer['id']}", params=seen).json()
        assert following.get("check") != "slow"  # the secret check, or the grade
        while following["status"] == "running":
            seen = {"wait": 30, "seen": following["progress"]}
            following = client.get(f"/submissions/{answer['id']}", params=seen).json()
    assert following["status"] == "graded" and following["score"] == 15.0


def test_a_running_hidden_check_is_named_only_as_the_policy_allows(service):
    server, ann = service["server"], service["tokens"]["ann"]
    answer = _submit(server, ann, "sealed", {"toy.py": CORRECT})
    with server.client(ann) as client, server.client(service["staff"]) as staff:
        while True:
            state = client.get(f"/submissions/{answer['id']}").json()
            assert state["status"] in ("queued", "running"), state
            if state.get("check_hidden"):
                break
            assert state.get("check") in (None, "double"), state
        as_staff = staff.get(f"/submissions/{answer['id']}").json()
    assert state["check"] == "a hidden check"
    assert as_staff["check"] == "slow secret" and as_staff["check_hidden"] is True
    graded = server.wait_for(ann, answer["id"], ("graded",))
    assert "check" not in graded and graded["score"] == 5.0


def test_hidden_checks_withheld_entirely_when_the_policy_says_nothing(service):
    server, ann = service["server"], service["tokens"]["ann"]
    answer = _submit(server, ann, "closed", {"toy.py": CORRECT})
    graded = server.wait_for(ann, answer["id"], ("graded",))
    assert [t["name"] for t in graded["report"]["tests"]] == ["double"]
    assert graded["report"]["hidden_checks"] == 1
    assert graded["score"] == 5.0 and graded["max_score"] == 5.0


def test_late_submission_is_penalised_per_day_and_an_extension_lifts_it_in_every_export(
    service,
):
    server, root = service["server"], service["root"]
    ann, bob = service["tokens"]["ann"], service["tokens"]["bob"]
    admin(
        server.data,
        server.db,
        "extend",
        "bob",
        "late",
        "--days",
        "5",
        "--course",
        str(root / "course"),
    )
    late = server.wait_for(
        ann, _submit(server, ann, "late", {"toy.py": CORRECT})["id"], ("graded",)
    )
    assert late["late_days"] == 2 and late["score_factor"] == pytest.approx(0.8)
    assert late["score"] == pytest.approx(8.0)
    # After the due date the policy shows hidden checks whole.
    assert all(t["message"] == "" for t in late["report"]["tests"])
    assert len(late["report"]["tests"]) == 2
    on_time = server.wait_for(
        bob, _submit(server, bob, "late", {"toy.py": CORRECT})["id"], ("graded",)
    )
    assert on_time["late_days"] == 0 and on_time["score"] == 10.0
    with server.client(service["staff"]) as staff:
        book = {row["student"]: row for row in staff.get("/staff/gradebook/late").json()}
        files = {
            fmt: staff.get("/staff/gradebook/late", params={"format": fmt})
            for fmt in ("csv", "canvas", "moodle", "gradescope")
        }
        unknown = staff.get("/staff/gradebook/late", params={"format": "xlsx"})
    assert book["ann"]["score"] == pytest.approx(8.0) and book["ann"]["late_days"] == 2
    assert book["bob"]["score"] == 10.0
    # The files grade batch writes, with the late penalty applied.
    assert files["csv"].text.splitlines()[:3] == [
        "student,score,max_score,percent,status,reason,"
        "public/test_late.py::test_double,hidden/test_late_secret.py::test_secret",
        "ann,8,10,80,graded,,5,5",
        "bob,10,10,100,graded,,5,5",
    ]
    assert 'filename="late-gradebook.csv"' in files["csv"].headers["content-disposition"]
    assert files["canvas"].text.splitlines() == [
        "Student,ID,SIS User ID,SIS Login ID,Section,late",
        "Ann <b>A</b>,,ann,,A,8",
        "Bob,,bob,,B,10",
    ]
    assert files["moodle"].text.splitlines()[1:] == ["ann@example.edu,8", "bob@example.edu,10"]
    with zipfile.ZipFile(io.BytesIO(files["gradescope"].content)) as archive:
        results = {name: json.loads(archive.read(name)) for name in archive.namelist()}
    assert sorted(results) == ["gradescope/ann.json", "gradescope/bob.json"]
    assert results["gradescope/ann.json"]["score"] == pytest.approx(8.0)
    assert "Late by 2 day(s)" in results["gradescope/ann.json"]["output"]
    assert results["gradescope/bob.json"]["score"] == 10.0
    assert unknown.status_code == 400 and "format must be one of" in unknown.json()["error"]


def test_rate_limit_refuses_with_a_message_saying_when_to_retry(service):
    server, bob = service["server"], service["tokens"]["bob"]
    with server.client(bob) as client:
        codes = []
        for _ in range(5):
            response = client.post(
                "/assignments/toy/submissions", files=[("files", ("toy.py", CORRECT))]
            )
            codes.append(response.status_code)
    assert codes == [202, 202, 202, 202, 429]
    assert "4 submissions per hour" in response.json()["error"]


def test_a_student_reads_only_their_own_submissions_and_no_staff_route(service):
    server, tokens_ = service["server"], service["tokens"]
    mine = _submit(server, tokens_["ann"], "closed", {"toy.py": CORRECT})
    with server.client(tokens_["bob"]) as bob:
        other = bob.get(f"/submissions/{mine['id']}")
        missing = bob.get("/submissions/999999")
        listed = bob.get("/submissions").json()
        staff_route = bob.get("/staff/submissions")
        regrade = bob.post("/staff/assignments/toy/regrade")
    assert other.status_code == 404 and other.json() == missing.json() | {
        "error": f"no submission {mine['id']}."
    }
    assert all(row["student"] == "bob" for row in listed)
    assert staff_route.status_code == 403 and regrade.status_code == 403
    assert "staff" in staff_route.json()["error"]
    with server.client("dlg_not-a-token") as stranger:
        refused = stranger.get("/submissions")
    assert refused.status_code == 401 and "not valid" in refused.json()["error"]


def test_token_reset_revokes_the_old_token(service):
    server = service["server"]
    old = admin(server.data, server.db, "token", "reset", "bob").strip()
    new = admin(server.data, server.db, "token", "reset", "bob").strip()
    with server.client(old) as client:
        assert client.get("/me").status_code == 401
    with server.client(new) as client:
        assert client.get("/me").json()["id"] == "bob"
    service["tokens"]["bob"] = new


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "status", "words"),
    [
        ("../toy.py", CORRECT, 400, "is not a file of closed"),
        ("/etc/toy.py", CORRECT, 400, "is not a file of closed"),
        ("upload.zip", _zip({"../toy.py": CORRECT}), 400, "unsafe path"),
        ("bomb.zip", _zip({"toy.py": CORRECT, "pad.bin": b"\0" * (60 << 20)}), 400, "50 MB"),
        ("upload.zip", b"PK\x03\x04 not really a zip", 400, "not a readable zip"),
    ],
    ids=["dotdot-name", "absolute-name", "dotdot-zip", "zip-bomb", "broken-zip"],
)
def test_hostile_uploads_are_refused_with_a_clear_message(service, name, data, status, words):
    server, ann = service["server"], service["tokens"]["ann"]
    with server.client(ann) as client:
        response = client.post("/assignments/closed/submissions", files=[("files", (name, data))])
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    assert not list((server.data / "submissions").glob("*/../toy.py"))


def test_an_oversized_upload_is_refused_before_it_is_read(service):
    server, ann = service["server"], service["tokens"]["ann"]
    with server.client(ann) as client:
        response = client.post(
            "/assignments/closed/submissions", files=[("files", ("toy.py", b"#" * (52 << 20)))]
        )
    assert response.status_code == 413
    assert "larger than the server's limit" in response.json()["error"]


def test_a_client_that_writes_its_whole_oversized_body_before_reading_still_gets_the_413(
    service,
):
    """A refused body is dropped as it arrives, not left unread: closing a socket with unread
    bytes resets the connection, and the answer the client has not read yet is lost."""
    server, ann = service["server"], service["tokens"]["ann"]
    body = b"#" * (60 << 20)
    host, port = server.url.removeprefix("http://").split(":")
    head = (
        f"POST /api/v1/assignments/closed/submissions HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {ann}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=60) as conn:
        conn.sendall(head)
        conn.sendall(body)
        answer = b""
        while chunk := conn.recv(1 << 16):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than the server's limit" in answer


def test_an_oversized_upload_sent_in_chunks_is_cut_off_at_the_limit(service):
    server, ann = service["server"], service["tokens"]["ann"]
    boundary = "x" * 20
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="toy.py"\r\n\r\n'
    ).encode()

    def body() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield head
        for _ in range(60):
            yield b"#" * (1 << 20)
        yield f"\r\n--{boundary}--\r\n".encode()

    with server.client(ann) as client:
        response = client.post(
            "/assignments/closed/submissions",
            content=body(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
    assert response.status_code == 413
    assert "larger than the server's limit" in response.json()["error"]
    assert not list((server.data / "uploads").iterdir())


def test_a_zip_upload_is_graded_from_the_assignments_files(service):
    server, ann = service["server"], service["tokens"]["ann"]
    answer = _submit(
        server, ann, "closed", {"work.zip": _zip({"closed/toy.py": CORRECT, "notes.txt": b"x"})}
    )
    assert server.wait_for(ann, answer["id"], ("graded",))["score"] == 5.0
    folder = next(p for p in (server.data / "submissions").iterdir() if (p / "toy.py").exists())
    assert folder.is_dir()


def test_errors_answer_json_and_the_api_publishes_openapi(service):
    server, ann = service["server"], service["tokens"]["ann"]
    with server.client(ann) as client:
        unknown = client.get("/assignments/nope")
        page = client.get("/no/such/route")
        spec = client.get("/openapi.json")
    assert server.url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
    assert unknown.status_code == 404 and "unknown assignment 'nope'" in unknown.json()["error"]
    assert page.status_code == 404 and "error" in page.json()
    assert "/api/v1/assignments/{name}/submissions" in spec.json()["paths"]


def test_cli_login_submit_history(service, tmp_path, monkeypatch):
    server, ann = service["server"], service["tokens"]["ann"]
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    runner = CliRunner()
    logged = runner.invoke(cli, ["login", "--server", server.url, "--token", ann])
    assert logged.exit_code == 0, logged.output
    config = tmp_path / "config" / "dl-grader" / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and ann in config.read_text()
    work = tmp_path / "work" / "closed"
    work.mkdir(parents=True)
    (work / "toy.py").write_bytes(CORRECT)
    (work / "secrets.txt").write_text("not uploaded")
    monkeypatch.chdir(work.parent)
    result = runner.invoke(cli, ["submit", "closed", "--fail-under", "100"])
    assert result.exit_code == 0, result.output
    assert "closed: Toy" in result.output and "5/5" in result.output
    under = runner.invoke(cli, ["submit", "closed", "--dir", str(work), "--fail-under", "100"])
    assert under.exit_code == 0, under.output
    history = runner.invoke(cli, ["history", "closed"])
    assert history.exit_code == 0 and history.output.count("graded") >= 2
    bad = runner.invoke(cli, ["submit", "nope"])
    assert bad.exit_code == 2 and bad.output.strip().count("\n") == 0
    assert "unknown assignment" in bad.output


def test_cli_submit_shows_its_place_in_the_queue_then_the_running_check(
    service, tmp_path, monkeypatch
):
    server, bob = service["server"], service["tokens"]["bob"]
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    runner = CliRunner()
    assert runner.invoke(cli, ["login", "--server", server.url, "--token", bob]).exit_code == 0
    ahead = _submit(server, bob, "slow", {"toy.py": CORRECT})  # one process: the next waits
    (tmp_path / "toy.py").write_bytes(CORRECT)
    result = runner.invoke(cli, ["submit", "slow", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    mine = int(re.search(r"as submission (\d+)", result.output)[1])
    queued = next(i for i, line in enumerate(lines) if f"Submission {mine}: queued, " in line)
    slow = lines.index(f"Submission {mine}: grading: slow (1 check(s) done)")
    table = next(i for i, line in enumerate(lines) if "slow: Toy" in line)
    assert queued < slow < table and ahead["id"] < mine
    assert "15/15" in result.output


def test_cli_says_one_line_when_the_token_is_wrong_or_the_server_is_down(
    service, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    runner = CliRunner()
    wrong = runner.invoke(cli, ["login", "--server", service["server"].url, "--token", "dlg_x"])
    assert wrong.exit_code == 2 and "not valid" in wrong.output
    down = runner.invoke(cli, ["login", "--server", "http://127.0.0.1:9", "--token", "dlg_x"])
    assert down.exit_code == 2 and "cannot reach" in down.output
    assert len(down.output.strip().splitlines()) == 1
