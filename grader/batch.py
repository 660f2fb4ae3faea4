"""Grade a folder of submissions: in parallel, resumable, and nothing lost.

`grade_batch` treats each child of the submissions folder (a folder or a `.zip`) as one
student (`grader.roster`: names, and the file names their results get) and grades it exactly
as `grade()` would, where its executor (`grader.executor`) runs grades: by default a pool of
long-lived grading processes on this machine (`grader.pool`: each imports torch once and
grades many submissions; each submission still gets its own sandboxed worker), or the
nodes of a Ray cluster, which run the same pool (`grader.cluster`). As each student
finishes, `OUT/results/<stem>.json` (the single-grade JSON report plus a `batch` block) is
written atomically; at the end `OUT/gradebook.csv` and `OUT/summary.json` are rebuilt from
every result on disk, so a resumed batch produces the same gradebook as an uninterrupted
one. A student whose result exists with the same submission hash, checks hash, grader
version and options is skipped.

One bad submission never stops the batch: an unreadable or hostile zip, or a folder holding a
link, is `rejected`, a grading process that crashes is `crashed`, one that runs past the
watchdog is `timeout`, a grader bug or a result that cannot be written is `error` -- each a
row with a message. Reference results are cached per input (`grader.refcache`) in memory and
under `OUT/.cache/`, shared by the pool.

This module does not print: the CLI (`grader.cli.batch`) renders progress and the summary;
the gradebook's rows, CSV and statistics are `grader.report.gradebook`'s.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
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
from grader.executor import Executor, LocalExecutor
from grader.fingerprint import grade_fingerprint
from grader.lms import class_list, exports
from grader.pool import Job, Student, WorkerConfig
from grader.refcache import CacheStats
from grader.report.gradebook import (
    Column,
    StudentResult,
    check_columns,
    csv_bytes,
    gradebook_csv,
    summarize,
)
from grader.result import CheckResult
from grader.roster import find_students, source_hash, stage
from grader.runner import DEFAULT_SEED, check_device_name, grade
from grader.safecopy import shown
from grader.safetext import one_line
from grader.sandbox.limits import Limits

PROBLEM_STATUSES = ("error", "timeout", "crashed")
FORMAT_EXTENSIONS = {"gradescope": "json", "junit": "xml", "markdown": "md", "table": "txt"}
EXPORTS = ("canvas", "moodle")
WATCHDOG_GRACE_S = 60.0


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
    warnings: tuple[str, ...] = ()
    where: str = ""
    notes: tuple[str, ...] = ()


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
    warnings: tuple[str, ...] = ()
    exports: tuple[str, ...] = ()
    """The LMS files written (`canvas.csv`, `moodle.csv`)."""

    @property
    def gradebook(self) -> Path:
        return self.output / "gradebook.csv"

    @property
    def summary_path(self) -> Path:
        return self.output / "summary.json"


# -- result files ---------------------------------------------------------------------------


def _result_path(output: Path, student: Student) -> Path:
    return output / "results" / f"{student.stem}.json"


def _format_path(output: Path, fmt: str, student: Student) -> Path:
    return output / fmt / f"{student.stem}.{FORMAT_EXTENSIONS[fmt]}"


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
        "submission": {"path": shown(student.path), "sha256": None},
        "tests": [],
    }


def _document(
    assignment: Assignment,
    task: Job,
    reply: dict[str, Any],
    options: dict[str, Any],
    notes: tuple[str, ...] = (),
) -> dict[str, Any]:
    status = str(reply.get("status", "error"))
    report = reply.get("report") or _placeholder_report(
        assignment, task.student, options, float(reply.get("duration_s", 0.0))
    )
    report["submission"] = {**report.get("submission", {}), "path": shown(task.student.path)}
    report["batch"] = {
        "student": task.student.shown,
        "status": status,
        "message": one_line(reply.get("message", "")),
        "fingerprint": task.fingerprint,
        "graded_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if "node" in reply:
        report["batch"]["node"] = one_line(str(reply["node"]))
    if notes:
        report["batch"]["notes"] = list(notes)
    return report


def result_row(document: dict[str, Any], graded_now: bool = False) -> StudentResult:
    """The gradebook row of a result document (a JSON report with its `batch` block: the
    student, status and message); the service builds its gradebook from the same rows."""
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
        student=one_line(batch["student"]),
        status=str(batch["status"]),
        score=float(document["score"]),
        max_score=float(document["max_score"]),
        percent=float(document["percent"]),
        message=one_line(batch.get("message", "")),
        duration_s=float(document.get("duration_s", 0.0)),
        checks=checks,
        graded_now=graded_now,
        import_error=one_line(document.get("import_error") or ""),
    )


def _load_result(output: Path, student: Student) -> dict[str, Any] | None:
    """The student's result written by an earlier batch, or None if missing, unreadable or
    someone else's (regrade)."""
    try:
        document = json.loads(_result_path(output, student).read_text(encoding="utf-8"))
        result_row(document)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return document if document["batch"]["student"] == student.shown else None


