"""One student against the others, in process: the service's app driven through Starlette's
test client (no grading runs: nothing is submitted), for what needs no real server."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from service_support import HIDDEN, PUBLIC
from support import make_course

pytest.importorskip("fastapi")

from sqlalchemy.orm import Session

import grader.server.app as app_module
from grader.course import Course
from grader.errors import BadInput
from grader.server import accounts
from grader.server.leaderboard import clean_display_name, display_key
from grader.server.service import Settings

with warnings.catch_warnings():  # Starlette's client warns about its httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROSTER = [
    {"id": "ann", "name": "Ann Smith", "email": "ann@example.edu", "section": "A"},
    {"id": "bob", "name": "Bob", "email": "bob@example.edu", "section": "B"},
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The app on a small course, its Service, and a token per student."""
    root = tmp_path_factory.mktemp("attacks")
    course = make_course(root, PUBLIC, HIDDEN)
    made = []
    real = app_module.Service

    def service(settings: Settings) -> app_module.Service:
        made.append(real(settings))
        return made[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(app_module, "Service", service)
        app = app_module.create_app(
            Settings(course=Course(course), data=root / "data", db_url=f"sqlite:///{root}/g.db")
        )
    with TestClient(app) as client:
        with Session(made[0].engine) as db:
            issued, _ = accounts.import_roster(db, ROSTER)
            db.commit()
        yield {
            "client": client,
            "service": made[0],
            "tokens": {item.login: item.token for item in issued},
        }


def _api(site: dict, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {site['tokens'][who]}"}


def test_asking_about_submissions_one_cannot_see_leaves_nothing_behind(site):
    """Each long poll of an id kept an event for it until that submission changed: asking
    about ids that do not exist (or are another's, or finished) grew the server without
    bound."""
    waiters = site["service"]._waiters
    before = len(waiters)
    for submission_id in range(10_000, 10_050):
        answer = site["client"].get(
            f"/api/v1/submissions/{submission_id}?wait=0.01", headers=_api(site, "bob")
        )
        assert answer.status_code == 404
    assert len(waiters) == before


@pytest.mark.parametrize(
    "disguise",
    [
        "A\u00adnn Smith",  # soft hyphen
        "Ann Smith\u3164",  # Hangul filler: a letter that draws nothing
        "Ann\u2800Smith",  # Braille blank
        "Ann Smith\u061c",  # Arabic letter mark (a bidi control)
        "Ann Smith\U000e0041",  # a tag character
        "Ann Smi\u034fth",  # combining grapheme joiner
        "Ann Smith\ufe0f",  # variation selector
        "\uff21nn \uff33mith",  # full-width letters
        "\u0410nn Smith",  # a Cyrillic capital A
        "\u0430nn",  # ann's id with a Cyrillic a
        "\u0430\u04cf\u0456\u0441\u0435",  # ann's display name "alice", all in Cyrillic
    ],
)
def test_a_display_name_cannot_look_like_someone_elses(site, disguise):
    """Only control characters were refused and names compared case-folded: invisible
    characters, full-width forms and look-alike letters passed as someone else."""
    with Session(site["service"].engine) as db:
        accounts.set_display_name(db, "ann", "Alice")
    try:
        answer = site["client"].put(
            "/api/v1/me/display-name", headers=_api(site, "bob"), json={"display_name": disguise}
        )
        assert answer.status_code == 400, answer.json()
        assert "taken" in answer.json()["error"] or "invisible" in answer.json()["error"]
    finally:
        with Session(site["service"].engine) as db:
            accounts.set_display_name(db, "ann", None)


def test_display_names_keep_other_scripts_and_accents_as_written():
    assert clean_display_name("Zoë Ωmega", set()) == "Zoë Ωmega"
    assert clean_display_name("\u738b\u5c0f\u660e", set()) == "\u738b\u5c0f\u660e"
    assert clean_display_name("  Ｂｏｂ   the   Builder ", set()) == "Bob the Builder"
    assert display_key("Zoë") == display_key("zoe")
    with pytest.raises(BadInput, match="visible"):
        clean_display_name("\u0301\u0301", set())


def test_a_sign_in_sent_from_another_site_is_refused(site):
    """Login CSRF: another site's page posting eve's token to /login signed its visitor in
    as eve, whose account then received the visitor's uploads."""
    client = site["client"]
    client.cookies.clear()
    token = site["tokens"]["bob"]
    for where in ("cross-site", "same-site"):
        answer = client.post(
            "/login",
            data={"token": token},
            headers={"Sec-Fetch-Site": where},
            follow_redirects=False,
        )
        assert answer.status_code == 403 and "set-cookie" not in answer.headers
    for where in ("same-origin", "none", None):
        headers = {"Sec-Fetch-Site": where} if where else {}
        answer = client.post(
            "/login", data={"token": token}, headers=headers, follow_redirects=False
        )
        assert answer.status_code == 303 and "dlg_session=" in answer.headers["set-cookie"]
    client.cookies.clear()
