"""Batch grading: every student gets a row, hostile submissions are contained, nothing is lost.

One class of fifteen assignment1 submissions -- right, empty, buggy, hanging, crashing and
hostile zips -- is graded once per module (the per-call limit cut to 1 s, as
`--call-timeout 1` does) and reused: the kill -9 test regrades the same folder through the
real CLI, kills it mid-way, resumes it, and compares the gradebook byte for byte.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from rich.console import Console
from support import FIXTURES, ROOT

from grader.batch import BatchPlan, BatchResult, find_students, grade_batch, source_hash
from grader.cli.batch import BatchProgress, render_summary
from grader.course import load_course
from grader.errors import BadInput, GraderError
from grader.refcache import CachedReference, Recorder, ReferenceCache, caching
from grader.report.gradebook import StudentResult, gradebook_csv, histogram
from grader.runner import grade

COURSE = load_course(ROOT)
CORRECT = FIXTURES / "assignment1" / "correct" / "perceptron.py"
STUB = ROOT / "student_template" / "assignment1" / "perceptron.py"
CALL_TIMEOUT_S = 1.0
LIMITS = COURSE.assignment("assignment1").limits.with_overrides(call_timeout_s=CALL_TIMEOUT_S)
AND_BODY = "    return _unit(x1, x2, np.array([0.5, 0.5]), -0.7)\n"


def _source(transform=lambda s: s) -> str:
    return transform(CORRECT.read_text())


def _replace_once(old: str, new: str):
    def transform(source: str) -> str:
        assert source.count(old) == 1, old
        return source.replace(old, new)

    return transform


def _folder(root: Path, name: str, source: str) -> None:
    (root / name).mkdir()
    (root / name / "perceptron.py").write_text(source)


def _zip(path: Path, members: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            zf.writestr(name, text)


def make_class(root: Path) -> dict[str, tuple[str, str]]:
    """Fifteen submissions; returns {student: (expected status, words its message has)}."""
    root.mkdir()
    correct = _source()
    _folder(root, "alice", correct)
    _zip(root / "bob.zip", {"bob/perceptron.py": correct})
    _folder(root, "carol", STUB.read_text())
    _folder(root, "dan", _source(_replace_once("0.5]), -0.7)", "0.5]), -0.2)")))
    _folder(root, "eve", _source(_replace_once("def XOR(x1, x2):", "def XOR(x1, x2)")))
    _folder(root, "gina", _source(_replace_once(AND_BODY, "    while True:\n        pass\n")))
    _folder(root, "hank", _source(_replace_once(AND_BODY, "    import os\n    os._exit(3)\n")))
    (root / "ivy.zip").write_bytes(b"this is not a zip file")
    _zip(root / "jack.zip", {"../evil.py": "print('escaped')", "perceptron.py": correct})
    with zipfile.ZipFile(root / "kate.zip", "w") as zf:
        link = zipfile.ZipInfo("perceptron.py")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with zipfile.ZipFile(root / "liam.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("perceptron.py", correct)
        zf.writestr("padding.bin", bytes(60 << 20))
    (root / "mia").mkdir()
    _folder(root, "noah", correct)
    _zip(root / "noah.zip", {"perceptron.py": correct})
    (root / ".DS_Store").write_text("")
    (root / "roster.txt").write_text("not a submission")
    return {
        "alice": ("graded", ""),
        "bob": ("graded", ""),
        "carol": ("graded", "all 19 checks failed"),
        "dan": ("graded", ""),
        "eve": ("graded", "could not be imported"),
        "gina": ("graded", "timed out"),
        "hank": ("graded", ""),
        "ivy": ("rejected", "not a readable zip file"),
        "jack": ("rejected", "unsafe path"),
        "kate": ("rejected", "symbolic link"),
        "liam": ("rejected", "more than 50 MB"),
        "mia": ("rejected", "no perceptron.py"),
        "noah": ("graded", ""),
        "noah.zip": ("graded", ""),
    }


@dataclass(frozen=True)
class ClassRun:
    """The module's graded class: where it is, what came out, what each student expects."""

    submissions: Path
    output: Path
    result: BatchResult
    expected: dict[str, tuple[str, str]]
    rows: list[StudentResult]


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    expected = make_class(root / "submissions")
    output = root / "out"
    rows = []
    result = grade_batch(
        "assignment1",
        root / "submissions",
        output,
        course=COURSE,
        jobs=2,
        device="cpu",
        limits=LIMITS,
        formats=["junit", "gradescope"],
        on_result=rows.append,
    )
    return ClassRun(root / "submissions", output, result, expected, rows)


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_every_student_gets_a_row_with_a_clear_status(graded_class):
    result = graded_class.result
    expected = graded_class.expected
    rows = graded_class.rows
    assert not result.interrupted
    assert {r.student for r in rows} == set(expected)
    by_name = {r.student: r for r in result.rows}
    assert sorted(by_name) == sorted(expected)
    for student, (status, words) in expected.items():
        row = by_name[student]
        assert row.status == status, (student, row)
        assert words in row.message, (student, row.message)
    assert by_name["alice"].score == by_name["bob"].score == 100
    assert by_name["carol"].score == 0
    assert 0 < by_name["dan"].score < 100
    assert by_name["gina"].score == 100 - 7 - 8 - 1 - 2
    assert {c.status for c in by_name["gina"].checks} == {"passed", "timeout"}
    assert by_name["hank"].score < 100
    assert result.ignored == ("roster.txt",)