def _remove_torn_files(output: Path, formats: Iterable[str]) -> None:
    """Temporary files left by a batch that was killed while writing (results, reports,
    the gradebook and summary, the journals of grades cut short)."""
    folders = [output, output / "results", output / ".journal", *(output / f for f in formats)]
    for folder in folders:
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
    roster: Path | None = None,
    lms_exports: Iterable[str] = (),
    lms_column: str | None = None,
    bom: bool = False,
    executor: Executor | None = None,
) -> BatchResult:
    """Grade every submission in `submissions` into `output`; see the module docstring.

    `only` grades just the named students (always regrading them); `force` regrades everyone;
    `retry_failed` regrades students whose grade ended in error, timeout or crashed.
    `formats` adds per-student reports (`OUT/FORMAT/<stem>.EXT`) besides the JSON. On
    Ctrl-C the workers are stopped, the gradebook and summary are written with what is done,
    and KeyboardInterrupt propagates. `watchdog_s` is how long one grade may take before its
    grading process is stopped (default: the assignment's total and import time limits plus
    a minute). `grade_function` stands in for `grader.runner.grade` (tests use it to
    simulate a grading process that hangs or dies). `roster` (a class list, see
    `grader.lms.class_list`) maps submissions to students for `lms_exports` (`canvas`,
    `moodle`: `OUT/canvas.csv`, `OUT/moodle.csv`; Canvas's assignment column is
    `lms_column`, default the assignment's name); `bom` writes every CSV with a byte-order
    mark, for Excel. `executor` is where the grades run
    (default: `jobs` grading processes on this machine; `grader.cluster` for a Ray cluster).
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
    lms_exports = tuple(dict.fromkeys(lms_exports))
    if any(e not in EXPORTS for e in lms_exports):
        raise BadInput(f"unknown export (choose from {', '.join(EXPORTS)}).")
    people = class_list.load(Path(roster)) if roster is not None else None
    limits = limits or assignment.limits
    check_device_name(device)
    executor = executor or LocalExecutor(jobs)
    placement = executor.place(assignment, device)
    device = placement.device
    output = Path(output)
    students, ignored, warnings = find_students(
        Path(submissions), files=assignment.files, output=output
    )
    by_name = {s.shown: s for s in students} | {s.name: s for s in students}
    selected = set()
    for name in dict.fromkeys(only):
        if name not in by_name:
            close = difflib.get_close_matches(name, [s.shown for s in students], n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise BadInput(f"no submission named {name!r} in {shown(submissions)}.{hint}")
        selected.add(by_name[name].name)
    try:
        (output / "results").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInput(f"cannot create {output}: {error.strerror or error}") from error
    _remove_torn_files(output, formats)
    students = [stage(student, output / ".staging") for student in students]

    base = grade_fingerprint(assignment, seed, device, public_only, limits)
    options = {"seed": seed, "device": device, "public_only": public_only}
    rows: dict[str, StudentResult] = {}
    tasks: list[Job] = []
    up_to_date = 0
    for student in students:
        fingerprint = {**base, "submission_sha256": source_hash(student.path) or "unreadable"}
        task = Job(student, fingerprint)
        document = _load_result(output, student)
        fresh = (
            document is not None
            and document["batch"].get("fingerprint") == fingerprint
            and fingerprint["submission_sha256"] != "unreadable"
            and not (retry_failed and document["batch"]["status"] in PROBLEM_STATUSES)
            and (
                document["batch"]["status"] != "graded"
                or all(_format_path(output, f, student).is_file() for f in formats)
            )
        )
        wanted = student.name in selected if only else (force or not fresh)
        if document is not None and (fresh or not wanted):
            rows[student.name] = result_row(document)
        if wanted:
            tasks.append(task)
        elif fresh:
            up_to_date += 1
    for student in students:
        rows.setdefault(student.name, StudentResult(student.shown, "pending"))

    plan = BatchPlan(
        assignment.name,
        len(students),
        len(tasks),
        up_to_date,
        placement.jobs,
        tuple(ignored),
        tuple(warnings),
        placement.where,
        placement.notes,
    )
    if on_plan is not None:
        on_plan(plan)

    stats = CacheStats()
    graded_now = 0

    def record(task: Job, reply: dict[str, Any]) -> None:
        nonlocal graded_now
        document = _document(assignment, task, reply, options, placement.notes)
        try:
            if reply.get("status") == "graded":
                for fmt, text in dict(reply.get("formats", {})).items():
                    data = text.encode("utf-8", "backslashreplace")
                    write_atomic(_format_path(output, fmt, task.student), data)
            write_atomic(
                _result_path(output, task.student),
                (json.dumps(document, indent=2) + "\n").encode(),
            )
        except OSError as error:  # this student's row says so; the batch goes on
            document["batch"]["status"] = "error"
            document["batch"]["message"] = (
                f"its result could not be written: {error.strerror or error}"
            )
        stats.add(CacheStats(**reply.get("cache", {})))
        row = result_row(document, graded_now=True)
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
                threads=max(1, (os.cpu_count() or 1) // placement.jobs),
                parent_pid=os.getpid(),
                grade_function=grade_function,
                journal_dir=output / ".journal",
            )
            timeout_s = watchdog_s or (
                limits.total_timeout_s + limits.import_timeout_s + WATCHDOG_GRACE_S
            )
            executor.run(tasks, config, timeout_s, output / ".cache" / "logs", record)
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
        summary["warnings"] = [one_line(w) for w in warnings]
        written = _write_exports(
            output, students, ordered, people, lms_exports, lms_column or assignment.name, bom
        )
        summary["lms"] = written
        cluster = executor.describe()
        if cluster is not None:
            summary["cluster"] = {**cluster, "notes": list(placement.notes)}
        write_atomic(output / "gradebook.csv", csv_bytes(gradebook_csv(ordered, columns), bom))
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
        warnings=tuple(warnings),
        exports=tuple(f"{name}.csv" for name in written["exports"]),
    )


def _write_exports(
    output: Path,
    students: list[Student],
    rows: list[StudentResult],
    roster: class_list.ClassList | None,
    formats: tuple[str, ...],
    column: str,
    bom: bool,
) -> dict[str, Any]:
    """Write the LMS files asked for; what summary.json says of them: who the roster could
    not match, and for each file the rows written and the people left out of it."""
    graded = [
        (student.name, student.people, row.score)
        for student, row in zip(students, rows, strict=True)
        if row.status != "pending"
    ]
    grades = class_list.grades_for(graded, roster)
    written: dict[str, Any] = {
        "roster": roster is not None,
        "unmatched_submissions": [shown(n) for n in grades.unmatched],
        "roster_without_submission": [one_line(n) for n in grades.missing],
        "roster_with_several_submissions": [one_line(n) for n in grades.ambiguous],
        "exports": {},
    }
    for name in formats:
        usable = exports.canvas_can_match if name == "canvas" else exports.moodle_identifier
        kept = [(person, score) for person, score in grades.grades if usable(person)]
        left_out = [person for person, _ in grades.grades if not usable(person)]
        text = exports.canvas_csv(kept, column) if name == "canvas" else exports.moodle_csv(kept)
        write_atomic(output / f"{name}.csv", csv_bytes(text, bom))
        written["exports"][name] = {
            "rows": len(kept),
            "left_out": [one_line(p.name or "?") for p in left_out],
        }
    return written
