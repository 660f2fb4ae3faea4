"""A grade as data: one `CheckResult` per check, one `Grade` per submission.

Every report (table, JSON, ...) is a view of these frozen objects; nothing is computed
while rendering. The text in them may come from a submission (messages, tracebacks, printed
output, file names), so each view renders `shown()`: the same grade with every string
printable and bounded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from grader.safetext import one_line, printable

STATUSES = ("passed", "failed", "error", "timeout", "skipped")
# Bounds on what a report shows (characters of the raw text, before escaping): they stop a
# hostile submission from growing a report without end, and sit well above what a worker's
# messages and captured output are cut to before they get here.
MESSAGE_LIMIT = 10_000
DETAILS_LIMIT = 50_000
OUTPUT_LIMIT = 200_000
NOTE_LIMIT = 300


def _shown_metric(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | float) else one_line(value)


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

    def shown(self) -> CheckResult:
        """This result with every string made printable and bounded, ready to render."""
        return replace(
            self,
            id=one_line(self.id),
            name=one_line(self.name),
            status=one_line(self.status),
            message=printable(self.message, MESSAGE_LIMIT),
            details=printable(self.details, DETAILS_LIMIT),
            metrics={one_line(k): _shown_metric(v) for k, v in self.metrics.items()},
        )


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
    printed: tuple[tuple[str, str], ...] = ()
    """(check id, text) of what the submission printed during each check that printed; the
    id is "" for what it printed while being imported. `student_output` holds all of it."""
    notes: tuple[str, ...] = ()
    """What the student should know about what was graded (which of two copies of a file, a
    notebook's left-out cells)."""
    import_error: str = ""
    """Why the submission could not be imported (a syntax error, a forbidden import, a hang
    at import...), when it could not: every check that needed it failed for this reason."""

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.tests), 6)

    @property
    def max_score(self) -> float:
        return round(sum(t.max_score for t in self.tests), 6)

    @property
    def percent(self) -> float:
        return round(100.0 * self.score / self.max_score, 2) if self.max_score else 0.0

    def shown(self) -> Grade:
        """This grade with every string made printable and bounded: what every view renders,
        so no report, terminal or file receives a control code a submission wrote."""
        return replace(
            self,
            assignment=one_line(self.assignment),
            title=one_line(self.title),
            device=one_line(self.device),
            submission=SubmissionInfo(
                path=one_line(self.submission.path), sha256=one_line(self.submission.sha256)
            ),
            tests=tuple(t.shown() for t in self.tests),
            student_output=printable(self.student_output, OUTPUT_LIMIT),
            printed=tuple(
                (one_line(ident), printable(text, OUTPUT_LIMIT)) for ident, text in self.printed
            ),
            notes=tuple(one_line(note, NOTE_LIMIT) for note in self.notes),
            import_error=printable(self.import_error, MESSAGE_LIMIT),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: stable keys (see README) plus a few extras; every string in it is
        printable, so even `jq -r` on a terminal shows a submission's text as text."""
        shown = self.shown()
        return {
            "assignment": shown.assignment,
            "title": shown.title,
            "score": self.score,
            "max_score": self.max_score,
            "percent": self.percent,
            "seed": self.seed,
            "device": shown.device,
            "grader_version": self.grader_version,
            "duration_s": round(self.duration_s, 3),
            "public_only": self.public_only,
            "submission": asdict(shown.submission),
            "import_error": shown.import_error or None,
            "notes": list(shown.notes),
            "sandbox": {
                "limits": self.worker.get("limits", []),
                "protections": self.worker.get("protections", {}),
            },
            "tests": [{**asdict(t), "duration_s": round(t.duration_s, 4)} for t in shown.tests],
        }
