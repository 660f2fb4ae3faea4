"""Grade a folder of submissions: in parallel, resumable, and nothing lost.

`grade_batch` treats each child of the submissions folder (a folder or a `.zip`) as one
student and grades it exactly as `grade()` would, in a pool of long-lived grading processes
(each imports torch once and grades many submissions; each submission still gets its own
sandboxed worker). As each student finishes, `OUT/results/<student>.json` (the single-grade
JSON report plus a `batch` block) is written atomically; at the end `OUT/gradebook.csv` and
`OUT/summary.json` are rebuilt from every result on disk, so a resumed batch produces the
same gradebook as an uninterrupted one. A student whose result exists with the same
submission hash, checks hash, grader version and options is skipped.

One bad submission never stops the batch: an unreadable or hostile zip is `rejected`, a
grading process that crashes is `crashed`, one that runs past the watchdog is `timeout`, a
grader bug is `error` -- each a row with a message. Reference results are cached per input
(`grader.refcache`) in memory and under `OUT/.cache/`, shared by the pool.

This module does not print: the CLI (`grader.cli.batch`) renders progress and the summary.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import datetime
import difflib
import hashlib
import io
import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from grader import __version__
from grader.course import Assignment, Course, load_course
from grader.errors import BadInput, GraderError
from grader.refcache import CacheStats, ReferenceCache, activate, write_atomic
from grader.report import FORMATS
from grader.runner import DEFAULT_SEED, grade, resolve_device
from grader.sandbox.limits import Limits

STATUSES = ("graded", "rejected", "error", "timeout", "crashed", "pending")
PROBLEM_STATUSES = ("error", "timeout", "crashed")
FORMAT_EXTENSIONS = {"gradescope": "json", "junit": "xml", "markdown": "md", "table": "txt"}
WATCHDOG_GRACE_S = 60.0
STARTUP_TIMEOUT_S = 180.0
READY = {"op": "ready"}
GRADER_ROOT = str(Path(__file__).resolve().parent.parent)
WORKER_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from grader.batch import worker_main; worker_main(int(sys.argv[2]))"
)
TASKS_PER_WORKER = 200
STOP_WAIT_S = 5.0
SKIPPED_NAMES = ("__MACOSX", "__pycache__")
HASH_IGNORED = ("__pycache__", ".git", ".pytest_cache", "__MACOSX")
HISTOGRAM_BINS = 10
SHOWN_SLOWEST = 5
SHOWN_FAILED_CHECKS = 5


# -- data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Student:
    """One child of the submissions folder."""

    name: str
    path: Path
    problem: str = ""


@dataclass(frozen=True)
class CheckScore:
    """One check's outcome for one student, as the gradebook needs it."""

    id: str
    name: str
    score: float
    max_score: float
    status: str
    hidden: bool


class Column(NamedTuple):
    """A gradebook column: one check."""

    id: str
    name: str
    max_score: float
    hidden: bool


@dataclass(frozen=True)
class StudentResult:
    """One gradebook row: the student's total, status, message and per-check points."""

    student: str
    status: str
    score: float = 0.0
    max_score: float = 0.0
    percent: float = 0.0
    message: str = ""
    duration_s: float = 0.0
    checks: tuple[CheckScore, ...] = ()
    graded_now: bool = False


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


@dataclass(frozen=True)
class WorkerConfig:
    """What a grading process needs; sent once when it starts (pickled: trusted data only)."""

    course_root: Path
    assignment: str
    seed: int
    device: str
    public_only: bool
    limits: Limits
    formats: tuple[str, ...]
    cache_dir: Path | None
    cache_enabled: bool
    threads: int
    parent_pid: int
    grade_function: Callable[..., Any] = grade


@dataclass
class _Task:
    student: Student
    fingerprint: dict[str, str]
    started: float = 0.0


# -- finding students and fingerprints ---------------------------------------------------------


def find_students(folder: Path) -> tuple[list[Student], list[str]]:
    """The students in `folder` (sorted by name) and the names of children that are not one."""
    if not folder.is_dir():
        raise BadInput(f"submissions folder not found: {folder}")
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


def checks_hash(assignment: Assignment) -> str:
    """SHA-256 of what decides a grade besides the submission: assignment.toml, every check,
    the reference solution (or a bundle's recorded answers)."""
    digest = hashlib.sha256()
    paths = [assignment.folder / "assignment.toml", assignment.reference_path]
    if assignment.checks_dir.is_dir():
        paths += sorted(
            p
            for p in assignment.checks_dir.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        )
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
        digest.update(b"\0")
    return digest.hexdigest()


