"""The class as data and as a spreadsheet: gradebook rows, the CSV, and summary statistics.

A `StudentResult` is one row (read back from a student's result file); `gradebook_csv`
writes the rows an LMS imports; `summarize` computes summary.json (statistics over every
student with a result, a histogram, pass rates per check, the slowest grades). Nothing here
grades or prints.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from grader import __version__
from grader.course import Assignment
from grader.refcache import CacheStats
from grader.result import CheckResult
from grader.safetext import csv_cell, one_line

STATUSES = ("graded", "rejected", "error", "timeout", "crashed", "pending")
HISTOGRAM_BINS = 10
SHOWN_SLOWEST = 5
SHOWN_FAILED_CHECKS = 5


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
    checks: tuple[CheckResult, ...] = ()
    graded_now: bool = False
    import_error: str = ""

    @property
    def reason(self) -> str:
        """Why a student below full score was not graded normally: the submission was
        rejected, its grade ended in error, or it could not be imported (a syntax error, a
        forbidden import, a hang at import). Empty for a grade that just lost points."""
        if self.status == "pending" or self.score >= self.max_score > 0:
            return ""
        if self.status != "graded":
            return self.message or self.status
        return self.import_error


def check_columns(rows: Iterable[StudentResult]) -> list[Column]:
    """(id, name, max_score, hidden) of every check, in the order the first rows list them."""
    columns: dict[str, Column] = {}
    for row in rows:
        for check in row.checks:
            columns.setdefault(
                check.id, Column(check.id, check.name, check.max_score, check.hidden)
            )
    return list(columns.values())


def csv_bytes(text: str, bom: bool = False) -> bytes:
    """A CSV file's bytes: UTF-8, with a byte-order mark when asked (Excel reads a file
    without one in the machine's legacy code page and garbles non-ASCII names)."""
    return (("\ufeff" if bom else "") + text).encode("utf-8")


def gradebook_csv(rows: Iterable[StudentResult], columns: list[Column]) -> str:
    """The gradebook: student, score, max_score, percent, status, reason, then one column
    per check. `reason` says why a student below full score was not graded normally.

    Every text cell goes through `csv_cell`: a student named `=HYPERLINK(...)` is text in the
    spreadsheet, not a formula. Numbers are the grader's own and stay numbers.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = [
        "student", "score", "max_score", "percent", "status", "reason", *(c.id for c in columns)
    ]  # fmt: skip
    writer.writerow([csv_cell(name) for name in header])
    for row in rows:
        student, status = csv_cell(row.student), csv_cell(row.status)
        if row.status == "pending":
            writer.writerow([student, "", "", "", status, "", *([""] * len(columns))])
            continue
        points = {c.id: f"{c.score:g}" for c in row.checks}
        writer.writerow(
            [
                student,
                f"{row.score:g}",
                f"{row.max_score:g}",
                f"{row.percent:g}",
                status,
                csv_cell(row.reason),
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
    """summary.json: statistics over every student with a result, pass rates, the slowest.
    Names and messages (a student's folder name, what their code raised) are printable."""
    done = [r for r in rows if r.status != "pending"]
    graded = [r for r in done if r.status == "graded"]
    checks = []
    for column in columns:
        ran = [c for r in graded for c in r.checks if c.id == column.id]
        passed = sum(c.status == "passed" for c in ran)
        checks.append(
            {
                "id": one_line(column.id),
                "name": one_line(column.name),
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
            {
                "student": one_line(r.student),
                "duration_s": round(r.duration_s, 3),
                "status": r.status,
            }
            for r in sorted(done, key=lambda r: -r.duration_s)[:SHOWN_SLOWEST]
        ],
        "problems": [
            {
                "student": one_line(r.student),
                "status": r.status,
                "message": one_line(r.message),
                "reason": one_line(r.reason),
            }
            for r in done
            if r.status != "graded" or r.reason
        ],
        "ignored": [one_line(name) for name in ignored],
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
