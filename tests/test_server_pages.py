"""The web pages in a real headless browser (Debian's chromium driven by Playwright): a
student signs in, uploads and sees their grade with their code's text shown as text; staff
see the gradebook, pass rates and the histogram, and download the CSV and the LMS imports."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_support import ROSTER, add_assignment, admin, build_course, start_server, tokens

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# A leaderboard's figures, as assignment8's checks measure them (here from a toy model).
BOARD = """
import time

import pytest

@pytest.mark.points(10)
def test_accuracy(student, metrics):
    started = time.monotonic()
    right = sum(student.double(x) == 2 * x for x in range(10))
    metrics.update(
        accuracy=right / 10,
        training_s=round(time.monotonic() - started, 3),
        parameters=len(student.weights()),
    )
    assert right == 10
"""
GOOD = "def double(x):\n    return x + x\n\ndef weights():\n    return [0.0] * 269322\n"
HALF = "def double(x):\n    return x + x if x < 5 else 0\n\ndef weights():\n    return [0.0] * 50\n"
HOSTILE = (
    "def double(x):\n    raise ValueError(\"<script>document.title='owned'</script><b>bold</b>\")\n"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("pages")
    course = build_course(root)
    add_assignment(course, "board", "leaderboard = true", public=BOARD)  # in toy's [policy]
    (root / "roster.csv").write_text(ROSTER)
    data = root / "data"
    admin(data, None, "roster", "import", str(root / "roster.csv"))
    staff = admin(data, None, "staff", "add", "tina", "--name", "Tina").strip()
    server = start_server(course, data)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield {
                "server": server,
                "tokens": tokens(data),
                "staff": staff,
                "browser": browser,
                "root": root,
            }
        finally:
            browser.close()
            assert server.stop() in (0, -signal.SIGTERM)


def _sign_in(site: dict, token: str):
    page = site["browser"].new_context().new_page()
    page.goto(site["server"].url + "/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url("**/home")
    return page


def _upload(page, tmp_path, assignment: str, source: str) -> None:
    (tmp_path / "toy.py").write_text(source)
    page.set_input_files(
        f"form[action='/submit/{assignment}'] input[type=file]", str(tmp_path / "toy.py")
    )
    page.click(f"button[name=submit-{assignment}]")
    page.wait_for_url("**/submissions/*")


def test_a_student_signs_in_uploads_and_sees_their_grade(site, tmp_path):
    page = _sign_in(site, site["tokens"]["ann"])
    assert "Ann <b>A</b>" in page.inner_text("header")  # the roster's markup stays text
    assert page.locator("header b").count() == 0
    _upload(page, tmp_path, "closed", "def double(x):\n    return x + x\n")
    page.wait_for_selector("#status.graded", timeout=60_000)
    assert page.inner_text("#total") == "5.0/5.0"
    page.screenshot(path=str(site["root"] / "student.png"), full_page=True)
    page.goto(site["server"].url + "/home")
    assert "graded" in page.inner_text("#submissions")


def test_student_code_text_is_shown_escaped_never_run(site, tmp_path):
    page = _sign_in(site, site["tokens"]["ann"])
    _upload(page, tmp_path, "closed", HOSTILE)
    page.wait_for_selector("#status.graded", timeout=60_000)
    assert "<script>document.title='owned'</script><b>bold</b>" in page.inner_text("#report")
    assert page.locator("#report script, #report b").count() == 0
    assert page.title() != "owned"


def test_a_wrong_token_is_refused_on_the_page(site):
    page = site["browser"].new_page()
    page.goto(site["server"].url + "/login")
    page.fill("input[name=token]", "dlg_wrong")
    page.click("button[type=submit]")
    assert "not valid" in page.inner_text("#error")


def test_forms_without_the_csrf_token_and_staff_pages_refuse_a_student(site):
    server, ann = site["server"], site["tokens"]["ann"]
    cookies = {"dlg_session": ann}
    forged = httpx.post(
        server.url + "/submit/closed",
        cookies=cookies,
        files=[("files", ("toy.py", b"def double(x):\n    return 2 * x\n"))],
    )
    assert forged.status_code == 403 and "expired" in forged.json()["error"]
    staff_page = httpx.get(server.url + "/staff/closed", cookies=cookies)
    assert staff_page.status_code == 403


def test_staff_see_the_gradebook_pass_rates_and_histogram_and_download_exports(site, tmp_path):
    student = _sign_in(site, site["tokens"]["bob"])
    _upload(student, tmp_path, "closed", "def double(x):\n    return x + x\n")
    student.wait_for_selector("#status.graded", timeout=60_000)
    page = _sign_in(site, site["staff"])
    page.goto(site["server"].url + "/staff/closed")
    book = page.inner_text("#gradebook")
    assert "bob" in book and "10.0/10.0" in book  # staff see hidden checks too
    assert page.locator("#histogram rect").count() == 10
    assert "double" in page.inner_text("#checks")
    with page.expect_download() as download:
        page.click("#csv")
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].startswith("student,score,max_score,percent,status,reason")
    assert "bob,10,10,100,graded,,5,5" in lines
    with page.expect_download() as download:
        page.click("#canvas")
    assert download.value.suggested_filename == "closed-canvas.csv"
    assert "Bob,,bob,,B,10" in Path(download.value.path()).read_text().splitlines()
    page.screenshot(path=str(site["root"] / "staff.png"), full_page=True)


def test_the_leaderboard_ranks_by_accuracy_and_shows_only_chosen_names_escaped(site, tmp_path):
    server, ann, bob = site["server"], site["tokens"]["ann"], site["tokens"]["bob"]
    for token, source in ((ann, GOOD), (bob, HALF)):
        with server.client(token) as client:
            answer = client.post(
                "/assignments/board/submissions", files=[("files", ("toy.py", source.encode()))]
            ).json()
        server.wait_for(token, answer["id"], ("graded",))
    with server.client(bob) as client:
        board = client.get("/assignments/board/leaderboard").json()
        elsewhere = client.get("/assignments/closed/leaderboard")
    rows = board["rows"]
    assert [(r["rank"], r["name"], r["accuracy"], r["parameters"], r["you"]) for r in rows] == [
        (1, "anonymous", 1.0, 269322, False),
        (2, "anonymous", 0.5, 50, True),
    ]
    text = json.dumps(board)
    assert not any(word in text for word in ("ann", "Ann", "bob", "Bob"))  # opt-in only
    assert elsewhere.status_code == 404 and "no leaderboard" in elsewhere.json()["error"]

    hostile = "<img src=x onerror=alert(1)><b>A</b>"
    with server.client(ann) as client:
        refused = [
            client.put("/me/display-name", json={"display_name": name})
            for name in ("x" * 41, "bell\x07", "bob", "Bob")  # too long, control, someone else
        ]
        chosen = client.put("/me/display-name", json={"display_name": hostile}).json()
    assert [r.status_code for r in refused] == [400] * 4
    assert "at most 40" in refused[0].json()["error"] and "taken" in refused[2].json()["error"]
    assert chosen["display_name"] == hostile

    page = _sign_in(site, bob)
    page.goto(server.url + "/home")
    page.click("a[href='/leaderboard/board']")
    table = page.inner_text("#leaderboard")
    assert hostile in table and "anonymous" in table  # ann's name as text, bob still anonymous
    assert page.locator("#leaderboard img, #leaderboard b").count() == 0
    page.fill("input[name=display_name]", "Bob the Builder")
    page.click("#save-name")
    page.wait_for_url("**/leaderboard/board")
    mine = page.inner_text("#leaderboard tr.you")
    assert "Bob the Builder" in mine and "50.00%" in mine and "50" in mine
    page.screenshot(path=str(site["root"] / "leaderboard.png"), full_page=True)
    page.fill("input[name=display_name]", "")
    page.click("#save-name")
    page.wait_for_url("**/leaderboard/board")
    assert "Bob the Builder" not in page.inner_text("#leaderboard")  # anonymous again