def options_hash(seed: int, device: str, public_only: bool, limits: Limits) -> str:
    """SHA-256 of the options that change a grade."""
    options = {"seed": seed, "device": device, "public_only": public_only, **asdict(limits)}
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()


# -- the grading processes ----------------------------------------------------------------------


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGTERM this process when the batch dies (even by kill -9)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(0)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def worker_main(fd: int) -> None:
    """A grading process: grade the students it is sent, one at a time, until told to stop.

    It reads the batch's `sys.path` and then its `WorkerConfig` from the socket `fd`, then
    answers one reply per student. SIGTERM (from the batch, or from Linux when the batch
    dies) interrupts the grade in progress, which kills its sandbox on the way out.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _interrupt)
    conn = multiprocessing.connection.Connection(fd)
    try:
        sys.path[:] = list(dict.fromkeys([*conn.recv(), *sys.path]))
        config: WorkerConfig = conn.recv()
        _die_with_parent(config.parent_pid)
        import torch

        torch.set_num_threads(config.threads)
        cache = ReferenceCache(config.cache_dir, enabled=config.cache_enabled)
        activate(cache)
        course = Course(config.course_root)
        conn.send(READY)
        while True:
            task = conn.recv()
            if task is None:
                conn.close()
                os._exit(0)  # nothing left to flush; skip the interpreter's slow teardown
            before = CacheStats(**asdict(cache.stats))
            reply = _grade_one(task, config, course)
            reply["cache"] = {k: v - getattr(before, k) for k, v in asdict(cache.stats).items()}
            conn.send(reply)
    except (KeyboardInterrupt, EOFError, OSError):
        return


def _grade_one(student: Student, config: WorkerConfig, course: Course) -> dict[str, Any]:
    """Grade one student; every failure becomes a reply with a status and a message."""
    started = time.monotonic()
    try:
        result = config.grade_function(
            config.assignment,
            student.path,
            course=course,
            seed=config.seed,
            device=config.device,
            public_only=config.public_only,
            limits=config.limits,
        )
    except BadInput as error:
        return _failure("rejected", str(error), started)
    except GraderError as error:
        return _failure("error", f"grader error: {error}", started)
    except Exception as error:
        return _failure("error", f"internal grader error: {type(error).__name__}: {error}", started)
    return {
        "status": "graded",
        "message": _grade_message(result.tests),
        "report": result.to_dict(),
        "formats": {fmt: FORMATS[fmt](result) for fmt in config.formats},
        "duration_s": time.monotonic() - started,
    }


def _failure(status: str, message: str, started: float) -> dict[str, Any]:
    return {"status": status, "message": message, "duration_s": time.monotonic() - started}


def _grade_message(tests: Iterable[Any]) -> str:
    """A row's message for a graded submission: the one reason when every check failed for
    the same one (an import error, a missing file), else a count of timeouts, else nothing."""
    tests = list(tests)
    messages = {t.message for t in tests if t.status != "passed"}
    if tests and all(t.status != "passed" for t in tests) and len(messages) == 1:
        return messages.pop()
    timeouts = sum(t.status == "timeout" for t in tests)
    return f"{timeouts} check(s) timed out" if timeouts else ""


class _Worker:
    """The batch's handle on one grading process (`python -c` running `worker_main`)."""

    def __init__(self, config: WorkerConfig, log: Path) -> None:
        ours, theirs = socket.socketpair()
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-c", WORKER_BOOTSTRAP, GRADER_ROOT, str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        theirs.close()
        self.conn = multiprocessing.connection.Connection(ours.detach())
        self.conn.send(sys.path)
        self.conn.send(config)
        self.task: _Task | None = None
        self.ready = False
        self.deadline = time.monotonic() + STARTUP_TIMEOUT_S
        self.done = 0

    def send(self, task: _Task, timeout_s: float) -> None:
        """Hand over a student; the watchdog counts from now, or from when the process is
        ready if it is still starting (importing torch is not the submission's time)."""
        self.task = task
        if self.ready:
            self.start_clock(timeout_s)
        self.conn.send(task.student)

    def start_clock(self, timeout_s: float) -> None:
        assert self.task is not None
        self.task.started = time.monotonic()
        self.deadline = self.task.started + timeout_s

    def ask_to_stop(self) -> None:
        """Ask an idle process to exit; SIGTERM a busy one (it cleans up its sandbox)."""
        if self.task is None:
            with contextlib.suppress(OSError):
                self.conn.send(None)
                return
        with contextlib.suppress(OSError):
            self.process.terminate()

    def wait_or_kill(self, deadline: float) -> None:
        """Wait for the process to exit until `deadline`, then SIGKILL it."""
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                self.process.kill()
            self.process.wait()
        self.conn.close()

    def stop(self, wait_s: float = STOP_WAIT_S) -> None:
        self.ask_to_stop()
        self.wait_or_kill(time.monotonic() + wait_s)

    def last_words(self) -> str:
        """The last line the process wrote to its log (why it died, if it said)."""
        with contextlib.suppress(OSError):
            lines = self.log.read_text(errors="replace").strip().splitlines()
            if lines:
                return lines[-1][-300:]
        return ""


