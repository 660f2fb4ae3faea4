"""Gradescope's `results.json`: the score, one test per check, and who may see what when.

Follows Gradescope's autograder output specification: top-level `score`, `execution_time`,
`output`, `visibility`, `stdout_visibility`, `extra_data` and `tests[]` (`name`, `score`,
`max_score`, `status`, `output`, `visibility`). Public checks are `visible`; hidden checks get
the assignment's `[gradescope] hidden_visibility` (default `after_published`), so a student
sees their inputs and diagnostics only when the course staff publish grades; until then
Gradescope hides the total score, and the summary `output` states only the public checks'
points. What the
submission printed is kept out: it could echo hidden inputs. Every string is printable
(`Grade.shown`), since Gradescope shows the output as text. This module only renders; the
`run_autograder` recipe is in docs/gradescope.md.
"""

from __future__ import annotations

import json

from grader.result import CheckResult, Grade

MAX_TEST_OUTPUT = 8000


def _test_output(check: CheckResult) -> str:
    parts = [check.message] if check.message else []
    if check.metrics:
        parts.append(
            ", ".join(
                f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in check.metrics.items()
            )
        )
    if check.details and check.status != "passed":
        parts.append(check.details)
    text = "\n\n".join(parts)
    if len(text) > MAX_TEST_OUTPUT:
        text = text[:MAX_TEST_OUTPUT] + "\n[... output cut]"
    return text


def _summary(grade: Grade) -> str:
    """The top-level output. While hidden checks are not shown, Gradescope hides the total
    score from students; so does this text, which states only the public checks' points
    (public points and the total together would reveal the hidden checks' score)."""
    heading = f"{grade.assignment}: {grade.title}"
    hidden = [c for c in grade.tests if c.hidden]
    if not hidden or grade.hidden_visibility == "visible":
        lines = [f"{heading}: {grade.score:g}/{grade.max_score:g} points"]
    else:
        public = [c for c in grade.tests if not c.hidden]
        score = round(sum(c.score for c in public), 6)
        most = round(sum(c.max_score for c in public), 6)
        when = {
            "hidden": "are not shown",
            "after_due_date": "are shown after the due date",
            "after_published": "are shown when grades are published",
        }[grade.hidden_visibility]
        points = round(sum(c.max_score for c in hidden), 6)
        lines = [
            f"{heading}: public checks: {score:g}/{most:g} points",
            f"{len(hidden)} hidden checks ({points:g} points) count towards your score; their "
            f"results and your total {when}.",
        ]
    lines.extend(grade.notes)
    lines.append(f"Inputs seeded with {grade.seed}; grader {grade.grader_version}.")
    lines += [f"Note: {note}" for note in grade.notes]
    return "\n".join(lines)


def to_gradescope(grade: Grade) -> str:
    """Gradescope's results.json for one grade."""
    grade = grade.shown()
    tests = [
        {
            "name": f"{check.name} (hidden)" if check.hidden else check.name,
            "score": check.score,
            "max_score": check.max_score,
            "status": "passed" if check.status == "passed" else "failed",
            "output": _test_output(check),
            "visibility": grade.hidden_visibility if check.hidden else "visible",
        }
        for check in grade.tests
    ]
    results = {
        "score": grade.score,
        "execution_time": round(grade.duration_s),
        "output": _summary(grade),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": {
            "assignment": grade.assignment,
            "seed": grade.seed,
            "device": grade.device,
            "grader_version": grade.grader_version,
            "submission_sha256": grade.submission.sha256,
        },
        "tests": tests,
    }
    return json.dumps(results, indent=2) + "\n"
