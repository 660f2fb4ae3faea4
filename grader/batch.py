"""Grade a folder of submissions: in parallel, resumable, and nothing lost.

`grade_batch` treats each child of the submissions folder (a folder or a `.zip`) as one
student and grades it exactly as `grade()` would, in a pool of long-lived grading processes
(`grader.pool`: each imports torch once and grades many submissions; each submission still
gets its own sandboxed worker). As each student finishes, `OUT/results/<student>.json` (the
single-grade JSON report plus a `batch` block) is written atomically; at the end
`OUT/gradebook.csv` and `OUT/summary.json` are rebuilt from every result on disk, so a
resumed batch produces the same gradebook as an uninterrupted one. A student whose result
exists with the same submission hash, checks hash, grader version and options is skipped.

One bad submission never stops the batch: an unreadable or hostile zip is `rejected`, a
grading process that crashes is `crashed`, one that runs past the watchdog is `timeout`, a
grader bug is `error` -- each a row with a message. Reference results are cached per input
(`grader.refcache`) in memory and under `OUT/.cache/`, shared by the pool.

This module does not print: the CLI (`grader.cli.batch`) renders progress and the summary;
the gradebook's rows, CSV and statistics are `grader.report.gradebook`'s.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader import __version__
from grader.atomicfile import write_atomic
from grader.course import Assignment, Course, load_course
from grader.errors import BadInput
from grader.fingerprint import grade_fingerprint
from grader.pool import Job, Pool, Student, WorkerConfig
from grader.refcache import CacheStats
from grader.report.gradebook import (
    Column,
    StudentResult,
    check_columns,
    gradebook_csv,
    summarize,
)
from grader.result import CheckResult
from grader.runner import DEFAULT_SEED, grade, resolve_device
from grader.sandbox.limits import Limits

PROBLEM_STATUSES = ("error", "timeout", "crashed")
FORMAT_EXTENSIONS = {"gradescope": "json", "junit": "xml", "markdown": "md", "table": "txt"}
WATCHDOG_GRACE_S = 60.0
SKIPPED_NAMES = ("__MACOSX", "__pycache__")
HASH_IGNORED = ("__pycache__", ".git", ".pytest_cache", "__MACOSX")


# -- data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchPlan:
    """What a batch is about to do (given to `on_plan` before the first grade)."""

    assignment: str
    students: int
    to_grade: int
    up_to_date: int
    jobs: int
    ignored: tuple[str, ...]


@dataclass(frozen=True)
class BatchResult:
    """Everything a batch produced: rows, the check columns, the summary, what it cost."""

    assignment: str
    title: str
    output: Path
    rows: tuple[StudentResult, ...]
    checks: tuple[Column, ...]
    summary: dict[str, Any]
    graded: int
    up_to_date: int
    wall_s: float
    interrupted: bool
    cache: CacheStats
    ignored: tuple[str, ...] = ()

    @property
    def gradebook(self) -> Path:
        return self.output / "gradebook.csv"

    @property
    def summary_path(self) -> Path:
        return self.output / "summary.json"


# -- finding students and fingerprints ---------------------------------------------------------


def find_students(folder: Path) -> tuple[list[Student], list[str]]:
    """The students in `folder` (sorted by name) and the names of children that are not one."""
    if not folder.exists():
        raise BadInput(f"submissions folder not found: {folder}")
    if not folder.is_dir():
        raise BadInput(f"{folder} is not a folder (give the folder that holds the submissions).")
    students: dict[str, list[Path]] = {}
    ignored = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith(".") or child.name in SKIPPED_NAMES:
            continue
        if child.is_dir():
            students.setdefault(child.name, []).append(child)
        elif child.suffix.lower() == ".zip" and child.stem:
            students.setdefault(child.stem, []).append(child)
        else:
            ignored.append(child.name)
    found = []
    for name, paths in students.items():
        problem = ""
        if len(paths) > 1:
            problem = f"two submissions for {name}: {' and '.join(p.name for p in paths)}"
        found.append(Student(name, paths[0], problem))
    return sorted(found, key=lambda s: (s.name.lower(), s.name)), ignored


def source_hash(path: Path) -> str | None:
    """SHA-256 of what the student handed in (a zip's bytes, or a folder's files); None if
    it cannot be read (the grade then says why)."""
    digest = hashlib.sha256()
    try:
        if path.is_file():
            with path.open("rb") as file:
                while chunk := file.read(1 << 20):
                    digest.update(chunk)
            return digest.hexdigest()
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in HASH_IGNORED)
            for name in sorted(files):
                file_path = Path(root) / name
                relative = file_path.relative_to(path).as_posix()
                digest.update(relative.encode(errors="surrogateescape") + b"\0")
                if file_path.is_symlink():
                    digest.update(b"link:" + os.readlink(file_path).encode(errors="replace"))
                elif name.endswith(".pyc"):
                    continue
                else:
                    with file_path.open("rb") as file:
                        while chunk := file.read(1 << 20):
                            digest.update(chunk)
                digest.update(b"\0")
    except OSError:
        return None
    return digest.hexdigest()


# -- result files ---------------------------------------------------------------------------


def _result_path(output: Path, student: str) -> Path:
    return output / "results" / f"{student}.json"


def _format_path(output: Path, fmt: str, student: str) -> Path:
    return output / fmt / f"{student}.{FORMAT_EXTENSIONS[fmt]}"


def _placeholder_report(
    assignment: Assignment, student: Student, options: dict[str, Any], duration_s: float
) -> dict[str, Any]:
    """The JSON report's keys for a submission that could not be graded."""
    return {
        "assignment": assignment.name,
        "title": assignment.title,
        "score": 0.0,
        "max_score": assignment.points,
        "percent": 0.0,
        "seed": options["seed"],
        "device": options["device"],
        "grader_version": __version__,
        "duration_s": round(duration_s, 3),
        "public_only": options["public_only"],
        "submission": {"path": str(student.path), "sha256": None},
        "tests": [],
    }