def test_gradebook_has_one_row_per_student_and_a_column_per_check(graded_class):
    output = graded_class.output
    expected = graded_class.expected
    rows = _csv(output / "gradebook.csv")
    assert [r["student"] for r in rows] == sorted(expected)
    header = list(rows[0])
    assert header[:6] == ["student", "score", "max_score", "percent", "status", "reason"]
    checks = header[6:]
    assert len(checks) == 19
    assert "public/test_gates.py::test_and_truth_table" in checks
    alice = next(r for r in rows if r["student"] == "alice")
    assert alice["score"] == "100" and alice["status"] == "graded"
    assert sum(float(alice[c]) for c in checks) == 100
    ivy = next(r for r in rows if r["student"] == "ivy")
    assert (ivy["score"], ivy["status"]) == ("0", "rejected")
    assert all(ivy[c] == "" for c in checks)


def test_results_and_reports_are_written_per_student(graded_class):
    output = graded_class.output
    expected = graded_class.expected
    for student, (status, _) in expected.items():
        document = json.loads((output / "results" / f"{student}.json").read_text())
        assert document["assignment"] == "assignment1"
        assert document["batch"]["student"] == student
        assert document["batch"]["status"] == status
        assert set(document["batch"]["fingerprint"]) == {
            "checks_sha256",
            "grader_version",
            "options_sha256",
            "submission_sha256",
        }
        reports = [output / "junit" / f"{student}.xml", output / "gradescope" / f"{student}.json"]
        assert all(p.is_file() for p in reports) == (status == "graded"), student
    assert not list(output.rglob("*.tmp"))


def test_summary_has_statistics_histogram_pass_rates_and_slowest(graded_class):
    output = graded_class.output
    result = graded_class.result
    expected = graded_class.expected
    summary = json.loads((output / "summary.json").read_text())
    assert summary == result.summary
    assert summary["students"] == summary["count"] == len(expected)
    assert summary["statuses"]["graded"] == 9 and summary["statuses"]["rejected"] == 5
    percents = [r.percent for r in result.rows]
    assert summary["percent"]["mean"] == pytest.approx(np.mean(percents), abs=1e-3)
    assert summary["percent"]["median"] == pytest.approx(np.median(percents), abs=1e-3)
    assert summary["percent"]["stdev"] == pytest.approx(np.std(percents), abs=1e-3)
    assert sum(b["count"] for b in summary["histogram"]) == len(expected)
    and_check = next(c for c in summary["checks"] if c["id"].endswith("test_and_truth_table"))
    assert and_check["ran"] == 9
    assert and_check["pass_rate"] == pytest.approx(4 / 9, abs=1e-4)
    assert summary["most_failed"]
    assert len(summary["slowest"]) == 5
    assert summary["reference_cache"]["hits"] > 0


def test_summary_renders_the_histogram_failed_checks_and_problems(graded_class):
    result = graded_class.result
    console = Console(record=True, width=100)
    render_summary(result, console)
    text = console.export_text()
    for words in ("Score histogram", "Checks most students failed", "Not graded", "mia", "ivy"):
        assert words in text


