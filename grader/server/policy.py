"""Per-assignment policy: the due date, late penalty, which submission counts, the rate
limit, the upload cap, what students see of hidden checks before and after the due date,
and whether the assignment has a leaderboard.

Read from the `[policy]` table of `assignment.toml`; a course may override any key in
`COURSE/policy.toml` under a table named for the assignment (`[assignment3]`). Every key is
optional: without a due date nothing is late and the "before" visibility holds.
"""

from __future__ import annotations

import copy
import datetime
import functools
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.course import Assignment
from grader.errors import GraderError
from grader.submission import MAX_EXTRACTED_BYTES

VISIBILITY = ("nothing", "pass_fail", "score", "full")
COUNTS = ("last", "best")
DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Policy:
    due: datetime.datetime | None = None
    late_penalty_per_day: float = 0.0
    max_late_days: int | None = None
    counts: str = "last"
    submissions_per_hour: int | None = None
    max_upload_bytes: int = MAX_EXTRACTED_BYTES
    hidden_before_due: str = "score"
    hidden_after_due: str = "full"
    leaderboard: bool = False

    def deadline(self, extension_days: float = 0.0) -> datetime.datetime | None:
        return None if self.due is None else self.due + extension_days * DAY

    def late_days(self, submitted: datetime.datetime, extension_days: float = 0.0) -> int:
        """Whole days (started) past the student's deadline; 0 when on time."""
        deadline = self.deadline(extension_days)
        if deadline is None or submitted <= deadline:
            return 0
        return math.ceil((submitted - deadline) / DAY)

    def score_factor(self, late_days: int) -> float:
        """What a score is multiplied by: 1 on time, less per late day, 0 past the last."""
        if late_days <= 0:
            return 1.0
        if self.max_late_days is not None and late_days > self.max_late_days:
            return 0.0
        return max(0.0, 1.0 - self.late_penalty_per_day * late_days)

    def visibility(self, now: datetime.datetime, extension_days: float = 0.0) -> str:
        """What a student sees of hidden checks now."""
        deadline = self.deadline(extension_days)
        if deadline is not None and now > deadline:
            return self.hidden_after_due
        return self.hidden_before_due


def _due(value: Any) -> datetime.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        value = datetime.datetime.combine(value, datetime.time(23, 59, 59))
    if not isinstance(value, datetime.datetime):
        raise ValueError("due must be a date and time, e.g. 2025-03-01T23:59:00+01:00")
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)


def policy_from_mapping(data: dict[str, Any]) -> Policy:
    known = {
        "due",
        "late_penalty_per_day",
        "max_late_days",
        "counts",
        "submissions_per_hour",
        "max_upload_mb",
        "hidden_before_due",
        "hidden_after_due",
        "leaderboard",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown policy key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    for key in ("hidden_before_due", "hidden_after_due"):
        if data.get(key, "full") not in VISIBILITY:
            raise ValueError(f"{key} must be one of {', '.join(VISIBILITY)}")
    if not isinstance(data.get("leaderboard", False), bool):
        raise ValueError("leaderboard must be true or false")
    if data.get("counts", "last") not in COUNTS:
        raise ValueError(f"counts must be one of {', '.join(COUNTS)}")
    per_hour = data.get("submissions_per_hour")
    max_days = data.get("max_late_days")
    upload_mb = float(data.get("max_upload_mb", MAX_EXTRACTED_BYTES / (1 << 20)))
    if not 0 < upload_mb <= MAX_EXTRACTED_BYTES / (1 << 20):
        raise ValueError(f"max_upload_mb must be in (0, {MAX_EXTRACTED_BYTES >> 20}]")
    return Policy(
        due=_due(data.get("due")),
        late_penalty_per_day=float(data.get("late_penalty_per_day", 0.0)),
        max_late_days=None if max_days is None else int(max_days),
        counts=str(data.get("counts", "last")),
        submissions_per_hour=None if per_hour is None else int(per_hour),
        max_upload_bytes=int(upload_mb * (1 << 20)),
        hidden_before_due=str(data.get("hidden_before_due", "score")),
        hidden_after_due=str(data.get("hidden_after_due", "full")),
        leaderboard=bool(data.get("leaderboard", False)),
    )


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def load_policy(assignment: Assignment) -> Policy:
    """The assignment's policy: its `[policy]` table, then the course's overrides (read
    again only when one of the two files changed)."""
    paths = (assignment.folder / "assignment.toml", assignment.course_root / "policy.toml")
    return _load_policy(assignment, paths, tuple(_stamp(p) for p in paths))


@functools.lru_cache(maxsize=256)
def _load_policy(
    assignment: Assignment, paths: tuple[Path, Path], stamps: tuple[Any, ...]
) -> Policy:
    merged: dict[str, Any] = {}
    try:
        table = tomllib.loads(paths[0].read_text(encoding="utf-8")).get("policy", {})
        merged.update(table)
        if paths[1].is_file():
            course = tomllib.loads(paths[1].read_text(encoding="utf-8"))
            merged.update(course.get(assignment.name, {}))
        return policy_from_mapping(merged)
    except (OSError, tomllib.TOMLDecodeError, TypeError, ValueError) as error:
        raise GraderError(f"the policy of {assignment.name} is invalid: {error}") from error


def visible_report(report: dict[str, Any], level: str) -> dict[str, Any]:
    """The JSON report as a student may see it: hidden checks dropped (`nothing`), shown as
    passed/failed without points or messages (`pass_fail`), with points but no messages
    (`score`), or whole (`full`). Totals count only what is shown."""
    report = copy.deepcopy(report)
    if level == "full":
        return report
    shown, withheld = [], 0
    for test in report.get("tests", []):
        if not test.get("hidden"):
            shown.append(test)
            continue
        withheld += 1
        if level == "nothing":
            continue
        test.update(message="", details="", metrics={})
        if level == "pass_fail":
            test.update(
                status="passed" if test["status"] == "passed" else "failed",
                score=0.0,
                max_score=0.0,
            )
        shown.append(test)
    report["tests"] = shown
    score = round(sum(float(t["score"]) for t in shown), 6)
    max_score = round(sum(float(t["max_score"]) for t in shown), 6)
    report.update(
        score=score,
        max_score=max_score,
        percent=round(100.0 * score / max_score, 2) if max_score else 0.0,
        hidden_shown=level,
        hidden_checks=withheld,
    )
    return report
