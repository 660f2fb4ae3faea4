"""Documentation that works when followed literally: what the docs and READMEs state about
the course is checked against what the course does."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import setuptools
from support import ROOT

from grader.course import load_course
from grader.runner import grade

COURSE = load_course(ROOT)
CLASSROOM = (ROOT / "docs" / "github-classroom.md").read_text()


def _workflow(markdown: str) -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", markdown, re.S)
    return next(b for b in blocks if "jobs:" in b)


def test_classroom_workflow_installs_the_pinned_engine_not_the_course():
    workflow = _workflow(CLASSROOM)
    assert "cache: pip" in workflow
    assert "pip install -r requirements.txt" in workflow  # the bundle ships it
    assert "git+" not in workflow


def test_classroom_max_score_is_assignment3s_public_points():
    stub = ROOT / "student_template" / "assignment3"
    public = grade("assignment3", stub, course=COURSE, device="cpu", public_only=True)
    scores = {int(n) for n in re.findall(r"max-score: (\d+)", CLASSROOM)}
    assert scores == {public.max_score} == {35}
    assert "35 for assignment3" in CLASSROOM


def test_the_engine_package_holds_no_course_content():
    # The documented model: students install the engine; its distribution must not carry
    # hidden checks, references or solutions.
    packages = setuptools.find_packages(where=str(ROOT), include=["grader*"])
    assert packages and all(p == "grader" or p.startswith("grader.") for p in packages)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'include = ["grader*"]' in pyproject


def _textbook_numerical_gradient(f, x, h=1e-4):
    """The textbook's loop, without converting x to float: what the README warns about."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        saved = x[idx]
        x[idx] = saved + h
        fxh1 = f(x)
        x[idx] = saved - h
        fxh2 = f(x)
        grad[idx] = (fxh1 - fxh2) / (2 * h)
        x[idx] = saved
    return grad


def test_assignment4_readme_says_what_an_integer_x_really_gives():
    readme = (ROOT / "assignments" / "assignment4" / "README.md").read_text()
    flat = " ".join(readme.split())
    claim = re.search(
        r"`numerical_gradient\(f, np\.array\(\[3, 4\]\)\)` comes out as `\[(\d+), (\d+)\]`", flat
    )
    assert claim is not None
    got = _textbook_numerical_gradient(lambda t: (t**2).sum(), np.array([3, 4]))
    assert [int(claim[1]), int(claim[2])] == got.tolist() == [25000, 35000]
    assert "comes out 0" not in flat


def test_assignment7_readme_states_the_speed_checks_bound_and_what_passes_it():
    path = ROOT / "assignments" / "assignment7" / "checks" / "hidden" / "test_speed_hidden.py"
    spec = importlib.util.spec_from_file_location("assignment7_speed_check", path)
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    readme = " ".join((ROOT / "assignments" / "assignment7" / "README.md").read_text().split())
    assert f"On x of shape {speed.SHAPE} with 8 filters of 3 × 3" in readme
    assert f"up to {speed.LIMIT} times as long" in readme
    positions = (speed.SHAPE[2] - 3 + 1) ** 2
    assert f"a loop over the 26 × 26 = {positions} output positions" in readme
    assert "takes about 10 times as long and also passes" in readme
    assert "output positions do not" not in readme
