"""A grade as data: one `CheckResult` per check, one `Grade` per submission.

Every report (table, JSON, ...) is a view of these frozen objects; nothing is computed
while rendering.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("passed", "failed", "error", "timeout", "skipped")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: points, status and the one line a student acts on."""

    id: str
    name: str
    score: float
    max_score: float
    status: str
    hidden: bool
    message: str = ""
    details: str = ""
    duration_s: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SubmissionInfo:
    path: str
    sha256: str


@dataclass(frozen=True)
class Grade:
    """The outcome of grading one submission."""

    assignment: str
    title: str
    seed: int
    device: str
    grader_version: str
    duration_s: float
    submission: SubmissionInfo
    tests: tuple[CheckResult, ...]
    public_only: bool = False
    student_output: str = ""
    worker: dict[str, Any] = field(default_factory=dict)
    hidden_visibility: str = "after_published"
    """When students may see hidden checks' results (LMS formats), from assignment.toml."""
    resumed_checks: int = 0
    """Checks reported from the journal of an interrupted run instead of being run again."""

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.tests), 6)

    @property
    def max_score(self) -> float:
        return round(sum(t.max_score for t in self.tests), 6)

    @property
    def percent(self) -> float:
        return round(100.0 * self.score / self.max_score, 2) if self.max_score else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: stable keys (see README) plus a few extras."""
        return {
            "assignment": self.assignment,
            "title": self.title,
            "score": self.score,
            "max_score": self.max_score,
            "percent": self.percent,
            "seed": self.seed,
            "device": self.device,
            "grader_version": self.grader_version,
            "duration_s": round(self.duration_s, 3),
            "public_only": self.public_only,
            "submission": asdict(self.submission),
            "sandbox": {
                "limits": self.worker.get("limits", []),
                "protections": self.worker.get("protections", {}),
            },
            "tests": [{**asdict(t), "duration_s": round(t.duration_s, 4)} for t in self.tests],
        }
