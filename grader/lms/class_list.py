"""A roster: the class list that maps submissions to student ids (`grade batch --roster`).

A CSV file with a header. Its columns are found by name, in any order and any case:
`Student` (or `Name`), `ID` (Canvas's user id), `SIS User ID`, `SIS Login ID`, `Section`,
`Email`, `Identifier` (what Moodle matches users by) and `Submission` (the name of the
student's folder, zip or group in the submissions folder). A gradebook exported from Canvas
is a roster as it is (its "Points Possible" row is skipped).

A submission belongs to the roster entry whose `Submission`, `SIS Login ID`, `Identifier`,
email, `SIS User ID` or `ID` is the submission's name, or whose ids are those the LMS
export named it by (Canvas's user id in a bulk download, Gradescope's SID and email).
Names and emails compare without regard to case.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, fields
from pathlib import Path

from grader.errors import BadInput
from grader.lms import Person
from grader.safecopy import shown

MAX_ROSTER_BYTES = 16 << 20
COLUMNS = {
    "student": "name",
    "name": "name",
    "id": "canvas_id",
    "sis user id": "sis_user_id",
    "sis login id": "sis_login_id",
    "section": "section",
    "email": "email",
    "email address": "email",
    "identifier": "identifier",
    "submission": "submission",
}
ID_FIELDS = ("submission", "canvas_id", "sis_user_id", "sis_login_id", "email", "identifier")


@dataclass(frozen=True)
class Entry:
    """One row of the roster: the person, and the submission name it gives, if any."""

    person: Person
    submission: str = ""

    def names(self) -> set[str]:
        """Every name a submission of this student may have (folded)."""
        person = self.person
        found = {
            self.submission,
            person.sis_login_id,
            person.identifier,
            person.email,
            person.sis_user_id,
            person.canvas_id,
        }
        return {name.casefold() for name in found if name}

    def is_one_of(self, people: tuple[Person, ...]) -> bool:
        """Whether an LMS export named this student among `people` by the same id."""
        mine = self.person
        for other in people:
            if mine.canvas_id and mine.canvas_id == other.canvas_id:
                return True
            if mine.sis_user_id and mine.sis_user_id == other.sis_user_id:
                return True
            emails = {e.casefold() for e in (mine.email, mine.sis_login_id, mine.identifier) if e}
            if other.email and other.email.casefold() in emails:
                return True
        return False


@dataclass(frozen=True)
class ClassList:
    """The roster's entries, in its order."""

    entries: tuple[Entry, ...]

    def match(self, name: str, people: tuple[Person, ...]) -> list[Entry]:
        """The entries a submission called `name`, handed in by `people`, belongs to."""
        folded = name.casefold()
        return [e for e in self.entries if folded in e.names() or e.is_one_of(people)]


def load(path: Path) -> ClassList:
    """Read the roster at `path`; a missing, unreadable or unrecognisable one is `BadInput`."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_ROSTER_BYTES + 1)
    except OSError as error:
        raise BadInput(f"cannot read the roster {shown(path)}: {error.strerror or error}") from None
    if len(data) > MAX_ROSTER_BYTES:
        raise BadInput(f"the roster {shown(path)} is larger than {MAX_ROSTER_BYTES >> 20} MB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(
            f"the roster {shown(path)} is not UTF-8 text (save it as CSV UTF-8)."
        ) from None
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise BadInput(f"the roster {shown(path)} is not a CSV file ({error}).") from None
    if not rows:
        raise BadInput(f"the roster {shown(path)} is empty.")
    header = [COLUMNS.get(" ".join(cell.split()).casefold()) for cell in rows[0]]
    if not set(header) & set(ID_FIELDS):
        raise BadInput(
            f"the roster {shown(path)} has none of the columns Submission, ID, SIS User ID, "
            "SIS Login ID, Email or Identifier (a gradebook exported from Canvas has them)."
        )
    person_fields = {f.name for f in fields(Person)}
    entries = []
    for row in rows[1:]:
        values: dict[str, str] = {}
        for column, cell in zip(header, row, strict=False):
            if column is not None and cell.strip() and column not in values:
                values[column] = cell.strip()
        if not values or values.get("name") == "Points Possible":
            continue
        person = Person(**{k: v for k, v in values.items() if k in person_fields})
        entries.append(Entry(person, values.get("submission", "")))
    return ClassList(tuple(entries))


@dataclass(frozen=True)
class Grades:
    """Each person's grade in points, and what the roster could not settle."""

    grades: tuple[tuple[Person, float], ...]
    unmatched: tuple[str, ...] = ()
    """Submissions the roster has nobody for."""
    missing: tuple[str, ...] = ()
    """Roster entries with no submission."""
    ambiguous: tuple[str, ...] = ()
    """Roster entries more than one submission belongs to (the best score counts)."""


def _label(person: Person) -> str:
    return person.name or person.sis_login_id or person.email or person.sis_user_id or "?"


def grades_for(
    submissions: list[tuple[str, tuple[Person, ...], float]], roster: ClassList | None
) -> Grades:
    """The grade of each person from (submission name, people the LMS named, score) of
    every graded submission: with a roster, of each roster entry a submission belongs to
    (in the roster's order); without one, of the people the LMS export named, or of a
    person called like the submission."""
    if roster is None:
        grades = [
            (person, score)
            for name, people, score in submissions
            for person in (people or (Person(name=name),))
        ]
        return Grades(tuple(grades))
    scores: dict[int, list[float]] = {}
    unmatched = []
    for name, people, score in submissions:
        entries = roster.match(name, people)
        if not entries:
            unmatched.append(name)
        for entry in entries:
            scores.setdefault(id(entry), []).append(score)
    found = [(e, scores[id(e)]) for e in roster.entries if id(e) in scores]
    return Grades(
        grades=tuple((entry.person, max(got)) for entry, got in found),
        unmatched=tuple(unmatched),
        missing=tuple(_label(e.person) for e in roster.entries if id(e) not in scores),
        ambiguous=tuple(_label(entry.person) for entry, got in found if len(got) > 1),
    )
