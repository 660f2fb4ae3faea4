"""Grades in the form an LMS imports: Canvas's gradebook CSV and Moodle's grade import.

Canvas: the columns of its gradebook export (`Student`, `ID`, `SIS User ID`, `SIS Login ID`,
`Section`) and one assignment column, in points; Canvas matches a row by any of the ids and
an existing assignment by its column title, `Name (assignment id)`, else creates one. Moodle:
`identifier,grade`, mapped in Moodle's "Import grades from CSV" to a user field (email,
username or ID number) and the assignment's grade item. Every text cell goes through
`csv_cell`; grades are the grader's own numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from grader.lms import Person
from grader.safetext import csv_cell

CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")


def canvas_can_match(person: Person) -> bool:
    """Whether Canvas can match a row for `person` (it needs one of its ids)."""
    return bool(person.canvas_id or person.sis_user_id or person.sis_login_id)


def moodle_identifier(person: Person) -> str:
    """What a Moodle import matches `person` by: the roster's identifier, else the email,
    else the login."""
    return person.identifier or person.email or person.sis_login_id


def _csv(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows(rows)
    return buffer.getvalue()


def canvas_csv(grades: Iterable[tuple[Person, float]], column: str) -> str:
    """Canvas's grade import: one row per person, the grade in points under `column`."""
    rows = [[csv_cell(name) for name in (*CANVAS_COLUMNS, column)]]
    for person, score in grades:
        ids = (person.name, person.canvas_id, person.sis_user_id, person.sis_login_id)
        rows.append([*(csv_cell(value) for value in (*ids, person.section)), f"{score:g}"])
    return _csv(rows)


def moodle_csv(grades: Iterable[tuple[Person, float]]) -> str:
    """Moodle's grade import: `identifier,grade`, one row per person."""
    rows = [["identifier", "grade"]]
    rows += [[csv_cell(moodle_identifier(person)), f"{score:g}"] for person, score in grades]
    return _csv(rows)