def test_progress_shows_a_bar_with_the_running_mean_on_a_terminal():
    console = Console(record=True, width=100, force_terminal=True)
    progress = BatchProgress(console)
    progress.on_plan(BatchPlan("assignment1", 3, 2, 1, 2, ()))
    assert progress.progress is not None
    progress.on_result(StudentResult("a", "graded", 50, 100, 50.0))
    progress.on_result(StudentResult("b", "graded", 100, 100, 100.0))
    assert "mean 75.0%" in progress.progress.tasks[0].fields["mean"]
    assert progress.progress.tasks[0].completed == 2
    progress.stop()


def _run_cli(subs: Path, out: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "grader", "batch", "assignment1", str(subs)]
    command += ["-o", str(out), "-j", "2", "--device", "cpu", "--course", str(ROOT)]
    command += [
        "--call-timeout",
        str(CALL_TIMEOUT_S),
        "--format",
        "junit",
        "--format",
        "gradescope",
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _comparable(document: dict) -> dict:
    """A result without what legitimately differs between runs (times, paths)."""
    tests = [{k: v for k, v in t.items() if k != "duration_s"} for t in document["tests"]]
    batch = {k: v for k, v in document["batch"].items() if k != "graded_at"}
    kept = {k: v for k, v in document.items() if k not in ("duration_s", "submission", "batch")}
    return {**kept, "tests": tests, "batch": batch}


def test_kill_9_mid_batch_then_resume_loses_nothing_and_matches_an_uninterrupted_run(
    graded_class, tmp_path
):
    subs = graded_class.submissions
    baseline = graded_class.output
    expected = graded_class.expected
    out = tmp_path / "out"
    first = _run_cli(subs, out)
    deadline = time.monotonic() + 120
    while len(list((out / "results").glob("*.json"))) < 4:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the batch wrote no results"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    done_before = {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")}
    assert 4 <= len(done_before) < len(expected)
    assert not (out / "gradebook.csv").exists()

    second = _run_cli(subs, out)
    stdout, stderr = second.communicate(timeout=180)
    assert second.returncode == 0, stderr
    assert f"{len(done_before)} up to date" in stderr
    assert "Score histogram" in stdout
    for name, mtime in done_before.items():
        assert (out / "results" / name).stat().st_mtime_ns == mtime, f"{name} was regraded"

    assert (out / "gradebook.csv").read_bytes() == (baseline / "gradebook.csv").read_bytes()
    for student in expected:
        got = json.loads((out / "results" / f"{student}.json").read_text())
        want = json.loads((baseline / "results" / f"{student}.json").read_text())
        assert _comparable(got) == _comparable(want), student
    assert not list(out.rglob("*.tmp"))


def test_a_rerun_removes_what_a_killed_batch_was_writing(graded_class, tmp_path):
    """kill -9 can land inside any atomic write: the journal's, the gradebook's, a result's."""
    shutil.copytree(graded_class.submissions, tmp_path / "subs")
    shutil.copytree(graded_class.output, tmp_path / "out")
    out = tmp_path / "out"
    (out / ".journal").mkdir(exist_ok=True)
    torn = [
        out / ".journal" / ".assignment1-0123.jsonl.abcd.tmp",
        out / ".gradebook.csv.efgh.tmp",
        out / "results" / ".alice.json.ijkl.tmp",
    ]
    for path in torn:
        path.write_text("half")
    options = dict(course=COURSE, jobs=1, device="cpu", limits=LIMITS, formats=["junit"])
    grade_batch("assignment1", tmp_path / "subs", out, **options)
    assert not list(out.rglob("*.tmp"))