def _document(
    assignment: Assignment, task: Job, reply: dict[str, Any], options: dict[str, Any]
) -> dict[str, Any]:
    status = str(reply.get("status", "error"))
    report = reply.get("report") or _placeholder_report(
        assignment, task.student, options, float(reply.get("duration_s", 0.0))
    )
    report["batch"] = {
        "student": task.student.name,
        "status": status,
        "message": str(reply.get("message", "")),
        "fingerprint": task.fingerprint,
        "graded_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    return report


def _row(document: dict[str, Any], graded_now: bool = False) -> StudentResult:
    batch = document["batch"]
    checks = tuple(
        CheckResult(
            id=str(t["id"]),
            name=str(t["name"]),
            score=float(t["score"]),
            max_score=float(t["max_score"]),
            status=str(t["status"]),
            hidden=bool(t.get("hidden", False)),
        )
        for t in document.get("tests", [])
    )
    return StudentResult(
        student=str(batch["student"]),
        status=str(batch["status"]),
        score=float(document["score"]),
        max_score=float(document["max_score"]),
        percent=float(document["percent"]),
        message=str(batch.get("message", "")),
        duration_s=float(document.get("duration_s", 0.0)),
        checks=checks,
        graded_now=graded_now,
    )


def _load_result(path: Path) -> dict[str, Any] | None:
    """A result written by an earlier batch, or None if missing or unreadable (regrade)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        _row(document)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return document


def _remove_torn_files(output: Path, formats: Iterable[str]) -> None:
    """Temporary files left by a batch that was killed while writing."""
    for folder in [output / "results", *(output / fmt for fmt in formats)]:
        for leftover in folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()


# -- the batch ----------------------------------------------------------------------------------


def grade_batch(
    assignment_name: str,
    submissions: Path,
    output: Path,
    *,
    course: Course | None = None,
    jobs: int = 1,
    force: bool = False,
    only: Iterable[str] = (),
    retry_failed: bool = False,
    seed: int = DEFAULT_SEED,
    device: str = "auto",
    public_only: bool = False,
    limits: Limits | None = None,
    formats: Iterable[str] = (),
    reference_cache: bool = True,
    on_plan: Callable[[BatchPlan], None] | None = None,
    on_result: Callable[[StudentResult], None] | None = None,
    watchdog_s: float | None = None,
    grade_function: Callable[..., Any] = grade,
) -> BatchResult:
    """Grade every submission in `submissions` into `output`; see the module docstring.

    `only` grades just the named students (always regrading them); `force` regrades everyone;
    `retry_failed` regrades students whose grade ended in error, timeout or crashed.
    `formats` adds per-student reports (`OUT/FORMAT/<student>.EXT`) besides the JSON. On
    Ctrl-C the workers are stopped, the gradebook and summary are written with what is done,
    and KeyboardInterrupt propagates. `watchdog_s` is how long one grade may take before its
    grading process is stopped (default: the assignment's total and import time limits plus
    a minute). `grade_function` stands in for `grader.runner.grade` (tests use it to
    simulate a grading process that hangs or dies).
    """
    started = time.monotonic()
    course = course or load_course()
    assignment = course.assignment(assignment_name)
    if jobs < 1:
        raise BadInput("--jobs must be at least 1.")
    formats = tuple(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMAT_EXTENSIONS]
    if unknown:
        raise BadInput(
            f"unknown batch format {unknown[0]!r} (choose from {', '.join(FORMAT_EXTENSIONS)})."
        )
    limits = limits or assignment.limits
    device = device if device == "cpu" else resolve_device(device)
    students, ignored = find_students(Path(submissions))
    by_name = {s.name: s for s in students}
    only = list(dict.fromkeys(only))
    for name in only:
        if name not in by_name:
            close = difflib.get_close_matches(name, list(by_name), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise BadInput(f"no submission named {name!r} in {submissions}.{hint}")
    output = Path(output)
    try:
        (output / "results").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInput(f"cannot create {output}: {error.strerror or error}") from error
    _remove_torn_files(output, formats)

    base = grade_fingerprint(assignment, seed, device, public_only, limits)
    options = {"seed": seed, "device": device, "public_only": public_only}
    rows: dict[str, StudentResult] = {}
    tasks: list[Job] = []
    up_to_date = 0
    for student in students:
        fingerprint = {**base, "submission_sha256": source_hash(student.path) or "unreadable"}
        task = Job(student, fingerprint)
        document = _load_result(_result_path(output, student.name))
        fresh = (
            document is not None
            and document["batch"].get("fingerprint") == fingerprint
            and fingerprint["submission_sha256"] != "unreadable"
            and not (retry_failed and document["batch"]["status"] in PROBLEM_STATUSES)
            and (
                document["batch"]["status"] != "graded"
                or all(_format_path(output, f, student.name).is_file() for f in formats)
            )
        )
        wanted = student.name in only if only else (force or not fresh)
        if document is not None and (fresh or not wanted):
            rows[student.name] = _row(document)
        if wanted:
            tasks.append(task)
        elif fresh:
            up_to_date += 1
    for student in students:
        rows.setdefault(student.name, StudentResult(student.name, "pending"))

    plan = BatchPlan(assignment.name, len(students), len(tasks), up_to_date, jobs, tuple(ignored))
    if on_plan is not None:
        on_plan(plan)

    stats = CacheStats()
    graded_now = 0

    def record(task: Job, reply: dict[str, Any]) -> None:
        nonlocal graded_now
        document = _document(assignment, task, reply, options)
        if reply.get("status") == "graded":
            for fmt, text in dict(reply.get("formats", {})).items():
                write_atomic(_format_path(output, fmt, task.student.name), text.encode())
        write_atomic(
            _result_path(output, task.student.name),
            (json.dumps(document, indent=2) + "\n").encode(),
        )
        stats.add(CacheStats(**reply.get("cache", {})))
        row = _row(document, graded_now=True)
        rows[task.student.name] = row
        graded_now += 1
        if on_result is not None:
            on_result(row)

    for task in list(tasks):
        if task.student.problem:
            tasks.remove(task)
            record(task, {"status": "rejected", "message": task.student.problem})

    interrupted = False
    try:
        if tasks:
            config = WorkerConfig(
                course_root=course.root,
                assignment=assignment.name,
                seed=seed,
                device=device,
                public_only=public_only,
                limits=limits,
                formats=formats,
                cache_dir=output / ".cache" / "reference",
                cache_enabled=reference_cache,
                threads=max(1, (os.cpu_count() or 1) // jobs),
                parent_pid=os.getpid(),
                grade_function=grade_function,
                journal_dir=output / ".journal",
            )
            timeout_s = watchdog_s or (
                limits.total_timeout_s + limits.import_timeout_s + WATCHDOG_GRACE_S
            )
            pool = Pool(min(jobs, len(tasks)), config, timeout_s, output / ".cache" / "logs")
            pool.run(tasks, record)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        ordered = [rows[s.name] for s in students]
        columns = check_columns(ordered)
        wall_s = time.monotonic() - started
        summary = summarize(
            assignment,
            ordered,
            columns,
            wall_s=wall_s,
            graded_now=graded_now,
            up_to_date=up_to_date,
            interrupted=interrupted,
            cache=stats,
            ignored=ignored,
        )
        write_atomic(output / "gradebook.csv", gradebook_csv(ordered, columns).encode())
        write_atomic(output / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return BatchResult(
        assignment=assignment.name,
        title=assignment.title,
        output=output,
        rows=tuple(ordered),
        checks=tuple(columns),
        summary=summary,
        graded=graded_now,
        up_to_date=up_to_date,
        wall_s=wall_s,
        interrupted=interrupted,
        cache=stats,
        ignored=tuple(ignored),
    )
