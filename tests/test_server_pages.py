"""The web pages in a real headless browser (Debian's chromium driven by Playwright): a
student signs in, uploads and sees their grade with their code's text shown as text; staff
see the gradebook, pass rates and the histogram, and download the CSV and the LMS imports."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_support import ROSTER, admin, build_course, start_server, tokens

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HOSTILE = (
    "def double(x):\n    raise ValueError(\"<script>document.title='owned'</script><b>bold</b>\")\n"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("pages")
    course = build_course(root)
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
