"""Turn the service's JSON report back into a `Grade`, so a submission prints the same table
as a local grade."""

from __future__ import annotations

from typing import Any

from grader.result import CheckResult, Grade, SubmissionInfo


def grade_from_report(report: dict[str, Any]) -> Grade:
    tests = tuple(
        CheckResult(
            id=str(t.get("id", "")),
            name=str(t.get("name", "")),
            score=float(t.get("score", 0.0)),
            max_score=float(t.get("max_score", 0.0)),
            status=str(t.get("status", "")),
            hidden=bool(t.get("hidden", False)),
            message=str(t.get("message", "")),
            details=str(t.get("details", "")),
            duration_s=float(t.get("duration_s", 0.0)),
            metrics=dict(t.get("metrics") or {}),
        )
        for t in report.get("tests", [])
    )
    submission = report.get("submission") or {}
    return Grade(
        assignment=str(report.get("assignment", "")),
        title=str(report.get("title", "")),
        seed=int(report.get("seed", 0)),
        device=str(report.get("device", "")),
        grader_version=str(report.get("grader_version", "")),
        duration_s=float(report.get("duration_s", 0.0)),
        submission=SubmissionInfo(
            path=str(submission.get("path", "")), sha256=str(submission.get("sha256") or "")
        ),
        tests=tests,
    )