def test_rerun_skips_up_to_date_students_and_regrades_changed_ones(graded_class, tmp_path):
    subs = graded_class.submissions
    baseline = graded_class.output
    expected = graded_class.expected
    shutil.copytree(subs, tmp_path / "subs")
    shutil.copytree(baseline, tmp_path / "out")
    options = dict(course=COURSE, jobs=1, device="cpu", limits=LIMITS, formats=["junit"])
    again = grade_batch("assignment1", tmp_path / "subs", tmp_path / "out", **options)
    assert (again.graded, again.up_to_date) == (0, len(expected))

    (tmp_path / "subs" / "dan" / "perceptron.py").write_text(CORRECT.read_text())
    fixed = grade_batch(
        "assignment1", tmp_path / "subs", tmp_path / "out", only=["dan", "alice"], **options
    )
    assert sorted(r.student for r in fixed.rows if r.graded_now) == ["alice", "dan"]
    assert next(r for r in fixed.rows if r.student == "dan").score == 100
    gradebook = _csv(tmp_path / "out" / "gradebook.csv")
    assert len(gradebook) == len(expected)
    assert next(r for r in gradebook if r["student"] == "dan")["score"] == "100"

    with pytest.raises(BadInput, match="Did you mean 'alice'"):
        grade_batch("assignment1", tmp_path / "subs", tmp_path / "out", only=["alise"], **options)


class Planned(Exception):
    """Stops a batch once it has said what it would grade."""


def plan_of(submissions: Path, output: Path, **options) -> BatchPlan:
    """What `grade_batch` would grade, without grading anything."""

    def stop(plan: BatchPlan) -> None:
        raise Planned(plan)

    options = {"course": COURSE, "device": "cpu", "limits": LIMITS, **options}
    with pytest.raises(Planned) as stopped:
        grade_batch("assignment1", submissions, output, on_plan=stop, **options)
    return stopped.value.args[0]


def test_changed_options_make_every_result_stale(graded_class):
    subs = graded_class.submissions
    baseline = graded_class.output
    expected = graded_class.expected
    assert plan_of(subs, baseline).up_to_date == len(expected)
    assert plan_of(subs, baseline, seed=7).to_grade == len(expected)
    assert plan_of(subs, baseline, public_only=True).to_grade == len(expected)
    assert plan_of(subs, baseline, force=True).to_grade == len(expected)
    assert plan_of(subs, baseline, formats=["markdown"]).to_grade == 9


def misbehaving_grade(assignment, submission, **options):
    """Stands in for `grade` inside a grading process: some submissions break the process."""
    name = Path(submission).name
    if name == "hangs":
        time.sleep(600)
    if name == "dies":
        os._exit(7)
    return grade(assignment, submission, **options)