class _Pool:
    """N grading processes fed one student at a time, with a watchdog on each."""

    def __init__(self, jobs: int, config: WorkerConfig, timeout_s: float, logs: Path) -> None:
        self.jobs = jobs
        self.config = config
        self.timeout_s = timeout_s
        self.logs = logs
        self.workers: list[_Worker] = []
        self.started = 0

    def run(self, tasks: Iterable[_Task], on_reply: Callable[[_Task, dict], None]) -> None:
        queue = deque(tasks)
        idle: list[_Worker] = []
        busy: list[_Worker] = []
        try:
            while queue or busy:
                while queue and len(busy) < self.jobs:
                    worker = idle.pop() if idle else self._start()
                    worker.send(queue.popleft(), self.timeout_s)
                    busy.append(worker)
                now = time.monotonic()
                wait_s = max(0.0, min(w.deadline for w in busy) - now)
                multiprocessing.connection.wait([w.conn for w in busy], timeout=wait_s)
                for worker in list(busy):
                    reply = self._poll(worker)
                    if reply is None:
                        continue
                    task = worker.task
                    assert task is not None
                    busy.remove(worker)
                    if reply.get("status") in ("crashed", "timeout"):
                        worker.stop(wait_s=1.0)
                        self.workers.remove(worker)
                    else:
                        worker.task, worker.deadline = None, float("inf")
                        worker.done += 1
                        if worker.done >= TASKS_PER_WORKER:
                            worker.stop()
                            self.workers.remove(worker)
                        else:
                            idle.append(worker)
                    on_reply(task, reply)
        finally:
            for worker in self.workers:
                worker.ask_to_stop()
            deadline = time.monotonic() + STOP_WAIT_S
            for worker in self.workers:
                worker.wait_or_kill(deadline)
            self.workers = []

    def _start(self) -> _Worker:
        self.started += 1
        worker = _Worker(self.config, self.logs / f"worker-{self.started}.log")
        self.workers.append(worker)
        return worker

    def _poll(self, worker: _Worker) -> dict | None:
        """The worker's reply if its grade ended (however it ended), else None."""
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                if message != READY:
                    return message
                worker.ready = True
                worker.start_clock(self.timeout_s)
        except (EOFError, OSError):
            pass
        else:
            if worker.process.poll() is None:
                if time.monotonic() < worker.deadline:
                    return None
                if not worker.ready:
                    return {
                        "status": "crashed",
                        "message": f"the grading process did not start within "
                        f"{STARTUP_TIMEOUT_S:g} s",
                        "duration_s": 0.0,
                    }
                return {
                    "status": "timeout",
                    "message": f"grading did not finish within {self.timeout_s:g} s; "
                    "the grading process was stopped",
                    "duration_s": self.timeout_s,
                }
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(1.0)
        said = worker.last_words()
        started = worker.task.started if worker.task else time.monotonic()
        return {
            "status": "crashed",
            "message": f"the grading process died ({_describe_exit(worker.process.returncode)}) "
            "while grading this submission" + (f": {said}" if said else ""),
            "duration_s": time.monotonic() - started,
        }


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


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
    assignment: Assignment, task: _Task, reply: dict[str, Any], options: dict[str, Any]
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
        CheckScore(
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


# -- gradebook and summary --------------------------------------------------------------------


def check_columns(rows: Iterable[StudentResult]) -> list[Column]:
    """(id, name, max_score, hidden) of every check, in the order the first rows list them."""
    columns: dict[str, Column] = {}
    for row in rows:
        for check in row.checks:
            columns.setdefault(
                check.id, Column(check.id, check.name, check.max_score, check.hidden)
            )
    return list(columns.values())


def gradebook_csv(rows: Iterable[StudentResult], columns: list[Column]) -> str:
    """The gradebook: student, score, max_score, percent, status, then one column per check."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["student", "score", "max_score", "percent", "status", *(c.id for c in columns)]
    )
    for row in rows:
        if row.status == "pending":
            writer.writerow([row.student, "", "", "", "pending", *([""] * len(columns))])
            continue
        points = {c.id: f"{c.score:g}" for c in row.checks}
        writer.writerow(
            [
                row.student,
                f"{row.score:g}",
                f"{row.max_score:g}",
                f"{row.percent:g}",
                row.status,
                *(points.get(c.id, "") for c in columns),
            ]
        )
    return buffer.getvalue()


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "median": None, "stdev": None, "min": None, "max": None}
    return {
        "mean": round(statistics.fmean(values), 4),
        "median": round(statistics.median(values), 4),
        "stdev": round(statistics.pstdev(values), 4),
        "min": min(values),
        "max": max(values),
    }


def histogram(percents: Iterable[float], bins: int = HISTOGRAM_BINS) -> list[dict[str, Any]]:
    """Counts of percentages in equal bins [0, 10), [10, 20), ..., [90, 100]."""
    width = 100 / bins
    counts = [0] * bins
    for value in percents:
        counts[min(bins - 1, max(0, int(value // width)))] += 1
    return [
        {"from": round(i * width, 2), "to": round((i + 1) * width, 2), "count": count}
        for i, count in enumerate(counts)
    ]


def summarize(
    assignment: Assignment,
    rows: list[StudentResult],
    columns: list[Column],
    *,
    wall_s: float,
    graded_now: int,
    up_to_date: int,
    interrupted: bool,
    cache: CacheStats,
    ignored: list[str],
) -> dict[str, Any]:
    """summary.json: statistics over every student with a result, pass rates, the slowest."""
    done = [r for r in rows if r.status != "pending"]
    graded = [r for r in done if r.status == "graded"]
    checks = []
    for column in columns:
        ran = [c for r in graded for c in r.checks if c.id == column.id]
        passed = sum(c.status == "passed" for c in ran)
        checks.append(
            {
                "id": column.id,
                "name": column.name,
                "max_score": column.max_score,
                "hidden": column.hidden,
                "ran": len(ran),
                "passed": passed,
                "pass_rate": round(passed / len(ran), 4) if ran else None,
                "mean_score": round(statistics.fmean(c.score for c in ran), 4) if ran else None,
            }
        )
    failing = sorted(
        (c for c in checks if c["pass_rate"] is not None and c["pass_rate"] < 1),
        key=lambda c: (c["pass_rate"], c["id"]),
    )
    grading_s = sum(r.duration_s for r in rows if r.graded_now)
    return {
        "assignment": assignment.name,
        "title": assignment.title,
        "grader_version": __version__,
        "students": len(rows),
        "count": len(done),
        "pending": len(rows) - len(done),
        "statuses": {s: sum(r.status == s for r in rows) for s in STATUSES},
        "score": {**_spread([r.score for r in done]), "max_score": assignment.points},
        "percent": _spread([r.percent for r in done]),
        "histogram": histogram(r.percent for r in done),
        "checks": checks,
        "most_failed": [c["id"] for c in failing[:SHOWN_FAILED_CHECKS]],
        "slowest": [
            {"student": r.student, "duration_s": round(r.duration_s, 3), "status": r.status}
            for r in sorted(done, key=lambda r: -r.duration_s)[:SHOWN_SLOWEST]
        ],
        "problems": [
            {"student": r.student, "status": r.status, "message": r.message}
            for r in done
            if r.status != "graded"
        ],
        "ignored": ignored,
        "time": {
            "wall_s": round(wall_s, 3),
            "graded_this_run": graded_now,
            "up_to_date": up_to_date,
            "grading_s": round(grading_s, 3),
            "submissions_per_minute": round(60 * graded_now / wall_s, 2) if wall_s else None,
            "interrupted": interrupted,
        },
        "reference_cache": cache.to_dict(),
    }


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

    base = {
        "checks_sha256": checks_hash(assignment),
        "grader_version": __version__,
        "options_sha256": options_hash(seed, device, public_only, limits),
    }
    options = {"seed": seed, "device": device, "public_only": public_only}
    rows: dict[str, StudentResult] = {}
    tasks: list[_Task] = []
    up_to_date = 0
    for student in students:
        fingerprint = {**base, "submission_sha256": source_hash(student.path) or "unreadable"}
        task = _Task(student, fingerprint)
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

    def record(task: _Task, reply: dict[str, Any]) -> None:
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
            )
            timeout_s = watchdog_s or (
                limits.total_timeout_s + limits.import_timeout_s + WATCHDOG_GRACE_S
            )
            pool = _Pool(min(jobs, len(tasks)), config, timeout_s, output / ".cache" / "logs")
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
