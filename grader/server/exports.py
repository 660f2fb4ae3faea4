"""The service's gradebook as the files `grade batch` writes, for staff to download.

`gradebook.csv` (`grader.report.gradebook`, built from `grader.batch.result_row` rows),
Canvas's and Moodle's grade imports (`grader.lms.exports`) and Gradescope's results.json per
student (`grader.report.gradescope`, as `grade batch --format gradescope` writes them, in a
zip), each from the counting submission with the late penalty applied. Only the mapping from
the service's gradebook rows is here; every writer is batch's, so the files are the same.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

from grader.batch import result_row
from grader.client.report import grade_from_report
from grader.course import Assignment
from grader.errors import BadInput
from grader.lms import Person
from grader.lms import exports as lms
from grader.report.gradebook import StudentResult, check_columns, csv_bytes, gradebook_csv
from grader.report.gradescope import to_gradescope
from grader.roster import file_stems

# format -> (file name, media type)
EXPORTS = {
    "csv": ("gradebook.csv", "text/csv"),
    "canvas": ("canvas.csv", "text/csv"),
    "moodle": ("moodle.csv", "text/csv"),
    "gradescope": ("gradescope.zip", "application/zip"),
}
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same gradebook downloads as the same bytes


@dataclass(frozen=True)
class ExportFile:
    """One download: the name to save it under, its media type, its bytes."""

    name: str
    media_type: str
    data: bytes


def export(
    assignment: Assignment,
    rows: list[dict[str, Any]],
    fmt: str,
    column: str | None = None,
    bom: bool = False,
) -> ExportFile:
    """The gradebook `rows` (`Service.gradebook`) as the file `fmt` names; `column` is
    Canvas's assignment column (default: the assignment's name), `bom` starts a CSV with a
    byte-order mark for Excel."""
    if fmt not in EXPORTS:
        raise BadInput(f"format must be one of json, {', '.join(EXPORTS)}; not {fmt!r}.")
    name, media_type = EXPORTS[fmt]
    if fmt == "csv":
        results = [_result(assignment, row) for row in rows]
        data = csv_bytes(gradebook_csv(results, check_columns(results)), bom)
    elif fmt == "gradescope":
        data = _gradescope_zip(assignment, rows)
    else:
        # As `grade batch --export`: the students with a (counting) submission.
        grades = [(_person(row), float(row["score"])) for row in rows if row["submission"]]
        if fmt == "canvas":
            text = lms.canvas_csv(grades, column or assignment.name)
        else:
            text = lms.moodle_csv(grades)
        data = csv_bytes(text, bom)
    return ExportFile(f"{assignment.name}-{name}", media_type, data)


def _result(assignment: Assignment, row: dict[str, Any]) -> StudentResult:
    """A gradebook.csv row: the counting submission's report, its score after the late
    penalty; a student without a submission is `missing` with 0 points."""
    if row["submission"] is None:
        return StudentResult(
            student=row["student"],
            status="missing",
            max_score=assignment.points,
            message="no submission",
        )
    report = row.get("report") or {}
    max_score = float(report.get("max_score", assignment.points))
    score = float(row["score"])
    document = {
        **report,
        "score": score,
        "max_score": max_score,
        "percent": round(100.0 * score / max_score, 2) if max_score else 0.0,
        "batch": {"student": row["student"], "status": row["status"], "message": row["message"]},
    }
    return result_row(document)


def _person(row: dict[str, Any]) -> Person:
    """The student as an LMS matches them: the roster's id is the institution's id (Canvas's
    SIS User ID, Gradescope's SID); Moodle matches by email, else that id."""
    return Person(
        name=row["name"],
        sis_user_id=row["student"],
        section=row["section"],
        email=row["email"],
        identifier=row["email"] or row["student"],
    )


def _gradescope_zip(assignment: Assignment, rows: list[dict[str, Any]]) -> bytes:
    """`gradescope/<student>.json` for each student whose counting submission was graded."""
    graded = [row for row in rows if (row.get("report") or {}).get("tests")]
    stems = file_stems([row["student"] for row in graded])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for row in graded:
            grade = grade_from_report(row["report"])
            grade = dataclasses.replace(grade, hidden_visibility=assignment.hidden_visibility)
            results = json.loads(to_gradescope(grade))
            if row["late_days"]:
                results["score"] = float(row["score"])
                results["output"] += (
                    f"\nLate by {row['late_days']} day(s): the score counts "
                    f"×{row['factor']:g}, {row['score']:g} points."
                )
            entry = zipfile.ZipInfo(f"gradescope/{stems[row['student']]}.json", ZIP_TIME)
            text = json.dumps(results, indent=2) + "\n"
            archive.writestr(entry, text, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()