def test_a_grading_process_that_hangs_or_dies_costs_one_row_not_the_batch(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("dies", "hangs", "ok"):
        _folder(subs, name, CORRECT.read_text())
    result = grade_batch(
        "assignment1",
        subs,
        tmp_path / "out",
        course=COURSE,
        jobs=2,
        device="cpu",
        watchdog_s=3,
        grade_function=misbehaving_grade,
    )
    rows = {r.student: r for r in result.rows}
    assert rows["dies"].status == "crashed"
    assert "exit status 7" in rows["dies"].message
    assert rows["hangs"].status == "timeout"
    assert "within 3 s" in rows["hangs"].message
    assert (rows["ok"].status, rows["ok"].score) == ("graded", 100)

    assert plan_of(subs, tmp_path / "out", limits=None).to_grade == 0
    assert plan_of(subs, tmp_path / "out", limits=None, retry_failed=True).to_grade == 2


def test_a_grading_process_that_cannot_start_stops_the_batch_with_the_reason(tmp_path):
    phantom = types.ModuleType("phantom_grader")
    exec("def grade(*args, **kwargs):\n    raise AssertionError('never runs')", phantom.__dict__)
    sys.modules["phantom_grader"] = phantom
    subs = tmp_path / "subs"
    subs.mkdir()
    _folder(subs, "ok", CORRECT.read_text())
    try:
        with pytest.raises(GraderError, match=r"could not start.*No module named 'phantom_grader'"):
            grade_batch(
                "assignment1",
                subs,
                tmp_path / "out",
                course=COURSE,
                device="cpu",
                grade_function=phantom.grade,
            )
    finally:
        del sys.modules["phantom_grader"]
    assert _csv(tmp_path / "out" / "gradebook.csv")[0]["status"] == "pending"


def test_students_are_the_folders_and_zips_and_a_changed_file_changes_the_hash(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.zip").write_bytes(b"")
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "notes.md").write_text("")
    students, ignored, _ = find_students(tmp_path)
    assert [s.name for s in students] == ["a", "b"]
    assert ignored == ["notes.md"]
    (tmp_path / "b" / "x.py").write_text("1")
    first = source_hash(tmp_path / "b")
    (tmp_path / "b" / "__pycache__").mkdir()
    (tmp_path / "b" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    assert source_hash(tmp_path / "b") == first
    (tmp_path / "b" / "x.py").write_text("2")
    assert source_hash(tmp_path / "b") != first
    with pytest.raises(BadInput, match="not found"):
        find_students(tmp_path / "missing")


# -- hostile student names and links between students ----------------------------------------

LONG = "L" * 240
NON_UTF8 = b"\xff\xfe"
FORMULAS = ("=1+2", "+SUM(1)", "-3", "@NOW()")
MARKUP = "[bold]loud"
ESCAPE = "\x1b]0;owned\x07wipe"


@dataclass(frozen=True)
class HostileRun:
    submissions: Path
    output: Path
    result: BatchResult
    rows: dict[str, StudentResult]


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory):
    """Students whose names or links attack the batch; each must get its own honest row."""
    root = tmp_path_factory.mktemp("hostile")
    subs = root / "submissions"
    subs.mkdir()
    correct = _source()
    for name in ("alice", LONG, *FORMULAS, "victim", "Kim", "kim"):
        _folder(subs, name, correct)
    os.mkdir(os.fsencode(subs) + b"/" + NON_UTF8)
    with open(os.fsencode(subs) + b"/" + NON_UTF8 + b"/perceptron.py", "w") as file:
        file.write(correct)
    _zip(subs / "victim.zip", {"perceptron.py": STUB.read_text()})
    (subs / "eve").mkdir()
    (subs / "eve" / "x").symlink_to("../alice")
    (subs / "zed").symlink_to("alice")
    (subs / MARKUP).mkdir()
    (subs / ESCAPE).mkdir()
    output = root / "out"
    result = grade_batch(
        "assignment1",
        subs,
        output,
        course=COURSE,
        jobs=2,
        device="cpu",
        limits=LIMITS,
        formats=["junit", "markdown", "table"],
    )
    return HostileRun(subs, output, result, {r.student: r for r in result.rows})


def test_a_link_to_another_students_folder_is_rejected_not_graded_as_theirs(hostile_class):
    rows = hostile_class.rows
    assert rows["alice"].score == 100
    assert rows["eve"].status == "rejected" and rows["eve"].score == 0
    assert "eve/x is a symbolic link" in rows["eve"].message
    assert rows["zed"].status == "rejected" and rows["zed"].score == 0
    assert "zed is a symbolic link" in rows["zed"].message


def test_every_hostile_name_gets_a_row_and_the_gradebook_is_written(hostile_class):
    rows = hostile_class.rows
    shown_non_utf8 = "\\xff\\xfe"
    for name in (LONG, shown_non_utf8, *FORMULAS, "victim", "victim.zip", "Kim", "kim"):
        assert rows[name].status == "graded", (name, rows[name])
    assert rows[LONG].score == rows[shown_non_utf8].score == rows["victim"].score == 100
    assert rows["victim.zip"].score == 0  # the zip is graded as what it holds, a stub
    assert {rows[MARKUP].status, rows["\\x1b]0;owned\\x07wipe"].status} == {"rejected"}
    assert len(hostile_class.result.rows) == 15
    summary = json.loads((hostile_class.output / "summary.json").read_text())
    assert summary["students"] == summary["count"] == 15
    assert "\x1b" not in json.dumps(summary, ensure_ascii=False)


def test_result_files_have_bounded_unique_names_and_a_rerun_finds_them(hostile_class):
    results = hostile_class.output / "results"
    names = sorted(os.listdir(results))
    graded = [r for r in hostile_class.result.rows if r.status == "graded"]
    reports = list((hostile_class.output / "junit").iterdir())
    assert len(reports) == len(graded) == 11
    assert all(ElementTree.parse(report).getroot().tag == "testsuites" for report in reports)
    assert len(names) == 15
    assert all(len(os.fsencode(name)) <= 200 for name in names)
    assert len({name.casefold() for name in names}) == 15
    assert "alice.json" in names and "victim.zip.json" in names
    students = {json.loads((results / n).read_text())["batch"]["student"] for n in names}
    assert students == set(hostile_class.rows)
    plan = plan_of(hostile_class.submissions, hostile_class.output, limits=LIMITS)
    assert (plan.to_grade, plan.up_to_date) == (0, 15)
    only = plan_of(hostile_class.submissions, hostile_class.output, only=[LONG, "\\xff\\xfe"])
    assert only.to_grade == 2


def test_gradebook_cells_never_start_a_formula(hostile_class):
    rows = _csv(hostile_class.output / "gradebook.csv")
    by_student = {r["student"]: r for r in rows}
    for name in FORMULAS:
        assert by_student["'" + name]["score"] == "100"
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())
    assert "\x1b" not in (hostile_class.output / "gradebook.csv").read_text()


def test_hostile_names_are_shown_escaped_and_never_as_markup(hostile_class):
    console = Console(record=True, width=300)
    render_summary(hostile_class.result, console)
    text = console.export_text()
    assert "[bold]loud" in text and "\\x1b]0;owned\\x07wipe" in text
    progress = BatchProgress(console)
    progress.on_plan(BatchPlan("assignment1", 1, 1, 0, 1, ()))
    progress.on_result(hostile_class.rows["\\x1b]0;owned\\x07wipe"])
    assert "\x1b" not in console.export_text()


def test_a_result_that_cannot_be_written_costs_one_row_not_the_batch(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("blocked", "ok"):
        _folder(subs, name, CORRECT.read_text())
    (tmp_path / "out" / "results" / "blocked.json").mkdir(parents=True)
    result = grade_batch(
        "assignment1", subs, tmp_path / "out", course=COURSE, device="cpu", limits=LIMITS
    )
    rows = {r.student: r for r in result.rows}
    assert rows["blocked"].status == "error"
    assert "could not be written" in rows["blocked"].message
    assert (rows["ok"].status, rows["ok"].score) == ("graded", 100)
    assert [r["student"] for r in _csv(tmp_path / "out" / "gradebook.csv")] == ["blocked", "ok"]


def test_student_names_file_stems_and_the_hash_never_read_through_a_link(tmp_path):
    (tmp_path / "Bob").mkdir()
    (tmp_path / "bob.zip").write_bytes(b"")
    (tmp_path / "bob").mkdir()
    (tmp_path / "link.zip").symlink_to("/etc/shadow")
    (tmp_path / "notes.md").symlink_to("/etc/shadow")
    students, ignored, _ = find_students(tmp_path)
    by_name = {s.name: s for s in students}
    assert sorted(by_name) == ["Bob", "bob", "bob.zip", "link"]
    assert by_name["bob.zip"].stem == "bob.zip"
    assert by_name["Bob"].stem.startswith("Bob~") and by_name["bob"].stem.startswith("bob~")
    assert "link.zip is a symbolic link" in by_name["link"].problem
    assert ignored == ["notes.md"]
    before = source_hash(tmp_path / "link.zip")
    (tmp_path / "link.zip").unlink()
    (tmp_path / "link.zip").symlink_to(tmp_path / "notes.md")
    assert source_hash(tmp_path / "link.zip") != before  # the link's text, not its target


def test_the_fingerprint_never_opens_a_fifo(tmp_path):
    """A FIFO in a submission would block the batch forever if opened; this test feeds it
    from a thread so that the old code, which opened it, could not hang here."""
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.py").write_text("1")
    fifo = tmp_path / "b" / "pipe"
    os.mkfifo(fifo)
    hashes = []
    for content in (b"one", b"two"):
        writer = threading.Thread(target=fifo.write_bytes, args=(content,), daemon=True)
        writer.start()
        try:
            hashes.append(source_hash(tmp_path / "b"))
        finally:
            reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # releases a waiting writer
            writer.join()
            os.close(reader)
    assert hashes[0] == hashes[1] is not None


def test_histogram_and_gradebook_of_pending_rows():
    assert [b["count"] for b in histogram([0, 9.99, 10, 55, 100, 100])] == [
        2,
        1,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        2,
    ]
    text = gradebook_csv([StudentResult("zoe", "pending")], [])
    assert text == "student,score,max_score,percent,status,reason\nzoe,,,,pending,\n"


# -- the reference cache -----------------------------------------------------------------------


def _fake_reference() -> types.ModuleType:
    module = types.ModuleType("fake_reference")
    module.calls = 0

    def square(x):
        module.calls += 1
        return np.asarray(x) ** 2

    def noisy(rng, n):
        module.calls += 1
        return rng.normal(size=n)

    def scale_in_place(x):
        module.calls += 1
        x *= 2
        return x

    def apply(f, x):
        module.calls += 1
        return f(x)

    module.square, module.noisy = square, noisy
    module.scale_in_place, module.apply = scale_in_place, apply
    module.CONSTANT = (1, 2)
    return module


def test_cache_answers_repeated_calls_with_fresh_copies():
    module = _fake_reference()
    cache = ReferenceCache()
    ref = CachedReference(module, cache, "ns")
    x = np.arange(4.0)
    first = ref.square(x)
    second = ref.square(x.copy())
    assert module.calls == 1
    np.testing.assert_array_equal(first, second)
    second[0] = 99
    np.testing.assert_array_equal(ref.square(x), [0, 1, 4, 9])
    ref.square(x.astype(np.float32))
    assert module.calls == 2
    assert (cache.stats.hits, cache.stats.misses) == (2, 2)
    assert ref.CONSTANT == (1, 2)


def test_cache_moves_generators_on_as_the_real_call_would():
    module = _fake_reference()
    ref = CachedReference(module, ReferenceCache(), "ns")
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    first = ref.noisy(a, 3)
    second = ref.noisy(b, 3)
    assert module.calls == 1
    np.testing.assert_array_equal(first, second)
    assert a.bit_generator.state == b.bit_generator.state
    assert a.normal() == b.normal()


def test_calls_that_mutate_or_take_callables_are_never_cached():
    module = _fake_reference()
    cache = ReferenceCache()
    ref = CachedReference(module, cache, "ns")
    for _ in range(2):
        x = np.ones(2)
        np.testing.assert_array_equal(ref.scale_in_place(x), [2, 2])
        np.testing.assert_array_equal(x, [2, 2])
        assert ref.apply(lambda v: v + 1, 1) == 2
    assert module.calls == 4
    assert cache.stats.uncacheable == 4


def test_disk_cache_is_shared_and_a_torn_entry_is_recomputed(tmp_path):
    module = _fake_reference()
    CachedReference(module, ReferenceCache(tmp_path), "ns").square(np.arange(3))
    other = ReferenceCache(tmp_path)
    np.testing.assert_array_equal(
        CachedReference(module, other, "ns").square(np.arange(3)), [0, 1, 4]
    )
    assert (module.calls, other.stats.hits) == (1, 1)
    for entry in tmp_path.rglob("*.bin"):
        entry.write_bytes(b"torn")
    fresh = ReferenceCache(tmp_path)
    np.testing.assert_array_equal(
        CachedReference(module, fresh, "ns").square(np.arange(3)), [0, 1, 4]
    )
    assert (module.calls, fresh.stats.misses) == (2, 1)
    CachedReference(module, ReferenceCache(tmp_path), "another version").square(np.arange(3))
    assert module.calls == 3


def test_recorder_reports_calls_a_bundle_cannot_answer():
    recorder = Recorder()
    ref = CachedReference(_fake_reference(), recorder, "ns")
    ref.square(np.arange(2))
    ref.square(np.arange(2))
    assert len(recorder.answers) == 1 and recorder.stats.hits == 0
    recorder.current_check = "a check"
    ref.apply(abs, -1)
    assert recorder.problems and "a check: reference.apply" in recorder.problems[0]


def test_grades_are_identical_with_and_without_the_cache(tmp_path):
    submission = tmp_path / "dan"
    submission.mkdir()
    (submission / "perceptron.py").write_text(
        _source(_replace_once("0.5]), -0.7)", "0.5]), -0.2)"))
    )

    def outcome(result):
        return [(t.id, t.score, t.status, t.message) for t in result.tests]

    plain = grade("assignment1", submission, course=COURSE, device="cpu")
    cache = ReferenceCache(tmp_path / "cache")
    with caching(cache):
        first = grade("assignment1", submission, course=COURSE, device="cpu")
        second = grade("assignment1", submission, course=COURSE, device="cpu")
    assert outcome(plain) == outcome(first) == outcome(second)
    assert cache.stats.hits >= cache.stats.misses > 0
